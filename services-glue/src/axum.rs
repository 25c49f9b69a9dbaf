//! HTTP server instrumentation for axum (any tower service, really), as a
//! `Layer` + `Service` + response future, in the style of tower-http's
//! `trace`. The error type is the inner service's, so telemetry never fails a
//! request, and the response is passed through untouched (apart from the
//! optional `traceresponse` header).
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

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use http::{Request, Response};

use crate::http::{HttpServerConfig, InFlight};

/// Wraps services with [`HttpServerService`].
#[derive(Clone, Debug)]
pub struct HttpServerLayer {
    config: HttpServerConfig,
}

impl HttpServerLayer {
    /// A layer recording with `config`.
    pub fn new(config: HttpServerConfig) -> Self {
        HttpServerLayer { config }
    }
}

impl<S> tower_layer::Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// One span and one set of measurements per request.
#[derive(Clone, Debug)]
pub struct HttpServerService<S> {
    inner: S,
    config: HttpServerConfig,
}

impl<S, ReqB, ResB> tower_service::Service<Request<ReqB>> for HttpServerService<S>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        if self.config.is_excluded(req.uri().path()) {
            return ResponseFuture {
                inner: self.inner.call(req),
                inflight: None,
                traceresponse: false,
            };
        }
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string());
        let scheme = match req.uri().scheme_str() {
            Some("https") => "https",
            _ => "http",
        };
        let request_size = content_length(req.headers());
        let inflight = InFlight::begin(
            &self.config,
            crate::http::normalize_method(req.method()),
            route.as_deref(),
            scheme,
            crate::http::extract_parent(req.headers()),
            request_size,
        );
        let inner = {
            let _entered = inflight.span.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            inflight: Some(inflight),
            traceresponse: self.config.traceresponse,
        }
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

pin_project_lite::pin_project! {
    /// Completes the request's span and metrics when the response is ready.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        inflight: Option<InFlight>,
        traceresponse: bool,
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: http_body::Body,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let poll = InFlight::in_span(this.inflight.as_ref(), || this.inner.poll(cx));
        let Poll::Ready(result) = poll else {
            return Poll::Pending;
        };
        let Some(inflight) = this.inflight.take() else {
            return Poll::Ready(result);
        };
        match result {
            Ok(mut response) => {
                if *this.traceresponse
                    && let Some(v) = inflight.traceresponse()
                {
                    response.headers_mut().insert("traceresponse", v);
                }
                let size = content_length(response.headers())
                    .or_else(|| http_body::Body::size_hint(response.body()).exact());
                inflight.finish(Some(response.status().as_u16()), size, None);
                Poll::Ready(Ok(response))
            }
            Err(e) => {
                inflight.finish(None, None, Some("handler_error"));
                Poll::Ready(Err(e))
            }
        }
    }
}
