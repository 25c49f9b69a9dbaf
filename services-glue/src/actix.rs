//! HTTP server instrumentation for actix-web, as middleware (`App::wrap`).
//! Same conventions as the axum layer: span `{method} {route}` from the
//! match pattern, remote parent from `traceparent`, 5xx is an error, health
//! and metrics paths untraced; the response is never changed except for the
//! optional `traceresponse` header, and errors pass through untouched.
//!
//! ```
//! use actix_web::{App, web};
//! use services_glue::actix::HttpServerMiddleware;
//! use services_glue::http::HttpServerConfig;
//!
//! let meter = opentelemetry::global::meter("docs");
//! let config = HttpServerConfig::new(&meter);
//! let app = App::new()
//!     .wrap(HttpServerMiddleware::new(config))
//!     .route("/obligations/{id}", web::get().to(|| async { "ok" }));
//! # drop(app);
//! ```

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};

use crate::http::{HttpServerConfig, InFlight};

/// The middleware factory; pass it to `App::wrap`.
#[derive(Clone, Debug)]
pub struct HttpServerMiddleware {
    config: HttpServerConfig,
}

impl HttpServerMiddleware {
    /// Middleware recording with `config`.
    pub fn new(config: HttpServerConfig) -> Self {
        HttpServerMiddleware { config }
    }
}

impl<S, B> Transform<S, ServiceRequest> for HttpServerMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = HttpServerMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(HttpServerMiddlewareService {
            service,
            config: self.config.clone(),
        }))
    }
}

/// The per-app service created by [`HttpServerMiddleware`].
#[derive(Debug)]
pub struct HttpServerMiddlewareService<S> {
    service: S,
    config: HttpServerConfig,
}

impl<S, B> Service<ServiceRequest> for HttpServerMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = ActixResponseFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if self.config.is_excluded(req.path()) {
            return ActixResponseFuture {
                inner: self.service.call(req),
                inflight: None,
                traceresponse: false,
            };
        }
        let route = req.match_pattern();
        let scheme = if req.connection_info().scheme() == "https" {
            "https"
        } else {
            "http"
        };
        let request_size = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let inflight = InFlight::begin(
            &self.config,
            crate::http::normalize_method_str(req.method().as_str()),
            route.as_deref(),
            scheme,
            opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&ActixHeaders(req.headers()))
            }),
            request_size,
        );
        let inner = {
            let _entered = inflight.span.enter();
            self.service.call(req)
        };
        ActixResponseFuture {
            inner,
            inflight: Some(inflight),
            traceresponse: self.config.traceresponse,
        }
    }
}

/// Reads propagation fields from actix-web's header map, every line of a
/// repeated field included (see [`crate::propagation::HeaderExtractor`]).
struct ActixHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for ActixHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        crate::propagation::all_lines(self.0.get_all(key).map(|v| v.to_str().ok()))
    }
}

pin_project_lite::pin_project! {
    /// Completes the request's span and metrics when the response is ready.
    pub struct ActixResponseFuture<F> {
        #[pin]
        inner: F,
        inflight: Option<InFlight>,
        traceresponse: bool,
    }
}

impl<F, B> Future for ActixResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = F::Output;

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
            Ok(mut res) => {
                if *this.traceresponse
                    && let Some(v) = inflight.traceresponse()
                    && let Ok(v) = actix_web::http::header::HeaderValue::from_bytes(v.as_bytes())
                {
                    res.headers_mut().insert(
                        actix_web::http::header::HeaderName::from_static("traceresponse"),
                        v,
                    );
                }
                let size = match res.response().body().size() {
                    BodySize::Sized(n) => Some(n),
                    _ => None,
                };
                inflight.finish(Some(res.status().as_u16()), size, None);
                Poll::Ready(Ok(res))
            }
            Err(e) => {
                let status = e.as_response_error().status_code().as_u16();
                inflight.finish(Some(status), None, None);
                Poll::Ready(Err(e))
            }
        }
    }
}
