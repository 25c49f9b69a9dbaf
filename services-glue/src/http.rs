//! HTTP server instrumentation shared by the axum and actix-web adapters:
//! the stable HTTP semantic conventions in one place.
//!
//! - span name `{method} {route}` (route template, never the raw path),
//!   kind SERVER, remote parent from `traceparent`;
//! - `http.server.request.duration` (s), `http.server.active_requests`,
//!   `http.server.request.body.size` and `http.server.response.body.size`;
//! - unknown methods become `_OTHER`; unmatched paths have no `http.route`;
//! - 5xx marks the span as an error, 4xx does not;
//! - health and metrics endpoints are not traced by default.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundHistogram, BoundUpDownCounter, Histogram, Meter, UpDownCounter};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

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

/// `error.type` for a server response: the status code for 5xx, none otherwise.
pub fn server_error_type(status: u16) -> Option<&'static str> {
    (500..600).contains(&status).then(|| status_str(status))
}

fn status_str(status: u16) -> &'static str {
    match status {
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        505 => "505",
        _ => "5xx",
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
    error: Option<&'static str>,
}

#[derive(Debug)]
struct BoundOutcome {
    duration: BoundHistogram<f64>,
    response_size: BoundHistogram<u64>,
}

#[derive(Debug)]
struct BoundCache {
    /// Indexed by method index * 2 + (scheme == https).
    active: Vec<BoundUpDownCounter<i64>>,
    outcomes: RwLock<HashMap<OutcomeKey, Arc<BoundOutcome>>>,
}

fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
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
        let active_bound = METHODS
            .iter()
            .flat_map(|m| ["http", "https"].map(|scheme| (*m, scheme)))
            .map(|(m, scheme)| {
                active.bind(&[
                    KeyValue::new("http.request.method", m),
                    KeyValue::new("url.scheme", scheme),
                ])
            })
            .collect();
        HttpServerMetrics {
            duration,
            active,
            request_size,
            response_size,
            bound: Arc::new(BoundCache {
                active: active_bound,
                outcomes: RwLock::new(HashMap::new()),
            }),
        }
    }

    fn active_add(&self, method: &'static str, scheme: &'static str, delta: i64) {
        let i = method_index(method) * 2 + usize::from(scheme == "https");
        match self.bound.active.get(i) {
            Some(bound) => bound.add(delta),
            None => self.active.add(
                delta,
                &[
                    KeyValue::new("http.request.method", method),
                    KeyValue::new("url.scheme", scheme),
                ],
            ),
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
    if let Some(e) = key.error {
        attrs.push(KeyValue::new("error.type", e));
    }
    attrs
}

/// Server instrumentation settings, shared by every request.
#[derive(Clone, Debug)]
pub struct HttpServerConfig {
    pub(crate) metrics: HttpServerMetrics,
    pub(crate) excluded: Arc<[String]>,
    pub(crate) traceresponse: bool,
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
        }
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

/// One request in flight: its span, start time and metric attributes.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) span: tracing::Span,
    start: Instant,
    method: &'static str,
    route: Option<String>,
    scheme: &'static str,
    metrics: HttpServerMetrics,
    finished: bool,
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
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = %name,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            http.route = route,
            url.scheme = scheme,
            http.response.status_code = Empty,
            error.type = Empty,
        );
        // Setting an empty parent still costs a dispatcher lookup and a lock.
        if opentelemetry::trace::TraceContextExt::span(&parent)
            .span_context()
            .is_valid()
        {
            let _ = span.set_parent(parent);
        }
        config.metrics.active_add(method, scheme, 1);
        if let Some(size) = request_size {
            let attrs = [
                KeyValue::new("http.request.method", method),
                KeyValue::new("url.scheme", scheme),
            ];
            config.metrics.request_size.record(size, &attrs);
        }
        InFlight {
            span,
            start: Instant::now(),
            method,
            route: route.map(str::to_string),
            scheme,
            metrics: config.metrics.clone(),
            finished: false,
        }
    }

    /// Runs `f` (a poll of the wrapped service's future) inside the request's
    /// span, so handler spans and logs get it as parent; no span, no entry.
    pub(crate) fn in_span<T>(inflight: Option<&InFlight>, f: impl FnOnce() -> T) -> T {
        match inflight {
            Some(inflight) => {
                let _entered = inflight.span.enter();
                f()
            }
            None => f(),
        }
    }

    /// The `traceresponse` header value for this request's span. None when
    /// this service records no span of its own (traces not exported: the
    /// span context is the caller's, passed through), since naming the
    /// caller's span as this request's would mislead.
    pub(crate) fn traceresponse(&self) -> Option<http::HeaderValue> {
        use opentelemetry::trace::TraceContextExt;
        let cx = self.span.context();
        let sc = cx.span().span_context().clone();
        if !sc.is_valid() || sc.is_remote() {
            return None;
        }
        let flags = if sc.is_sampled() { "01" } else { "00" };
        http::HeaderValue::from_str(&format!("00-{}-{}-{flags}", sc.trace_id(), sc.span_id())).ok()
    }

    /// Records the outcome. `error` is a failure without a status (the
    /// handler errored or the connection dropped).
    pub(crate) fn finish(
        mut self,
        status: Option<u16>,
        response_size: Option<u64>,
        error: Option<&'static str>,
    ) {
        self.record(status, response_size, error);
    }

    fn record(
        &mut self,
        status: Option<u16>,
        response_size: Option<u64>,
        error: Option<&'static str>,
    ) {
        if self.finished {
            return;
        }
        self.finished = true;
        let elapsed = self.start.elapsed().as_secs_f64();
        let error_type = error.or_else(|| status.and_then(server_error_type));
        if let Some(code) = status {
            self.span
                .record("http.response.status_code", i64::from(code));
        }
        if let Some(e) = error_type {
            self.span.record("error.type", e);
            self.span.record("otel.status_code", "ERROR");
        }
        let key = OutcomeKey {
            method: self.method,
            scheme: self.scheme,
            route: self.route.take(),
            status,
            error: error_type,
        };
        match self.metrics.outcome(key) {
            Ok(bound) => {
                bound.duration.record(elapsed);
                if let Some(size) = response_size {
                    bound.response_size.record(size);
                }
            }
            Err(attrs) => {
                self.metrics.duration.record(elapsed, &attrs);
                if let Some(size) = response_size {
                    self.metrics.response_size.record(size, &attrs);
                }
            }
        }
        self.metrics.active_add(self.method, self.scheme, -1);
    }
}

impl Drop for InFlight {
    /// A request dropped mid-flight (client went away) still leaves the
    /// active gauge balanced and is recorded as cancelled.
    fn drop(&mut self) {
        self.record(None, None, Some("cancelled"));
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
