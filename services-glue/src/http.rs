//! HTTP server instrumentation shared by the axum and actix-web adapters:
//! the stable HTTP semantic conventions in one place.
//!
//! - span name `{method} {route}` (route template, never the raw path),
//!   kind SERVER, remote parent from `traceparent`;
//! - `http.server.request.duration` (s), `http.server.active_requests`,
//!   `http.server.request.body.size` and `http.server.response.body.size`;
//! - unknown methods become `_OTHER`; unmatched paths have no `http.route`;
//! - 5xx marks the span as an error, 4xx does not
//!   ([`HttpClassifier`](crate::classify::HttpClassifier));
//! - the span and the duration end when the response body does (a slow
//!   streaming body counts in full), or when the body is dropped;
//! - health and metrics endpoints are not traced by default;
//! - the remote parent is read with the config's propagator (the global
//!   one unless [`HttpServerConfig::with_propagator`] says otherwise).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundHistogram, BoundUpDownCounter, Histogram, Meter, UpDownCounter};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::classify::{HttpClassifier, Side};
use crate::instruments::BoundOnFirstRecord;
use crate::outcome::{ErrorType, Measure, OutcomeGuard};
use crate::propagation::Propagator;

/// The server side's status rules: only 5xx is an error.
const SERVER: HttpClassifier = HttpClassifier::new(Side::Server);

/// Seconds buckets for request durations (stable HTTP semantic conventions).
pub const DURATION_BUCKETS: &[f64] = crate::semconv::SECONDS_BUCKETS;

/// Paths not traced or measured unless configured otherwise.
pub const DEFAULT_EXCLUDED_PATHS: &[&str] = &[
    "/health", "/healthz", "/ready", "/readyz", "/live", "/metrics",
];

/// The method as the conventions want it: one of the registered methods,
/// or `_OTHER` so arbitrary client input never becomes a label value.
pub fn normalize_method(method: &http::Method) -> &'static str {
    normalize_method_str(method.as_str())
}

/// [`normalize_method`] for frameworks on other `http` versions (actix-web).
/// Methods are case-sensitive: `get` is not `GET`.
pub fn normalize_method_str(method: &str) -> &'static str {
    crate::semconv::normalize_method(method)
}

/// The remote parent carried by `headers`, read with the global propagator
/// (which `telemetry::init` sets to strict W3C trace context + baggage).
pub fn extract_parent(headers: &http::HeaderMap) -> opentelemetry::Context {
    crate::propagation::extract(headers)
}

/// `error.type` for a server response: the status code for 5xx, none
/// otherwise (kept for callers of the old API; the rule itself lives in
/// [`HttpClassifier`]).
pub fn server_error_type(status: u16) -> Option<&'static str> {
    match SERVER.error_type(status) {
        Some(std::borrow::Cow::Borrowed(s)) => Some(s),
        _ => None,
    }
}

/// The HTTP server instruments, created once per service.
///
/// Per-request attribute lookups are what make the SDK's `add`/`record`
/// slow, so the handles are bound once per attribute set and cached: the
/// active-requests gauge per (method, scheme), the histograms per (method,
/// scheme, route template, status, error). Route templates and methods are
/// already bounded, so is the cache; past [`MAX_BOUND_SETS`] entries it falls
/// back to the unbound instruments.
#[derive(Clone, Debug)]
pub struct HttpServerMetrics {
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
    request_size: Histogram<u64>,
    response_size: Histogram<u64>,
    bound: Arc<BoundCache>,
}

/// Most distinct outcome attribute sets kept as bound handles.
pub const MAX_BOUND_SETS: usize = 2048;

const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OutcomeKey {
    method: &'static str,
    scheme: &'static str,
    route: Option<String>,
    status: Option<u16>,
    error: Option<ErrorType>,
}

#[derive(Debug)]
struct BoundOutcome {
    duration: BoundHistogram<f64>,
    response_size: BoundHistogram<u64>,
}

#[derive(Debug)]
struct BoundCache {
    /// Indexed by [`method_scheme_index`].
    active: Vec<BoundUpDownCounter<i64>>,
    /// Indexed as `active`.
    request_size: Vec<BoundOnFirstRecord<u64>>,
    outcomes: RwLock<HashMap<OutcomeKey, Arc<BoundOutcome>>>,
}

fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

const SCHEMES: [&str; 2] = ["http", "https"];

/// Where a (method, scheme) pair's bound handle sits in [`BoundCache`].
fn method_scheme_index(method: &str, scheme: &str) -> usize {
    method_index(method) * SCHEMES.len() + usize::from(scheme == "https")
}

fn method_scheme_attrs(method: &'static str, scheme: &'static str) -> [KeyValue; 2] {
    [
        KeyValue::new("http.request.method", method),
        KeyValue::new("url.scheme", scheme),
    ]
}

impl HttpServerMetrics {
    /// Creates the instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        let duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let active = meter
            .i64_up_down_counter("http.server.active_requests")
            .with_unit("{request}")
            .with_description("Number of active HTTP server requests")
            .build();
        let request_size = meter
            .u64_histogram("http.server.request.body.size")
            .with_unit("By")
            .with_description("Size of HTTP server request bodies")
            .build();
        let response_size = meter
            .u64_histogram("http.server.response.body.size")
            .with_unit("By")
            .with_description("Size of HTTP server response bodies")
            .build();
        let pairs: Vec<[KeyValue; 2]> = METHODS
            .iter()
            .flat_map(|m| SCHEMES.map(|scheme| method_scheme_attrs(m, scheme)))
            .collect();
        let active_bound = pairs.iter().map(|attrs| active.bind(attrs)).collect();
        let request_size_bound = pairs
            .into_iter()
            .map(|attrs| BoundOnFirstRecord::new(request_size.clone(), attrs.to_vec()))
            .collect();
        HttpServerMetrics {
            duration,
            active,
            request_size,
            response_size,
            bound: Arc::new(BoundCache {
                active: active_bound,
                request_size: request_size_bound,
                outcomes: RwLock::new(HashMap::new()),
            }),
        }
    }

    fn active_add(&self, method: &'static str, scheme: &'static str, delta: i64) {
        match self.bound.active.get(method_scheme_index(method, scheme)) {
            Some(bound) => bound.add(delta),
            None => self.active.add(delta, &method_scheme_attrs(method, scheme)),
        }
    }

    fn request_size_record(&self, method: &'static str, scheme: &'static str, size: u64) {
        match self
            .bound
            .request_size
            .get(method_scheme_index(method, scheme))
        {
            Some(bound) => bound.record(size),
            None => self
                .request_size
                .record(size, &method_scheme_attrs(method, scheme)),
        }
    }

    fn outcome(&self, key: OutcomeKey) -> Result<Arc<BoundOutcome>, Vec<KeyValue>> {
        if let Ok(map) = self.bound.outcomes.read()
            && let Some(b) = map.get(&key)
        {
            return Ok(Arc::clone(b));
        }
        let attrs = outcome_attrs(&key);
        let Ok(mut map) = self.bound.outcomes.write() else {
            return Err(attrs);
        };
        if let Some(b) = map.get(&key) {
            return Ok(Arc::clone(b));
        }
        if map.len() >= MAX_BOUND_SETS {
            return Err(attrs);
        }
        let bound = Arc::new(BoundOutcome {
            duration: self.duration.bind(&attrs),
            response_size: self.response_size.bind(&attrs),
        });
        map.insert(key, Arc::clone(&bound));
        Ok(bound)
    }
}

fn outcome_attrs(key: &OutcomeKey) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(5);
    attrs.push(KeyValue::new("http.request.method", key.method));
    attrs.push(KeyValue::new("url.scheme", key.scheme));
    if let Some(route) = &key.route {
        attrs.push(KeyValue::new("http.route", route.clone()));
    }
    if let Some(code) = key.status {
        attrs.push(KeyValue::new("http.response.status_code", i64::from(code)));
    }
    if let Some(e) = &key.error {
        attrs.push(KeyValue::new("error.type", e.clone().into_owned()));
    }
    attrs
}

/// Server instrumentation settings, shared by every request.
#[derive(Clone, Debug)]
pub struct HttpServerConfig {
    pub(crate) metrics: HttpServerMetrics,
    pub(crate) excluded: Arc<[String]>,
    pub(crate) traceresponse: bool,
    pub(crate) propagator: Propagator,
}

impl HttpServerConfig {
    /// Instruments on `meter`, health and metrics paths excluded, no
    /// `traceresponse` header.
    pub fn new(meter: &Meter) -> Self {
        HttpServerConfig {
            metrics: HttpServerMetrics::new(meter),
            excluded: DEFAULT_EXCLUDED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            traceresponse: false,
            propagator: Propagator::global(),
        }
    }

    /// Reads `traceparent` with `propagator` instead of the global one, so
    /// a service that never installs its telemetry globally still joins
    /// its callers' traces.
    pub fn with_propagator(mut self, propagator: impl Into<Propagator>) -> Self {
        self.propagator = propagator.into();
        self
    }

    /// Replaces the list of paths that are neither traced nor measured.
    pub fn with_excluded_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.excluded = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a W3C `traceresponse` header so callers can find the trace.
    pub fn with_traceresponse(mut self, enabled: bool) -> Self {
        self.traceresponse = enabled;
        self
    }

    pub(crate) fn is_excluded(&self, path: &str) -> bool {
        self.excluded.iter().any(|p| p == path)
    }
}

struct SpanName<'a> {
    method: &'static str,
    route: Option<&'a str>,
}

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.route {
            Some(r) => write!(f, "{} {r}", self.method),
            None => f.write_str(self.method),
        }
    }
}

/// What is recorded when a request ends: the duration and response size
/// under the outcome's attributes, and the end of its active count.
#[derive(Debug)]
struct ServerMeasure {
    metrics: HttpServerMetrics,
    method: &'static str,
    scheme: &'static str,
    route: Option<String>,
    status: Option<u16>,
    response_size: Option<u64>,
}

impl Measure for ServerMeasure {
    fn measure(self, _span: &tracing::Span, elapsed: f64, error: Option<&ErrorType>) {
        let key = OutcomeKey {
            method: self.method,
            scheme: self.scheme,
            route: self.route,
            status: self.status,
            error: error.cloned(),
        };
        match self.metrics.outcome(key) {
            Ok(bound) => {
                bound.duration.record(elapsed);
                if let Some(size) = self.response_size {
                    bound.response_size.record(size);
                }
            }
            Err(attrs) => {
                self.metrics.duration.record(elapsed, &attrs);
                if let Some(size) = self.response_size {
                    self.metrics.response_size.record(size, &attrs);
                }
            }
        }
        self.metrics.active_add(self.method, self.scheme, -1);
    }
}

/// One request in flight: its span, start time and metric attributes. A
/// request dropped mid-flight (client went away) still leaves the active
/// gauge balanced and is recorded as cancelled.
#[derive(Debug)]
pub(crate) struct InFlight {
    guard: OutcomeGuard<ServerMeasure>,
}

impl InFlight {
    /// Starts the span (parented on the incoming `traceparent`) and counts
    /// the request as active.
    pub(crate) fn begin(
        config: &HttpServerConfig,
        method: &'static str,
        route: Option<&str>,
        scheme: &'static str,
        parent: opentelemetry::Context,
        request_size: Option<u64>,
    ) -> InFlight {
        // Formatted only if the span is enabled (field values are lazy).
        let name = SpanName { method, route };
        let valid = opentelemetry::trace::TraceContextExt::span(&parent)
            .span_context()
            .is_valid();
        let span = crate::propagation::created_under(valid.then_some(parent), || {
            tracing::info_span!(
                "HTTP request",
                otel.name = %name,
                otel.kind = Side::Server.span_kind(),
                otel.status_code = Empty,
                http.request.method = method,
                http.route = route,
                url.scheme = scheme,
                http.response.status_code = Empty,
                error.type = Empty,
            )
        });
        config.metrics.active_add(method, scheme, 1);
        if let Some(size) = request_size {
            config.metrics.request_size_record(method, scheme, size);
        }
        InFlight {
            guard: OutcomeGuard::new(
                span,
                ServerMeasure {
                    metrics: config.metrics.clone(),
                    method,
                    scheme,
                    route: route.map(str::to_string),
                    status: None,
                    response_size: None,
                },
            ),
        }
    }

    /// The request's span.
    pub(crate) fn span(&self) -> &tracing::Span {
        self.guard.span()
    }

    /// The `traceresponse` header value for this request's span. None when
    /// this service records no span of its own (traces not exported: the
    /// span context is the caller's, passed through), since naming the
    /// caller's span as this request's would mislead.
    fn traceresponse(&self) -> Option<http::HeaderValue> {
        use opentelemetry::trace::TraceContextExt;
        let cx = self.span().context();
        let sc = cx.span().span_context().clone();
        if !sc.is_valid() || sc.is_remote() {
            return None;
        }
        let flags = if sc.is_sampled() { "01" } else { "00" };
        http::HeaderValue::from_str(&format!("00-{}-{}-{flags}", sc.trace_id(), sc.span_id())).ok()
    }

    /// The response head is ready: its status and size are recorded on the
    /// span now, the outcome when the body ends ([`ResponseEnd`]).
    fn respond(&mut self, status: u16, response_size: Option<u64>) {
        self.guard
            .span()
            .record("http.response.status_code", i64::from(status));
        if let Some(m) = self.guard.measure_mut() {
            m.status = Some(status);
            m.response_size = response_size;
        }
    }

    /// Records the outcome now. `error` is a failure without a status (the
    /// handler errored); otherwise the status decides.
    fn finish(
        mut self,
        status: Option<u16>,
        response_size: Option<u64>,
        error: Option<&'static str>,
    ) {
        if let Some(code) = status {
            self.guard
                .span()
                .record("http.response.status_code", i64::from(code));
        }
        if let Some(m) = self.guard.measure_mut() {
            m.status = status;
            m.response_size = response_size;
        }
        self.end(error.map(ErrorType::Borrowed));
    }

    fn end(&mut self, error: Option<ErrorType>) {
        let status = self.guard.measure_mut().and_then(|m| m.status);
        let error = error.or_else(|| status.and_then(|s| SERVER.error_type(s)));
        self.guard.finish(error);
    }
}

/// A request from its start to the end of its response body, when it is
/// finished (or fails, `error.type=body_error`). A body dropped before its
/// end (the client stopped reading, or the server never polls an empty
/// body) finishes it too, classified by the status alone, as it was when
/// spans ended with the head. The default records nothing (untraced
/// requests: excluded paths).
#[derive(Debug, Default)]
pub struct ResponseEnd {
    inflight: Option<InFlight>,
    /// Whether the response head gets a `traceresponse` header.
    traceresponse: bool,
}

impl ResponseEnd {
    /// A traced request.
    pub(crate) fn traced(inflight: InFlight, config: &HttpServerConfig) -> Self {
        ResponseEnd {
            inflight: Some(inflight),
            traceresponse: config.traceresponse,
        }
    }

    /// The `traceresponse` header value, when configured and this service
    /// has a span of its own to name.
    pub(crate) fn traceresponse(&self) -> Option<http::HeaderValue> {
        self.inflight
            .as_ref()
            .filter(|_| self.traceresponse)
            .and_then(InFlight::traceresponse)
    }

    /// The response head is ready (see [`InFlight::respond`]).
    pub(crate) fn respond(&mut self, status: u16, response_size: Option<u64>) {
        if let Some(inflight) = self.inflight.as_mut() {
            inflight.respond(status, response_size);
        }
    }

    /// The handler failed before a response: finished now.
    pub(crate) fn fail(&mut self, status: Option<u16>, error: Option<&'static str>) {
        if let Some(inflight) = self.inflight.take() {
            inflight.finish(status, None, error);
        }
    }

    /// The request's span while the body is still being sent.
    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        self.inflight.as_ref().map(InFlight::span)
    }

    pub(crate) fn body_ended(&mut self) {
        if let Some(mut inflight) = self.inflight.take() {
            inflight.end(None);
        }
    }

    pub(crate) fn body_failed(&mut self) {
        if let Some(mut inflight) = self.inflight.take() {
            inflight.end(Some(ErrorType::Borrowed("body_error")));
        }
    }
}

impl Drop for ResponseEnd {
    fn drop(&mut self) {
        self.body_ended();
    }
}

#[cfg(feature = "axum")]
impl crate::body::BodyObserver for ResponseEnd {
    fn span(&self) -> Option<&tracing::Span> {
        self.span()
    }
    fn on_trailers(&mut self, _trailers: &http::HeaderMap) {}
    fn on_error(&mut self) {
        self.body_failed();
    }
    fn on_end(&mut self) {
        self.body_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_become_other() {
        assert_eq!(normalize_method(&http::Method::GET), "GET");
        assert_eq!(
            normalize_method(&http::Method::from_bytes(b"PURGE").unwrap()),
            "_OTHER"
        );
        assert_eq!(
            normalize_method(&http::Method::from_bytes(b"get").unwrap()),
            "_OTHER"
        );
    }

    #[test]
    fn only_5xx_is_a_server_error() {
        assert_eq!(server_error_type(500), Some("500"));
        assert_eq!(server_error_type(503), Some("503"));
        assert_eq!(server_error_type(599), Some("5xx"));
        assert_eq!(server_error_type(404), None);
        assert_eq!(server_error_type(200), None);
    }
}
