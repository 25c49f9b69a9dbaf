//! OTLP protobuf for a batch of SDK spans, written straight from the spans.
//!
//! Building the generated messages first (the OTLP crate's conversion)
//! allocates every id, name, key and value a second time, only to encode
//! and free them; on the export worker that was most of a batch's cost, a
//! good part of it the kernel zeroing fresh pages for those copies. Here
//! the bytes are written from the spans themselves, into one buffer.
//!
//! They are the bytes prost writes for the generated messages the OTLP
//! crate builds: the same fields, in tag order, defaults left out, and
//! message fields the conversion always sets (status, scope, resource,
//! attribute values) always written. The tests compare the two for spans
//! of every shape.

use opentelemetry::trace::{Link, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope as ProtoScope;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::trace::SpanData;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// What every batch of one exporter shares: its resource, encoded once.
pub(crate) struct ResourceBlock {
    /// `ResourceSpans.resource`, tag and length included.
    resource_field: Vec<u8>,
    schema_url: String,
}

impl ResourceBlock {
    pub(crate) fn new(resource: &ResourceAttributesWithSchema) -> ResourceBlock {
        let proto = ProtoResource {
            attributes: resource.attributes.0.clone(),
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        };
        let mut resource_field = Vec::new();
        prost::encoding::message::encode(1, &proto, &mut resource_field);
        ResourceBlock {
            resource_field,
            schema_url: resource.schema_url.clone().unwrap_or_default(),
        }
    }
}

/// Appends an `ExportTraceServiceRequest` holding `spans` to `out`.
pub(crate) fn encode_request(block: &ResourceBlock, spans: &[SpanData], out: &mut Vec<u8>) {
    // Scopes in the order they first appear, and each span's scope.
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    let mut scope_of: Vec<usize> = Vec::with_capacity(spans.len());
    let mut last = 0;
    for span in spans {
        let scope = &span.instrumentation_scope;
        if scopes.get(last).is_none_or(|s| *s != scope) {
            last = match scopes.iter().position(|s| *s == scope) {
                Some(i) => i,
                None => {
                    scopes.push(scope);
                    scopes.len() - 1
                }
            };
        }
        scope_of.push(last);
    }
    // Lengths first: a message's length precedes it.
    let span_lens: Vec<usize> = spans.iter().map(span_len).collect();
    let scope_fields: Vec<Vec<u8>> = scopes
        .iter()
        .map(|scope| {
            let proto: ProtoScope = (*scope, None).into();
            let mut field = Vec::new();
            prost::encoding::message::encode(1, &proto, &mut field);
            field
        })
        .collect();
    let group_lens: Vec<usize> = (0..scopes.len())
        .map(|g| {
            let spans_len: usize = span_lens
                .iter()
                .zip(&scope_of)
                .filter(|(_, of)| **of == g)
                .map(|(len, _)| nested_len(2, *len))
                .sum();
            scope_fields[g].len() + spans_len + str_len(3, schema_url(scopes[g]))
        })
        .collect();
    let resource_spans_len = block.resource_field.len()
        + group_lens
            .iter()
            .map(|len| nested_len(2, *len))
            .sum::<usize>()
        + str_len(3, &block.schema_url);

    out.reserve(nested_len(1, resource_spans_len));
    put_header(1, resource_spans_len, out);
    out.extend_from_slice(&block.resource_field);
    for (g, scope) in scopes.iter().enumerate() {
        put_header(2, group_lens[g], out);
        out.extend_from_slice(&scope_fields[g]);
        for ((span, len), _) in spans
            .iter()
            .zip(&span_lens)
            .zip(&scope_of)
            .filter(|(_, of)| **of == g)
        {
            put_header(2, *len, out);
            put_span(span, out);
        }
        put_str(3, schema_url(scope), out);
    }
    put_str(3, &block.schema_url, out);
}

fn schema_url(scope: &InstrumentationScope) -> &str {
    scope.schema_url().unwrap_or_default()
}

// Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5,
// kind 6, start 7, end 8, attributes 9, dropped attributes 10, events 11,
// dropped events 12, links 13, dropped links 14, status 15, flags 16.

fn span_len(span: &SpanData) -> usize {
    let parent = span.parent_span_id != opentelemetry::trace::SpanId::INVALID;
    context_len(&span.span_context)
        + if parent { nested_len(4, 8) } else { 0 }
        + str_len(5, &span.name)
        + varint_len(6, kind(&span.span_kind))
        + fixed64_len(7, nanos(span.start_time))
        + fixed64_len(8, nanos(span.end_time))
        + attributes_len(9, &span.attributes)
        + varint_len(10, u64::from(span.dropped_attributes_count))
        + span
            .events
            .iter()
            .map(|e| {
                nested_len(
                    11,
                    fixed64_len(1, nanos(e.timestamp))
                        + str_len(2, &e.name)
                        + attributes_len(3, &e.attributes)
                        + varint_len(4, u64::from(e.dropped_attributes_count)),
                )
            })
            .sum::<usize>()
        + varint_len(12, u64::from(span.events.dropped_count))
        + span
            .links
            .iter()
            .map(|l| nested_len(13, link_len(l)))
            .sum::<usize>()
        + varint_len(14, u64::from(span.links.dropped_count))
        + nested_len(15, status_len(&span.status))
        + 2
        + 4
}

fn put_span(span: &SpanData, out: &mut Vec<u8>) {
    let cx = &span.span_context;
    put_context(cx, out);
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        put_bytes(4, &span.parent_span_id.to_bytes(), out);
    }
    put_str(5, &span.name, out);
    put_varint(6, kind(&span.span_kind), out);
    put_fixed64(7, nanos(span.start_time), out);
    put_fixed64(8, nanos(span.end_time), out);
    put_attributes(9, &span.attributes, out);
    put_varint(10, u64::from(span.dropped_attributes_count), out);
    for e in span.events.iter() {
        let len = fixed64_len(1, nanos(e.timestamp))
            + str_len(2, &e.name)
            + attributes_len(3, &e.attributes)
            + varint_len(4, u64::from(e.dropped_attributes_count));
        put_header(11, len, out);
        put_fixed64(1, nanos(e.timestamp), out);
        put_str(2, &e.name, out);
        put_attributes(3, &e.attributes, out);
        put_varint(4, u64::from(e.dropped_attributes_count), out);
    }
    put_varint(12, u64::from(span.events.dropped_count), out);
    for link in span.links.iter() {
        put_header(13, link_len(link), out);
        put_link(link, out);
    }
    put_varint(14, u64::from(span.links.dropped_count), out);
    put_header(15, status_len(&span.status), out);
    put_status(&span.status, out);
    // Never zero: the "has is-remote" bit is always set.
    put_fixed32(
        16,
        flags(cx.trace_flags().to_u8(), span.parent_span_is_remote),
        out,
    );
}

/// Span and Link both start with trace_id 1, span_id 2, trace_state 3.
fn context_len(cx: &opentelemetry::trace::SpanContext) -> usize {
    nested_len(1, 16) + nested_len(2, 8) + str_len(3, &cx.trace_state().header())
}

fn put_context(cx: &opentelemetry::trace::SpanContext, out: &mut Vec<u8>) {
    put_bytes(1, &cx.trace_id().to_bytes(), out);
    put_bytes(2, &cx.span_id().to_bytes(), out);
    put_str(3, &cx.trace_state().header(), out);
}

/// The span flags of the OTLP specification: the W3C trace flags, and
/// whether the parent (for a link: the linked context) is remote, which is
/// always known here.
fn flags(trace_flags: u8, remote: bool) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

// Link: trace_id 1, span_id 2, trace_state 3, attributes 4, dropped 5, flags 6.

fn link_len(link: &Link) -> usize {
    context_len(&link.span_context)
        + attributes_len(4, &link.attributes)
        + varint_len(5, u64::from(link.dropped_attributes_count))
        + 1
        + 4
}

fn put_link(link: &Link, out: &mut Vec<u8>) {
    let cx = &link.span_context;
    put_context(cx, out);
    put_attributes(4, &link.attributes, out);
    put_varint(5, u64::from(link.dropped_attributes_count), out);
    put_fixed32(6, flags(cx.trace_flags().to_u8(), cx.is_remote()), out);
}

// Status: message 2, code 3 (unset 0, ok 1, error 2).

fn status_parts(status: &Status) -> (&str, u64) {
    match status {
        Status::Unset => ("", 0),
        Status::Ok => ("", 1),
        Status::Error { description } => (description, 2),
    }
}

fn status_len(status: &Status) -> usize {
    let (message, code) = status_parts(status);
    str_len(2, message) + varint_len(3, code)
}

fn put_status(status: &Status, out: &mut Vec<u8>) {
    let (message, code) = status_parts(status);
    put_str(2, message, out);
    put_varint(3, code, out);
}

// KeyValue: key 1, value 2 (always set). AnyValue, a oneof written even
// when its value is the default: string 1, bool 2, int 3, double 4,
// array 5 (ArrayValue: values 1).

fn attributes_len(tag: u32, attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|kv| nested_len(tag, key_value_len(kv)))
        .sum()
}

fn put_attributes(tag: u32, attributes: &[KeyValue], out: &mut Vec<u8>) {
    for kv in attributes {
        put_header(tag, key_value_len(kv), out);
        put_str(1, kv.key.as_str(), out);
        put_header(2, any_value_len(&kv.value), out);
        put_any_value(&kv.value, out);
    }
}

fn key_value_len(kv: &KeyValue) -> usize {
    str_len(1, kv.key.as_str()) + nested_len(2, any_value_len(&kv.value))
}

/// An AnyValue holding one scalar.
enum Scalar<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
}

fn scalar_len(v: &Scalar<'_>) -> usize {
    match v {
        Scalar::Str(s) => nested_len(1, s.len()),
        Scalar::Bool(_) => 2,
        Scalar::Int(i) => 1 + encoded_len_varint(*i as u64),
        Scalar::Double(_) => 9,
    }
}

fn put_scalar(v: &Scalar<'_>, out: &mut Vec<u8>) {
    match v {
        Scalar::Str(s) => {
            put_header(1, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Scalar::Bool(b) => {
            encode_key(2, WireType::Varint, out);
            encode_varint(u64::from(*b), out);
        }
        Scalar::Int(i) => {
            encode_key(3, WireType::Varint, out);
            encode_varint(*i as u64, out);
        }
        Scalar::Double(d) => {
            encode_key(4, WireType::SixtyFourBit, out);
            out.extend_from_slice(&d.to_le_bytes());
        }
    }
}

/// The array's elements as scalars; `None` for an array type this crate
/// does not know (the value is then written empty rather than panicking).
fn array_items(array: &Array) -> Option<Vec<Scalar<'_>>> {
    Some(match array {
        Array::Bool(v) => v.iter().map(|b| Scalar::Bool(*b)).collect(),
        Array::I64(v) => v.iter().map(|i| Scalar::Int(*i)).collect(),
        Array::F64(v) => v.iter().map(|d| Scalar::Double(*d)).collect(),
        Array::String(v) => v.iter().map(|s| Scalar::Str(s.as_str())).collect(),
        _ => return None,
    })
}

fn array_len(items: &[Scalar<'_>]) -> usize {
    items
        .iter()
        .map(|item| nested_len(1, scalar_len(item)))
        .sum()
}

fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(b) => scalar_len(&Scalar::Bool(*b)),
        Value::I64(i) => scalar_len(&Scalar::Int(*i)),
        Value::F64(d) => scalar_len(&Scalar::Double(*d)),
        Value::String(s) => scalar_len(&Scalar::Str(s.as_str())),
        Value::Array(a) => array_items(a).map_or(0, |items| nested_len(5, array_len(&items))),
        _ => 0,
    }
}

fn put_any_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Bool(b) => put_scalar(&Scalar::Bool(*b), out),
        Value::I64(i) => put_scalar(&Scalar::Int(*i), out),
        Value::F64(d) => put_scalar(&Scalar::Double(*d), out),
        Value::String(s) => put_scalar(&Scalar::Str(s.as_str()), out),
        Value::Array(a) => {
            if let Some(items) = array_items(a) {
                put_header(5, array_len(&items), out);
                for item in &items {
                    put_header(1, scalar_len(item), out);
                    put_scalar(item, out);
                }
            }
        }
        _ => {}
    }
}

// Field helpers. Lengths include the field's key; scalar fields at their
// default (0, empty) are left out, as proto3 and prost do.

fn nested_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        nested_len(tag, s.len())
    }
}

fn varint_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v)
    }
}

fn fixed64_len(tag: u32, v: u64) -> usize {
    if v == 0 { 0 } else { key_len(tag) + 8 }
}

fn put_header(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn put_bytes(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty() {
        put_header(tag, bytes.len(), out);
        out.extend_from_slice(bytes);
    }
}

fn put_str(tag: u32, s: &str, out: &mut Vec<u8>) {
    put_bytes(tag, s.as_bytes(), out);
}

fn put_varint(tag: u32, v: u64, out: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(v, out);
    }
}

fn put_fixed64(tag: u32, v: u64, out: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_fixed32(tag: u32, v: u32, out: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::ThirtyTwoBit, out);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// The length `encode_request` writes, for tests: the generated message's
/// own `encoded_len` must agree.
#[cfg(test)]
fn request_len(block: &ResourceBlock, spans: &[SpanData]) -> usize {
    let mut out = Vec::new();
    encode_request(block, spans, &mut out);
    out.len()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use super::*;

    /// A small deterministic generator (xorshift), so every run checks the
    /// same varied spans.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn string(&mut self) -> String {
            let len = [0, 1, 5, 127, 128, 300][self.below(6) as usize];
            (0..len)
                .map(|i| ['a', 'é', '€', '7', ' '][(i + self.below(5) as usize) % 5])
                .collect()
        }
        fn value(&mut self) -> Value {
            match self.below(9) {
                0 => Value::Bool(self.below(2) == 1),
                1 => Value::I64(self.next() as i64),
                2 => Value::I64(-(self.below(1000) as i64)),
                3 => Value::I64(0),
                4 => Value::F64(f64::from_bits(self.next())),
                5 => Value::F64(0.0),
                6 => Value::String(self.string().into()),
                7 => Value::Array(match self.below(4) {
                    0 => Array::Bool((0..self.below(4)).map(|i| i % 2 == 0).collect()),
                    1 => Array::I64((0..self.below(4)).map(|_| self.next() as i64).collect()),
                    2 => Array::F64((0..self.below(4)).map(|_| self.next() as f64).collect()),
                    _ => Array::String((0..self.below(4)).map(|_| self.string().into()).collect()),
                }),
                _ => Value::String("".into()),
            }
        }
        fn attributes(&mut self) -> Vec<KeyValue> {
            (0..self.below(6))
                .map(|_| KeyValue::new(self.string(), self.value()))
                .collect()
        }
        fn context(&mut self) -> SpanContext {
            let state = match self.below(3) {
                0 => TraceState::default(),
                1 => TraceState::from_key_value([("vendor", "v1")]).unwrap_or_default(),
                _ => TraceState::from_key_value([("a", "1"), ("b", "2")]).unwrap_or_default(),
            };
            SpanContext::new(
                TraceId::from(u128::from(self.next()) << 64 | u128::from(self.next())),
                SpanId::from(self.next()),
                if self.below(2) == 0 {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                self.below(2) == 0,
                state,
            )
        }
        fn time(&mut self) -> SystemTime {
            match self.below(4) {
                0 => UNIX_EPOCH,
                // Before the epoch: written as 0, as the OTLP crate does.
                1 => UNIX_EPOCH - Duration::from_secs(5),
                _ => UNIX_EPOCH + Duration::from_nanos(self.next() >> 2),
            }
        }
        fn span(&mut self, scopes: &[InstrumentationScope]) -> SpanData {
            let mut events = SpanEvents::default();
            for _ in 0..self.below(3) {
                let mut event = opentelemetry::trace::Event::new(
                    self.string(),
                    self.time(),
                    self.attributes(),
                    self.below(3) as u32,
                );
                event.dropped_attributes_count = self.below(3) as u32;
                events.events.push(event);
            }
            events.dropped_count = self.below(2) as u32;
            let mut links = SpanLinks::default();
            for _ in 0..self.below(3) {
                let mut link = Link::new(self.context(), self.attributes(), 0);
                link.dropped_attributes_count = self.below(3) as u32;
                links.links.push(link);
            }
            links.dropped_count = self.below(2) as u32;
            SpanData {
                span_context: self.context(),
                parent_span_id: if self.below(2) == 0 {
                    SpanId::INVALID
                } else {
                    SpanId::from(self.next())
                },
                parent_span_is_remote: self.below(2) == 0,
                span_kind: [
                    SpanKind::Internal,
                    SpanKind::Server,
                    SpanKind::Client,
                    SpanKind::Producer,
                    SpanKind::Consumer,
                ][self.below(5) as usize]
                    .clone(),
                name: Cow::Owned(self.string()),
                start_time: self.time(),
                end_time: self.time(),
                attributes: self.attributes(),
                dropped_attributes_count: self.below(3) as u32,
                events,
                links,
                status: match self.below(3) {
                    0 => Status::Unset,
                    1 => Status::Ok,
                    _ => Status::error(self.string()),
                },
                instrumentation_scope: scopes[self.below(scopes.len() as u64) as usize].clone(),
            }
        }
    }

    fn upstream(resource: &ResourceAttributesWithSchema, spans: &[SpanData]) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(spans.to_vec(), resource),
        }
        .encode_to_vec()
    }

    #[test]
    fn the_bytes_are_those_of_the_generated_messages_for_spans_of_every_shape() {
        let resource: ResourceAttributesWithSchema = (&Resource::builder_empty()
            .with_service_name("encode-engine")
            .with_attribute(KeyValue::new("deployment.environment.name", "test"))
            .with_schema_url(
                Vec::<KeyValue>::new(),
                "https://opentelemetry.io/schemas/1.26.0",
            )
            .build())
            .into();
        let block = ResourceBlock::new(&resource);
        let scopes = [
            InstrumentationScope::builder("a")
                .with_version("1.2.0")
                .build(),
            InstrumentationScope::builder("b")
                .with_schema_url("https://example.com/schema")
                .with_attributes([KeyValue::new("scope.attr", 3)])
                .build(),
            InstrumentationScope::builder("").build(),
        ];
        let mut generator = Gen(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let n = generator.below(8) as usize;
            let spans: Vec<SpanData> = (0..n).map(|_| generator.span(&scopes)).collect();
            let mut ours = Vec::new();
            encode_request(&block, &spans, &mut ours);
            let theirs = upstream(&resource, &spans);
            assert_eq!(ours, theirs, "round {round}: {spans:#?}");
            assert_eq!(request_len(&block, &spans), theirs.len());
            // And it decodes as the request it claims to be.
            let decoded = ExportTraceServiceRequest::decode(ours.as_slice())
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            let count: usize = decoded
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            assert_eq!(count, n);
        }
    }

    #[test]
    fn an_empty_resource_and_batch_match_too() {
        let resource = ResourceAttributesWithSchema::default();
        let block = ResourceBlock::new(&resource);
        let mut ours = Vec::new();
        encode_request(&block, &[], &mut ours);
        assert_eq!(ours, upstream(&resource, &[]));
    }
}
