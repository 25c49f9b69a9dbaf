//! The file's shape: the parts of the opentelemetry-configuration 1.x schema
//! telemetry reads, each mapping closed (`deny_unknown_fields`), so a key that
//! is not here stops start-up with its path instead of being ignored.
//!
//! Keys the schema defines but telemetry cannot honour are fields of type
//! [`Unsupported`]: they parse, and the translation refuses them by path with
//! the reason, which reads better than "unknown field".

use serde::de::{Deserializer, IgnoredAny};
use serde::{Deserialize, de};
use std::fmt;

/// A key that is present, whatever its value (including null, as in
/// `console:` or `always_on:`).
///
/// `Option<T>` alone reads `key:` with a null value as absent; the schema
/// uses exactly that spelling to select an exporter, sampler or aggregation.
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(|v| Some(v.unwrap_or_default()))
}

/// A schema key telemetry does not implement; refused by path.
pub(super) type Unsupported = Option<IgnoredAny>;

/// One YAML scalar after substitution. Numbers and booleans written in the
/// file arrive typed; values that came from `${VAR}` arrive as text and are
/// read by the field's type, as the specification interprets node types
/// after substitution.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    /// The value as an environment variable would spell it.
    pub(super) fn text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a single value (string, number or boolean), not a list or mapping")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("an integer up to 9223372036854775807"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub file_format: Option<Scalar>,
    pub disabled: Option<Scalar>,
    pub log_level: Option<Scalar>,
    pub attribute_limits: Option<AttributeLimits>,
    pub resource: Option<Resource>,
    pub propagator: Option<Propagator>,
    #[serde(default, deserialize_with = "present")]
    pub tracer_provider: Option<TracerProvider>,
    #[serde(default, deserialize_with = "present")]
    pub meter_provider: Option<MeterProvider>,
    #[serde(default, deserialize_with = "present")]
    pub logger_provider: Option<LoggerProvider>,
    #[serde(
        rename = "instrumentation/development",
        default,
        deserialize_with = "present"
    )]
    pub instrumentation: Unsupported,
    #[serde(default, deserialize_with = "present")]
    pub distribution: Unsupported,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AttributeLimits {
    pub attribute_value_length_limit: Option<Scalar>,
    pub attribute_count_limit: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Resource {
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    pub attributes_list: Option<Scalar>,
    #[serde(default, deserialize_with = "present")]
    pub schema_url: Unsupported,
    #[serde(
        rename = "detection/development",
        default,
        deserialize_with = "present"
    )]
    pub detection: Unsupported,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Attribute {
    pub name: Scalar,
    #[serde(default)]
    pub value: Option<AttributeValue>,
    #[serde(rename = "type")]
    pub kind: Option<Scalar>,
}

/// An attribute value: one scalar or a list of them (the `*_array` types).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum AttributeValue {
    One(Scalar),
    Many(Vec<Scalar>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Propagator {
    /// Each entry a one-key mapping such as `tracecontext:`.
    pub composite: Option<Vec<serde_yaml_ng::Mapping>>,
    pub composite_list: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TracerProvider {
    #[serde(default)]
    pub processors: Vec<Processor>,
    pub limits: Option<SpanLimits>,
    pub sampler: Option<Sampler>,
    #[serde(
        rename = "tracer_configurator/development",
        default,
        deserialize_with = "present"
    )]
    pub configurator: Unsupported,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoggerProvider {
    #[serde(default)]
    pub processors: Vec<Processor>,
    pub limits: Option<AttributeLimits>,
    #[serde(
        rename = "logger_configurator/development",
        default,
        deserialize_with = "present"
    )]
    pub configurator: Unsupported,
}

/// A span or log-record processor: exactly one of its keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Processor {
    #[serde(default, deserialize_with = "present")]
    pub batch: Option<Batch>,
    #[serde(default, deserialize_with = "present")]
    pub simple: Unsupported,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Batch {
    pub schedule_delay: Option<Scalar>,
    pub export_timeout: Option<Scalar>,
    pub max_queue_size: Option<Scalar>,
    pub max_export_batch_size: Option<Scalar>,
    pub exporter: Option<Exporter>,
}

/// A span, log-record or push-metric exporter: exactly one of its keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Exporter {
    #[serde(default, deserialize_with = "present")]
    pub otlp_http: Option<Otlp>,
    #[serde(default, deserialize_with = "present")]
    pub otlp_grpc: Option<Otlp>,
    #[serde(default, deserialize_with = "present")]
    pub console: Option<Console>,
    #[serde(
        rename = "otlp_file/development",
        default,
        deserialize_with = "present"
    )]
    pub otlp_file: Unsupported,
    #[serde(default, deserialize_with = "present")]
    pub zipkin: Unsupported,
}

/// The console exporter; metric ones may state temporality and histogram
/// aggregation, which only the OTLP exporter reads here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Console {
    #[serde(default, deserialize_with = "present")]
    pub temporality_preference: Unsupported,
    #[serde(default, deserialize_with = "present")]
    pub default_histogram_aggregation: Unsupported,
}

/// `otlp_http` and `otlp_grpc` (the latter has no `encoding`; `insecure`
/// sits under `tls`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Otlp {
    pub endpoint: Option<Scalar>,
    pub tls: Option<Tls>,
    #[serde(default)]
    pub headers: Vec<Header>,
    pub headers_list: Option<Scalar>,
    pub compression: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub encoding: Option<Scalar>,
    pub temporality_preference: Option<Scalar>,
    pub default_histogram_aggregation: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Tls {
    pub ca_file: Option<Scalar>,
    pub key_file: Option<Scalar>,
    pub cert_file: Option<Scalar>,
    pub insecure: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    pub name: Scalar,
    pub value: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpanLimits {
    pub attribute_value_length_limit: Option<Scalar>,
    pub attribute_count_limit: Option<Scalar>,
    pub event_count_limit: Option<Scalar>,
    pub link_count_limit: Option<Scalar>,
    pub event_attribute_count_limit: Option<Scalar>,
    pub link_attribute_count_limit: Option<Scalar>,
}

/// A sampler: exactly one of its keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sampler {
    #[serde(default, deserialize_with = "present")]
    pub always_on: Option<Empty>,
    #[serde(default, deserialize_with = "present")]
    pub always_off: Option<Empty>,
    #[serde(default, deserialize_with = "present")]
    pub trace_id_ratio_based: Option<Ratio>,
    #[serde(default, deserialize_with = "present")]
    pub parent_based: Option<ParentBased>,
    #[serde(default, deserialize_with = "present")]
    pub jaeger_remote: Unsupported,
    #[serde(
        rename = "jaeger_remote/development",
        default,
        deserialize_with = "present"
    )]
    pub jaeger_remote_development: Unsupported,
    #[serde(
        rename = "probability/development",
        default,
        deserialize_with = "present"
    )]
    pub probability: Unsupported,
    #[serde(
        rename = "composite/development",
        default,
        deserialize_with = "present"
    )]
    pub composite: Unsupported,
}

/// A mapping that must be empty (`always_on:`, `console:`, `sum:`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Empty {}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Ratio {
    pub ratio: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ParentBased {
    pub root: Option<Box<Sampler>>,
    pub remote_parent_sampled: Option<Box<Sampler>>,
    pub remote_parent_not_sampled: Option<Box<Sampler>>,
    pub local_parent_sampled: Option<Box<Sampler>>,
    pub local_parent_not_sampled: Option<Box<Sampler>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MeterProvider {
    #[serde(default)]
    pub readers: Vec<Reader>,
    #[serde(default)]
    pub views: Vec<View>,
    pub exemplar_filter: Option<Scalar>,
    #[serde(
        rename = "meter_configurator/development",
        default,
        deserialize_with = "present"
    )]
    pub configurator: Unsupported,
}

/// A metric reader: exactly one of its keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Reader {
    pub periodic: Option<Periodic>,
    pub pull: Option<Pull>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Periodic {
    pub interval: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub exporter: Option<Exporter>,
    #[serde(default, deserialize_with = "present")]
    pub producers: Unsupported,
    #[serde(default, deserialize_with = "present")]
    pub cardinality_limits: Unsupported,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Pull {
    pub exporter: Option<PullExporter>,
    #[serde(default, deserialize_with = "present")]
    pub producers: Unsupported,
    #[serde(default, deserialize_with = "present")]
    pub cardinality_limits: Unsupported,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PullExporter {
    #[serde(
        rename = "prometheus/development",
        default,
        deserialize_with = "present"
    )]
    pub prometheus: Option<Prometheus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Prometheus {
    pub host: Option<Scalar>,
    pub port: Option<Scalar>,
    #[serde(default, deserialize_with = "present")]
    pub without_scope_info: Unsupported,
    #[serde(default, deserialize_with = "present")]
    pub without_target_info: Unsupported,
    #[serde(default, deserialize_with = "present")]
    pub with_resource_constant_labels: Unsupported,
    #[serde(default, deserialize_with = "present")]
    pub translation_strategy: Unsupported,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct View {
    /// Required; checked in the translation so a probe of its keys is not
    /// hidden behind a missing-field error.
    pub selector: Option<ViewSelector>,
    /// Required, likewise.
    pub stream: Option<ViewStream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ViewSelector {
    pub instrument_name: Option<Scalar>,
    pub instrument_type: Option<Scalar>,
    pub unit: Option<Scalar>,
    pub meter_name: Option<Scalar>,
    pub meter_version: Option<Scalar>,
    pub meter_schema_url: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ViewStream {
    pub name: Option<Scalar>,
    pub description: Option<Scalar>,
    pub aggregation: Option<Aggregation>,
    pub aggregation_cardinality_limit: Option<Scalar>,
    pub attribute_keys: Option<IncludeExclude>,
}

/// An aggregation: exactly one of its keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Aggregation {
    #[serde(default, deserialize_with = "present")]
    pub default: Option<Empty>,
    #[serde(default, deserialize_with = "present")]
    pub drop: Option<Empty>,
    #[serde(default, deserialize_with = "present")]
    pub sum: Option<Empty>,
    #[serde(default, deserialize_with = "present")]
    pub last_value: Option<Empty>,
    #[serde(default, deserialize_with = "present")]
    pub explicit_bucket_histogram: Option<ExplicitBuckets>,
    #[serde(default, deserialize_with = "present")]
    pub base2_exponential_bucket_histogram: Option<Exponential>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExplicitBuckets {
    pub boundaries: Option<Vec<Scalar>>,
    pub record_min_max: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Exponential {
    pub max_scale: Option<Scalar>,
    pub max_size: Option<Scalar>,
    pub record_min_max: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IncludeExclude {
    pub included: Option<Vec<Scalar>>,
    #[serde(default, deserialize_with = "present")]
    pub excluded: Unsupported,
}
