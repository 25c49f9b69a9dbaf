//! The Jaeger propagator (`OTEL_PROPAGATORS=jaeger`): `uber-trace-id:
//! {trace-id}:{span-id}:{parent-span-id}:{flags}` and `uberctx-{key}`
//! baggage, for services still instrumented with Jaeger clients.
//!
//! Ours, not the `opentelemetry-jaeger-propagator` crate: its last release
//! is built on opentelemetry 0.32 (its trait is not ours), and it reads
//! `uberctx-` baggage into the trace state instead of the baggage, and never
//! writes it. The wire format is the same as its (tests check both ways).
//!
//! ```
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use std::collections::HashMap;
//!
//! let jaeger = telemetry::propagation::JaegerPropagator::new();
//! let mut carrier = HashMap::new();
//! carrier.insert("uber-trace-id".to_string(), "4bf92f3577b34da6:00f067aa0ba902b7:0:1".to_string());
//! let cx = jaeger.extract(&carrier);
//! let sc = cx.span().span_context().clone();
//! assert_eq!(sc.trace_id().to_string(), "00000000000000004bf92f3577b34da6");
//! assert!(sc.is_sampled() && sc.is_remote());
//! ```

use std::borrow::Cow;

use opentelemetry::baggage::{BaggageExt, KeyValueMetadata};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};

const HEADER: &str = "uber-trace-id";
const BAGGAGE_PREFIX: &str = "uberctx-";
/// Longest header value read: 32 + 16 + 16 + 2 hex digits and separators, with room.
const MAX_HEADER: usize = 128;
/// Most `uberctx-` entries taken from one request.
const MAX_BAGGAGE: usize = 64;

/// Reads and writes Jaeger's `uber-trace-id` and `uberctx-*` headers.
#[derive(Debug, Clone)]
pub struct JaegerPropagator {
    fields: [String; 1],
}

impl Default for JaegerPropagator {
    fn default() -> Self {
        JaegerPropagator::new()
    }
}

impl JaegerPropagator {
    /// The propagator with Jaeger's header names.
    pub fn new() -> Self {
        JaegerPropagator {
            fields: [HEADER.to_string()],
        }
    }
}

fn parse(value: &str) -> Option<SpanContext> {
    if value.len() > MAX_HEADER {
        return None;
    }
    // Some clients URL-encode the separators.
    let value: Cow<'_, str> = if value.contains(':') {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(value.replace("%3A", ":").replace("%3a", ":"))
    };
    let parts: Vec<&str> = value.trim().split(':').collect();
    let [trace, span, _parent, flags] = parts.as_slice() else {
        return None;
    };
    let hex = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit())
    };
    if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(&format!("{trace:0>32}")).ok()?;
    let span_id = SpanId::from_hex(&format!("{span:0>16}")).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    // Bit 1 sampled; bit 2 debug, which implies sampled.
    let sampled = flags & 0x01 != 0 || flags & 0x02 != 0;
    let context = SpanContext::new(
        trace_id,
        span_id,
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TextMapPropagator for JaegerPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let flags = if sc.is_sampled() { 1 } else { 0 };
            injector.set(
                HEADER,
                format!("{}:{}:0:{flags}", sc.trace_id(), sc.span_id()),
            );
        }
        for (key, (value, _)) in cx.baggage() {
            injector.set(
                &format!("{BAGGAGE_PREFIX}{}", key.as_str()),
                percent_encode(value.as_str()),
            );
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut cx = cx.clone();
        if let Some(sc) = extractor.get(HEADER).and_then(parse) {
            cx = cx.with_remote_span_context(sc);
        }
        let baggage: Vec<KeyValueMetadata> = extractor
            .keys()
            .into_iter()
            .filter_map(|k| {
                let key = k.to_ascii_lowercase();
                let name = key.strip_prefix(BAGGAGE_PREFIX)?.to_string();
                let value = extractor.get(k)?;
                (!name.is_empty()).then(|| KeyValue::new(name, percent_decode(value)).into())
            })
            .take(MAX_BAGGAGE)
            .collect();
        if baggage.is_empty() {
            cx
        } else {
            cx.with_baggage(baggage)
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(self.fields.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn extract(header: &str) -> SpanContext {
        let mut carrier = HashMap::new();
        carrier.insert(HEADER.to_string(), header.to_string());
        JaegerPropagator::new()
            .extract(&carrier)
            .span()
            .span_context()
            .clone()
    }

    #[test]
    fn short_ids_are_padded_and_every_flag_value_is_read() {
        let sc = extract("4d0000000000000016:17c29:0:1");
        assert_eq!(
            sc.trace_id().to_string(),
            "000000000000004d0000000000000016"
        );
        assert_eq!(sc.span_id().to_string(), "0000000000017c29");
        assert!(sc.is_sampled() && sc.is_remote());
        assert!(!extract("4d0000000000000016:17c29:0:0").is_sampled());
        assert!(
            extract("4d0000000000000016:17c29:0:3").is_sampled(),
            "debug"
        );
        assert!(
            extract("4d0000000000000016:17c29:0:2").is_sampled(),
            "debug alone"
        );
        assert!(
            extract("4d0000000000000016%3A17c29%3A0%3A1").is_sampled(),
            "URL-encoded"
        );
    }

    #[test]
    fn malformed_headers_start_a_new_trace() {
        for bad in [
            "",
            "1:2:3",
            "1:2:3:4:5",
            "0:17c29:0:1",
            "4d:0:0:1",
            "xyz:17c29:0:1",
            "4d:17c29:0:100",
            &format!("{}:1:0:1", "1".repeat(33)),
            &format!("4d:{}:0:1", "1".repeat(17)),
            &"1:".repeat(200),
        ] {
            assert!(!extract(bad).is_valid(), "{bad:?}");
        }
    }

    #[test]
    fn baggage_goes_both_ways_encoded() {
        let p = JaegerPropagator::new();
        let mut carrier = HashMap::new();
        carrier.insert("uberctx-tenant".to_string(), "acme%20corp".to_string());
        let cx = p.extract(&carrier);
        assert_eq!(
            cx.baggage().get("tenant").map(|v| v.as_str().to_string()),
            Some("acme corp".to_string())
        );
        let mut out: HashMap<String, String> = HashMap::new();
        p.inject_context(&cx, &mut out);
        assert_eq!(
            out.get("uberctx-tenant").map(String::as_str),
            Some("acme%20corp")
        );
        assert!(
            !out.contains_key(HEADER),
            "no span context, no uber-trace-id"
        );
    }
}
