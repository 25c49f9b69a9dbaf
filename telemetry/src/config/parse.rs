//! Reading values from an [`EnvSource`]: the typed readers every variable
//! goes through, and the error list they fill.
//!
//! A reader that meets a bad value records a [`ConfigError`] and returns the
//! default, so parsing goes on and one start-up reports every bad variable.

use std::time::Duration;

use tracing_subscriber::EnvFilter;

use super::errors::{ConfigError, ConfigErrors};
use super::file;
use super::types::{
    Config, HistogramAggregation, LogExporterKind, MetricExporterKind, PropagatorKind,
    SamplerConfig, Signal, SpanExporterKind, TemporalityPreference,
};
use crate::env::EnvSource;

impl Config {
    /// Parses and validates the environment, or, when `OTEL_CONFIG_FILE`
    /// names a declarative configuration file, that file (which then
    /// replaces every other `OTEL_*` variable, as the specification says).
    ///
    /// ```
    /// use telemetry::{Config, MetricExporterKind};
    ///
    /// let cfg = Config::from_env(&[("OTEL_METRICS_EXPORTER", "otlp,prometheus")]).unwrap();
    /// assert_eq!(cfg.metrics_exporters, [MetricExporterKind::Otlp, MetricExporterKind::Prometheus]);
    ///
    /// let err = Config::from_env(&[("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err();
    /// assert!(err.to_string().contains("OTEL_TRACES_SAMPLER=\"sometimes\""));
    /// ```
    pub fn from_env(env: &(impl EnvSource + ?Sized)) -> Result<Config, ConfigErrors> {
        Config::load(env).map(|(config, _)| config)
    }

    /// [`Config::from_env`] and the `RUST_LOG` filter parsed on the way, so
    /// the subscriber runs the very filter that was validated.
    pub(crate) fn load(
        env: &(impl EnvSource + ?Sized),
    ) -> Result<(Config, EnvFilter), ConfigErrors> {
        let Some(path) = env.var(file::VARIABLE) else {
            return Config::load_environment(env);
        };
        let path = path.trim().to_string();
        let mut translated = file::load(&path, env)?;
        let parsed = Config::load_environment(&translated.env);
        let (mut config, filter) = match (
            file::report(&path, &mut translated, parsed.as_ref().err().cloned()),
            parsed,
        ) {
            (Some(errors), _) => return Err(errors),
            (None, Ok(loaded)) => loaded,
            // Unreachable: a parser error is in the report.
            (None, Err(errors)) => return Err(errors),
        };
        config.config_file = Some(path);
        config.typed_resource_attributes = translated.resource;
        config.views = translated.views;
        Ok((config, filter))
    }

    /// [`Config::load`] of the `OTEL_*` variables alone.
    fn load_environment(
        env: &(impl EnvSource + ?Sized),
    ) -> Result<(Config, EnvFilter), ConfigErrors> {
        let mut p = Parser::new(env);
        let cfg = p.config();
        match p.filter.take() {
            Some(filter) if p.errors.is_empty() => Ok((cfg, filter)),
            // Without a filter `log_filter` has recorded why.
            _ => Err(ConfigErrors(p.errors)),
        }
    }
}

/// The configuration of an empty environment: every specification default.
impl Default for Config {
    fn default() -> Self {
        let empty: [(&str, &str); 0] = [];
        Parser::new(&empty).config()
    }
}

/// One pass over an environment, collecting every error on the way.
pub(super) struct Parser<'a, E: EnvSource + ?Sized> {
    pub(super) env: &'a E,
    errors: Vec<ConfigError>,
    /// The `RUST_LOG` filter, once `log_filter` has parsed it.
    pub(super) filter: Option<EnvFilter>,
}

impl<'a, E: EnvSource + ?Sized> Parser<'a, E> {
    fn new(env: &'a E) -> Self {
        Parser {
            env,
            errors: Vec::new(),
            filter: None,
        }
    }
}

impl<E: EnvSource + ?Sized> Parser<'_, E> {
    pub(super) fn fail(&mut self, variable: &str, value: &str, expected: impl Into<String>) {
        self.errors
            .push(ConfigError::new(variable, value, expected));
    }

    /// [`Parser::fail`] keeping the parser error that explains why.
    pub(super) fn fail_because(
        &mut self,
        variable: &str,
        value: &str,
        expected: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) {
        self.errors
            .push(ConfigError::new(variable, value, expected).with_source(source));
    }

    fn config(&mut self) -> Config {
        let otlp_generic = self.otlp_generic();
        let config = Config {
            sdk_disabled: self.boolean("OTEL_SDK_DISABLED", false),
            service_name: self
                .env
                .var("OTEL_SERVICE_NAME")
                .map(|s| s.trim().to_string()),
            resource_attributes: self.resource_attributes(),
            propagators: self.propagators(),
            traces_exporters: self.exporters(
                Signal::Traces,
                &[
                    ("otlp", SpanExporterKind::Otlp),
                    ("console", SpanExporterKind::Console),
                    ("logging", SpanExporterKind::Console),
                ],
                SpanExporterKind::Otlp,
            ),
            metrics_exporters: self.exporters(
                Signal::Metrics,
                &[
                    ("otlp", MetricExporterKind::Otlp),
                    ("prometheus", MetricExporterKind::Prometheus),
                    ("console", MetricExporterKind::Console),
                    ("logging", MetricExporterKind::Console),
                ],
                MetricExporterKind::Otlp,
            ),
            logs_exporters: self.exporters(
                Signal::Logs,
                &[
                    ("otlp", LogExporterKind::Otlp),
                    ("console", LogExporterKind::Console),
                    ("logging", LogExporterKind::Console),
                ],
                LogExporterKind::Otlp,
            ),
            sampler: self.sampler(),
            otlp_traces: self.otlp_signal(Signal::Traces, &otlp_generic),
            otlp_metrics: self.otlp_signal(Signal::Metrics, &otlp_generic),
            otlp_logs: self.otlp_signal(Signal::Logs, &otlp_generic),
            span_batch: self.batch("OTEL_BSP", 5000),
            log_batch: self.batch("OTEL_BLRP", 1000),
            metric_export_interval: self.millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000, false),
            metric_export_timeout: self.millis("OTEL_METRIC_EXPORT_TIMEOUT", 30_000, false),
            metrics_temporality: self.choice(
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                &[
                    ("cumulative", TemporalityPreference::Cumulative),
                    ("delta", TemporalityPreference::Delta),
                    ("lowmemory", TemporalityPreference::LowMemory),
                ],
            ),
            histogram_aggregation: self.choice(
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                &[
                    (
                        "explicit_bucket_histogram",
                        HistogramAggregation::ExplicitBucket,
                    ),
                    (
                        "base2_exponential_bucket_histogram",
                        HistogramAggregation::Base2Exponential,
                    ),
                ],
            ),
            limits: self.limits(),
            prometheus_host: self
                .env
                .var("OTEL_EXPORTER_PROMETHEUS_HOST")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|| "localhost".to_string()),
            prometheus_port: self.port("OTEL_EXPORTER_PROMETHEUS_PORT", 9464),
            shutdown_timeout: self.millis("TELEMETRY_SHUTDOWN_TIMEOUT", 5_000, false),
            log_format: self.log_format(),
            log_filter: self.log_filter(),
            config_file: None,
            typed_resource_attributes: Vec::new(),
            views: Vec::new(),
            explicit_exporters: [Signal::Traces, Signal::Metrics, Signal::Logs]
                .into_iter()
                .filter(|s| {
                    self.env
                        .var(&format!("OTEL_{}_EXPORTER", s.upper()))
                        .is_some()
                })
                .collect(),
            log_limits_requested: self
                .env
                .var("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT")
                .is_some()
                || self
                    .env
                    .var("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT")
                    .is_some(),
        };
        self.check_combinations(&config);
        config
    }

    /// One of `choices` (case-insensitive, as the specification says for
    /// enum values); unset or empty means the first.
    fn choice<T: Copy + Default>(&mut self, var: &str, choices: &[(&str, T)]) -> T {
        let Some(raw) = self.env.var(var) else {
            return T::default();
        };
        let value = raw.trim().to_ascii_lowercase();
        if value.is_empty() {
            return T::default();
        }
        match choices.iter().find(|(name, _)| *name == value) {
            Some((_, v)) => *v,
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                self.fail(var, &raw, names.join(", "));
                T::default()
            }
        }
    }

    /// Settings that are each valid but cannot work together.
    fn check_combinations(&mut self, config: &Config) {
        if config.histogram_aggregation == HistogramAggregation::Base2Exponential
            && config
                .metrics_exporters
                .contains(&MetricExporterKind::Prometheus)
        {
            let raw = self
                .env
                .var("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION")
                .unwrap_or_default();
            self.fail(
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                &raw,
                "explicit_bucket_histogram while OTEL_METRICS_EXPORTER includes prometheus \
                 (the aggregation applies to the whole meter provider, and the Prometheus text \
                 format has no exponential histograms); for exponential histograms export \
                 OTLP only and let the collector write native histograms",
            );
        }
    }

    fn boolean(&mut self, var: &str, default: bool) -> bool {
        match self.env.var(var) {
            None => default,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    self.fail(var, &v, "true or false");
                    default
                }
            },
        }
    }

    pub(super) fn unsigned(&mut self, var: &str, default: u64, allow_zero: bool) -> u64 {
        match self.env.var(var) {
            None => default,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(0) if !allow_zero => {
                    self.fail(var, &v, "a positive integer");
                    default
                }
                Ok(n) => n,
                Err(_) => {
                    let what = if allow_zero {
                        "a non-negative integer"
                    } else {
                        "a positive integer"
                    };
                    self.fail(var, &v, what);
                    default
                }
            },
        }
    }

    pub(super) fn millis(&mut self, var: &str, default_ms: u64, allow_zero: bool) -> Duration {
        match self.env.var(var) {
            None => Duration::from_millis(default_ms),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(0) if !allow_zero => {
                    self.fail(var, &v, "a positive number of milliseconds");
                    Duration::from_millis(default_ms)
                }
                Ok(n) => Duration::from_millis(n),
                Err(_) => {
                    self.fail(var, &v, "a whole number of milliseconds, e.g. 5000");
                    Duration::from_millis(default_ms)
                }
            },
        }
    }

    fn port(&mut self, var: &str, default: u16) -> u16 {
        match self.env.var(var) {
            None => default,
            Some(v) => match v.trim().parse::<u16>() {
                Ok(p) => p,
                Err(_) => {
                    self.fail(var, &v, "a TCP port number 0-65535");
                    default
                }
            },
        }
    }

    fn resource_attributes(&mut self) -> Vec<(String, String)> {
        const VAR: &str = "OTEL_RESOURCE_ATTRIBUTES";
        let Some(raw) = self.env.var(VAR) else {
            return Vec::new();
        };
        match parse_key_values(&raw) {
            Ok(kvs) => kvs,
            Err(bad) => {
                self.fail(
                    VAR,
                    &raw,
                    format!(
                        "comma-separated key=value pairs with percent-encoded values (bad entry: {bad:?})"
                    ),
                );
                Vec::new()
            }
        }
    }

    fn propagators(&mut self) -> Vec<PropagatorKind> {
        const VAR: &str = "OTEL_PROPAGATORS";
        let Some(raw) = self.env.var(VAR) else {
            return vec![PropagatorKind::TraceContext, PropagatorKind::Baggage];
        };
        let mut out = Vec::new();
        let mut none = false;
        for item in list(&raw) {
            match item.as_str() {
                "tracecontext" => push_unique(&mut out, PropagatorKind::TraceContext),
                "baggage" => push_unique(&mut out, PropagatorKind::Baggage),
                "b3" => push_unique(&mut out, PropagatorKind::B3),
                "b3multi" => push_unique(&mut out, PropagatorKind::B3Multi),
                "jaeger" => push_unique(&mut out, PropagatorKind::Jaeger),
                "none" => none = true,
                "xray" | "ottrace" => self.fail(
                    VAR,
                    &raw,
                    format!(
                        "tracecontext, baggage, b3, b3multi, jaeger or none ({item} is a valid OpenTelemetry name but not built into this crate)"
                    ),
                ),
                _ => self.fail(
                    VAR,
                    &raw,
                    "a comma-separated list of tracecontext, baggage, b3, b3multi, jaeger, none",
                ),
            }
        }
        // `none` anywhere wins, as the specification says.
        if none { Vec::new() } else { out }
    }

    /// `OTEL_<SIGNAL>_EXPORTER`: a list of the names in `known` (the
    /// signal's own kinds, so a kind the signal has not cannot be chosen),
    /// or `none`; unset means `default`.
    fn exporters<K: Copy + PartialEq>(
        &mut self,
        signal: Signal,
        known: &[(&str, K)],
        default: K,
    ) -> Vec<K> {
        let var = format!("OTEL_{}_EXPORTER", signal.upper());
        let Some(raw) = self.env.var(&var) else {
            return vec![default];
        };
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in known {
            // `logging` is the deprecated spelling of `console`.
            if *name != "logging" {
                names.push(name);
            }
        }
        names.push("none");
        let accepted = format!("a comma-separated list of {}", names.join(", "));
        let mut out = Vec::new();
        let mut none = false;
        for item in list(&raw) {
            if item == "none" {
                none = true;
            } else if let Some((_, kind)) = known.iter().find(|(name, _)| *name == item) {
                push_unique(&mut out, *kind);
            } else {
                self.fail(&var, &raw, &accepted);
            }
        }
        if none && !out.is_empty() {
            self.fail(
                &var,
                &raw,
                "either none alone or a list of exporters, not both",
            );
        }
        if none { Vec::new() } else { out }
    }

    fn sampler(&mut self) -> SamplerConfig {
        const VAR: &str = "OTEL_TRACES_SAMPLER";
        const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
        let ratio = |p: &mut Self| -> f64 {
            match p.env.var(ARG) {
                None => 1.0,
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => r,
                    _ => {
                        p.fail(ARG, &v, "a sampling probability between 0 and 1, e.g. 0.25");
                        1.0
                    }
                },
            }
        };
        let Some(raw) = self.env.var(VAR) else {
            return SamplerConfig::ParentBasedAlwaysOn;
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "always_on" => SamplerConfig::AlwaysOn,
            "always_off" => SamplerConfig::AlwaysOff,
            "traceidratio" => SamplerConfig::TraceIdRatio(ratio(self)),
            "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
            "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio(self)),
            _ => {
                self.fail(
                    VAR,
                    &raw,
                    "one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio",
                );
                SamplerConfig::ParentBasedAlwaysOn
            }
        }
    }
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// Parses `k1=v1,k2=v2` with percent-decoded values (W3C baggage style, as
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS` use).
/// Returns the offending entry on error.
pub(super) fn parse_key_values(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in raw.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((k, v)) = entry.split_once('=') else {
            return Err(entry.to_string());
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(entry.to_string());
        }
        let v = percent_decode(v.trim()).ok_or_else(|| entry.to_string())?;
        out.push((k.to_string(), v));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The errors `env` produces; panics when it parses cleanly.
#[cfg(test)]
pub(super) fn invalid(env: &[(&str, &str)]) -> Vec<ConfigError> {
    match Config::from_env(env) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.0,
    }
}

/// Asserts that `var=value` alone yields one error naming the variable, the
/// value and, in what is accepted, `expected`.
#[cfg(test)]
pub(super) fn assert_rejected(var: &str, value: &str, expected: &str) {
    let errs = invalid(&[(var, value)]);
    assert_eq!(errs.len(), 1, "{var}={value}: {errs:?}");
    assert_eq!(errs[0].variable, var);
    assert_eq!(errs[0].value, value);
    assert!(
        errs[0].expected.contains(expected),
        "{var}: {:?} should mention {expected:?}",
        errs[0].expected
    );
}

/// Asserts that `var` refuses text, negative and fractional numbers, and 0
/// (it must be a positive whole number), naming itself each time.
#[cfg(test)]
pub(super) fn assert_positive_number(var: &str) {
    for bad in ["abc", "-1", "1.5"] {
        let errs = invalid(&[(var, bad)]);
        assert_eq!(errs[0].variable, var, "{var}={bad}");
        assert_eq!(errs[0].value, bad);
    }
    let errs = invalid(&[(var, "0")]);
    assert_eq!(errs[0].variable, var);
    assert!(errs[0].expected.contains("positive"), "{var}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_specification() {
        let c = Config::from_env(&[]).unwrap();
        assert!(!c.sdk_disabled);
        assert_eq!(
            c.propagators,
            vec![PropagatorKind::TraceContext, PropagatorKind::Baggage]
        );
        assert_eq!(c.traces_exporters, vec![SpanExporterKind::Otlp]);
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(c.otlp_traces.endpoint, "http://localhost:4317");
        assert_eq!(c.otlp_traces.timeout, Duration::from_secs(10));
        assert_eq!(c.span_batch.max_queue_size, 2048);
        assert_eq!(c.span_batch.schedule_delay, Duration::from_millis(5000));
        assert_eq!(c.log_batch.schedule_delay, Duration::from_millis(1000));
        assert_eq!(c.metric_export_interval, Duration::from_secs(60));
        assert_eq!(c.limits.span_attribute_count, 128);
        assert_eq!(c.prometheus_port, 9464);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(c, Config::default());
    }

    #[test]
    fn every_enum_variable_rejects_unknown_values_naming_variable_and_choices() {
        let cases = [
            ("OTEL_SDK_DISABLED", "yes", "true or false"),
            (
                "OTEL_PROPAGATORS",
                "tracecontext,foo",
                "tracecontext, baggage, b3, b3multi, jaeger, none",
            ),
            ("OTEL_PROPAGATORS", "xray", "not built into this crate"),
            ("OTEL_TRACES_EXPORTER", "zipkin", "otlp, console, none"),
            ("OTEL_TRACES_EXPORTER", "prometheus", "otlp, console, none"),
            (
                "OTEL_METRICS_EXPORTER",
                "statsd",
                "otlp, prometheus, console, none",
            ),
            ("OTEL_LOGS_EXPORTER", "file", "otlp, console, none"),
            (
                "OTEL_TRACES_SAMPLER",
                "sometimes",
                "parentbased_traceidratio",
            ),
            ("OTEL_METRICS_EXPORTER", "otlp,none", "none alone"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                "sometimes",
                "cumulative, delta, lowmemory",
            ),
            (
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                "exponential",
                "explicit_bucket_histogram, base2_exponential_bucket_histogram",
            ),
        ];
        for (var, value, expected) in cases {
            assert_rejected(var, value, expected);
        }
    }

    #[test]
    fn number_variables_reject_garbage_and_zero() {
        for var in [
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_METRIC_EXPORT_TIMEOUT",
            "TELEMETRY_SHUTDOWN_TIMEOUT",
        ] {
            assert_positive_number(var);
        }
        for (var, bad) in [
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "http"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ] {
            let env = [("OTEL_TRACES_SAMPLER", "traceidratio"), (var, bad)];
            let errs = invalid(&env);
            assert_eq!(errs[0].variable, var);
        }
    }

    #[test]
    fn resource_attributes_are_percent_decoded_and_bad_ones_reported() {
        let c = Config::from_env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=prod,team=pay%2Cments",
        )])
        .unwrap();
        assert_eq!(
            c.resource_attributes,
            vec![
                ("deployment.environment.name".into(), "prod".into()),
                ("team".into(), "pay,ments".into())
            ]
        );
        let errs = invalid(&[("OTEL_RESOURCE_ATTRIBUTES", "a=%zz")]);
        assert_eq!(errs[0].variable, "OTEL_RESOURCE_ATTRIBUTES");
        assert!(errs[0].expected.contains("a=%zz"), "{:?}", errs[0].expected);
    }

    #[test]
    fn key_values_skip_empty_entries_and_name_the_bad_one() {
        assert_eq!(
            parse_key_values(" a = 1 ,, b=x%3Dy "),
            Ok(vec![("a".into(), "1".into()), ("b".into(), "x=y".into())])
        );
        assert_eq!(parse_key_values("a=1,novalue"), Err("novalue".into()));
        assert_eq!(parse_key_values("=1"), Err("=1".into()));
        assert_eq!(parse_key_values("a=%4"), Err("a=%4".into()));
    }

    #[test]
    fn none_disables_and_lists_combine() {
        let c = Config::from_env(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "otlp, console"),
            ("OTEL_PROPAGATORS", "none"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        assert!(c.traces_exporters.is_empty());
        assert_eq!(
            c.logs_exporters,
            vec![LogExporterKind::Otlp, LogExporterKind::Console]
        );
        assert!(c.propagators.is_empty());
        assert_eq!(c.sampler, SamplerConfig::ParentBasedTraceIdRatio(0.25));
    }

    #[test]
    fn metric_choices_are_case_insensitive_and_exponential_refuses_prometheus() {
        let c = Config::from_env(&vec![
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE".to_string(),
                "LowMemory".to_string(),
            ),
            (
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION".to_string(),
                "Base2_Exponential_Bucket_Histogram".to_string(),
            ),
        ])
        .unwrap();
        assert_eq!(c.metrics_temporality, TemporalityPreference::LowMemory);
        assert_eq!(
            c.histogram_aggregation,
            HistogramAggregation::Base2Exponential
        );
        assert_eq!(
            Config::default().metrics_temporality,
            TemporalityPreference::Cumulative
        );
        assert_eq!(
            Config::default().histogram_aggregation,
            HistogramAggregation::ExplicitBucket
        );
        let errors = invalid(&[
            (
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                "base2_exponential_bucket_histogram",
            ),
            ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
        ]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let text = errors[0].to_string();
        assert!(
            text.contains("Prometheus text format") && text.contains("OTEL_METRICS_EXPORTER"),
            "{text}"
        );
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let errs = invalid(&[
            ("OTEL_TRACES_SAMPLER", "x"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "y"),
            ("OTEL_LOGS_EXPORTER", "z"),
        ]);
        assert_eq!(errs.len(), 3);
        let msg = ConfigErrors(errs).to_string();
        assert!(msg.contains("OTEL_TRACES_SAMPLER=\"x\""), "{msg}");
        assert!(msg.contains("OTEL_BSP_MAX_QUEUE_SIZE=\"y\""), "{msg}");
    }
}
