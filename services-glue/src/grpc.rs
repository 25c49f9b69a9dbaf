//! gRPC (tonic, or any tower HTTP/2 service) server and client layers with
//! the `rpc.*` conventions: span `{package.Service}/{Method}` (SERVER or
//! CLIENT), `rpc.system=grpc`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`; context in metadata; `rpc.server.call.duration` /
//! `rpc.client.call.duration` (s) measured until the response body ends, so
//! streaming calls count in full. The status comes from the `grpc-status`
//! header (trailers-only responses) or trailer.
//!
//! Server status mapping follows the conventions: only UNKNOWN,
//! DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS are
//! server errors; on the client every non-OK status is an error.
//!
//! Method names come from the peer, so they are bounded: a call the server
//! answers with UNIMPLEMENTED is named `_OTHER` (span name and labels), and
//! each layer admits at most 200 distinct methods before `_OTHER`.
//!
//! ```
//! use services_glue::grpc::{GrpcLayer, GrpcConfig};
//! let meter = opentelemetry::global::meter("settlement-engine");
//! let server_layer = GrpcLayer::new(GrpcConfig::server(&meter));  // tonic: Server::builder().layer(server_layer)
//! let client_layer = GrpcLayer::new(GrpcConfig::client(&meter));  // tower::ServiceBuilder::new().layer(client_layer).service(channel)
//! # drop((server_layer, client_layer));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::trace::TraceContextExt;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::cardinality::BoundedValues;

/// Which side of the call this layer instruments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Incoming calls: SERVER spans, remote parent from metadata.
    Server,
    /// Outgoing calls: CLIENT spans, context injected into metadata.
    Client,
}

/// Layer settings and instruments; cheap to clone.
#[derive(Clone, Debug)]
pub struct GrpcConfig {
    side: Side,
    duration: Histogram<f64>,
    methods: Arc<BoundedValues>,
}

impl GrpcConfig {
    /// For a gRPC server.
    pub fn server(meter: &Meter) -> Self {
        Self::new(
            meter,
            Side::Server,
            "rpc.server.call.duration",
            "Duration of incoming gRPC calls",
        )
    }

    /// For a gRPC client.
    pub fn client(meter: &Meter) -> Self {
        Self::new(
            meter,
            Side::Client,
            "rpc.client.call.duration",
            "Duration of outgoing gRPC calls",
        )
    }

    fn new(meter: &Meter, side: Side, name: &'static str, description: &'static str) -> Self {
        GrpcConfig {
            side,
            duration: meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(crate::semconv::SECONDS_BUCKETS.to_vec())
                .build(),
            // Paths come from peers: bound them (a real service has a few dozen methods).
            methods: Arc::new(BoundedValues::new(200)),
        }
    }
}

/// The tower layer for either side.
#[derive(Clone, Debug)]
pub struct GrpcLayer {
    config: GrpcConfig,
}

impl GrpcLayer {
    /// A layer recording with `config`.
    pub fn new(config: GrpcConfig) -> Self {
        GrpcLayer { config }
    }
}

impl<S> tower_layer::Layer<S> for GrpcLayer {
    type Service = GrpcService<S>;
    fn layer(&self, inner: S) -> GrpcService<S> {
        GrpcService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// One span and one duration per call.
#[derive(Clone, Debug)]
pub struct GrpcService<S> {
    inner: S,
    config: GrpcConfig,
}

/// A call in flight, finished by the response body's trailers (or drop).
#[derive(Debug)]
struct Call {
    span: tracing::Span,
    start: Instant,
    side: Side,
    /// `package.Service/Method` as the peer sent it; bounded at the finish.
    raw_method: String,
    methods: Arc<BoundedValues>,
    duration: Histogram<f64>,
    done: bool,
}

impl Call {
    fn finish(&mut self, status: Option<i64>) {
        if self.done {
            return;
        }
        self.done = true;
        // A method the server does not implement is named by the peer, not
        // by us: it never becomes a span name or label value, and does not
        // spend the budget of distinct methods.
        let full = if self.side == Side::Server && status == Some(UNIMPLEMENTED) {
            Arc::from(crate::cardinality::OTHER)
        } else {
            self.methods.bound(&self.raw_method)
        };
        let (service, method) = full
            .split_once('/')
            .unwrap_or((crate::cardinality::OTHER, crate::cardinality::OTHER));
        // The span has started by now (its context was injected or
        // entered), so it is renamed through the OpenTelemetry span itself.
        self.span.context().span().update_name(full.to_string());
        self.span.record("rpc.service", service);
        self.span.record("rpc.method", method);
        let mut attrs = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service.to_string()),
            KeyValue::new("rpc.method", method.to_string()),
        ];
        match status {
            Some(code) => {
                self.span.record("rpc.grpc.status_code", code);
                attrs.push(KeyValue::new("rpc.grpc.status_code", code));
                let is_error = match self.side {
                    Side::Client => code != 0,
                    Side::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
                };
                if is_error {
                    self.span.record("error.type", code.to_string());
                    self.span.record("otel.status_code", "ERROR");
                    attrs.push(KeyValue::new("error.type", code.to_string()));
                }
            }
            None => {
                self.span.record("error.type", "cancelled");
                self.span.record("otel.status_code", "ERROR");
                attrs.push(KeyValue::new("error.type", "cancelled"));
            }
        }
        self.duration
            .record(self.start.elapsed().as_secs_f64(), &attrs);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// `UNIMPLEMENTED`: the server has no such method.
const UNIMPLEMENTED: i64 = 12;

fn grpc_status(headers: &http::HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl<S, ReqB, ResB> tower_service::Service<Request<ReqB>> for GrpcService<S>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body,
{
    type Response = Response<GrpcBody<ResB>>;
    type Error = S::Error;
    type Future = GrpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let path = req.uri().path().trim_start_matches('/');
        let raw_method = match path.split_once('/') {
            Some((service, method)) if !service.is_empty() && !method.is_empty() => {
                path.to_string()
            }
            _ => format!("{0}/{0}", crate::cardinality::OTHER),
        };
        let kind = match self.config.side {
            Side::Server => "server",
            Side::Client => "client",
        };
        let span = tracing::info_span!(
            "grpc",
            otel.name = Empty,
            otel.kind = kind,
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = Empty,
            rpc.method = Empty,
            rpc.grpc.status_code = Empty,
            error.type = Empty,
        );
        match self.config.side {
            Side::Server => {
                let _ = span.set_parent(crate::propagation::extract(req.headers()));
            }
            Side::Client => {
                crate::propagation::inject(&span.context(), req.headers_mut());
            }
        }
        let call = Call {
            span,
            start: Instant::now(),
            side: self.config.side,
            raw_method,
            methods: Arc::clone(&self.config.methods),
            duration: self.config.duration.clone(),
            done: false,
        };
        let inner = {
            let _entered = call.span.enter();
            self.inner.call(req)
        };
        GrpcFuture {
            inner,
            call: Some(call),
        }
    }
}

pin_project_lite::pin_project! {
    /// Resolves to the response with its body wrapped to observe trailers.
    pub struct GrpcFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, ResB, E> Future for GrpcFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<GrpcBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let poll = match this.call.as_ref() {
            Some(c) => {
                let _entered = c.span.enter();
                this.inner.poll(cx)
            }
            None => this.inner.poll(cx),
        };
        let Poll::Ready(result) = poll else {
            return Poll::Pending;
        };
        let mut call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                // Trailers-only responses (errors, mostly) carry the status here.
                if let (Some(code), Some(c)) = (grpc_status(response.headers()), call.as_mut()) {
                    c.finish(Some(code));
                }
                Ok(response.map(|inner| GrpcBody { inner, call }))
            }
            Err(e) => {
                if let Some(c) = call.as_mut() {
                    c.finish(Some(14));
                }
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// The response body, unchanged; its trailers finish the call.
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: http_body::Body> http_body::Body for GrpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let poll = this.inner.poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(c)) = (frame.trailers_ref(), this.call.as_mut()) {
                    c.finish(Some(grpc_status(trailers).unwrap_or(2)));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(c) = this.call.as_mut() {
                    c.finish(Some(14));
                }
            }
            Poll::Ready(None) => {
                if let Some(c) = this.call.as_mut() {
                    // Ended without trailers: unknown status.
                    c.finish(Some(2));
                }
            }
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
