//! Context propagation: W3C `traceparent`/`tracestate` validated strictly, and
//! W3C baggage (bounded to 8192 bytes and 64 members by the SDK), with helpers
//! to inject into and extract from any header map.
//!
//! The upstream `TraceContextPropagator` accepts malformed ids such as
//! `00-1-2-01`; a service must not trust those, so [`StrictTraceContext`]
//! checks the exact W3C grammar first and ignores a bad header (the request
//! then starts a new trace instead of joining a garbage one).
//!
//! ```
//! use opentelemetry::trace::TraceContextExt;
//! let propagator = telemetry::propagation::default_propagator();
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
//! let cx = telemetry::propagation::extract(&propagator, &headers);
//! assert!(cx.span().span_context().is_remote());
//!
//! headers.insert("traceparent", "00-1-2-01".parse().unwrap());
//! let cx = telemetry::propagation::extract(&propagator, &headers);
//! assert!(!cx.span().span_context().is_valid());
//! ```

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::config::PropagatorKind;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// W3C Trace Context with strict validation of both headers.
#[derive(Debug, Default)]
pub struct StrictTraceContext {
    inner: TraceContextPropagator,
}

impl StrictTraceContext {
    /// A new strict propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TextMapPropagator for StrictTraceContext {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inner.inject_context(cx, injector)
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get(TRACEPARENT) {
            Some(tp) if is_valid_traceparent(tp) => {
                let keep_state = extractor.get(TRACESTATE).is_none_or(is_valid_tracestate);
                let filtered = WithoutTraceState {
                    inner: extractor,
                    keep_state,
                };
                self.inner.extract_with_context(cx, &filtered)
            }
            _ => cx.clone(),
        }
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        self.inner.fields()
    }
}

struct WithoutTraceState<'a> {
    inner: &'a dyn Extractor,
    keep_state: bool,
}

impl Extractor for WithoutTraceState<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if !self.keep_state && key.eq_ignore_ascii_case(TRACESTATE) {
            return None;
        }
        self.inner.get(key)
    }
    fn keys(&self) -> Vec<&str> {
        self.inner.keys()
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a `traceparent` against the W3C grammar: `version-traceid-parentid-flags`,
/// lower-case hex of exact lengths, no all-zero ids, version `ff` forbidden,
/// and for version `00` nothing after the flags.
pub fn is_valid_traceparent(value: &str) -> bool {
    let v = value.trim();
    if v.len() < 55 {
        return false;
    }
    let (head, rest) = v.split_at(55);
    let parts: Vec<&str> = head.split('-').collect();
    if parts.len() != 4 {
        return false;
    }
    let (version, trace_id, parent_id, flags) = (parts[0], parts[1], parts[2], parts[3]);
    if version.len() != 2
        || trace_id.len() != 32
        || parent_id.len() != 16
        || flags.len() != 2
        || !is_lower_hex(version)
        || !is_lower_hex(trace_id)
        || !is_lower_hex(parent_id)
        || !is_lower_hex(flags)
    {
        return false;
    }
    if version == "ff"
        || trace_id.bytes().all(|b| b == b'0')
        || parent_id.bytes().all(|b| b == b'0')
    {
        return false;
    }
    if version == "00" {
        rest.is_empty()
    } else {
        // Future versions may append fields after a dash.
        rest.is_empty() || rest.starts_with('-')
    }
}

/// Checks a `tracestate` value: at most 32 comma-separated `key=value`
/// members with the W3C key and value grammar, at most 512 bytes.
pub fn is_valid_tracestate(value: &str) -> bool {
    if value.len() > 512 {
        return false;
    }
    let members: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if members.len() > 32 {
        return false;
    }
    members.iter().all(|m| {
        let Some((k, v)) = m.split_once('=') else {
            return false;
        };
        valid_key(k) && valid_value(v)
    })
}

fn valid_key(k: &str) -> bool {
    let simple = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'*' | b'/')
            })
    };
    match k.split_once('@') {
        None => simple(k, 256),
        Some((tenant, system)) => simple(tenant, 241) && simple(system, 14),
    }
}

fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !v.ends_with(' ')
}

/// Builds the composite propagator `OTEL_PROPAGATORS` asked for.
pub fn propagator_for(kinds: &[PropagatorKind]) -> TextMapCompositePropagator {
    let list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = kinds
        .iter()
        .map(|k| -> Box<dyn TextMapPropagator + Send + Sync> {
            match k {
                PropagatorKind::TraceContext => Box::new(StrictTraceContext::new()),
                PropagatorKind::Baggage => Box::new(BaggagePropagator::new()),
            }
        })
        .collect();
    TextMapCompositePropagator::new(list)
}

/// W3C trace context and baggage: the default of `OTEL_PROPAGATORS`.
pub fn default_propagator() -> TextMapCompositePropagator {
    propagator_for(&[PropagatorKind::TraceContext, PropagatorKind::Baggage])
}

/// Writes `cx` into `headers` with `propagator`.
pub fn inject(propagator: &dyn TextMapPropagator, cx: &Context, headers: &mut http::HeaderMap) {
    propagator.inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers));
}

/// Reads a context from `headers` with `propagator`; invalid headers yield
/// the empty context.
pub fn extract(propagator: &dyn TextMapPropagator, headers: &http::HeaderMap) -> Context {
    propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
}

/// Writes `cx` into `headers` with the global propagator (set by `init`).
pub fn inject_global(cx: &Context, headers: &mut http::HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| inject(p, cx, headers));
}

/// Reads a context from `headers` with the global propagator (set by `init`).
pub fn extract_global(headers: &http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| extract(p, headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn strict_traceparent_grammar() {
        assert!(is_valid_traceparent(GOOD));
        assert!(is_valid_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"
        ));
        for bad in [
            "00-1-2-01",
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "0-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(!is_valid_traceparent(bad), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn tracestate_grammar() {
        assert!(is_valid_tracestate(
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
        ));
        assert!(is_valid_tracestate("tenant@vendor=x"));
        assert!(!is_valid_tracestate("Upper=x"));
        assert!(!is_valid_tracestate("k=v=w"));
        assert!(!is_valid_tracestate("novalue"));
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(!is_valid_tracestate(&many.join(",")));
    }

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn malformed_traceparent_is_ignored_but_valid_one_round_trips() {
        let p = default_propagator();
        let cx = extract(&p, &headers(&[("traceparent", "00-1-2-01")]));
        assert!(!cx.span().span_context().is_valid());

        let cx = extract(
            &p,
            &headers(&[("traceparent", GOOD), ("tracestate", "rojo=1")]),
        );
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_state().get("rojo"), Some("1"));

        let mut out = http::HeaderMap::new();
        inject(&p, &cx, &mut out);
        assert_eq!(out.get("traceparent").unwrap(), GOOD);
        assert_eq!(out.get("tracestate").unwrap(), "rojo=1");
    }

    #[test]
    fn invalid_tracestate_is_dropped_but_parent_kept() {
        let p = default_propagator();
        let cx = extract(
            &p,
            &headers(&[("traceparent", GOOD), ("tracestate", "BAD KEY=1")]),
        );
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        assert_eq!(sc.trace_state().header(), "");
    }

    #[test]
    fn baggage_is_bounded() {
        let p = default_propagator();
        let members: Vec<String> = (0..100).map(|i| format!("k{i}=v{i}")).collect();
        let cx = extract(&p, &headers(&[("baggage", &members.join(","))]));
        assert!(
            cx.baggage().len() <= 64,
            "{} members kept",
            cx.baggage().len()
        );
        let huge = format!("k={}", "x".repeat(9000));
        let cx = extract(&p, &headers(&[("baggage", &huge)]));
        assert_eq!(cx.baggage().len(), 0);
        let cx = extract(&p, &headers(&[("baggage", "user=alice,tier=gold")]));
        assert_eq!(
            cx.baggage().get("tier").map(|v| v.to_string()).as_deref(),
            Some("gold")
        );
    }

    #[test]
    fn none_propagator_neither_injects_nor_extracts() {
        let p = propagator_for(&[]);
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let mut out = http::HeaderMap::new();
        inject(&p, &cx, &mut out);
        assert!(out.is_empty());
        let cx = extract(&p, &headers(&[("traceparent", GOOD)]));
        assert!(!cx.span().span_context().is_valid());
    }
}
