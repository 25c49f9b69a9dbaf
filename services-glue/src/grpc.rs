//! gRPC (tonic, or any tower HTTP/2 service) server and client layers with
//! the `rpc.*` conventions: span `{package.Service}/{Method}` (SERVER or
//! CLIENT), `rpc.system=grpc`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`; context in metadata; `rpc.server.call.duration` /
//! `rpc.client.call.duration` (s) measured until the response body ends, so
//! streaming calls count in full. The status comes from the `grpc-status`
//! header (trailers-only responses) or trailer.
//!
//! Status mapping follows the conventions ([`GrpcClassifier`] over the
//! [`GrpcCode`] enum): on a server only UNKNOWN, DEADLINE_EXCEEDED,
//! UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS are errors; on a
//! client every non-OK status is. `error.type` is the code's number.
//!
//! The layer is the shared [`TraceLayer`] (see [`crate::layer`]); the span
//! is entered while the body is polled, so it ends with the body too.
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

use std::sync::Arc;

use http::{Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::body::{BodyObserver, ObservedBody};
use crate::cardinality::BoundedValues;
pub use crate::classify::{GrpcClassifier, GrpcCode, Side};
use crate::layer::{Protocol, TraceFuture, TraceLayer, TraceService, TracedCall};
use crate::outcome::{CANCELLED, ErrorType, Measure, OutcomeGuard};
use crate::propagation::Propagator;

/// Layer settings and instruments; cheap to clone.
#[derive(Clone, Debug)]
pub struct GrpcConfig {
    side: Side,
    duration: Histogram<f64>,
    methods: Arc<BoundedValues>,
    propagator: Propagator,
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

    /// Reads and writes metadata with `propagator` instead of the global
    /// one, so a service that never installs its telemetry globally still
    /// propagates context.
    pub fn with_propagator(mut self, propagator: impl Into<Propagator>) -> Self {
        self.propagator = propagator.into();
        self
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
            propagator: Propagator::global(),
        }
    }
}

/// The tower layer for either side: the shared [`TraceLayer`] with the
/// gRPC protocol (route from the `/package.Service/Method` path, status
/// from `grpc-status`, [`GrpcClassifier`] rules).
pub type GrpcLayer = TraceLayer<GrpcConfig>;

/// One span and one duration per call.
pub type GrpcService<S> = TraceService<S, GrpcConfig>;

/// Resolves to the response with its body wrapped to observe trailers.
pub type GrpcFuture<F> = TraceFuture<F, CallEnd>;

/// The response body, unchanged; its trailers finish the call.
pub type GrpcBody<B> = ObservedBody<B, CallEnd>;

impl Protocol for GrpcConfig {
    type Call = CallEnd;

    /// The route is the request path, `package.Service/Method`, bounded
    /// when the call ends; a server reads the remote parent from the
    /// metadata, a client writes its span's context into it.
    fn start<B>(&self, req: &mut Request<B>) -> CallEnd {
        let path = req.uri().path().trim_start_matches('/');
        let raw_method = match path.split_once('/') {
            Some((service, method)) if !service.is_empty() && !method.is_empty() => {
                path.to_string()
            }
            _ => format!("{0}/{0}", crate::cardinality::OTHER),
        };
        let incoming = matches!(self.side, Side::Server)
            .then(|| self.propagator.extract_headers(req.headers()));
        let span = crate::propagation::created_under(incoming, || {
            tracing::info_span!(
                "grpc",
                otel.name = Empty,
                otel.kind = self.side.span_kind(),
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = Empty,
                rpc.method = Empty,
                rpc.grpc.status_code = Empty,
                error.type = Empty,
            )
        });
        if matches!(self.side, Side::Client) {
            self.propagator
                .inject_headers(&span.context(), req.headers_mut());
        }
        CallEnd(Some(Call {
            guard: OutcomeGuard::new(
                span,
                CallMeasure {
                    side: self.side,
                    raw_method,
                    methods: Arc::clone(&self.methods),
                    duration: self.duration.clone(),
                    status: None,
                },
            ),
            classifier: GrpcClassifier::new(self.side),
        }))
    }
}

/// What is known of a call when it ends: its method and status name the
/// span and label the duration.
#[derive(Debug)]
struct CallMeasure {
    side: Side,
    /// `package.Service/Method` as the peer sent it; bounded at the finish.
    raw_method: String,
    methods: Arc<BoundedValues>,
    duration: Histogram<f64>,
    status: Option<i64>,
}

impl Measure for CallMeasure {
    fn measure(self, span: &tracing::Span, elapsed: f64, error: Option<&ErrorType>) {
        // A method the server does not implement is named by the peer, not
        // by us: it never becomes a span name or label value, and does not
        // spend the budget of distinct methods.
        let unimplemented = self.status == Some(GrpcCode::Unimplemented.as_i64());
        let full = if self.side == Side::Server && unimplemented {
            Arc::from(crate::cardinality::OTHER)
        } else {
            self.methods.bound(&self.raw_method)
        };
        let (service, method) = full
            .split_once('/')
            .unwrap_or((crate::cardinality::OTHER, crate::cardinality::OTHER));
        // Renamed through its `otel.name` field: the OpenTelemetry layer
        // records the span itself, so the context's span is only its ids.
        span.record("otel.name", &*full);
        span.record("rpc.service", service);
        span.record("rpc.method", method);
        let mut attrs = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service.to_string()),
            KeyValue::new("rpc.method", method.to_string()),
        ];
        if let Some(code) = self.status {
            attrs.push(KeyValue::new("rpc.grpc.status_code", code));
        }
        if let Some(e) = error {
            attrs.push(KeyValue::new("error.type", e.clone().into_owned()));
        }
        self.duration.record(elapsed, &attrs);
    }
}

/// A call in flight, finished by the response body's trailers (or drop:
/// `error.type=cancelled`).
#[derive(Debug)]
struct Call {
    guard: OutcomeGuard<CallMeasure>,
    classifier: GrpcClassifier,
}

impl Call {
    fn finish(&mut self, status: Option<GrpcStatus>) {
        let status = status.map(GrpcStatus::code);
        let Some(m) = self.guard.measure_mut() else {
            return; // already finished
        };
        m.status = status;
        let error = match status {
            Some(code) => {
                self.guard.span().record("rpc.grpc.status_code", code);
                self.classifier.error_type(code)
            }
            None => Some(ErrorType::Borrowed(CANCELLED)),
        };
        self.guard.finish(error);
    }
}

/// A status as read from the wire: a number, usually one of [`GrpcCode`].
#[derive(Clone, Copy, Debug)]
enum GrpcStatus {
    Code(GrpcCode),
    Raw(i64),
}

impl GrpcStatus {
    fn code(self) -> i64 {
        match self {
            GrpcStatus::Code(c) => c.as_i64(),
            GrpcStatus::Raw(n) => n,
        }
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<GrpcStatus> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .map(GrpcStatus::Raw)
}

/// A call in flight, finished by the status in a trailers-only response
/// head or in the body's trailers; UNAVAILABLE when the transport or body
/// fails, UNKNOWN when the body ends without a status. The default records
/// nothing.
#[derive(Debug, Default)]
pub struct CallEnd(Option<Call>);

impl TracedCall for CallEnd {
    fn on_head<B: http_body::Body>(&mut self, response: &mut Response<B>) {
        // Trailers-only responses (errors, mostly) carry the status here.
        if let (Some(status), Some(c)) = (grpc_status(response.headers()), self.0.as_mut()) {
            c.finish(Some(status));
        }
    }

    fn on_failure(&mut self) {
        if let Some(c) = self.0.as_mut() {
            // The transport failed: no status from the peer.
            c.finish(Some(GrpcStatus::Code(GrpcCode::Unavailable)));
        }
    }
}

impl BodyObserver for CallEnd {
    fn span(&self) -> Option<&tracing::Span> {
        self.0.as_ref().map(|c| c.guard.span())
    }

    fn on_trailers(&mut self, trailers: &http::HeaderMap) {
        if let Some(c) = self.0.as_mut() {
            let status = grpc_status(trailers).unwrap_or(GrpcStatus::Code(GrpcCode::Unknown));
            c.finish(Some(status));
        }
    }

    fn on_error(&mut self) {
        if let Some(c) = self.0.as_mut() {
            c.finish(Some(GrpcStatus::Code(GrpcCode::Unavailable)));
        }
    }

    fn on_end(&mut self) {
        if let Some(c) = self.0.as_mut() {
            // Ended without trailers: unknown status.
            c.finish(Some(GrpcStatus::Code(GrpcCode::Unknown)));
        }
    }
}
