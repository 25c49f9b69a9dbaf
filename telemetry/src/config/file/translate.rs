//! From the file's shape to what telemetry runs: the settings the
//! environment could also express become the equivalent `OTEL_*` variables
//! (so one parser validates both ways and a file equivalent to an
//! environment builds the same pipelines); what only the file can say
//! (typed resource attributes, views, the SDK's own log level) is kept
//! beside them. Each variable remembers the key path it came from, for
//! errors.

use std::collections::{BTreeMap, HashMap};

use opentelemetry::{Array, KeyValue, StringValue, Value as AttrValue};
use opentelemetry_sdk::metrics::{Aggregation as SdkAggregation, InstrumentKind};

use super::model::*;
use crate::config::types::Signal;
use crate::config::views::{MAX_CARDINALITY_LIMIT, ViewConfig, ViewSelector, ViewStream};

/// What a file says, ready for the parser.
#[derive(Debug, Default)]
pub(crate) struct Translated {
    /// The `OTEL_*` variables equivalent to the file.
    pub(crate) env: BTreeMap<String, String>,
    /// Variable → the key path that set it.
    pub(crate) origins: HashMap<String, String>,
    /// `resource.attributes`, typed.
    pub(crate) resource: Vec<KeyValue>,
    /// `meter_provider.views`.
    pub(crate) views: Vec<ViewConfig>,
    /// `log_level`, as a `tracing` level for the SDK's own targets.
    pub(crate) log_level: Option<&'static str>,
    /// (key path, value, what is accepted).
    pub(crate) errors: Vec<(String, String, String)>,
}

/// The schema's major version this crate reads.
const FILE_FORMAT_MAJOR: &str = "1";

pub(super) fn translate(file: File) -> Translated {
    let mut t = Translated::default();
    t.file_format(file.file_format.as_ref());
    if let Some(v) = &file.disabled {
        t.set("OTEL_SDK_DISABLED", "disabled", v);
    }
    if let Some(v) = &file.log_level {
        t.log_level = t.level(v);
    }
    if let Some(limits) = &file.attribute_limits {
        t.limit(
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "attribute_limits.attribute_value_length_limit",
            &limits.attribute_value_length_limit,
        );
        t.limit(
            "OTEL_ATTRIBUTE_COUNT_LIMIT",
            "attribute_limits.attribute_count_limit",
            &limits.attribute_count_limit,
        );
    }
    t.unsupported("instrumentation/development", &file.instrumentation, "instrumentation options belong to the instrumentation libraries; configure services-glue in code");
    t.unsupported(
        "distribution",
        &file.distribution,
        "no distribution-specific options exist",
    );
    t.resource(file.resource.unwrap_or_default());
    t.propagators(file.propagator);
    // An omitted provider is a no-op provider: the signal is off.
    match file.tracer_provider {
        Some(tp) => t.tracer_provider(tp),
        None => t.insert("OTEL_TRACES_EXPORTER", "tracer_provider", "none"),
    }
    match file.meter_provider {
        Some(mp) => t.meter_provider(mp),
        None => t.insert("OTEL_METRICS_EXPORTER", "meter_provider", "none"),
    }
    match file.logger_provider {
        Some(lp) => t.logger_provider(lp),
        None => t.insert("OTEL_LOGS_EXPORTER", "logger_provider", "none"),
    }
    t
}

impl Translated {
    fn insert(&mut self, var: &str, path: &str, value: &str) {
        self.env.insert(var.to_string(), value.to_string());
        self.origins.insert(var.to_string(), path.to_string());
    }

    fn set(&mut self, var: &str, path: &str, value: &Scalar) {
        self.insert(var, path, &value.text());
    }

    fn fail(&mut self, path: &str, value: &str, expected: impl Into<String>) {
        self.errors
            .push((path.to_string(), value.to_string(), expected.into()));
    }

    fn unsupported(&mut self, path: &str, key: &Unsupported, why: &str) {
        if key.is_some() {
            self.fail(
                path,
                "",
                format!("no such key: it is in the configuration schema, but telemetry does not support it ({why})"),
            );
        }
    }

    fn file_format(&mut self, value: Option<&Scalar>) {
        let Some(value) = value else {
            self.fail(
                "file_format",
                "",
                "file_format: \"1.0\" (the key is required)",
            );
            return;
        };
        let text = value.text();
        let major = text.split(['.', '-']).next().unwrap_or_default();
        if major != FILE_FORMAT_MAJOR || text.contains("-rc") {
            self.fail(
                "file_format",
                &text,
                "a 1.x version such as \"1.0\" (telemetry reads the opentelemetry-configuration 1.x schema; release candidates and 0.x used other key names)",
            );
        }
    }

    fn level(&mut self, value: &Scalar) -> Option<&'static str> {
        let text = value.text().to_ascii_lowercase();
        let base = text.trim_end_matches(|c: char| c.is_ascii_digit());
        let level = match base {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" => "warn",
            "error" | "fatal" => "error",
            _ => {
                self.fail(
                    "log_level",
                    &value.text(),
                    "trace, debug, info, warn, error or fatal (optionally numbered, e.g. info2)",
                );
                return None;
            }
        };
        Some(level)
    }

    fn limit(&mut self, var: &str, path: &str, value: &Option<Scalar>) {
        if let Some(v) = value {
            self.set(var, path, v);
        }
    }

    fn resource(&mut self, resource: Resource) {
        self.unsupported(
            "resource.schema_url",
            &resource.schema_url,
            "the resource carries the semantic-conventions schema of this crate",
        );
        self.unsupported(
            "resource.detection/development",
            &resource.detection,
            "telemetry always detects host, process, Kubernetes (downward API) and service attributes",
        );
        if let Some(list) = &resource.attributes_list {
            self.set("OTEL_RESOURCE_ATTRIBUTES", "resource.attributes_list", list);
        }
        for (i, attribute) in resource.attributes.into_iter().enumerate() {
            let path = format!("resource.attributes[{i}]");
            if let Some(kv) = self.attribute(&path, attribute) {
                self.resource.push(kv);
            }
        }
    }

    fn attribute(&mut self, path: &str, attribute: Attribute) -> Option<KeyValue> {
        let name = attribute.name.text();
        if name.is_empty() {
            self.fail(&format!("{path}.name"), "", "a non-empty attribute name");
            return None;
        }
        let kind = attribute
            .kind
            .map(|k| k.text())
            .unwrap_or_else(|| "string".to_string());
        let value_path = format!("{path}.value");
        let value = attribute.value?;
        let scalars = |v: AttributeValue| match v {
            AttributeValue::One(s) => vec![s],
            AttributeValue::Many(list) => list,
        };
        let one = |t: &mut Self, v: AttributeValue| match v {
            AttributeValue::One(s) => Some(s),
            AttributeValue::Many(_) => {
                t.fail(&value_path, "a list", format!("one value for type {kind}"));
                None
            }
        };
        let value: AttrValue = match kind.as_str() {
            "string" => one(self, value)?.text().into(),
            "bool" => {
                let v = one(self, value)?;
                self.boolean(&value_path, &v)?.into()
            }
            "int" => {
                let v = one(self, value)?;
                self.integer(&value_path, &v)?.into()
            }
            "double" => {
                let v = one(self, value)?;
                self.double(&value_path, &v)?.into()
            }
            "string_array" => AttrValue::Array(Array::String(
                scalars(value)
                    .iter()
                    .map(|s| StringValue::from(s.text()))
                    .collect(),
            )),
            "bool_array" => AttrValue::Array(Array::Bool(
                scalars(value)
                    .iter()
                    .map(|s| self.boolean(&value_path, s))
                    .collect::<Option<_>>()?,
            )),
            "int_array" => AttrValue::Array(Array::I64(
                scalars(value)
                    .iter()
                    .map(|s| self.integer(&value_path, s))
                    .collect::<Option<_>>()?,
            )),
            "double_array" => AttrValue::Array(Array::F64(
                scalars(value)
                    .iter()
                    .map(|s| self.double(&value_path, s))
                    .collect::<Option<_>>()?,
            )),
            other => {
                self.fail(
                    &format!("{path}.type"),
                    other,
                    "string, bool, int, double, string_array, bool_array, int_array or double_array",
                );
                return None;
            }
        };
        Some(KeyValue::new(name, value))
    }

    fn boolean(&mut self, path: &str, v: &Scalar) -> Option<bool> {
        match v {
            Scalar::Bool(b) => Some(*b),
            Scalar::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Scalar::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            other => {
                self.fail(path, &other.text(), "true or false");
                None
            }
        }
    }

    fn integer(&mut self, path: &str, v: &Scalar) -> Option<i64> {
        match v {
            Scalar::Int(i) => Some(*i),
            Scalar::Str(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
            other => {
                self.fail(path, &other.text(), "an integer");
                None
            }
        }
    }

    fn double(&mut self, path: &str, v: &Scalar) -> Option<f64> {
        match v {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            Scalar::Str(s) if s.trim().parse::<f64>().is_ok() => s.trim().parse().ok(),
            other => {
                self.fail(path, &other.text(), "a number");
                None
            }
        }
    }

    fn propagators(&mut self, propagator: Option<Propagator>) {
        // Omitted: the no-op propagator, as the schema says.
        let Some(propagator) = propagator else {
            self.insert("OTEL_PROPAGATORS", "propagator", "none");
            return;
        };
        let mut names: Vec<String> = Vec::new();
        for (i, entry) in propagator.composite.unwrap_or_default().iter().enumerate() {
            let path = format!("propagator.composite[{i}]");
            let keys: Vec<String> = entry
                .keys()
                .map(|k| k.as_str().unwrap_or_default().to_string())
                .collect();
            match keys.as_slice() {
                [name] => match name.as_str() {
                    "tracecontext" | "baggage" | "b3" | "b3multi" | "jaeger" => {
                        names.push(name.clone())
                    }
                    "ottrace" | "xray" => self.fail(
                        &format!("{path}.{name}"),
                        "",
                        "tracecontext, baggage, b3, b3multi or jaeger (this propagator is in the schema but not built into telemetry)",
                    ),
                    _ => self.fail(
                        &format!("{path}.{name}"),
                        "",
                        "tracecontext, baggage, b3, b3multi or jaeger",
                    ),
                },
                _ => self.fail(
                    &path,
                    &keys.join(", "),
                    "exactly one propagator name per entry, e.g. - tracecontext:",
                ),
            }
        }
        if let Some(list) = &propagator.composite_list {
            for name in list.text().split(',') {
                let name = name.trim().to_ascii_lowercase();
                if !name.is_empty() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let value = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(",")
        };
        // The list goes through the environment parser, which names what it
        // accepts; `composite` entries were checked above.
        let path = if propagator.composite_list.is_some() {
            "propagator.composite_list"
        } else {
            "propagator.composite"
        };
        self.insert("OTEL_PROPAGATORS", path, &value);
    }

    fn tracer_provider(&mut self, tp: TracerProvider) {
        self.unsupported(
            "tracer_provider.tracer_configurator/development",
            &tp.configurator,
            "filter spans by target and level with RUST_LOG",
        );
        self.processors("tracer_provider", Signal::Traces, "OTEL_BSP", tp.processors);
        if let Some(limits) = &tp.limits {
            let p = "tracer_provider.limits";
            for (var, key, value) in [
                (
                    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                    "attribute_value_length_limit",
                    &limits.attribute_value_length_limit,
                ),
                (
                    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
                    "attribute_count_limit",
                    &limits.attribute_count_limit,
                ),
                (
                    "OTEL_SPAN_EVENT_COUNT_LIMIT",
                    "event_count_limit",
                    &limits.event_count_limit,
                ),
                (
                    "OTEL_SPAN_LINK_COUNT_LIMIT",
                    "link_count_limit",
                    &limits.link_count_limit,
                ),
                (
                    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
                    "event_attribute_count_limit",
                    &limits.event_attribute_count_limit,
                ),
                (
                    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
                    "link_attribute_count_limit",
                    &limits.link_attribute_count_limit,
                ),
            ] {
                self.limit(var, &format!("{p}.{key}"), value);
            }
        }
        if let Some(sampler) = &tp.sampler {
            self.sampler("tracer_provider.sampler", sampler);
        }
    }

    fn logger_provider(&mut self, lp: LoggerProvider) {
        self.unsupported(
            "logger_provider.logger_configurator/development",
            &lp.configurator,
            "filter log records by target and level with RUST_LOG",
        );
        self.processors("logger_provider", Signal::Logs, "OTEL_BLRP", lp.processors);
        if let Some(limits) = &lp.limits {
            self.limit(
                "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                "logger_provider.limits.attribute_value_length_limit",
                &limits.attribute_value_length_limit,
            );
            self.limit(
                "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
                "logger_provider.limits.attribute_count_limit",
                &limits.attribute_count_limit,
            );
        }
    }

    /// Span or log-record processors: telemetry runs one bounded batch
    /// queue per signal, feeding every exporter, so every processor must be
    /// a batch processor with the same settings.
    fn processors(
        &mut self,
        provider: &str,
        signal: Signal,
        prefix: &str,
        processors: Vec<Processor>,
    ) {
        let mut kinds: Vec<&str> = Vec::new();
        let mut first_batch: Option<(String, [Option<String>; 4])> = None;
        for (i, processor) in processors.into_iter().enumerate() {
            let path = format!("{provider}.processors[{i}]");
            self.unsupported(
                &format!("{path}.simple"),
                &processor.simple,
                "telemetry exports through its bounded batch queue only, never on the caller's thread: use batch",
            );
            let Some(batch) = processor.batch else {
                if processor.simple.is_none() {
                    self.fail(&path, "", "a batch processor: - batch: { exporter: ... }");
                }
                continue;
            };
            let settings = [
                batch.schedule_delay.as_ref().map(Scalar::text),
                batch.export_timeout.as_ref().map(Scalar::text),
                batch.max_queue_size.as_ref().map(Scalar::text),
                batch.max_export_batch_size.as_ref().map(Scalar::text),
            ];
            match &first_batch {
                None => {
                    for (suffix, key, value) in [
                        ("SCHEDULE_DELAY", "schedule_delay", &batch.schedule_delay),
                        ("EXPORT_TIMEOUT", "export_timeout", &batch.export_timeout),
                        ("MAX_QUEUE_SIZE", "max_queue_size", &batch.max_queue_size),
                        (
                            "MAX_EXPORT_BATCH_SIZE",
                            "max_export_batch_size",
                            &batch.max_export_batch_size,
                        ),
                    ] {
                        self.limit(
                            &format!("{prefix}_{suffix}"),
                            &format!("{path}.batch.{key}"),
                            value,
                        );
                    }
                    first_batch = Some((path.clone(), settings));
                }
                Some((first, first_settings)) if *first_settings != settings => {
                    let first = first.clone();
                    self.fail(
                        &format!("{path}.batch"),
                        "",
                        format!("the same batch settings as {first}.batch: telemetry runs one batch queue per signal for all its exporters"),
                    );
                }
                Some(_) => {}
            }
            let exporter_path = format!("{path}.batch.exporter");
            match batch.exporter {
                Some(exporter) => {
                    if let Some(kind) = self.exporter(&exporter_path, signal, exporter)
                        && !kinds.contains(&kind)
                    {
                        kinds.push(kind);
                    }
                }
                None => self.fail(&exporter_path, "", "an exporter (the key is required)"),
            }
        }
        let var = format!("OTEL_{}_EXPORTER", signal.upper());
        let value = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(",")
        };
        self.insert(&var, &format!("{provider}.processors"), &value);
    }

    /// One exporter; its kind as `OTEL_*_EXPORTER` names it.
    fn exporter(&mut self, path: &str, signal: Signal, exporter: Exporter) -> Option<&'static str> {
        self.unsupported(
            &format!("{path}.otlp_file/development"),
            &exporter.otlp_file,
            "export OTLP to a collector, or use console",
        );
        self.unsupported(
            &format!("{path}.zipkin"),
            &exporter.zipkin,
            "send OTLP to a collector with a Zipkin exporter",
        );
        let chosen = [
            exporter.otlp_http.is_some(),
            exporter.otlp_grpc.is_some(),
            exporter.console.is_some(),
            exporter.otlp_file.is_some(),
            exporter.zipkin.is_some(),
        ]
        .iter()
        .filter(|c| **c)
        .count();
        if chosen != 1 {
            self.fail(path, "", "exactly one of otlp_http, otlp_grpc, console");
            return None;
        }
        if let Some(console) = exporter.console {
            self.unsupported(
                &format!("{path}.console.temporality_preference"),
                &console.temporality_preference,
                "the console exporter prints cumulative metrics",
            );
            self.unsupported(
                &format!("{path}.console.default_histogram_aggregation"),
                &console.default_histogram_aggregation,
                "set it on the OTLP exporter",
            );
            return Some("console");
        }
        let (otlp, http, key) = match (exporter.otlp_http, exporter.otlp_grpc) {
            (Some(o), _) => (o, true, "otlp_http"),
            (None, Some(o)) => (o, false, "otlp_grpc"),
            (None, None) => return None,
        };
        if self
            .origins
            .contains_key(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.upper()))
        {
            self.fail(
                &format!("{path}.{key}"),
                "",
                "one OTLP exporter per signal (telemetry sends each signal to one collector; fan out in the collector)",
            );
            return None;
        }
        self.otlp(&format!("{path}.{key}"), signal, http, otlp);
        Some("otlp")
    }

    fn otlp(&mut self, path: &str, signal: Signal, http: bool, otlp: Otlp) {
        let var = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{}_{suffix}", signal.upper());
        let protocol = if !http {
            if let Some(e) = &otlp.encoding {
                self.fail(
                    &format!("{path}.encoding"),
                    &e.text(),
                    "no encoding on otlp_grpc (it is an otlp_http setting)",
                );
            }
            "grpc"
        } else {
            match otlp.encoding.as_ref().map(Scalar::text).as_deref() {
                None | Some("protobuf") => "http/protobuf",
                Some("json") => "http/json",
                Some(other) => {
                    self.fail(&format!("{path}.encoding"), other, "protobuf or json");
                    "http/protobuf"
                }
            }
        };
        self.insert(&var("PROTOCOL"), path, protocol);
        let endpoint = match &otlp.endpoint {
            Some(e) => e.text(),
            None if http => format!("http://localhost:4318/v1/{}", signal.as_str()),
            None => "http://localhost:4317".to_string(),
        };
        self.insert(&var("ENDPOINT"), &format!("{path}.endpoint"), &endpoint);
        if let Some(tls) = &otlp.tls {
            for (suffix, key, value) in [
                ("CERTIFICATE", "ca_file", &tls.ca_file),
                ("CLIENT_KEY", "key_file", &tls.key_file),
                ("CLIENT_CERTIFICATE", "cert_file", &tls.cert_file),
            ] {
                self.limit(&var(suffix), &format!("{path}.tls.{key}"), value);
            }
            if let Some(insecure) = &tls.insecure {
                let insecure_path = format!("{path}.tls.insecure");
                if http {
                    self.fail(
                        &insecure_path,
                        &insecure.text(),
                        "no insecure on otlp_http (the endpoint's scheme decides)",
                    );
                } else if self.boolean(&insecure_path, insecure) == Some(true)
                    && endpoint.starts_with("https://")
                {
                    self.fail(
                        &insecure_path,
                        "true",
                        "false with an https:// endpoint (the scheme decides: use http:// for plaintext)",
                    );
                }
            }
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        for (i, header) in otlp.headers.iter().enumerate() {
            // A null value drops the entry, as the schema says.
            let Some(value) = &header.value else { continue };
            let name = header.name.text();
            if name.is_empty() {
                self.fail(&format!("{path}.headers[{i}].name"), "", "a header name");
                continue;
            }
            headers.push((name, value.text()));
        }
        let mut list = otlp
            .headers_list
            .as_ref()
            .map(Scalar::text)
            .unwrap_or_default();
        if !headers.is_empty() {
            // `headers` win over `headers_list`: later pairs replace earlier
            // ones of the same name when the list is parsed.
            let encoded: Vec<String> = headers
                .iter()
                .map(|(k, v)| format!("{}={}", k, percent_encode(v)))
                .collect();
            if !list.is_empty() {
                list.push(',');
            }
            list.push_str(&encoded.join(","));
        }
        if !list.is_empty() {
            let origin = if otlp.headers.is_empty() {
                "headers_list"
            } else {
                "headers"
            };
            self.insert(&var("HEADERS"), &format!("{path}.{origin}"), &list);
        }
        if let Some(c) = &otlp.compression {
            self.set(&var("COMPRESSION"), &format!("{path}.compression"), c);
        }
        if let Some(t) = &otlp.timeout {
            self.set(&var("TIMEOUT"), &format!("{path}.timeout"), t);
        }
        let metric_only = [
            ("temporality_preference", &otlp.temporality_preference),
            (
                "default_histogram_aggregation",
                &otlp.default_histogram_aggregation,
            ),
        ];
        if signal != Signal::Metrics {
            for (key, value) in metric_only {
                if let Some(v) = value {
                    self.fail(
                        &format!("{path}.{key}"),
                        &v.text(),
                        "no such key outside meter_provider",
                    );
                }
            }
            return;
        }
        if let Some(t) = &otlp.temporality_preference {
            // The file spells `low_memory`; the variable `lowmemory`.
            let value = match t.text().as_str() {
                "low_memory" => "lowmemory".to_string(),
                "lowmemory" => "low_memory (the file's spelling)".to_string(),
                other => other.to_string(),
            };
            self.insert(
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                &format!("{path}.temporality_preference"),
                &value,
            );
        }
        if let Some(a) = &otlp.default_histogram_aggregation {
            self.set(
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                &format!("{path}.default_histogram_aggregation"),
                a,
            );
        }
    }

    fn sampler(&mut self, path: &str, sampler: &Sampler) {
        let Some(kind) = self.sampler_kind(path, sampler) else {
            return;
        };
        match kind {
            SamplerKind::AlwaysOn => self.insert("OTEL_TRACES_SAMPLER", path, "always_on"),
            SamplerKind::AlwaysOff => self.insert("OTEL_TRACES_SAMPLER", path, "always_off"),
            SamplerKind::Ratio(ratio) => {
                self.insert("OTEL_TRACES_SAMPLER", path, "traceidratio");
                self.insert(
                    "OTEL_TRACES_SAMPLER_ARG",
                    &format!("{path}.trace_id_ratio_based.ratio"),
                    &ratio,
                );
            }
            SamplerKind::ParentBased(root) => {
                let root_path = format!("{path}.parent_based.root");
                match root.map(|r| *r) {
                    None | Some(SamplerKind::AlwaysOn) => {
                        self.insert("OTEL_TRACES_SAMPLER", path, "parentbased_always_on")
                    }
                    Some(SamplerKind::AlwaysOff) => {
                        self.insert("OTEL_TRACES_SAMPLER", path, "parentbased_always_off")
                    }
                    Some(SamplerKind::Ratio(ratio)) => {
                        self.insert("OTEL_TRACES_SAMPLER", path, "parentbased_traceidratio");
                        self.insert(
                            "OTEL_TRACES_SAMPLER_ARG",
                            &format!("{root_path}.trace_id_ratio_based.ratio"),
                            &ratio,
                        );
                    }
                    Some(SamplerKind::ParentBased(_)) => self.fail(
                        &root_path,
                        "parent_based",
                        "always_on, always_off or trace_id_ratio_based as the root sampler",
                    ),
                }
            }
        }
    }

    fn sampler_kind(&mut self, path: &str, s: &Sampler) -> Option<SamplerKind> {
        for (key, value) in [
            ("jaeger_remote", &s.jaeger_remote),
            ("jaeger_remote/development", &s.jaeger_remote_development),
            ("probability/development", &s.probability),
            ("composite/development", &s.composite),
        ] {
            self.unsupported(
                &format!("{path}.{key}"),
                value,
                "use always_on, always_off, trace_id_ratio_based or parent_based",
            );
        }
        let count = [
            s.always_on.is_some(),
            s.always_off.is_some(),
            s.trace_id_ratio_based.is_some(),
            s.parent_based.is_some(),
        ]
        .iter()
        .filter(|c| **c)
        .count();
        if count != 1 {
            if count > 1 {
                self.fail(path, "", "exactly one sampler");
            } else if s.jaeger_remote.is_none()
                && s.jaeger_remote_development.is_none()
                && s.probability.is_none()
                && s.composite.is_none()
            {
                self.fail(
                    path,
                    "",
                    "one of always_on, always_off, trace_id_ratio_based, parent_based",
                );
            }
            return None;
        }
        if s.always_on.is_some() {
            return Some(SamplerKind::AlwaysOn);
        }
        if s.always_off.is_some() {
            return Some(SamplerKind::AlwaysOff);
        }
        if let Some(ratio) = &s.trace_id_ratio_based {
            // The schema's default ratio is 1.
            let value = ratio
                .ratio
                .as_ref()
                .map(Scalar::text)
                .unwrap_or_else(|| "1".to_string());
            return Some(SamplerKind::Ratio(value));
        }
        let pb = s.parent_based.as_ref()?;
        let root = match &pb.root {
            Some(root) => Some(self.sampler_kind(&format!("{path}.parent_based.root"), root)?),
            None => None,
        };
        // Only the specification's defaults for the four parent cases are
        // built into the SDK's parent-based sampler.
        for (key, child, default_on) in [
            ("remote_parent_sampled", &pb.remote_parent_sampled, true),
            (
                "remote_parent_not_sampled",
                &pb.remote_parent_not_sampled,
                false,
            ),
            ("local_parent_sampled", &pb.local_parent_sampled, true),
            (
                "local_parent_not_sampled",
                &pb.local_parent_not_sampled,
                false,
            ),
        ] {
            let Some(child) = child else { continue };
            let child_path = format!("{path}.parent_based.{key}");
            let kind = self.sampler_kind(&child_path, child);
            let is_default = matches!(
                (kind, default_on),
                (Some(SamplerKind::AlwaysOn), true) | (Some(SamplerKind::AlwaysOff), false)
            );
            if !is_default {
                self.fail(
                    &child_path,
                    "",
                    if default_on {
                        "always_on (the only choice telemetry's parent-based sampler has)"
                    } else {
                        "always_off (the only choice telemetry's parent-based sampler has)"
                    },
                );
            }
        }
        Some(SamplerKind::ParentBased(root.map(Box::new)))
    }

    fn meter_provider(&mut self, mp: MeterProvider) {
        self.unsupported(
            "meter_provider.meter_configurator/development",
            &mp.configurator,
            "drop a meter's instruments with a view (aggregation: drop)",
        );
        if let Some(filter) = &mp.exemplar_filter
            && filter.text() != "always_off"
        {
            self.fail(
                "meter_provider.exemplar_filter",
                &filter.text(),
                "always_off, or no exemplar_filter (the Rust SDK records no exemplars; the collector's span metrics carry them)",
            );
        }
        let mut kinds: Vec<&str> = Vec::new();
        let mut periodic_seen: Option<(String, [Option<String>; 2])> = None;
        for (i, reader) in mp.readers.into_iter().enumerate() {
            let path = format!("meter_provider.readers[{i}]");
            match (reader.periodic, reader.pull) {
                (Some(periodic), None) => {
                    let path = format!("{path}.periodic");
                    self.unsupported(
                        &format!("{path}.producers"),
                        &periodic.producers,
                        "no metric producers are built in",
                    );
                    self.unsupported(
                        &format!("{path}.cardinality_limits"),
                        &periodic.cardinality_limits,
                        "set aggregation_cardinality_limit on a view",
                    );
                    let settings = [
                        periodic.interval.as_ref().map(Scalar::text),
                        periodic.timeout.as_ref().map(Scalar::text),
                    ];
                    match &periodic_seen {
                        None => {
                            self.limit(
                                "OTEL_METRIC_EXPORT_INTERVAL",
                                &format!("{path}.interval"),
                                &periodic.interval,
                            );
                            self.limit(
                                "OTEL_METRIC_EXPORT_TIMEOUT",
                                &format!("{path}.timeout"),
                                &periodic.timeout,
                            );
                            periodic_seen = Some((path.clone(), settings));
                        }
                        Some((first, first_settings)) if *first_settings != settings => {
                            let first = first.clone();
                            self.fail(&path, "", format!("the same interval and timeout as {first}: telemetry exports every push reader on one schedule"));
                        }
                        Some(_) => {}
                    }
                    match periodic.exporter {
                        Some(exporter) => {
                            if let Some(kind) = self.exporter(
                                &format!("{path}.exporter"),
                                Signal::Metrics,
                                exporter,
                            ) && !kinds.contains(&kind)
                            {
                                kinds.push(kind);
                            }
                        }
                        None => self.fail(
                            &format!("{path}.exporter"),
                            "",
                            "an exporter (the key is required)",
                        ),
                    }
                }
                (None, Some(pull)) => {
                    let path = format!("{path}.pull");
                    self.unsupported(
                        &format!("{path}.producers"),
                        &pull.producers,
                        "no metric producers are built in",
                    );
                    self.unsupported(
                        &format!("{path}.cardinality_limits"),
                        &pull.cardinality_limits,
                        "set aggregation_cardinality_limit on a view",
                    );
                    let Some(prometheus) = pull.exporter.and_then(|e| e.prometheus) else {
                        self.fail(
                            &format!("{path}.exporter"),
                            "",
                            "prometheus/development (the only pull exporter)",
                        );
                        continue;
                    };
                    let p = format!("{path}.exporter.prometheus/development");
                    for (key, value, why) in [
                        (
                            "without_scope_info",
                            &prometheus.without_scope_info,
                            "the scope is always written as labels",
                        ),
                        (
                            "without_target_info",
                            &prometheus.without_target_info,
                            "target_info is always written",
                        ),
                        (
                            "with_resource_constant_labels",
                            &prometheus.with_resource_constant_labels,
                            "the service labels are always written",
                        ),
                        (
                            "translation_strategy",
                            &prometheus.translation_strategy,
                            "names are always escaped with suffixes",
                        ),
                    ] {
                        self.unsupported(&format!("{p}.{key}"), value, why);
                    }
                    if kinds.contains(&"prometheus") {
                        self.fail(&path, "", "one Prometheus endpoint");
                        continue;
                    }
                    // The schema's default host.
                    let host = prometheus
                        .host
                        .as_ref()
                        .map(Scalar::text)
                        .unwrap_or_else(|| "localhost".into());
                    self.insert("OTEL_EXPORTER_PROMETHEUS_HOST", &format!("{p}.host"), &host);
                    self.limit(
                        "OTEL_EXPORTER_PROMETHEUS_PORT",
                        &format!("{p}.port"),
                        &prometheus.port,
                    );
                    kinds.push("prometheus");
                }
                _ => self.fail(&path, "", "exactly one of periodic, pull"),
            }
        }
        let value = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(",")
        };
        self.insert("OTEL_METRICS_EXPORTER", "meter_provider.readers", &value);
        for (i, view) in mp.views.into_iter().enumerate() {
            let path = format!("meter_provider.views[{i}]");
            if let Some(view) = self.view(&path, view) {
                self.views.push(view);
            }
        }
    }

    fn view(&mut self, path: &str, view: View) -> Option<ViewConfig> {
        let before = self.errors.len();
        for (key, missing) in [
            ("selector", view.selector.is_none()),
            ("stream", view.stream.is_none()),
        ] {
            if missing {
                self.fail(
                    &format!("{path}.{key}"),
                    "",
                    "the key (it is required; {} selects every instrument)",
                );
            }
        }
        let s = view.selector.unwrap_or_default();
        let text = |v: &Option<Scalar>| v.as_ref().map(Scalar::text).filter(|t| !t.is_empty());
        let kind = match text(&s.instrument_type).as_deref() {
            None => None,
            Some("counter") => Some(InstrumentKind::Counter),
            Some("up_down_counter") => Some(InstrumentKind::UpDownCounter),
            Some("histogram") => Some(InstrumentKind::Histogram),
            Some("gauge") => Some(InstrumentKind::Gauge),
            Some("observable_counter") => Some(InstrumentKind::ObservableCounter),
            Some("observable_up_down_counter") => Some(InstrumentKind::ObservableUpDownCounter),
            Some("observable_gauge") => Some(InstrumentKind::ObservableGauge),
            Some(other) => {
                self.fail(
                    &format!("{path}.selector.instrument_type"),
                    other,
                    "counter, up_down_counter, histogram, gauge, observable_counter, observable_up_down_counter or observable_gauge",
                );
                None
            }
        };
        let selector = ViewSelector {
            instrument_name: text(&s.instrument_name),
            instrument_kind: kind,
            unit: text(&s.unit),
            meter_name: text(&s.meter_name),
            meter_version: text(&s.meter_version),
            meter_schema_url: text(&s.meter_schema_url),
        };
        let st = view.stream.unwrap_or_default();
        let name = text(&st.name);
        if name.is_some()
            && selector
                .instrument_name
                .as_deref()
                .is_none_or(|n| n.contains(['*', '?']))
        {
            self.fail(
                &format!("{path}.stream.name"),
                name.as_deref().unwrap_or_default(),
                "no stream name unless selector.instrument_name names exactly one instrument (a renamed stream must not merge several instruments)",
            );
        }
        let aggregation = st
            .aggregation
            .and_then(|a| self.aggregation(&format!("{path}.stream.aggregation"), a));
        let cardinality_limit = st.aggregation_cardinality_limit.as_ref().and_then(|v| {
            let p = format!("{path}.stream.aggregation_cardinality_limit");
            match self.integer(&p, v) {
                Some(n) if n > 0 && n as u64 <= MAX_CARDINALITY_LIMIT as u64 => Some(n as usize),
                Some(n) => {
                    self.fail(
                        &p,
                        &n.to_string(),
                        format!(
                            "a positive integer up to {MAX_CARDINALITY_LIMIT} (the SDK reserves \
                             room for every series of the limit when an instrument is created)"
                        ),
                    );
                    None
                }
                None => None,
            }
        });
        let attribute_keys = match st.attribute_keys {
            None => None,
            Some(keys) => {
                self.unsupported(
                    &format!("{path}.stream.attribute_keys.excluded"),
                    &keys.excluded,
                    "the SDK keeps an allow-list only: list the keys to keep under included",
                );
                let included: Vec<String> = keys
                    .included
                    .unwrap_or_default()
                    .iter()
                    .map(Scalar::text)
                    .collect();
                if let Some(wild) = included.iter().find(|k| k.contains(['*', '?'])) {
                    self.fail(
                        &format!("{path}.stream.attribute_keys.included"),
                        wild,
                        "exact attribute keys (the SDK's allow-list has no wildcards)",
                    );
                }
                Some(included)
            }
        };
        if self.errors.len() > before {
            return None;
        }
        Some(ViewConfig {
            selector,
            stream: ViewStream {
                name,
                description: text(&st.description),
                aggregation,
                cardinality_limit,
                attribute_keys,
            },
        })
    }

    fn aggregation(&mut self, path: &str, a: Aggregation) -> Option<SdkAggregation> {
        let count = [
            a.default.is_some(),
            a.drop.is_some(),
            a.sum.is_some(),
            a.last_value.is_some(),
            a.explicit_bucket_histogram.is_some(),
            a.base2_exponential_bucket_histogram.is_some(),
        ]
        .iter()
        .filter(|c| **c)
        .count();
        if count != 1 {
            self.fail(path, "", "exactly one of default, drop, sum, last_value, explicit_bucket_histogram, base2_exponential_bucket_histogram");
            return None;
        }
        let record_min_max = |t: &mut Self, p: String, v: &Option<Scalar>| match v {
            None => Some(true),
            Some(v) => t.boolean(&p, v),
        };
        if a.default.is_some() {
            return Some(SdkAggregation::Default);
        }
        if a.drop.is_some() {
            return Some(SdkAggregation::Drop);
        }
        if a.sum.is_some() {
            return Some(SdkAggregation::Sum);
        }
        if a.last_value.is_some() {
            return Some(SdkAggregation::LastValue);
        }
        if let Some(e) = a.explicit_bucket_histogram {
            let p = format!("{path}.explicit_bucket_histogram");
            let boundaries: Vec<f64> = match &e.boundaries {
                // The specification's default boundaries.
                None => vec![
                    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0,
                    5000.0, 7500.0, 10000.0,
                ],
                Some(list) => list
                    .iter()
                    .enumerate()
                    .map(|(i, b)| self.double(&format!("{p}.boundaries[{i}]"), b))
                    .collect::<Option<_>>()?,
            };
            if boundaries.windows(2).any(|w| w[0] >= w[1])
                || boundaries.iter().any(|b| !b.is_finite())
            {
                self.fail(
                    &format!("{p}.boundaries"),
                    &format!("{boundaries:?}"),
                    "finite boundaries in increasing order, no repeats",
                );
                return None;
            }
            let record_min_max =
                record_min_max(self, format!("{p}.record_min_max"), &e.record_min_max)?;
            return Some(SdkAggregation::ExplicitBucketHistogram {
                boundaries,
                record_min_max,
            });
        }
        let e = a.base2_exponential_bucket_histogram?;
        let p = format!("{path}.base2_exponential_bucket_histogram");
        let max_scale = match &e.max_scale {
            None => 20,
            Some(v) => {
                let n = self.integer(&format!("{p}.max_scale"), v)?;
                if !(-10..=20).contains(&n) {
                    self.fail(
                        &format!("{p}.max_scale"),
                        &n.to_string(),
                        "an integer from -10 to 20",
                    );
                    return None;
                }
                n as i8
            }
        };
        let max_size = match &e.max_size {
            None => 160,
            Some(v) => {
                let n = self.integer(&format!("{p}.max_size"), v)?;
                if !(2..=16_384).contains(&n) {
                    self.fail(
                        &format!("{p}.max_size"),
                        &n.to_string(),
                        "an integer from 2 to 16384",
                    );
                    return None;
                }
                n as u32
            }
        };
        let record_min_max =
            record_min_max(self, format!("{p}.record_min_max"), &e.record_min_max)?;
        Some(SdkAggregation::Base2ExponentialHistogram {
            max_size,
            max_scale,
            record_min_max,
        })
    }
}

#[derive(Debug, Clone)]
enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    Ratio(String),
    ParentBased(Option<Box<SamplerKind>>),
}

/// Percent-encodes a header value for the `key=value,...` list, where `,`,
/// `=` and `%` would otherwise end or break the pair.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'%' | b',' | b'=' | b' ' => out.push_str(&format!("%{byte:02X}")),
            0x21..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
