//! `http::HeaderMap` adapters for the global propagator, which
//! `telemetry::init` sets to strict W3C trace context and baggage, and
//! carriers for context that travels inside a payload (batches, where one
//! message stands for many traces).

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads propagation fields from a header map (axum, reqwest, tonic).
///
/// `get_all` returns every line of a repeated field, so the W3C propagator
/// can combine `tracestate` lines into one list and tell a duplicated
/// `traceparent` (invalid: a new trace starts) from a single one;
/// `HeaderMap::get` alone sees only the first line.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        all_lines(self.0.get_all(key).iter().map(|v| v.to_str().ok()))
    }
}

/// Every line of a field, in order, or `None` when it is absent. A line that
/// is not visible ASCII makes the combined value invalid, so the whole field
/// reads as absent rather than as the remaining lines (which would change
/// its meaning, e.g. turn two `traceparent` lines into one).
pub(crate) fn all_lines<'a>(lines: impl Iterator<Item = Option<&'a str>>) -> Option<Vec<&'a str>> {
    let mut lines = lines.peekable();
    lines.peek()?;
    lines.collect()
}

/// Writes propagation fields into a header map, replacing any line already
/// there. Empty values are not written (the W3C specification asks senders
/// to avoid an empty `tracestate:` line, which some propagators produce when
/// there is no state); invalid values are skipped.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl opentelemetry::propagation::Injector for HeaderInjector<'_> {
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

/// The remote parent carried by `headers`, read with the global propagator.
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Writes `cx` into `headers` with the global propagator.
pub fn inject(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut HeaderInjector(headers))
    })
}

/// A span's context as propagation fields (`traceparent`, ...), to store in
/// a payload when a batch carries many traces.
///
/// ```
/// let carrier = services_glue::propagation::carrier_of(&tracing::Span::none());
/// assert!(carrier.is_empty() || carrier.contains_key("traceparent"));
/// ```
pub fn carrier_of(span: &tracing::Span) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    // Same rule as the header injector: no empty fields.
    carrier.retain(|_, v| !v.is_empty());
    carrier
}

/// The context stored in `carrier` (invalid or missing fields: none).
pub fn context_from_carrier(carrier: &HashMap<String, String>) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier))
}

/// Makes `span` a child of the context in `carrier`; call before the span
/// is first entered. Returns whether a valid remote parent was found.
pub fn set_parent_from_carrier(span: &tracing::Span, carrier: &HashMap<String, String>) -> bool {
    let cx = context_from_carrier(carrier);
    let valid = cx.span().span_context().is_valid();
    if valid {
        let _ = span.set_parent(cx);
    }
    valid
}

/// Adds a link from `span` to the context in `carrier` (the messaging
/// conventions' way for a batch to point at each message it consumed).
pub fn link_to_carrier(span: &tracing::Span, carrier: &HashMap<String, String>) {
    let cx = context_from_carrier(carrier);
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.add_link(sc);
    }
}

/// The trace id of `span` as 32 hex digits, when it is sampled into a trace.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
