//! The B3 propagator (`OTEL_PROPAGATORS=b3` / `b3multi`), for services
//! instrumented with Zipkin clients: the single `b3` header or the
//! `X-B3-*` headers. Both read both (single first), as the specification
//! asks; they differ in what they write. Parent span ids are never written
//! and a debug flag reads as sampled, as the specification says.
//!
//! Ours, because the only B3 propagator of the OpenTelemetry Rust family
//! ships in `opentelemetry-zipkin`, deprecated with its exporter as of 0.33.
//! The wire format is the same as its (tests check both ways).
//!
//! ```
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use std::collections::HashMap;
//!
//! let b3 = telemetry::propagation::B3Propagator::single();
//! let mut carrier = HashMap::new();
//! carrier.insert("b3".to_string(), "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".to_string());
//! let cx = b3.extract(&carrier);
//! let mut out = HashMap::new();
//! b3.inject_context(&cx, &mut out);
//! assert_eq!(out["b3"], "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
//! ```

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

const SINGLE: &str = "b3";
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";
/// Longest `b3` value read: 32 + 16 + 1 + 16 characters and three dashes.
const MAX_SINGLE: usize = 68;

/// Which headers the propagator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Single,
    Multi,
}

/// Reads and writes Zipkin's B3 headers.
#[derive(Debug, Clone)]
pub struct B3Propagator {
    encoding: Encoding,
    fields: Vec<String>,
}

impl B3Propagator {
    /// Writes the single `b3` header (`OTEL_PROPAGATORS=b3`).
    pub fn single() -> Self {
        B3Propagator {
            encoding: Encoding::Single,
            fields: vec![SINGLE.to_string()],
        }
    }

    /// Writes `X-B3-TraceId`, `X-B3-SpanId` and `X-B3-Sampled` (`OTEL_PROPAGATORS=b3multi`).
    pub fn multi() -> Self {
        B3Propagator {
            encoding: Encoding::Multi,
            fields: vec![
                TRACE_ID.into(),
                SPAN_ID.into(),
                SAMPLED.into(),
                FLAGS.into(),
            ],
        }
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn trace_id(s: &str) -> Option<TraceId> {
    match s.len() {
        32 if is_hex(s) => TraceId::from_hex(s).ok(),
        16 if is_hex(s) => TraceId::from_hex(&format!("{s:0>32}")).ok(),
        _ => None,
    }
}

fn span_id(s: &str) -> Option<SpanId> {
    (s.len() == 16 && is_hex(s))
        .then(|| SpanId::from_hex(s).ok())
        .flatten()
}

fn context(trace: TraceId, span: SpanId, sampled: bool) -> Option<SpanContext> {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(trace, span, flags, true, TraceState::default());
    sc.is_valid().then_some(sc)
}

fn single(extractor: &dyn Extractor) -> Option<SpanContext> {
    let value = extractor.get(SINGLE)?.trim();
    if value.len() > MAX_SINGLE {
        return None;
    }
    let parts: Vec<&str> = value.split('-').collect();
    let (trace, span, sampled) = match parts.as_slice() {
        [trace, span] => (*trace, *span, None),
        [trace, span, sampled] | [trace, span, sampled, _] => (*trace, *span, Some(*sampled)),
        // `b3: 0` alone is a decision without ids: nothing to continue.
        _ => return None,
    };
    if let [.., parent] = parts.as_slice()
        && parts.len() == 4
        && span_id(parent).is_none()
    {
        return None;
    }
    let sampled = match sampled {
        None | Some("1") | Some("d") => true,
        Some("0") => false,
        Some(_) => return None,
    };
    context(trace_id(trace)?, span_id(span)?, sampled)
}

fn multi(extractor: &dyn Extractor) -> Option<SpanContext> {
    let trace = trace_id(extractor.get(TRACE_ID)?.trim())?;
    let span = span_id(extractor.get(SPAN_ID)?.trim())?;
    let debug = extractor.get(FLAGS).map(str::trim) == Some("1");
    let sampled = match extractor.get(SAMPLED).map(str::trim) {
        // No decision: the receiver decides; continue the trace sampled, as
        // the upstream propagator does.
        None => true,
        Some("1") | Some("true") => true,
        Some("0") | Some("false") => debug,
        Some(_) => return None,
    };
    context(trace, span, sampled || debug)
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let sampled = if sc.is_sampled() { "1" } else { "0" };
        match self.encoding {
            Encoding::Single => injector.set(
                SINGLE,
                format!("{}-{}-{sampled}", sc.trace_id(), sc.span_id()),
            ),
            Encoding::Multi => {
                injector.set(TRACE_ID, sc.trace_id().to_string());
                injector.set(SPAN_ID, sc.span_id().to_string());
                injector.set(SAMPLED, sampled.to_string());
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match single(extractor).or_else(|| multi(extractor)) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";

    fn extract(pairs: &[(&str, &str)]) -> SpanContext {
        let carrier: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        B3Propagator::single()
            .extract(&carrier)
            .span()
            .span_context()
            .clone()
    }

    #[test]
    fn every_documented_single_header_form_is_read() {
        let with = |v: &str| extract(&[("b3", v)]);
        assert!(with(&format!("{TRACE}-{SPAN}-1")).is_sampled());
        assert!(!with(&format!("{TRACE}-{SPAN}-0")).is_sampled());
        assert!(with(&format!("{TRACE}-{SPAN}-d")).is_sampled(), "debug");
        assert!(with(&format!("{TRACE}-{SPAN}")).is_sampled(), "deferred");
        assert!(
            with(&format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90")).is_valid(),
            "with parent"
        );
        let short = with(&format!("64fe8b2a57d3eff7-{SPAN}-1"));
        assert_eq!(
            short.trace_id().to_string(),
            "000000000000000064fe8b2a57d3eff7"
        );
        for bad in [
            "0",
            "1",
            "d",
            "",
            &format!("{TRACE}-{SPAN}-2"),
            &format!("{TRACE}-xyz-1"),
            &format!("{}-{SPAN}-1", "0".repeat(32)),
            &format!("{TRACE}-{SPAN}-1-zz"),
            &format!("{}-{SPAN}-1", TRACE.to_uppercase()),
        ] {
            assert!(!with(bad).is_valid(), "{bad:?}");
        }
    }

    #[test]
    fn multi_headers_are_read_when_single_is_absent_or_bad() {
        let sc = extract(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
        ]);
        assert!(sc.is_valid() && !sc.is_sampled());
        let debug = extract(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "1"),
        ]);
        assert!(debug.is_sampled());
        let legacy = extract(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "true"),
        ]);
        assert!(legacy.is_sampled());
        let fallback = extract(&[
            ("b3", "garbage"),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
        ]);
        assert_eq!(fallback.trace_id().to_string(), TRACE);
    }

    #[test]
    fn each_encoding_writes_its_headers_and_never_the_parent() {
        let sc = extract(&[("b3", &format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90"))]);
        let cx = Context::new().with_remote_span_context(sc);
        let mut single: HashMap<String, String> = HashMap::new();
        B3Propagator::single().inject_context(&cx, &mut single);
        assert_eq!(single.len(), 1);
        assert_eq!(single["b3"], format!("{TRACE}-{SPAN}-1"));
        let mut multi: HashMap<String, String> = HashMap::new();
        B3Propagator::multi().inject_context(&cx, &mut multi);
        assert_eq!(multi.len(), 3, "{multi:?}");
        assert_eq!(
            (
                multi["x-b3-traceid"].as_str(),
                multi["x-b3-spanid"].as_str(),
                multi["x-b3-sampled"].as_str()
            ),
            (TRACE, SPAN, "1")
        );
    }
}
