//! HTTP server instrumentation for axum (any tower service, really): the
//! shared [`TraceLayer`](crate::layer::TraceLayer) with the HTTP server
//! protocol, in the style of tower-http's `trace`. The error type is the inner service's, so telemetry never fails a
//! request, and the response is passed through untouched (apart from the
//! optional `traceresponse` header); its body is wrapped only to see where
//! it ends, which is where the span and `http.server.request.duration` end.
//!
//! ```
//! use axum::{Router, routing::get};
//! use services_glue::axum::HttpServerLayer;
//! use services_glue::http::HttpServerConfig;
//!
//! let meter = opentelemetry::global::meter("docs");
//! let app: Router = Router::new()
//!     .route("/payments/{id}", get(|| async { "ok" }))
//!     // `Router::layer` runs after routing, so the route template is known.
//!     .layer(HttpServerLayer::new(HttpServerConfig::new(&meter)));
//! # drop(app);
//! ```

use axum::extract::MatchedPath;
use http::{Request, Response};

use crate::body::ObservedBody;
use crate::http::{HttpServerConfig, InFlight, ResponseEnd};
use crate::layer::{Protocol, TraceFuture, TraceLayer, TraceService, TracedCall};

/// The axum server layer: the shared [`TraceLayer`] with the HTTP server
/// protocol (route from `MatchedPath`, 5xx is an error).
pub type HttpServerLayer = TraceLayer<HttpServerConfig>;

/// One span and one set of measurements per request.
pub type HttpServerService<S> = TraceService<S, HttpServerConfig>;

/// Resolves to the response, its body wrapped to finish the request.
pub type ResponseFuture<F> = TraceFuture<F, ResponseEnd>;

/// The response body, unchanged; its end finishes the request.
pub type ResponseBody<B> = ObservedBody<B, ResponseEnd>;

impl Protocol for HttpServerConfig {
    type Call = ResponseEnd;

    /// The route extractor is axum's `MatchedPath` (the template, never the
    /// raw path: `Router::layer` runs after routing, so it is known); the
    /// remote parent comes from the headers through the config's propagator.
    fn start<B>(&self, req: &mut Request<B>) -> ResponseEnd {
        if self.is_excluded(req.uri().path()) {
            return ResponseEnd::default();
        }
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string());
        let scheme = match req.uri().scheme_str() {
            Some("https") => "https",
            _ => "http",
        };
        let inflight = InFlight::begin(
            self,
            crate::http::normalize_method(req.method()),
            route.as_deref(),
            scheme,
            self.propagator.extract_headers(req.headers()),
            content_length(req.headers()),
        );
        ResponseEnd::traced(inflight, self)
    }
}

impl TracedCall for ResponseEnd {
    fn on_head<B: http_body::Body>(&mut self, response: &mut Response<B>) {
        if let Some(v) = self.traceresponse() {
            response.headers_mut().insert("traceresponse", v);
        }
        let size = content_length(response.headers())
            .or_else(|| http_body::Body::size_hint(response.body()).exact());
        self.respond(response.status().as_u16(), size);
    }

    fn on_failure(&mut self) {
        self.fail(None, Some("handler_error"));
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
