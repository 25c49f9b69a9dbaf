//! `http::HeaderMap` carriers and explicit-propagator inject/extract.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};

/// Reads propagation fields from an `http::HeaderMap` (axum, hyper, reqwest,
/// tonic).
///
/// `get_all` returns every line of a repeated field, so a W3C propagator can
/// combine `tracestate` lines into one list and tell a duplicated
/// `traceparent` (invalid: a new trace starts) from a single one;
/// `HeaderMap::get` alone sees only the first line.
///
/// ```
/// use opentelemetry::propagation::Extractor;
/// use telemetry_api::HeaderExtractor;
///
/// let mut headers = http::HeaderMap::new();
/// headers.append("tracestate", "rojo=1".parse().unwrap());
/// headers.append("tracestate", "congo=2".parse().unwrap());
/// let carrier = HeaderExtractor(&headers);
/// assert_eq!(carrier.get("tracestate"), Some("rojo=1"));
/// assert_eq!(carrier.get_all("tracestate"), Some(vec!["rojo=1", "congo=2"]));
/// assert_eq!(carrier.get_all("traceparent"), None);
/// ```
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }

    /// Every line of `key`, in order; see [`all_lines`] for why one line
    /// that is not visible ASCII makes the whole field absent.
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        all_lines(self.0.get_all(key).iter().map(|v| v.to_str().ok()))
    }
}

/// Every line of a field, in order, or `None` when it is absent: the
/// `Extractor::get_all` of [`HeaderExtractor`], for carriers over other
/// header types (actix-web, NATS) so they read repeated fields the same way.
///
/// Each item is a line as text, `None` for a line that is not visible
/// ASCII. Such a line makes the combined value invalid, so the whole field
/// reads as absent rather than as the remaining lines, which would change
/// its meaning (turn two `traceparent` lines into one, drop a
/// `tracestate` member silently).
///
/// ```
/// use telemetry_api::all_lines;
///
/// assert_eq!(all_lines([Some("a=1"), Some("b=2")].into_iter()), Some(vec!["a=1", "b=2"]));
/// assert_eq!(all_lines([Some("a=1"), None].into_iter()), None);
/// assert_eq!(all_lines(std::iter::empty()), None);
/// ```
pub fn all_lines<'a>(lines: impl Iterator<Item = Option<&'a str>>) -> Option<Vec<&'a str>> {
    let mut lines = lines.peekable();
    lines.peek()?;
    lines.collect()
}

/// Writes propagation fields into an `http::HeaderMap`, replacing any line
/// already there. Empty values are not written (the W3C specification asks
/// senders to avoid an empty `tracestate:` line, which some propagators
/// produce when there is no state); names and values that are not valid
/// in a header are skipped rather than failing the request.
///
/// ```
/// use opentelemetry::propagation::Injector;
/// use telemetry_api::HeaderInjector;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("traceparent", "stale".parse().unwrap());
/// let mut carrier = HeaderInjector(&mut headers);
/// carrier.set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
/// carrier.set("tracestate", String::new());
/// assert_eq!(headers.get_all("traceparent").iter().count(), 1);
/// assert!(headers.get("tracestate").is_none());
/// ```
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Writes `cx` into `headers` with `propagator` (the propagator is passed,
/// not read from the globals, so code that never installs telemetry
/// globally still propagates).
///
/// ```
/// use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
///
/// let sc = SpanContext::new(
///     TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
///     SpanId::from_hex("00f067aa0ba902b7").unwrap(),
///     TraceFlags::SAMPLED,
///     true,
///     TraceState::default(),
/// );
/// let cx = opentelemetry::Context::new().with_remote_span_context(sc);
/// let mut headers = http::HeaderMap::new();
/// let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
/// telemetry_api::inject(&propagator, &cx, &mut headers);
/// assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert!(headers.get("tracestate").is_none(), "empty tracestate is not written");
/// ```
pub fn inject(propagator: &dyn TextMapPropagator, cx: &Context, headers: &mut http::HeaderMap) {
    propagator.inject_context(cx, &mut HeaderInjector(headers));
}

/// Reads a context from `headers` with `propagator`; missing or invalid
/// headers yield a context without a remote parent.
///
/// ```
/// use opentelemetry::trace::TraceContextExt;
///
/// let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("traceparent", "not-a-traceparent".parse().unwrap());
/// let cx = telemetry_api::extract(&propagator, &headers);
/// assert!(!cx.span().span_context().is_valid());
/// ```
pub fn extract(propagator: &dyn TextMapPropagator, headers: &http::HeaderMap) -> Context {
    propagator.extract(&HeaderExtractor(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn lines<'a>(h: &'a http::HeaderMap, name: &str) -> Vec<&'a str> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn repeated_tracestate_lines_are_returned_in_order() {
        let mut h = http::HeaderMap::new();
        h.append("tracestate", "foo=1,bar=2".parse().unwrap());
        h.append("tracestate", "".parse().unwrap());
        h.append("tracestate", "rojo=1".parse().unwrap());
        let carrier = HeaderExtractor(&h);
        assert_eq!(
            carrier.get_all("tracestate"),
            Some(vec!["foo=1,bar=2", "", "rojo=1"])
        );
        // `get` still sees only the first line.
        assert_eq!(carrier.get("tracestate"), Some("foo=1,bar=2"));
    }

    #[test]
    fn a_line_that_is_not_visible_ascii_makes_the_field_absent() {
        let mut h = http::HeaderMap::new();
        h.append("tracestate", "foo=1".parse().unwrap());
        h.append(
            "tracestate",
            http::HeaderValue::from_bytes("bar=\u{e9}".as_bytes()).unwrap(),
        );
        h.append("tracestate", "baz=3".parse().unwrap());
        assert_eq!(HeaderExtractor(&h).get_all("tracestate"), None);
        // Also when the bad line comes first.
        let mut h = http::HeaderMap::new();
        h.append(
            "traceparent",
            http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        h.append("traceparent", GOOD.parse().unwrap());
        assert_eq!(HeaderExtractor(&h).get_all("traceparent"), None);
    }

    #[test]
    fn absent_field_is_none() {
        let mut h = http::HeaderMap::new();
        h.insert("baggage", "k=v".parse().unwrap());
        let carrier = HeaderExtractor(&h);
        assert_eq!(carrier.get_all("tracestate"), None);
        assert_eq!(carrier.get("tracestate"), None);
        assert_eq!(carrier.keys(), ["baggage"]);
        assert_eq!(all_lines(std::iter::empty()), None);
    }

    #[test]
    fn empty_value_is_not_written() {
        let mut h = http::HeaderMap::new();
        HeaderInjector(&mut h).set("tracestate", String::new());
        assert!(h.is_empty(), "{h:?}");
        // Nor does it remove a line already there.
        h.insert("tracestate", "foo=1".parse().unwrap());
        HeaderInjector(&mut h).set("tracestate", String::new());
        assert_eq!(lines(&h, "tracestate"), ["foo=1"]);
    }

    #[test]
    fn invalid_header_value_or_name_is_not_written() {
        let mut h = http::HeaderMap::new();
        let mut carrier = HeaderInjector(&mut h);
        carrier.set("tracestate", "foo=1\r\nx-injected: 1".into());
        carrier.set("trace parent", GOOD.into());
        carrier.set("tracestate", "bar=\u{7f}".into());
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn injection_replaces_existing_lines() {
        let mut h = http::HeaderMap::new();
        h.append("tracestate", "old=1".parse().unwrap());
        h.append("tracestate", "old=2".parse().unwrap());
        h.insert("x-other", "kept".parse().unwrap());
        HeaderInjector(&mut h).set("tracestate", "new=1".into());
        assert_eq!(lines(&h, "tracestate"), ["new=1"]);
        assert_eq!(lines(&h, "x-other"), ["kept"]);
    }

    #[test]
    fn round_trip_through_the_sdk_trace_context_propagator() {
        let p = TraceContextPropagator::new();
        let mut incoming = http::HeaderMap::new();
        incoming.insert("traceparent", GOOD.parse().unwrap());
        incoming.insert(
            "tracestate",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".parse().unwrap(),
        );
        let cx = extract(&p, &incoming);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(sc.trace_state().get("congo"), Some("t61rcWkgMzE"));

        let mut out = http::HeaderMap::new();
        out.insert("traceparent", "stale".parse().unwrap());
        inject(&p, &cx, &mut out);
        assert_eq!(lines(&out, "traceparent"), [GOOD]);
        assert_eq!(
            lines(&out, "tracestate"),
            ["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]
        );

        // The SDK propagator writes an empty `tracestate`; nothing goes out.
        let sc = SpanContext::new(
            sc.trace_id(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        let mut out = http::HeaderMap::new();
        inject(&p, &Context::new().with_remote_span_context(sc), &mut out);
        assert_eq!(
            lines(&out, "traceparent"),
            ["00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-00"]
        );
        assert!(out.get("tracestate").is_none(), "{out:?}");

        // Invalid input: no remote parent, nothing injected.
        let mut bad = http::HeaderMap::new();
        bad.insert("traceparent", "not-a-traceparent".parse().unwrap());
        let cx = extract(&p, &bad);
        assert!(!cx.span().span_context().is_valid());
        let mut out = http::HeaderMap::new();
        inject(&p, &cx, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
