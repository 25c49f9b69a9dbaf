//! HTTP server instrumentation for actix-web, as middleware (`App::wrap`).
//! Same conventions as the axum layer: span `{method} {route}` from the
//! match pattern, remote parent from `traceparent`, 5xx is an error, health
//! and metrics paths untraced, span and duration ending with the response
//! body; the response is never changed except for the optional
//! `traceresponse` header, and errors pass through untouched.
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
use actix_web::web::Bytes;

use crate::http::{HttpServerConfig, InFlight, ResponseEnd};

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
    type Response = ServiceResponse<ActixBody<B>>;
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
    type Response = ServiceResponse<ActixBody<B>>;
    type Error = actix_web::Error;
    type Future = ActixResponseFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if self.config.is_excluded(req.path()) {
            return ActixResponseFuture {
                inner: self.service.call(req),
                call: Some(ResponseEnd::default()),
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
            self.config.propagator.extract(&ActixHeaders(req.headers())),
            request_size,
        );
        // Inside the request's span, so handler spans and logs get it as parent.
        let inner = inflight.span().in_scope(|| self.service.call(req));
        ActixResponseFuture {
            inner,
            call: Some(ResponseEnd::traced(inflight, &self.config)),
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
        call: Option<ResponseEnd>,
    }
}

impl<F, B> Future for ActixResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<ActixBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let span = this.call.as_ref().and_then(ResponseEnd::span);
        let poll = match span {
            Some(span) => span.in_scope(|| this.inner.poll(cx)),
            None => this.inner.poll(cx),
        };
        let Poll::Ready(result) = poll else {
            return Poll::Pending;
        };
        // Polled again after completion (a contract breach): record nothing.
        let mut call = this.call.take().unwrap_or_default();
        match result {
            Ok(mut res) => {
                if let Some(v) = call.traceresponse()
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
                call.respond(res.status().as_u16(), size);
                Poll::Ready(Ok(ActixBody::wrap(res, call)))
            }
            Err(e) => {
                let status = e.as_response_error().status_code().as_u16();
                call.fail(Some(status), None);
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response body, unchanged; its end finishes the request (actix's
    /// body trait, the counterpart of [`crate::body::ObservedBody`]).
    #[derive(Debug)]
    pub struct ActixBody<B> {
        #[pin]
        inner: B,
        end: ResponseEnd,
    }
}

impl<B> ActixBody<B> {
    fn wrap(res: ServiceResponse<B>, end: ResponseEnd) -> ServiceResponse<ActixBody<B>> {
        res.map_body(|_, inner| ActixBody { inner, end })
    }
}

impl<B: MessageBody> MessageBody for ActixBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        // Polled inside the request's span, like `crate::body::ObservedBody`:
        // streaming is the request's work, and the span ends at its last exit.
        let poll = match this.end.span() {
            Some(span) => {
                let _entered = span.enter();
                this.inner.poll_next(cx)
            }
            None => this.inner.poll_next(cx),
        };
        match &poll {
            Poll::Ready(None) => this.end.body_ended(),
            Poll::Ready(Some(Err(_))) => this.end.body_failed(),
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        poll
    }
}
