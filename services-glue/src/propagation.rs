//! Context propagation for every integration: the [`Propagator`] each
//! integration's config carries (like its meter), the `http::HeaderMap`
//! carriers, and carriers for context that travels inside a payload
//! (batches, where one message stands for many traces).
//!
//! The propagator is passed rather than always read from the OpenTelemetry
//! globals so a service that builds its telemetry without installing it
//! globally (tests, embedded services) still propagates context; the
//! default is the global one, which `telemetry::init` sets to strict W3C
//! trace context and baggage.
//!
//! A server's or consumer's span is created while the context extracted
//! from the request is the current OpenTelemetry context
//! ([`created_under`]), not given it afterwards with `set_parent`. The layer's sampler then decides the span
//! once, under its real parent: a request from a trace the caller did not
//! sample is dropped at creation, with nothing built or kept. Given
//! afterwards, the span is first decided as a root (a trace id drawn, its
//! fields kept in case a parent follows) and then again. This relies on the
//! OpenTelemetry layer taking a new span's parent from the current context
//! (tracing-opentelemetry's context activation, on by default and always
//! in telemetry's layer); [`set_parent_from_carrier`] is for spans that
//! already exist.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The propagator an integration reads and writes context with: the global
/// one (looked up at each use, so installing telemetry after building the
/// config still counts) or one passed explicitly.
#[derive(Clone, Default)]
pub struct Propagator(Option<Arc<dyn TextMapPropagator + Send + Sync>>);

impl Propagator {
    /// The OpenTelemetry global propagator, read at each use.
    pub fn global() -> Self {
        Propagator(None)
    }

    /// This propagator, whatever the globals hold.
    pub fn new(propagator: impl TextMapPropagator + Send + Sync + 'static) -> Self {
        Propagator(Some(Arc::new(propagator)))
    }

    /// An already shared propagator.
    pub fn from_arc(propagator: Arc<dyn TextMapPropagator + Send + Sync>) -> Self {
        Propagator(Some(propagator))
    }

    /// Reads a context from `carrier` (invalid or missing fields: none).
    pub fn extract(&self, carrier: &dyn Extractor) -> opentelemetry::Context {
        match &self.0 {
            Some(p) => p.extract(carrier),
            None => opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier)),
        }
    }

    /// Writes `cx` into `carrier`.
    pub fn inject(&self, cx: &opentelemetry::Context, carrier: &mut dyn Injector) {
        match &self.0 {
            Some(p) => p.inject_context(cx, carrier),
            None => {
                opentelemetry::global::get_text_map_propagator(|p| p.inject_context(cx, carrier))
            }
        }
    }

    /// The remote parent carried by `headers`.
    pub fn extract_headers(&self, headers: &http::HeaderMap) -> opentelemetry::Context {
        match &self.0 {
            Some(p) => telemetry_api::extract(p.as_ref(), headers),
            None => opentelemetry::global::get_text_map_propagator(|p| {
                telemetry_api::extract(p, headers)
            }),
        }
    }

    /// Writes `cx` into `headers`.
    pub fn inject_headers(&self, cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
        match &self.0 {
            Some(p) => telemetry_api::inject(p.as_ref(), cx, headers),
            None => opentelemetry::global::get_text_map_propagator(|p| {
                telemetry_api::inject(p, cx, headers)
            }),
        }
    }
}

impl std::fmt::Debug for Propagator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "Propagator(explicit)",
            None => "Propagator(global)",
        })
    }
}

impl<P: TextMapPropagator + Send + Sync + 'static> From<P> for Propagator {
    fn from(propagator: P) -> Self {
        Propagator::new(propagator)
    }
}

// The `http::HeaderMap` carriers, and the repeated-field rule for other
// header types (actix-web, NATS), live in `telemetry-api`, shared with
// `telemetry`.
#[cfg(any(feature = "actix", feature = "nats"))]
pub(crate) use telemetry_api::all_lines;
pub use telemetry_api::{HeaderExtractor, HeaderInjector};

/// The remote parent carried by `headers`, read with the global propagator
/// (see [`Propagator::extract_headers`] for an explicit one).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    Propagator::global().extract_headers(headers)
}

/// Writes `cx` into `headers` with the global propagator (see
/// [`Propagator::inject_headers`] for an explicit one).
pub fn inject(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    Propagator::global().inject_headers(cx, headers)
}

/// A span's context as propagation fields (`traceparent`, ...), to store in
/// a payload when a batch carries many traces; read with the global
/// propagator (see [`Propagator::carrier_of`] for an explicit one).
///
/// ```
/// use opentelemetry::trace::TraceContextExt;
/// use services_glue::propagation::{Propagator, trace_id_of};
///
/// let sink = telemetry::testing::InMemory::new();
/// let t = telemetry::Telemetry::builder("docs").with_in_memory(&sink).build().unwrap();
/// let w3c = Propagator::new(telemetry::propagation::default_propagator());
/// tracing::dispatcher::with_default(t.dispatch(), || {
///     let span = tracing::info_span!("batch");
///     let trace_id = trace_id_of(&span).expect("the span is sampled");
///     let carrier = w3c.carrier_of(&span);
///     // The carrier names this span's trace, and reads back as it.
///     assert!(carrier["traceparent"].contains(&trace_id), "{carrier:?}");
///     let cx = w3c.context_from_carrier(&carrier);
///     assert_eq!(cx.span().span_context().trace_id().to_string(), trace_id);
/// });
/// # t.shutdown().unwrap();
/// ```
pub fn carrier_of(span: &tracing::Span) -> HashMap<String, String> {
    Propagator::global().carrier_of(span)
}

/// The context stored in `carrier` (invalid or missing fields: none), read
/// with the global propagator.
pub fn context_from_carrier(carrier: &HashMap<String, String>) -> opentelemetry::Context {
    Propagator::global().context_from_carrier(carrier)
}

impl Propagator {
    /// A span's context as propagation fields, without empty fields (same
    /// rule as the header injector).
    pub fn carrier_of(&self, span: &tracing::Span) -> HashMap<String, String> {
        let mut carrier = HashMap::new();
        self.inject(&span.context(), &mut carrier);
        carrier.retain(|_, v| !v.is_empty());
        carrier
    }

    /// The context stored in `carrier` (invalid or missing fields: none).
    pub fn context_from_carrier(
        &self,
        carrier: &HashMap<String, String>,
    ) -> opentelemetry::Context {
        self.extract(carrier)
    }
}

/// Runs `make` (which creates a server's or consumer's span) with
/// `incoming`, the context extracted from the request, as the current one:
/// the span's parent, decided once (see the module doc). `None`: no
/// incoming context, the span's parent is whatever is current.
pub(crate) fn created_under<T>(
    incoming: Option<opentelemetry::Context>,
    make: impl FnOnce() -> T,
) -> T {
    let _current = incoming.map(opentelemetry::Context::attach);
    make()
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
