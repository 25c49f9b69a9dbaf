//! HTTP client instrumentation for reqwest: a CLIENT span per request,
//! W3C context injected into the outgoing headers, and
//! `http.client.request.duration` (s) with the stable HTTP attributes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), reqwest::Error> {
//! use services_glue::reqwest::TracedClient;
//!
//! let meter = opentelemetry::global::meter("gateway");
//! let client = TracedClient::new(reqwest::Client::new(), &meter);
//! let req = client.inner().get("http://127.0.0.1:8086/screen").build()?;
//! let response = client.execute(req).await?;
//! # drop(response); Ok(()) }
//! ```

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::classify::{HttpClassifier, Side};
use crate::outcome::{Duration, ErrorType, OutcomeGuard};
use crate::propagation::Propagator;

const CLIENT_SIDE: Side = Side::Client;
/// The client side's status rules: 4xx and 5xx are errors.
const CLIENT: HttpClassifier = HttpClassifier::new(CLIENT_SIDE);

/// A `reqwest::Client` that traces and measures every request it executes.
#[derive(Clone, Debug)]
pub struct TracedClient {
    inner: reqwest::Client,
    duration: Histogram<f64>,
    propagator: Propagator,
}

impl TracedClient {
    /// Wraps `client`; instruments are created on `meter`.
    pub fn new(client: reqwest::Client, meter: &Meter) -> Self {
        TracedClient {
            inner: client,
            duration: meter
                .f64_histogram("http.client.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP client requests")
                .with_boundaries(crate::semconv::SECONDS_BUCKETS.to_vec())
                .build(),
            propagator: Propagator::global(),
        }
    }

    /// Injects context with `propagator` instead of the global one, so a
    /// service that never installs its telemetry globally still passes its
    /// trace on.
    pub fn with_propagator(mut self, propagator: impl Into<Propagator>) -> Self {
        self.propagator = propagator.into();
        self
    }

    /// The wrapped client, for building requests.
    pub fn inner(&self) -> &reqwest::Client {
        &self.inner
    }

    /// Sends `request` inside a CLIENT span (a child of the current span),
    /// with `traceparent`/`tracestate`/`baggage` injected. The URL's path and
    /// query never become attributes: only scheme, host and port do.
    pub async fn execute(
        &self,
        mut request: reqwest::Request,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let method = crate::semconv::normalize_method(request.method().as_str());
        let url = request.url();
        let scheme = if url.scheme() == "https" {
            "https"
        } else {
            "http"
        };
        let host = url.host_str().unwrap_or("").to_string();
        let port = i64::from(url.port_or_known_default().unwrap_or(0));
        let span = tracing::info_span!(
            "HTTP client request",
            otel.name = method,
            otel.kind = CLIENT_SIDE.span_kind(),
            otel.status_code = Empty,
            http.request.method = method,
            server.address = %host,
            server.port = port,
            url.scheme = scheme,
            http.response.status_code = Empty,
            error.type = Empty,
        );
        self.propagator
            .inject_headers(&span.context(), request.headers_mut());
        let mut outcome = OutcomeGuard::new(
            span.clone(),
            Duration {
                histogram: self.duration.clone(),
                attrs: vec![
                    KeyValue::new("http.request.method", method),
                    KeyValue::new("server.address", host),
                    KeyValue::new("server.port", port),
                    KeyValue::new("url.scheme", scheme),
                ],
            },
        );
        let result = self.inner.execute(request).instrument(span).await;
        let error = match &result {
            Ok(resp) => {
                let code = resp.status().as_u16();
                outcome
                    .span()
                    .record("http.response.status_code", i64::from(code));
                if let Some(m) = outcome.measure_mut() {
                    m.attrs
                        .push(KeyValue::new("http.response.status_code", i64::from(code)));
                }
                CLIENT.error_type(code)
            }
            Err(e) => Some(ErrorType::Borrowed(error_kind(e))),
        };
        outcome.finish(error);
        result
    }
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "_OTHER"
    }
}
