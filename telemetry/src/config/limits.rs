//! SDK limits: batch queues (`OTEL_BSP_*`, `OTEL_BLRP_*`) and attribute,
//! event and link limits (`OTEL_ATTRIBUTE_*`, `OTEL_SPAN_*`,
//! `OTEL_LOGRECORD_*`, ...).

use std::time::Duration;

use super::parse::Parser;
use crate::env::EnvSource;

/// Batch processor settings (`OTEL_BSP_*` for spans, `OTEL_BLRP_*` for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Items held while waiting for export; more are dropped and counted.
    pub max_queue_size: usize,
    /// How long to wait before exporting a partial batch.
    pub schedule_delay: Duration,
    /// Deadline of one export call.
    pub export_timeout: Duration,
    /// Most items per export call.
    pub max_export_batch_size: usize,
}

/// Attribute limits (`OTEL_ATTRIBUTE_*`, `OTEL_SPAN_*`, `OTEL_LOGRECORD_*`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Longest string attribute value on spans, events and links; `None` = unlimited.
    pub span_attribute_value_length: Option<usize>,
    /// Most attributes per span.
    pub span_attribute_count: u32,
    /// Most events per span.
    pub span_event_count: u32,
    /// Most links per span.
    pub span_link_count: u32,
    /// Most attributes per span event.
    pub event_attribute_count: u32,
    /// Most attributes per span link.
    pub link_attribute_count: u32,
    /// Longest string attribute value on log records; `None` = unlimited.
    pub log_attribute_value_length: Option<usize>,
    /// Most attributes per log record.
    pub log_attribute_count: usize,
}

impl<E: EnvSource + ?Sized> Parser<'_, E> {
    pub(super) fn batch(&mut self, prefix: &str, default_delay_ms: u64) -> BatchConfig {
        let max_queue_size =
            self.unsigned(&format!("{prefix}_MAX_QUEUE_SIZE"), 2048, false) as usize;
        let mut max_export_batch_size =
            self.unsigned(&format!("{prefix}_MAX_EXPORT_BATCH_SIZE"), 512, false) as usize;
        if max_export_batch_size > max_queue_size {
            let var = format!("{prefix}_MAX_EXPORT_BATCH_SIZE");
            let raw = self
                .env
                .var(&var)
                .unwrap_or_else(|| max_export_batch_size.to_string());
            self.fail(
                &var,
                &raw,
                format!("a batch size no larger than {prefix}_MAX_QUEUE_SIZE ({max_queue_size})"),
            );
            max_export_batch_size = max_queue_size;
        }
        BatchConfig {
            max_queue_size,
            schedule_delay: self.millis(
                &format!("{prefix}_SCHEDULE_DELAY"),
                default_delay_ms,
                false,
            ),
            export_timeout: self.millis(&format!("{prefix}_EXPORT_TIMEOUT"), 30_000, false),
            max_export_batch_size,
        }
    }

    pub(super) fn limits(&mut self) -> LimitsConfig {
        let generic_len = self.optional_len("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT");
        let generic_count = self.unsigned("OTEL_ATTRIBUTE_COUNT_LIMIT", 128, true);
        // The SDK counts in u32; a larger limit is no limit at all.
        let count = |p: &mut Self, var: &str, default: u64| -> u32 {
            let n = p.unsigned(var, default, true);
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        LimitsConfig {
            span_attribute_value_length: self
                .optional_len("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
                .or(generic_len),
            span_attribute_count: count(self, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", generic_count),
            span_event_count: count(self, "OTEL_SPAN_EVENT_COUNT_LIMIT", 128),
            span_link_count: count(self, "OTEL_SPAN_LINK_COUNT_LIMIT", 128),
            event_attribute_count: count(self, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", generic_count),
            link_attribute_count: count(self, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", generic_count),
            log_attribute_value_length: self
                .optional_len("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT")
                .or(generic_len),
            log_attribute_count: self.unsigned(
                "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
                generic_count,
                true,
            ) as usize,
        }
    }

    fn optional_len(&mut self, var: &str) -> Option<usize> {
        self.env
            .var(var)
            .map(|_| self.unsigned(var, u64::MAX, true) as usize)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::parse::invalid;

    const BATCH_VARS: [&str; 8] = [
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "OTEL_BLRP_SCHEDULE_DELAY",
        "OTEL_BLRP_EXPORT_TIMEOUT",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
    ];

    const LIMIT_VARS: [&str; 10] = [
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_SPAN_EVENT_COUNT_LIMIT",
        "OTEL_SPAN_LINK_COUNT_LIMIT",
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
    ];

    #[test]
    fn every_number_variable_rejects_garbage() {
        for var in BATCH_VARS.iter().chain(LIMIT_VARS.iter()) {
            for bad in ["abc", "-1", "1.5"] {
                let errs = invalid(&[(var, bad)]);
                assert_eq!(errs[0].variable, *var, "{var}={bad}");
                assert_eq!(errs[0].value, bad);
            }
        }
    }

    #[test]
    fn batch_sizes_and_delays_must_be_positive_but_limits_may_be_zero() {
        for var in BATCH_VARS {
            let errs = invalid(&[(var, "0")]);
            assert_eq!(errs[0].variable, var);
            assert!(errs[0].expected.contains("positive"), "{var}");
        }
        for var in LIMIT_VARS {
            assert!(
                Config::from_env(&[(var, "0")]).is_ok(),
                "{var}=0 is a valid limit"
            );
        }
    }

    #[test]
    fn export_batch_larger_than_the_queue_is_rejected_and_capped() {
        let errs = invalid(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
        ]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].variable, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
        assert!(errs[0].expected.contains("(100)"), "{:?}", errs[0].expected);
        // A small queue alone lowers nothing silently: the default batch (512)
        // no longer fits and is reported under its own name.
        let errs = invalid(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "10")]);
        assert_eq!(errs[0].variable, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE");
        assert_eq!(errs[0].value, "512");
    }

    #[test]
    fn specific_limits_override_the_generic_ones() {
        let c = Config::from_env(&[
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "8"),
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "5"),
            ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "16"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "99999999999"),
        ])
        .unwrap();
        assert_eq!(c.limits.span_attribute_value_length, Some(8));
        assert_eq!(c.limits.log_attribute_value_length, Some(16));
        assert_eq!(c.limits.span_attribute_count, 3);
        assert_eq!(c.limits.event_attribute_count, 5);
        assert_eq!(c.limits.link_attribute_count, 5);
        assert_eq!(c.limits.log_attribute_count, 5);
        assert_eq!(c.limits.span_event_count, u32::MAX);
        assert_eq!(c.limits.span_link_count, 128);
        let d = Config::from_env(&[]).unwrap();
        assert_eq!(d.limits.span_attribute_value_length, None);
        assert_eq!(d.limits.log_attribute_count, 128);
    }
}
