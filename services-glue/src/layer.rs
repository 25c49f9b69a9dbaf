//! One tower tracing layer for every HTTP-shaped protocol, in the style of
//! tower-http's `trace`: the layer owns the mechanics (enter the span around
//! `call` and every poll, observe the response head, wrap the body so the
//! call ends with it), and a [`Protocol`] supplies what differs: its route
//! extractor (axum's matched route template, gRPC's `/package.Service/Method`
//! path), its status classifier ([`crate::classify`]) and its context
//! propagation (extract on a server, inject on a client).
//!
//! The axum server layer is `TraceLayer<HttpServerConfig>` and the gRPC
//! layers are `TraceLayer<GrpcConfig>`; a fix to how calls are timed or
//! entered is made once, here.
//!
//! The error type is the inner service's, so telemetry never fails a
//! request; the response is passed through untouched apart from what the
//! protocol adds to its head (the optional `traceresponse` header).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};

use crate::body::{BodyObserver, ObservedBody};

/// What a [`TraceLayer`] asks of a protocol.
pub trait Protocol: Clone {
    /// One call in flight, finished by the response or its body.
    type Call: TracedCall;

    /// Starts the call for `req`: extracts its route, opens its span,
    /// propagates context (reading it on a server, writing it into `req`
    /// on a client). An untraced request (an excluded path) gets a call
    /// that records nothing.
    fn start<B>(&self, req: &mut Request<B>) -> Self::Call;
}

/// A call in flight; its [`BodyObserver`] side finishes it with the body.
pub trait TracedCall: BodyObserver + Default {
    /// The response head is ready: record what it says (the protocol's
    /// classifier decides whether it is an error), or add to it.
    fn on_head<B: http_body::Body>(&mut self, response: &mut Response<B>);

    /// The inner service failed without a response.
    fn on_failure(&mut self);
}

/// Wraps services with [`TraceService`].
#[derive(Clone, Debug)]
pub struct TraceLayer<P> {
    protocol: P,
}

impl<P> TraceLayer<P> {
    /// A layer recording with `protocol` (a protocol's config).
    pub fn new(protocol: P) -> Self {
        TraceLayer { protocol }
    }
}

impl<S, P: Clone> tower_layer::Layer<S> for TraceLayer<P> {
    type Service = TraceService<S, P>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService {
            inner,
            protocol: self.protocol.clone(),
        }
    }
}

/// One span and one set of measurements per call.
#[derive(Clone, Debug)]
pub struct TraceService<S, P> {
    inner: S,
    protocol: P,
}

/// Runs `f` inside `call`'s span, if it has one, so the inner service's
/// spans and logs get it as parent.
fn in_span<C: BodyObserver, T>(call: Option<&C>, f: impl FnOnce() -> T) -> T {
    match call.and_then(BodyObserver::span) {
        Some(span) => {
            let _entered = span.enter();
            f()
        }
        None => f(),
    }
}

impl<S, P, ReqB, ResB> tower_service::Service<Request<ReqB>> for TraceService<S, P>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>>,
    P: Protocol,
    ResB: http_body::Body,
{
    type Response = Response<ObservedBody<ResB, P::Call>>;
    type Error = S::Error;
    type Future = TraceFuture<S::Future, P::Call>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let call = self.protocol.start(&mut req);
        let inner = in_span(Some(&call), || self.inner.call(req));
        TraceFuture {
            inner,
            call: Some(call),
        }
    }
}

pin_project_lite::pin_project! {
    /// Resolves to the response, its body wrapped to finish the call when
    /// it ends.
    pub struct TraceFuture<F, C> {
        #[pin]
        inner: F,
        call: Option<C>,
    }
}

impl<F, C, ResB, E> Future for TraceFuture<F, C>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    C: TracedCall,
    ResB: http_body::Body,
{
    type Output = Result<Response<ObservedBody<ResB, C>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let poll = in_span(this.call.as_ref(), || this.inner.poll(cx));
        let Poll::Ready(result) = poll else {
            return Poll::Pending;
        };
        // Polled again after completion (a contract breach): record nothing.
        let mut call = this.call.take().unwrap_or_default();
        Poll::Ready(match result {
            Ok(mut response) => {
                call.on_head(&mut response);
                Ok(response.map(|body| ObservedBody::new(body, call)))
            }
            Err(e) => {
                call.on_failure();
                Err(e)
            }
        })
    }
}
