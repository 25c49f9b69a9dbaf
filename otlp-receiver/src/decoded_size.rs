//! What an export request decodes to, estimated from its bytes before it is
//! decoded, so that the estimate can be taken from the budget of bytes in
//! flight first.
//!
//! Decoding multiplies: an empty span is 2 bytes of protobuf and a few
//! hundred once decoded into `opentelemetry-proto`'s structs and again into
//! the flat model, and the model copies each resource's attributes onto
//! every item under it (1 MiB of resource attributes over 100,000 empty
//! spans was 100 GB before the model shared resources). The wire is walked
//! once with the OTLP schema's message fields, without allocating, and
//! charged what decoding takes:
//! - every message, prost's struct and the model's, and an attribute map's
//!   first node where the model keeps a map for it;
//! - every scalar, as an element of a repeated field (prost accepts them
//!   unpacked, one element per key, in a vector that may double);
//! - strings and bytes three times (decoded, copied into the model, ids
//!   turned to hex), bytes in a value twelve (a log body's bytes are
//!   rendered with `{:?}`), packed varints 24 times (1 byte to 8, a vector
//!   that may double, the model's copy);
//! - each item a copy of its scope's name and version.

use std::mem::size_of;

use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::logs::v1 as logs;
use opentelemetry_proto::tonic::metrics::v1 as metrics;
use opentelemetry_proto::tonic::resource::v1 as resource;
use opentelemetry_proto::tonic::trace::v1 as trace;

use crate::model::{
    AttrValue, ExponentialPoint, HistogramPoint, NumberPoint, ReceivedEvent, ReceivedLink,
    ReceivedLog, ReceivedMetric, ReceivedSpan, Signal,
};

/// prost's own recursion limit: deeper messages fail to decode anyway.
const MAX_DEPTH: u32 = 100;

/// One entry of an attribute map in the model: key, value, and a share of
/// the tree's node.
const MODEL_ATTRIBUTE: usize = size_of::<String>() + size_of::<AttrValue>() + 16;

/// The first node of a non-empty `BTreeMap<String, AttrValue>`: eleven
/// keys and values and the node's header.
const ATTRIBUTE_MAP: usize = 11 * (size_of::<String>() + size_of::<AttrValue>()) + 16;

/// A scalar field: one element of a repeated field, twice over for a
/// vector that may double.
const SCALAR: usize = 16;

/// A string or bytes field's own header, in prost and in the model.
const STRING: usize = 2 * size_of::<String>();

/// The OTLP messages an export request is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    TracesRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    Event,
    Link,
    Status,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    MetricsRequest,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
    NumberDataPoint,
    HistogramDataPoint,
    ExponentialHistogramDataPoint,
    Buckets,
    SummaryDataPoint,
    ValueAtQuantile,
    Exemplar,
    Resource,
    EntityRef,
    Scope,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

impl Msg {
    /// The message in field `field`, when that field is a message.
    fn child(self, field: u32) -> Option<Msg> {
        use Msg::*;
        Some(match (self, field) {
            (TracesRequest, 1) => ResourceSpans,
            (ResourceSpans, 1) | (ResourceLogs, 1) | (ResourceMetrics, 1) => Resource,
            (ResourceSpans, 2) => ScopeSpans,
            (ScopeSpans, 1) | (ScopeLogs, 1) | (ScopeMetrics, 1) => Scope,
            (ScopeSpans, 2) => Span,
            (Span, 9) | (Event, 3) | (Link, 4) => KeyValue,
            (Span, 11) => Event,
            (Span, 13) => Link,
            (Span, 15) => Status,
            (LogsRequest, 1) => ResourceLogs,
            (ResourceLogs, 2) => ScopeLogs,
            (ScopeLogs, 2) => LogRecord,
            (LogRecord, 5) => AnyValue,
            (LogRecord, 6) => KeyValue,
            (MetricsRequest, 1) => ResourceMetrics,
            (ResourceMetrics, 2) => ScopeMetrics,
            (ScopeMetrics, 2) => Metric,
            (Metric, 5) => Gauge,
            (Metric, 7) => Sum,
            (Metric, 9) => Histogram,
            (Metric, 10) => ExponentialHistogram,
            (Metric, 11) => Summary,
            (Metric, 12) => KeyValue,
            (Gauge, 1) | (Sum, 1) => NumberDataPoint,
            (Histogram, 1) => HistogramDataPoint,
            (ExponentialHistogram, 1) => ExponentialHistogramDataPoint,
            (Summary, 1) => SummaryDataPoint,
            (NumberDataPoint, 7)
            | (HistogramDataPoint, 9)
            | (ExponentialHistogramDataPoint, 1)
            | (SummaryDataPoint, 7)
            | (Exemplar, 7) => KeyValue,
            (NumberDataPoint, 5)
            | (HistogramDataPoint, 8)
            | (ExponentialHistogramDataPoint, 11) => Exemplar,
            (ExponentialHistogramDataPoint, 8 | 9) => Buckets,
            (SummaryDataPoint, 6) => ValueAtQuantile,
            (Resource, 1) | (Scope, 3) | (KeyValueList, 1) => KeyValue,
            (Resource, 3) => EntityRef,
            (KeyValue, 2) | (ArrayValue, 1) => AnyValue,
            (AnyValue, 5) => ArrayValue,
            (AnyValue, 6) => KeyValueList,
            _ => return None,
        })
    }

    /// What a length-delimited field that is not a message takes per byte
    /// of its payload, decoded and in the model.
    fn per_byte(self, field: u32) -> usize {
        match (self, field) {
            // Packed varints: 1 byte to 8, a vector that may double, a copy.
            (Msg::Buckets, 2) => 24,
            // Bytes in a value: a log body's are rendered with `{:?}`, up to
            // five characters a byte, in a string that may double.
            (Msg::AnyValue, 7) => 12,
            _ => 3,
        }
    }

    /// What one decoded instance takes: prost's struct, and the model's
    /// (with its attribute map) where the model keeps one per instance.
    fn cost(self) -> usize {
        use Msg::*;
        match self {
            TracesRequest | LogsRequest | MetricsRequest => 0,
            ResourceSpans => size_of::<trace::ResourceSpans>(),
            ScopeSpans => size_of::<trace::ScopeSpans>(),
            Span => size_of::<trace::Span>() + size_of::<ReceivedSpan>() + ATTRIBUTE_MAP,
            Event => size_of::<trace::span::Event>() + size_of::<ReceivedEvent>() + ATTRIBUTE_MAP,
            Link => size_of::<trace::span::Link>() + size_of::<ReceivedLink>() + ATTRIBUTE_MAP,
            Status => size_of::<trace::Status>(),
            ResourceLogs => size_of::<logs::ResourceLogs>(),
            ScopeLogs => size_of::<logs::ScopeLogs>(),
            LogRecord => size_of::<logs::LogRecord>() + size_of::<ReceivedLog>() + ATTRIBUTE_MAP,
            ResourceMetrics => size_of::<metrics::ResourceMetrics>(),
            ScopeMetrics => size_of::<metrics::ScopeMetrics>(),
            Metric => size_of::<metrics::Metric>() + size_of::<ReceivedMetric>(),
            Gauge => size_of::<metrics::Gauge>(),
            Sum => size_of::<metrics::Sum>(),
            Histogram => size_of::<metrics::Histogram>(),
            ExponentialHistogram => size_of::<metrics::ExponentialHistogram>(),
            Summary => size_of::<metrics::Summary>(),
            NumberDataPoint => {
                size_of::<metrics::NumberDataPoint>() + size_of::<NumberPoint>() + ATTRIBUTE_MAP
            }
            HistogramDataPoint => {
                size_of::<metrics::HistogramDataPoint>()
                    + size_of::<HistogramPoint>()
                    + ATTRIBUTE_MAP
            }
            ExponentialHistogramDataPoint => {
                size_of::<metrics::ExponentialHistogramDataPoint>()
                    + size_of::<ExponentialPoint>()
                    + ATTRIBUTE_MAP
            }
            Buckets => size_of::<metrics::exponential_histogram_data_point::Buckets>(),
            SummaryDataPoint => size_of::<metrics::SummaryDataPoint>() + ATTRIBUTE_MAP,
            ValueAtQuantile => size_of::<metrics::summary_data_point::ValueAtQuantile>(),
            Exemplar => size_of::<metrics::Exemplar>(),
            Resource => size_of::<resource::Resource>() + ATTRIBUTE_MAP,
            EntityRef => size_of::<common::EntityRef>(),
            Scope => size_of::<common::InstrumentationScope>(),
            KeyValue => size_of::<common::KeyValue>() + MODEL_ATTRIBUTE,
            AnyValue => size_of::<common::AnyValue>() + size_of::<AttrValue>(),
            // prost's vectors start at four elements; a map value is a map
            // in the model.
            ArrayValue => size_of::<common::ArrayValue>() + 4 * size_of::<common::AnyValue>(),
            KeyValueList => {
                size_of::<common::KeyValueList>()
                    + 4 * size_of::<common::KeyValue>()
                    + ATTRIBUTE_MAP
            }
        }
    }

    /// Whether the model makes one item (span, metric, log record) of it.
    fn is_item(self) -> bool {
        matches!(self, Msg::Span | Msg::Metric | Msg::LogRecord)
    }
}

/// What a message's subtree decodes to.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    bytes: usize,
    items: usize,
}

/// Estimated bytes the protobuf export request `wire` of `signal` decodes
/// to, the request's own bytes not included.
///
/// # Errors
/// When `wire` is not well-formed protobuf (the decoder would refuse it too).
pub(crate) fn estimate(signal: Signal, wire: &[u8]) -> Result<usize, String> {
    let root = match signal {
        Signal::Traces => Msg::TracesRequest,
        Signal::Metrics => Msg::MetricsRequest,
        Signal::Logs => Msg::LogsRequest,
    };
    walk(root, wire, 0, Body::Outside).map(|t| t.bytes)
}

/// OTLP/JSON nested deeper than this is refused (valid exports stay under
/// about 20; serde_json's own limit is 128).
const MAX_JSON_DEPTH: usize = 32;

/// Estimated bytes parsing an OTLP/JSON export request takes, before the
/// model is built from it (which [`estimate`] charges, from the request
/// re-encoded as protobuf): every object may be a message, charged as the
/// largest prost struct in a doubling vector; every array as the first
/// slots of a buffered sequence, every comma as a buffered element, every
/// byte as part of a string. prost's `AnyValue` is parsed through a buffer
/// (`serde(flatten)`) that each nested value copies again, so what is
/// nested under values is charged once more for each level.
///
/// # Errors
/// When the JSON is nested deeper than [`MAX_JSON_DEPTH`].
pub(crate) fn estimate_json(json: &[u8]) -> Result<usize, String> {
    const LARGEST: usize = {
        let span = size_of::<trace::Span>();
        let log = size_of::<logs::LogRecord>();
        let metric = size_of::<metrics::Metric>();
        let a = if span > log { span } else { log };
        // A struct in a vector that may double (the model, and its maps, are
        // charged from the re-encoded protobuf).
        2 * if a > metric { a } else { metric }
    };
    // What serde buffers of a value (`Content`): a sequence's first four
    // slots, and a map entry or element with its share of a doubling vector.
    const SEQUENCE: usize = 4 * 32 + 32;
    const ELEMENT: usize = 128;
    // Values start 7-10 objects and arrays deep (resource attributes
    // soonest); each nested level of an array or map value is three more.
    let copies = |depth: usize| 1 + depth.saturating_sub(7) / 3;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut total = 0usize;
    for &b in json {
        let n = copies(depth);
        let charge = if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            4
        } else {
            match b {
                b'"' => {
                    in_string = true;
                    4
                }
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_JSON_DEPTH {
                        return Err(format!(
                            "OTLP/JSON nested deeper than {MAX_JSON_DEPTH} levels"
                        ));
                    }
                    if b == b'{' { LARGEST } else { SEQUENCE }
                }
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    0
                }
                b',' => ELEMENT,
                _ => 4,
            }
        };
        total = total.saturating_add(charge.saturating_mul(n));
    }
    Ok(total)
}

/// Where a message stands towards a log record's body, which the model
/// keeps as it is when it is a string and renders with `{:?}` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Not in a body.
    Outside,
    /// The body's own value: a string is copied, bytes rendered.
    Top,
    /// Under the body's array or map: every string rendered, up to six
    /// bytes per byte (`\u{1f}`), in a string that may double as it grows.
    Rendered,
}

fn walk(msg: Msg, mut buf: &[u8], depth: u32, body: Body) -> Result<Tally, String> {
    let scalar = if body == Body::Rendered {
        3 * SCALAR
    } else {
        SCALAR
    };
    if depth > MAX_DEPTH {
        return Err(format!("messages nested deeper than {MAX_DEPTH}"));
    }
    let mut tally = Tally {
        bytes: msg.cost(),
        items: usize::from(msg.is_item()),
    };
    // A scope's decoded size, charged again for each item under it: the
    // model copies its name and version onto each (resources are shared).
    let mut shared = 0usize;
    let mut shared_items = 0usize;
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|&f| f != 0)
            .ok_or("a field number of 0 or out of range")?;
        match key & 7 {
            0 => {
                varint(&mut buf)?;
                tally.bytes = tally.bytes.saturating_add(scalar);
            }
            1 => {
                buf = skip(buf, 8)?;
                tally.bytes = tally.bytes.saturating_add(scalar);
            }
            5 => {
                buf = skip(buf, 4)?;
                tally.bytes = tally.bytes.saturating_add(scalar);
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| "length out of range")?;
                let payload = buf
                    .get(..len)
                    .ok_or("a length past the end of the message")?;
                buf = &buf[len..];
                match msg.child(field) {
                    Some(child) => {
                        let body = match body {
                            Body::Outside if msg == Msg::LogRecord && field == 5 => Body::Top,
                            Body::Outside => Body::Outside,
                            Body::Top | Body::Rendered => Body::Rendered,
                        };
                        let sub = walk(child, payload, depth + 1, body)?;
                        if child == Msg::Scope {
                            shared = shared.saturating_add(sub.bytes);
                        } else {
                            shared_items = shared_items.saturating_add(sub.items);
                        }
                        tally.bytes = tally.bytes.saturating_add(sub.bytes);
                        tally.items = tally.items.saturating_add(sub.items);
                    }
                    None => {
                        let per_byte = match body {
                            Body::Rendered => 13,
                            Body::Outside | Body::Top => msg.per_byte(field),
                        };
                        let bytes = len.saturating_mul(per_byte).saturating_add(STRING);
                        tally.bytes = tally.bytes.saturating_add(bytes);
                    }
                }
            }
            other => return Err(format!("wire type {other} (groups) is not used by OTLP")),
        }
    }
    tally.bytes = tally
        .bytes
        .saturating_add(shared.saturating_mul(shared_items));
    Ok(tally)
}

fn skip(buf: &[u8], n: usize) -> Result<&[u8], String> {
    buf.get(n..)
        .ok_or_else(|| "a value past the end of the message".to_string())
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err("a malformed varint".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;

    fn kv(key: &str, value: &str) -> common::KeyValue {
        common::KeyValue {
            key: key.into(),
            value: Some(common::AnyValue {
                value: Some(common::any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn resource(attributes: Vec<common::KeyValue>) -> Option<resource::Resource> {
        Some(resource::Resource {
            attributes,
            ..Default::default()
        })
    }

    fn spans(resource_attrs: Vec<common::KeyValue>, spans: Vec<trace::Span>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![trace::ResourceSpans {
                resource: resource(resource_attrs),
                scope_spans: vec![trace::ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn span(attrs: usize) -> trace::Span {
        trace::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /orders/{id}".into(),
            attributes: (0..attrs).map(|i| kv(&format!("k{i}"), "value")).collect(),
            ..Default::default()
        }
    }

    /// The heap a decode really takes is not measured here; what must hold
    /// is that the estimate is not below the structs it counts, and grows
    /// with what the model copies.
    #[test]
    fn an_item_is_charged_its_structs_its_strings_and_its_scope_not_its_resource() {
        let one = spans(vec![], vec![span(0)]);
        let bare = estimate(Signal::Traces, &one).unwrap();
        assert!(bare >= size_of::<trace::Span>() + size_of::<ReceivedSpan>() + ATTRIBUTE_MAP);
        // Each attribute adds at least its structs.
        let with = estimate(Signal::Traces, &spans(vec![], vec![span(3)])).unwrap();
        assert!(with >= bare + 3 * (size_of::<common::KeyValue>() + MODEL_ATTRIBUTE));
        // A resource is charged once, however many items share it.
        let big = vec![kv("r", &"x".repeat(10_000))];
        let one_item = estimate(Signal::Traces, &spans(big.clone(), vec![span(0)])).unwrap();
        let ten_items = estimate(Signal::Traces, &spans(big, vec![span(0); 10])).unwrap();
        let per_span = estimate(Signal::Traces, &spans(vec![], vec![span(0); 2])).unwrap() - bare;
        assert_eq!(ten_items - one_item, 9 * per_span);
        assert!(one_item >= bare + 30_000, "{one_item}");
    }

    #[test]
    fn empty_items_are_charged_what_they_decode_to() {
        // 100,000 empty spans under 1 MiB of resource attributes: 1.2 MB of
        // protobuf, over a hundred times that decoded.
        let wire = spans(
            vec![kv("r", &"x".repeat(1 << 20))],
            vec![trace::Span::default(); 100_000],
        );
        assert!(wire.len() < 2 << 20, "{}", wire.len());
        let estimate = estimate(Signal::Traces, &wire).unwrap();
        let floor = 100_000 * (size_of::<trace::Span>() + size_of::<ReceivedSpan>());
        assert!(estimate > floor && estimate < 10 * floor, "{estimate}");
    }

    #[test]
    fn repeated_scalars_are_charged_whether_packed_or_not() {
        use metrics::exponential_histogram_data_point::Buckets;
        let point = |counts: Vec<u64>| {
            ExportMetricsServiceRequest {
                resource_metrics: vec![metrics::ResourceMetrics {
                    scope_metrics: vec![metrics::ScopeMetrics {
                        metrics: vec![metrics::Metric {
                            data: Some(metrics::metric::Data::ExponentialHistogram(
                                metrics::ExponentialHistogram {
                                    data_points: vec![metrics::ExponentialHistogramDataPoint {
                                        positive: Some(Buckets {
                                            offset: 0,
                                            bucket_counts: counts,
                                        }),
                                        ..Default::default()
                                    }],
                                    ..Default::default()
                                },
                            )),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        };
        let empty = estimate(Signal::Metrics, &point(vec![])).unwrap();
        // Packed: 10,000 one-byte varints that decode to 80,000 bytes.
        let packed = estimate(Signal::Metrics, &point(vec![1; 10_000])).unwrap();
        assert!(packed - empty >= 10_000 * 16, "{packed} {empty}");
        // Unpacked, the same counts: one key and one varint each. prost
        // accepts them; each is charged as an element.
        let mut unpacked = Vec::new();
        for _ in 0..10_000 {
            unpacked.extend_from_slice(&[0x10, 0x01]); // field 2, varint 1
        }
        let bucket = |payload: &[u8]| {
            let mut m = vec![0x42]; // ExponentialHistogramDataPoint.positive (8)
            prost::encoding::encode_varint(payload.len() as u64, &mut m);
            m.extend_from_slice(payload);
            m
        };
        let point_bytes = bucket(&unpacked);
        let walked = walk(
            Msg::ExponentialHistogramDataPoint,
            &point_bytes,
            0,
            Body::Outside,
        )
        .unwrap();
        assert!(walked.bytes >= 10_000 * 16, "{}", walked.bytes);
    }

    #[test]
    fn every_signal_and_nesting_is_walked() {
        let metrics = ExportMetricsServiceRequest {
            resource_metrics: vec![metrics::ResourceMetrics {
                scope_metrics: vec![metrics::ScopeMetrics {
                    metrics: vec![metrics::Metric {
                        name: "m".into(),
                        data: Some(metrics::metric::Data::Histogram(metrics::Histogram {
                            data_points: vec![metrics::HistogramDataPoint::default(); 1000],
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let points = estimate(Signal::Metrics, &metrics).unwrap();
        assert!(
            points >= 1000 * size_of::<metrics::HistogramDataPoint>(),
            "{points}"
        );
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![logs::ResourceLogs {
                scope_logs: vec![logs::ScopeLogs {
                    log_records: vec![logs::LogRecord::default(); 1000],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let records = estimate(Signal::Logs, &logs).unwrap();
        assert!(records >= 1000 * size_of::<ReceivedLog>(), "{records}");
        // Arrays in arrays: each level is charged.
        let mut value = common::AnyValue::default();
        for _ in 0..40 {
            value = common::AnyValue {
                value: Some(common::any_value::Value::ArrayValue(common::ArrayValue {
                    values: vec![value],
                })),
            };
        }
        let nested = spans(
            vec![],
            vec![trace::Span {
                attributes: vec![common::KeyValue {
                    key: "a".into(),
                    value: Some(value),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        );
        let deep = estimate(Signal::Traces, &nested).unwrap();
        assert!(deep >= 40 * size_of::<common::AnyValue>(), "{deep}");
    }

    #[test]
    fn malformed_wire_is_refused_not_walked_past_its_end() {
        let mut wire = spans(vec![], vec![span(1)]);
        wire.truncate(wire.len() - 3);
        assert!(estimate(Signal::Traces, &wire).is_err());
        assert!(estimate(Signal::Traces, &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(estimate(Signal::Traces, &[0x0b]).is_err(), "a group");
        assert!(estimate(Signal::Traces, &[0x00, 0x00]).is_err(), "field 0");
        assert_eq!(estimate(Signal::Traces, &[]).unwrap(), 0);
    }

    #[test]
    fn json_parse_is_charged_per_object_comma_and_byte() {
        let proto = ExportTraceServiceRequest {
            resource_spans: vec![trace::ResourceSpans {
                resource: resource(vec![kv("service.name", "token-engine")]),
                scope_spans: vec![trace::ScopeSpans {
                    spans: vec![span(5); 50],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let json = serde_json::to_vec(&proto).unwrap();
        let objects = json.iter().filter(|&&b| b == b'{').count();
        let parse = estimate_json(&json).unwrap();
        assert!(
            parse >= objects * size_of::<trace::Span>() + json.len(),
            "{parse}"
        );
        // Empty objects and numeric arrays, the cheapest JSON to send.
        let empties = format!(r#"{{"spans":[{}]}}"#, vec!["{}"; 1000].join(","));
        assert!(estimate_json(empties.as_bytes()).unwrap() >= 1000 * size_of::<trace::Span>());
        let numbers = format!("[{}]", vec!["0"; 1000].join(","));
        assert!(estimate_json(numbers.as_bytes()).unwrap() >= 1000 * 16);
        // Empty arrays in arrays: each a buffered sequence in a value.
        let arrays = format!("[{}]", vec!["[[]]"; 1000].join(","));
        assert!(estimate_json(arrays.as_bytes()).unwrap() >= 2000 * 4 * 32);
    }

    #[test]
    fn json_nested_under_values_is_charged_per_level_and_bounded() {
        // The same 10,000 bytes of string, at the top and under twenty
        // levels of nesting.
        let text = "x".repeat(10_000);
        let flat = estimate_json(format!(r#"{{"a":"{text}"}}"#).as_bytes()).unwrap();
        let nested = format!("{}\"{text}\"{}", "[".repeat(20), "]".repeat(20));
        let deep = estimate_json(nested.as_bytes()).unwrap();
        assert!(deep >= 3 * flat, "{flat} {deep}");
        let too_deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert!(
            estimate_json(too_deep.as_bytes())
                .unwrap_err()
                .contains("deeper than 32")
        );
        // Braces and commas inside strings are text, not objects.
        let braces = format!(r#"{{"a":"{}"}}"#, "{,".repeat(5_000));
        let plain = format!(r#"{{"a":"{}"}}"#, "xx".repeat(5_000));
        assert_eq!(
            estimate_json(braces.as_bytes()).unwrap(),
            estimate_json(plain.as_bytes()).unwrap()
        );
    }

    #[test]
    fn a_log_body_that_is_not_a_string_is_charged_as_rendered() {
        let record = |body: common::any_value::Value| {
            ExportLogsServiceRequest {
                resource_logs: vec![logs::ResourceLogs {
                    scope_logs: vec![logs::ScopeLogs {
                        log_records: vec![logs::LogRecord {
                            body: Some(common::AnyValue { value: Some(body) }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        };
        let text = "\x1f".repeat(10_000);
        let in_array = record(common::any_value::Value::ArrayValue(common::ArrayValue {
            values: vec![common::AnyValue {
                value: Some(common::any_value::Value::StringValue(text.clone())),
            }],
        }));
        let as_string = record(common::any_value::Value::StringValue(text.clone()));
        let rendered = estimate(Signal::Logs, &in_array).unwrap();
        let kept = estimate(Signal::Logs, &as_string).unwrap();
        assert!(rendered >= 12 * 10_000, "{rendered}");
        assert!(
            kept < 4 * 10_000,
            "a string body is copied, not rendered: {kept}"
        );
    }
}
