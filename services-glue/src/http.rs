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

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter, UpDownCounter};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Seconds buckets for request durations (stable HTTP semantic conventions).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

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
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "_OTHER",
    }
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
#[derive(Clone, Debug)]
pub struct HttpServerMetrics {
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
    request_size: Histogram<u64>,
    response_size: Histogram<u64>,
}

impl HttpServerMetrics {
    /// Creates the instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        HttpServerMetrics {
            duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            active: meter
                .i64_up_down_counter("http.server.active_requests")
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests")
                .build(),
            request_size: meter
                .u64_histogram("http.server.request.body.size")
                .with_unit("By")
                .with_description("Size of HTTP server request bodies")
                .build(),
            response_size: meter
                .u64_histogram("http.server.response.body.size")
                .with_unit("By")
                .with_description("Size of HTTP server response bodies")
                .build(),
        }
    }
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

/// One request in flight: its span, start time and metric attributes.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) span: tracing::Span,
    start: Instant,
    method: &'static str,
    route: Option<String>,
    scheme: &'static str,
    metrics: HttpServerMetrics,
    active_attrs: [KeyValue; 2],
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
        let name = match route {
            Some(r) => format!("{method} {r}"),
            None => method.to_string(),
        };
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
        let _ = span.set_parent(parent);
        let active_attrs = [
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.scheme", scheme),
        ];
        config.metrics.active.add(1, &active_attrs);
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
            active_attrs,
            finished: false,
        }
    }

    /// The `traceresponse` header value for this request's span.
    pub(crate) fn traceresponse(&self) -> Option<http::HeaderValue> {
        use opentelemetry::trace::TraceContextExt;
        let cx = self.span.context();
        let sc = cx.span().span_context().clone();
        if !sc.is_valid() {
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
        error: Option<&str>,
    ) {
        self.record(status, response_size, error);
    }

    fn record(&mut self, status: Option<u16>, response_size: Option<u64>, error: Option<&str>) {
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
        let mut attrs = Vec::with_capacity(5);
        attrs.push(KeyValue::new("http.request.method", self.method));
        attrs.push(KeyValue::new("url.scheme", self.scheme));
        if let Some(route) = &self.route {
            attrs.push(KeyValue::new("http.route", route.clone()));
        }
        if let Some(code) = status {
            attrs.push(KeyValue::new("http.response.status_code", i64::from(code)));
        }
        if let Some(e) = error_type {
            attrs.push(KeyValue::new("error.type", e.to_string()));
        }
        self.metrics.duration.record(elapsed, &attrs);
        if let Some(size) = response_size {
            self.metrics.response_size.record(size, &attrs);
        }
        self.metrics.active.add(-1, &self.active_attrs);
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
