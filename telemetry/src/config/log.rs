//! What goes to stdout and which events are kept: `TELEMETRY_LOG_FORMAT`
//! and `RUST_LOG`.
//!
//! `RUST_LOG` is parsed once, here, into the `EnvFilter` the subscriber
//! runs: validation and filtering cannot disagree, and the builder has no
//! second parse (and no second error path) of its own.

use tracing_subscriber::EnvFilter;

use super::parse::Parser;
use crate::env::EnvSource;

/// The `RUST_LOG` used when none is set.
const DEFAULT_FILTER: &str = "info";

/// Stdout log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line, with `trace_id` and `span_id`.
    Json,
    /// Readable text, for development.
    Text,
    /// No line for the service's own events: for services whose logs go
    /// over OTLP and whose stdout would be collected too (each record would
    /// arrive twice). Telemetry's own events (start-up and export warnings)
    /// and its exporters' are still written, as JSON: they are what says the
    /// OTLP path itself is failing.
    None,
}

/// `RUST_LOG` plus a default that silences the SDK's per-failure export
/// warnings (telemetry's own rate-limited warning replaces them), unless
/// the user asked for `opentelemetry*` targets explicitly.
fn with_quiet_sdk(rust_log: &str) -> String {
    if rust_log.contains("opentelemetry") {
        rust_log.to_string()
    } else {
        format!("{rust_log},opentelemetry=error")
    }
}

/// A fresh filter from `RUST_LOG` as [`Config::log_filter`] holds it, for
/// each further copy of the layers. The value was validated when the
/// configuration was read, so the fallback is never reached in practice.
pub(crate) fn filter_from(rust_log: &str) -> EnvFilter {
    EnvFilter::builder()
        .parse(with_quiet_sdk(rust_log))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

impl<E: EnvSource + ?Sized> Parser<'_, E> {
    /// The `RUST_LOG` text for [`Config::log_filter`](super::Config::log_filter)
    /// and, kept on the parser, the filter built from it. The added
    /// `opentelemetry=error` always parses, so the value fails exactly when
    /// `RUST_LOG` alone would.
    pub(super) fn log_filter(&mut self) -> String {
        let raw = self
            .env
            .var("RUST_LOG")
            .unwrap_or_else(|| DEFAULT_FILTER.to_string());
        match EnvFilter::builder().parse(with_quiet_sdk(&raw)) {
            Ok(filter) => {
                self.filter = Some(filter);
                raw
            }
            Err(e) => {
                self.fail_because(
                    "RUST_LOG",
                    &raw,
                    "tracing-subscriber filter directives, e.g. info,token_engine=debug",
                    e,
                );
                DEFAULT_FILTER.to_string()
            }
        }
    }

    pub(super) fn log_format(&mut self) -> Option<LogFormat> {
        const VAR: &str = "TELEMETRY_LOG_FORMAT";
        let raw = self.env.var(VAR)?;
        match raw.trim().to_ascii_lowercase().as_str() {
            "json" => Some(LogFormat::Json),
            "text" => Some(LogFormat::Text),
            "none" => Some(LogFormat::None),
            _ => {
                self.fail(VAR, &raw, "json, text or none");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::config::Config;
    use crate::config::parse::{assert_rejected, invalid};

    #[test]
    fn the_filter_is_built_with_the_configuration() {
        let (c, filter) = Config::load(&[("RUST_LOG", "warn,token_engine=debug")]).unwrap();
        assert_eq!(c.log_filter, "warn,token_engine=debug");
        let shown = filter.to_string();
        for d in ["warn", "token_engine=debug", "opentelemetry=error"] {
            assert!(shown.contains(d), "{d} missing from {shown}");
        }
        let (c, filter) = Config::load(&[]).unwrap();
        assert_eq!(c.log_filter, "info");
        assert!(filter.to_string().contains("info"), "{filter}");
    }

    #[test]
    fn explicit_opentelemetry_directives_are_left_alone() {
        assert_eq!(
            with_quiet_sdk("info,opentelemetry_sdk=debug"),
            "info,opentelemetry_sdk=debug"
        );
        assert_eq!(with_quiet_sdk("info"), "info,opentelemetry=error");
    }

    #[test]
    fn bad_rust_log_is_reported_with_the_parser_error_as_source() {
        assert_rejected("RUST_LOG", "info,[", "filter directives");
        let errs = invalid(&[("RUST_LOG", "info,token_engine=loud")]);
        assert!(errs[0].source().is_some());
        assert!(Config::load(&[("RUST_LOG", "info,[")]).is_err());
    }

    #[test]
    fn log_format_accepts_json_text_and_none_only() {
        let c = Config::from_env(&[("TELEMETRY_LOG_FORMAT", "JSON")]).unwrap();
        assert_eq!(c.log_format, Some(LogFormat::Json));
        assert_eq!(Config::from_env(&[]).unwrap().log_format, None);
        let c = Config::from_env(&[("TELEMETRY_LOG_FORMAT", " None ")]).unwrap();
        assert_eq!(c.log_format, Some(LogFormat::None));
        assert_rejected("TELEMETRY_LOG_FORMAT", "xml", "json, text or none");
        assert_rejected("TELEMETRY_LOG_FORMAT", "off", "json, text or none");
    }
}
