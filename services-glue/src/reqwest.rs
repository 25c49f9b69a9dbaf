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

use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A `reqwest::Client` that traces and measures every request it executes.
#[derive(Clone, Debug)]
pub struct TracedClient {
    inner: reqwest::Client,
    duration: Histogram<f64>,
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
        }
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
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = method,
            server.address = %host,
            server.port = port,
            url.scheme = scheme,
            http.response.status_code = Empty,
            error.type = Empty,
        );
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(
                &cx,
                &mut crate::propagation::HeaderInjector(request.headers_mut()),
            )
        });
        let start = Instant::now();
        let result = self.inner.execute(request).instrument(span.clone()).await;
        let mut attrs = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("server.address", host),
            KeyValue::new("server.port", port),
            KeyValue::new("url.scheme", scheme),
        ];
        match &result {
            Ok(resp) => {
                let code = resp.status().as_u16();
                span.record("http.response.status_code", i64::from(code));
                attrs.push(KeyValue::new("http.response.status_code", i64::from(code)));
                // For clients, 4xx and 5xx are both errors.
                if code >= 400 {
                    span.record("error.type", code.to_string());
                    span.record("otel.status_code", "ERROR");
                    attrs.push(KeyValue::new("error.type", code.to_string()));
                }
            }
            Err(e) => {
                let kind = error_kind(e);
                span.record("error.type", kind);
                span.record("otel.status_code", "ERROR");
                attrs.push(KeyValue::new("error.type", kind));
            }
        }
        self.duration.record(start.elapsed().as_secs_f64(), &attrs);
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
