//! Flattened, assertion-friendly views of OTLP data: what the receiver
//! decoded off the wire and what the in-memory exporters kept, in one model.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, NumberDataPoint, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status};

/// One of the three OpenTelemetry signals an export carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric points.
    Metrics,
    /// Log records.
    Logs,
}

/// How the data arrived, so tests can check which OTLP protocol was used.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Transport {
    /// OTLP/gRPC (see `OtlpReceiver::grpc_endpoint`).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (see `OtlpReceiver::http_endpoint`).
    Http,
    /// No transport: an in-memory exporter (`telemetry::testing::InMemory`), whose data
    /// went through the same OTLP conversion as what the OTLP exporters send.
    InMemory,
}

/// How the receiver answered an export request, so tests can count rejected/invalid exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RequestOutcome {
    /// Decoded and stored; the exporter got a success response.
    Accepted,
    /// Decoded but refused because `set_failing(true)` was in effect (gRPC UNAVAILABLE / HTTP 503).
    Rejected,
    /// Decoded but refused as throttled because `set_throttling` was in effect: HTTP 429 with
    /// `Retry-After: <seconds>`, gRPC RESOURCE_EXHAUSTED with a `RetryInfo` of that delay.
    Throttled {
        /// The delay the answer asks the exporter to wait, in seconds.
        retry_after_secs: u32,
    },
    /// Decoded and stored, and the success answer carried `padding_bytes` bytes of padding
    /// because `set_answer_padding` was in effect: a collector whose answers are larger than
    /// an exporter reads.
    AcceptedPadded {
        /// Bytes of padding in the answer (an unknown field in protobuf, an unknown member
        /// in JSON, both of which a reader skips).
        padding_bytes: u32,
    },
    /// Decoded and stored, and the success answer was an OTLP partial success
    /// saying `rejected` of the request's items were rejected, because
    /// `set_partial_rejection` was in effect.
    AcceptedPartially {
        /// Items the answer said were rejected.
        rejected: u32,
    },
    /// Not stored because the body could not be decoded or had an unsupported
    /// content type / encoding (gRPC INVALID_ARGUMENT / HTTP 400 or 415).
    Invalid,
}

/// Metadata of one export request, to assert on headers, compression and retries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceivedRequest {
    /// Which signal the request was for.
    pub signal: Signal,
    /// Which listener received it.
    pub transport: Transport,
    /// Request headers / gRPC metadata with lowercase names; repeated headers are joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// Number of spans, metrics (not data points) or log records in the request (0 when invalid).
    pub items: usize,
    /// What the receiver answered.
    pub outcome: RequestOutcome,
}

impl ReceivedRequest {
    /// Looks up a header case-insensitively, because header names are easy to mistype in case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// An OTLP `AnyValue`, converted so tests can compare values with plain Rust literals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AttrValue {
    /// `string_value`.
    Str(String),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    I64(i64),
    /// `double_value`.
    F64(f64),
    /// `bytes_value`.
    Bytes(Vec<u8>),
    /// `array_value`.
    Array(Vec<AttrValue>),
    /// `kvlist_value` (last value wins on duplicate keys).
    Map(BTreeMap<String, AttrValue>),
    /// An `AnyValue` with no value set (OTLP's "empty" value).
    Empty,
}

impl AttrValue {
    /// Returns the string if this is `Str`, for terse assertions.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Returns the integer if this is `I64`, for terse assertions.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// Returns the float if this is `F64`, for terse assertions.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::F64(v) => Some(*v),
            _ => None,
        }
    }

    /// Returns the boolean if this is `Bool`, for terse assertions.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(v) => Some(*v),
            _ => None,
        }
    }

    fn from_any(value: Option<&AnyValue>) -> AttrValue {
        match value.and_then(|v| v.value.as_ref()) {
            None => AttrValue::Empty,
            Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
            Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
            Some(any_value::Value::IntValue(i)) => AttrValue::I64(*i),
            Some(any_value::Value::DoubleValue(d)) => AttrValue::F64(*d),
            Some(any_value::Value::BytesValue(b)) => AttrValue::Bytes(b.clone()),
            Some(any_value::Value::ArrayValue(a)) => AttrValue::Array(
                a.values
                    .iter()
                    .map(|v| AttrValue::from_any(Some(v)))
                    .collect(),
            ),
            Some(any_value::Value::KvlistValue(kv)) => AttrValue::Map(kv_map(&kv.values)),
            // Only used by the profiles signal's string table; never sent for traces/metrics/logs.
            Some(any_value::Value::StringValueStrindex(i)) => {
                AttrValue::Str(format!("<strindex {i}>"))
            }
        }
    }
}

fn kv_map(kvs: &[KeyValue]) -> BTreeMap<String, AttrValue> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), AttrValue::from_any(kv.value.as_ref())))
        .collect()
}

/// A key/value attribute set (resource, span, event, point, log), with typed getters for assertions.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Attributes(pub BTreeMap<String, AttrValue>);

impl Attributes {
    /// Returns the raw value for `key`, to match on any value kind.
    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.0.get(key)
    }

    /// Returns the value for `key` if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(AttrValue::as_str)
    }

    /// Returns the value for `key` if it is an integer (no float coercion).
    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(AttrValue::as_i64)
    }

    /// Returns the value for `key` if it is a float (no integer coercion).
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(AttrValue::as_f64)
    }

    /// Returns the value for `key` if it is a boolean.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(AttrValue::as_bool)
    }

    /// Whether `key` is present with any value, to assert presence/absence.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Number of attributes, to assert nothing unexpected was attached.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates attributes in key order, for custom assertions.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AttrValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn from_proto(kvs: &[KeyValue]) -> Attributes {
        Attributes(kv_map(kvs))
    }

    fn from_resource(resource: Option<&Resource>) -> Attributes {
        resource
            .map(|r| Attributes::from_proto(&r.attributes))
            .unwrap_or_default()
    }
}

/// The kind of a received span (mirrors OTLP `Span.SpanKind`), to assert server/client roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SpanKind {
    /// `SPAN_KIND_UNSPECIFIED` (also used for unknown values).
    Unspecified,
    /// `SPAN_KIND_INTERNAL`.
    Internal,
    /// `SPAN_KIND_SERVER`.
    Server,
    /// `SPAN_KIND_CLIENT`.
    Client,
    /// `SPAN_KIND_PRODUCER`.
    Producer,
    /// `SPAN_KIND_CONSUMER`.
    Consumer,
}

impl SpanKind {
    fn from_proto(kind: i32) -> SpanKind {
        match span::SpanKind::try_from(kind) {
            Ok(span::SpanKind::Internal) => SpanKind::Internal,
            Ok(span::SpanKind::Server) => SpanKind::Server,
            Ok(span::SpanKind::Client) => SpanKind::Client,
            Ok(span::SpanKind::Producer) => SpanKind::Producer,
            Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
            Ok(span::SpanKind::Unspecified) | Err(_) => SpanKind::Unspecified,
        }
    }
}

/// The status of a received span, to assert error recording.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SpanStatus {
    /// No status set (also used when the status field is absent or unknown).
    Unset,
    /// Explicitly OK.
    Ok,
    /// Error with its description (may be empty).
    Error(String),
}

/// A span event, flattened for assertions.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceivedEvent {
    /// Event name (e.g. `exception`).
    pub name: String,
    /// Event attributes.
    pub attributes: Attributes,
    /// Event timestamp.
    pub time_unix_nanos: u64,
}

/// A span link, flattened for assertions.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceivedLink {
    /// Linked trace id, 32 lowercase hex chars.
    pub trace_id: String,
    /// Linked span id, 16 lowercase hex chars.
    pub span_id: String,
    /// Link attributes.
    pub attributes: Attributes,
}

/// One span as received, with its resource and scope denormalised onto it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceivedSpan {
    /// Resource attributes of the `ResourceSpans` the span came in, shared
    /// by every span of it.
    pub resource: Arc<Attributes>,
    /// Instrumentation scope name.
    pub scope_name: String,
    /// Instrumentation scope version (`None` when empty).
    pub scope_version: Option<String>,
    /// Trace id, 32 lowercase hex chars.
    pub trace_id: String,
    /// Span id, 16 lowercase hex chars.
    pub span_id: String,
    /// Parent span id (`None` for root spans, i.e. empty or all-zero on the wire).
    pub parent_span_id: Option<String>,
    /// W3C trace state, as sent.
    pub trace_state: String,
    /// Span name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Start timestamp.
    pub start_unix_nanos: u64,
    /// End timestamp.
    pub end_unix_nanos: u64,
    /// Span attributes.
    pub attributes: Attributes,
    /// Span events.
    pub events: Vec<ReceivedEvent>,
    /// Span links.
    pub links: Vec<ReceivedLink>,
    /// Span status.
    pub status: SpanStatus,
    /// Attributes dropped by the attribute count limit.
    pub dropped_attributes_count: u32,
    /// OTLP span flags: the W3C trace flags in the low byte, and whether the
    /// parent is remote (see [`ReceivedSpan::parent_is_remote`]).
    pub flags: u32,
    /// Which listener received it.
    pub transport: Transport,
}

impl ReceivedSpan {
    /// Whether the parent came from another process, when the sender said
    /// (OTLP's `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE` / `_IS_REMOTE` bits).
    pub fn parent_is_remote(&self) -> Option<bool> {
        const HAS_IS_REMOTE: u32 = 0x100;
        const IS_REMOTE: u32 = 0x200;
        (self.flags & HAS_IS_REMOTE != 0).then_some(self.flags & IS_REMOTE != 0)
    }
}

/// A sum or gauge data point; `value` is `as_double`, or `as_int` converted to f64.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NumberPoint {
    /// Point attributes.
    pub attributes: Attributes,
    /// Point value (integers converted to f64; a missing value is 0.0).
    pub value: f64,
    /// Whether the value was sent as `as_int`.
    pub is_int: bool,
    /// Point timestamp.
    pub time_unix_nanos: u64,
}

/// An explicit-bucket histogram data point.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistogramPoint {
    /// Point attributes.
    pub attributes: Attributes,
    /// Number of recorded values.
    pub count: u64,
    /// Sum of recorded values, if sent.
    pub sum: Option<f64>,
    /// Explicit bucket boundaries.
    pub bounds: Vec<f64>,
    /// Per-bucket counts (`bounds.len() + 1` entries when well-formed).
    pub bucket_counts: Vec<u64>,
    /// Minimum recorded value, if sent.
    pub min: Option<f64>,
    /// Maximum recorded value, if sent.
    pub max: Option<f64>,
    /// Number of exemplars attached.
    pub exemplars_count: usize,
    /// Point timestamp.
    pub time_unix_nanos: u64,
}

/// A base-2 exponential histogram data point.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExponentialPoint {
    /// Point attributes.
    pub attributes: Attributes,
    /// Number of recorded values.
    pub count: u64,
    /// Sum of recorded values, if sent.
    pub sum: Option<f64>,
    /// Resolution: bucket `i` covers `(base^i, base^(i+1)]` with `base = 2^(2^-scale)`.
    pub scale: i32,
    /// Values in the zero bucket.
    pub zero_count: u64,
    /// Index of the first positive bucket.
    pub positive_offset: i32,
    /// Counts of the positive buckets from `positive_offset` on.
    pub positive_counts: Vec<u64>,
    /// Index of the first negative bucket.
    pub negative_offset: i32,
    /// Counts of the negative buckets.
    pub negative_counts: Vec<u64>,
    /// Minimum recorded value, if sent.
    pub min: Option<f64>,
    /// Maximum recorded value, if sent.
    pub max: Option<f64>,
    /// Point timestamp.
    pub time_unix_nanos: u64,
}

/// The data of a received metric, reduced to the shape tests usually care about.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum MetricData {
    /// A sum (counter / up-down counter).
    Sum {
        /// `is_monotonic`.
        monotonic: bool,
        /// Whether aggregation temporality is cumulative (false = delta or unspecified).
        cumulative: bool,
        /// Data points.
        points: Vec<NumberPoint>,
    },
    /// A gauge.
    Gauge {
        /// Data points.
        points: Vec<NumberPoint>,
    },
    /// An explicit-bucket histogram.
    Histogram {
        /// Whether aggregation temporality is cumulative (false = delta or unspecified).
        cumulative: bool,
        /// Data points.
        points: Vec<HistogramPoint>,
    },
    /// An exponential histogram (only the point count is kept).
    ExponentialHistogram {
        /// Whether aggregation temporality is cumulative (false = delta or unspecified).
        cumulative: bool,
        /// Data points.
        points: Vec<ExponentialPoint>,
    },
    /// A summary (only the point count is kept).
    Summary {
        /// Number of data points.
        points_count: usize,
    },
    /// A metric with no data field set.
    Empty,
}

/// One metric as received, with its resource and scope denormalised onto it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceivedMetric {
    /// Resource attributes of the `ResourceMetrics` the metric came in,
    /// shared by every metric of it.
    pub resource: Arc<Attributes>,
    /// Instrumentation scope (meter) name.
    pub scope_name: String,
    /// Instrumentation scope version (`None` when empty).
    pub scope_version: Option<String>,
    /// Metric name.
    pub name: String,
    /// Metric description.
    pub description: String,
    /// Metric unit.
    pub unit: String,
    /// Metric data.
    pub data: MetricData,
    /// Which listener received it.
    pub transport: Transport,
}

impl ReceivedMetric {
    /// Number of data points of any kind, to assert attribute-set cardinality.
    pub fn points_len(&self) -> usize {
        match &self.data {
            MetricData::Sum { points, .. } | MetricData::Gauge { points } => points.len(),
            MetricData::Histogram { points, .. } => points.len(),
            MetricData::ExponentialHistogram { points, .. } => points.len(),
            MetricData::Summary { points_count } => *points_count,
            MetricData::Empty => 0,
        }
    }

    /// Exponential histogram points (empty for other kinds).
    pub fn exponential_points(&self) -> &[ExponentialPoint] {
        match &self.data {
            MetricData::ExponentialHistogram { points, .. } => points,
            _ => &[],
        }
    }

    /// Sum/gauge points (empty for other kinds), to avoid matching on `data` in tests.
    pub fn number_points(&self) -> &[NumberPoint] {
        match &self.data {
            MetricData::Sum { points, .. } | MetricData::Gauge { points } => points,
            _ => &[],
        }
    }

    /// Histogram points (empty for other kinds), to avoid matching on `data` in tests.
    pub fn histogram_points(&self) -> &[HistogramPoint] {
        match &self.data {
            MetricData::Histogram { points, .. } => points,
            _ => &[],
        }
    }
}

/// Finds the most recently received metric named `name`, because periodic exports repeat metrics.
pub fn find_metric<'a>(metrics: &'a [ReceivedMetric], name: &str) -> Option<&'a ReceivedMetric> {
    metrics.iter().rev().find(|m| m.name == name)
}

/// Finds the first received span named `name`, for the common single-span assertion.
pub fn find_span<'a>(spans: &'a [ReceivedSpan], name: &str) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| s.name == name)
}

/// One log record as received, with its resource and scope denormalised onto it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceivedLog {
    /// Resource attributes of the `ResourceLogs` the record came in, shared
    /// by every record of it.
    pub resource: Arc<Attributes>,
    /// Instrumentation scope name (for the tracing appender: the target/`opentelemetry-appender-tracing`).
    pub scope_name: String,
    /// Instrumentation scope version (`None` when empty).
    pub scope_version: Option<String>,
    /// Event timestamp (0 when not set by the producer).
    pub time_unix_nanos: u64,
    /// Observed timestamp.
    pub observed_time_unix_nanos: u64,
    /// OTLP severity number (1..=24, 0 unspecified).
    pub severity_number: i32,
    /// Severity text (e.g. `INFO`).
    pub severity_text: String,
    /// String body; non-string bodies are rendered with `Debug` of [`AttrValue`]; `None` when absent.
    pub body: Option<String>,
    /// Log attributes.
    pub attributes: Attributes,
    /// Trace id of the active span, `None` when empty/all-zero.
    pub trace_id: Option<String>,
    /// Span id of the active span, `None` when empty/all-zero.
    pub span_id: Option<String>,
    /// Event name (empty when not set).
    pub event_name: String,
    /// Which listener received it.
    pub transport: Transport,
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn non_zero_hex(bytes: &[u8]) -> Option<String> {
    if bytes.iter().all(|b| *b == 0) {
        None
    } else {
        Some(hex(bytes))
    }
}

fn scope_parts(scope: Option<&InstrumentationScope>) -> (String, Option<String>) {
    match scope {
        Some(s) => (
            s.name.clone(),
            (!s.version.is_empty()).then(|| s.version.clone()),
        ),
        None => (String::new(), None),
    }
}

fn is_cumulative(temporality: i32) -> bool {
    temporality == AggregationTemporality::Cumulative as i32
}

fn number_point(p: &NumberDataPoint) -> NumberPoint {
    let (value, is_int) = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => (d, false),
        // Precision loss above 2^53 is acceptable for test assertions.
        #[allow(clippy::cast_precision_loss)]
        Some(number_data_point::Value::AsInt(i)) => (i as f64, true),
        None => (0.0, false),
    };
    NumberPoint {
        attributes: Attributes::from_proto(&p.attributes),
        value,
        is_int,
        time_unix_nanos: p.time_unix_nano,
    }
}

fn histogram_point(p: &HistogramDataPoint) -> HistogramPoint {
    HistogramPoint {
        attributes: Attributes::from_proto(&p.attributes),
        count: p.count,
        sum: p.sum,
        bounds: p.explicit_bounds.clone(),
        bucket_counts: p.bucket_counts.clone(),
        min: p.min,
        max: p.max,
        exemplars_count: p.exemplars.len(),
        time_unix_nanos: p.time_unix_nano,
    }
}

fn metric_data(data: Option<&metric::Data>) -> MetricData {
    match data {
        None => MetricData::Empty,
        Some(metric::Data::Sum(s)) => MetricData::Sum {
            monotonic: s.is_monotonic,
            cumulative: is_cumulative(s.aggregation_temporality),
            points: s.data_points.iter().map(number_point).collect(),
        },
        Some(metric::Data::Gauge(g)) => MetricData::Gauge {
            points: g.data_points.iter().map(number_point).collect(),
        },
        Some(metric::Data::Histogram(h)) => MetricData::Histogram {
            cumulative: is_cumulative(h.aggregation_temporality),
            points: h.data_points.iter().map(histogram_point).collect(),
        },
        Some(metric::Data::ExponentialHistogram(h)) => MetricData::ExponentialHistogram {
            cumulative: is_cumulative(h.aggregation_temporality),
            points: h
                .data_points
                .iter()
                .map(|p| ExponentialPoint {
                    attributes: Attributes::from_proto(&p.attributes),
                    count: p.count,
                    sum: p.sum,
                    scale: p.scale,
                    zero_count: p.zero_count,
                    positive_offset: p.positive.as_ref().map_or(0, |b| b.offset),
                    positive_counts: p
                        .positive
                        .as_ref()
                        .map_or_else(Vec::new, |b| b.bucket_counts.clone()),
                    negative_offset: p.negative.as_ref().map_or(0, |b| b.offset),
                    negative_counts: p
                        .negative
                        .as_ref()
                        .map_or_else(Vec::new, |b| b.bucket_counts.clone()),
                    min: p.min,
                    max: p.max,
                    time_unix_nanos: p.time_unix_nano,
                })
                .collect(),
        },
        Some(metric::Data::Summary(s)) => MetricData::Summary {
            points_count: s.data_points.len(),
        },
    }
}

pub fn spans_from(req: &ExportTraceServiceRequest, transport: Transport) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = Arc::new(Attributes::from_resource(rs.resource.as_ref()));
        for ss in &rs.scope_spans {
            let (scope_name, scope_version) = scope_parts(ss.scope.as_ref());
            for s in &ss.spans {
                let status = match &s.status {
                    Some(st) => match status::StatusCode::try_from(st.code) {
                        Ok(status::StatusCode::Ok) => SpanStatus::Ok,
                        Ok(status::StatusCode::Error) => SpanStatus::Error(st.message.clone()),
                        Ok(status::StatusCode::Unset) | Err(_) => SpanStatus::Unset,
                    },
                    None => SpanStatus::Unset,
                };
                out.push(ReceivedSpan {
                    resource: Arc::clone(&resource),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: non_zero_hex(&s.parent_span_id),
                    trace_state: s.trace_state.clone(),
                    name: s.name.clone(),
                    kind: SpanKind::from_proto(s.kind),
                    start_unix_nanos: s.start_time_unix_nano,
                    end_unix_nanos: s.end_time_unix_nano,
                    attributes: Attributes::from_proto(&s.attributes),
                    events: s
                        .events
                        .iter()
                        .map(|e| ReceivedEvent {
                            name: e.name.clone(),
                            attributes: Attributes::from_proto(&e.attributes),
                            time_unix_nanos: e.time_unix_nano,
                        })
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .map(|l| ReceivedLink {
                            trace_id: hex(&l.trace_id),
                            span_id: hex(&l.span_id),
                            attributes: Attributes::from_proto(&l.attributes),
                        })
                        .collect(),
                    status,
                    dropped_attributes_count: s.dropped_attributes_count,
                    flags: s.flags,
                    transport,
                });
            }
        }
    }
    out
}

pub fn metrics_from(
    req: &ExportMetricsServiceRequest,
    transport: Transport,
) -> Vec<ReceivedMetric> {
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        let resource = Arc::new(Attributes::from_resource(rm.resource.as_ref()));
        for sm in &rm.scope_metrics {
            let (scope_name, scope_version) = scope_parts(sm.scope.as_ref());
            for m in &sm.metrics {
                out.push(ReceivedMetric {
                    resource: Arc::clone(&resource),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    name: m.name.clone(),
                    description: m.description.clone(),
                    unit: m.unit.clone(),
                    data: metric_data(m.data.as_ref()),
                    transport,
                });
            }
        }
    }
    out
}

pub fn logs_from(req: &ExportLogsServiceRequest, transport: Transport) -> Vec<ReceivedLog> {
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let resource = Arc::new(Attributes::from_resource(rl.resource.as_ref()));
        for sl in &rl.scope_logs {
            let (scope_name, scope_version) = scope_parts(sl.scope.as_ref());
            for r in &sl.log_records {
                let body = r.body.as_ref().and_then(|b| match &b.value {
                    None => None,
                    Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                    Some(_) => {
                        let mut rendered = format!("{:?}", AttrValue::from_any(Some(b)));
                        rendered.shrink_to_fit();
                        Some(rendered)
                    }
                });
                out.push(ReceivedLog {
                    resource: Arc::clone(&resource),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    time_unix_nanos: r.time_unix_nano,
                    observed_time_unix_nanos: r.observed_time_unix_nano,
                    severity_number: r.severity_number,
                    severity_text: r.severity_text.clone(),
                    body,
                    attributes: Attributes::from_proto(&r.attributes),
                    trace_id: non_zero_hex(&r.trace_id),
                    span_id: non_zero_hex(&r.span_id),
                    event_name: r.event_name.clone(),
                    transport,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every span of one `ResourceSpans` holds the same resource, not a
    /// copy: a large resource over many spans costs its size once.
    #[test]
    fn the_items_of_one_resource_share_it() {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "r".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("x".repeat(4096))),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); 3],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let spans = spans_from(&req, Transport::Grpc);
        assert_eq!(spans.len(), 3);
        assert!(
            spans
                .iter()
                .all(|s| Arc::ptr_eq(&s.resource, &spans[0].resource))
        );
        assert_eq!(spans[0].resource.str("r").map(str::len), Some(4096));
    }

    #[test]
    fn hex_and_zero_ids() {
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
        assert_eq!(non_zero_hex(&[]), None);
        assert_eq!(non_zero_hex(&[0; 8]), None);
        assert_eq!(non_zero_hex(&[0, 1]).as_deref(), Some("0001"));
    }

    #[test]
    fn any_value_conversion() {
        let nested = AnyValue {
            value: Some(any_value::Value::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::ArrayValue(
                                opentelemetry_proto::tonic::common::v1::ArrayValue {
                                    values: vec![AnyValue {
                                        value: Some(any_value::Value::IntValue(3)),
                                    }],
                                },
                            )),
                        }),
                        ..Default::default()
                    }],
                },
            )),
        };
        let v = AttrValue::from_any(Some(&nested));
        let mut expected = BTreeMap::new();
        expected.insert("k".to_string(), AttrValue::Array(vec![AttrValue::I64(3)]));
        assert_eq!(v, AttrValue::Map(expected));
        assert_eq!(AttrValue::from_any(None), AttrValue::Empty);
    }
}
