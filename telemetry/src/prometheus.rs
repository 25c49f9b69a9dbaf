//! The Prometheus pull path: an OpenTelemetry reader backed by a private
//! registry, rendered in the text exposition format, served on its own port
//! and mountable on an engine's own router.
//!
//! Every series carries `service_name`, `service_namespace` and
//! `deployment_environment_name`, so the same dashboards and alert rules
//! work for pulled and pushed metrics.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use opentelemetry::Key;
use opentelemetry_semantic_conventions::resource as semconv;
use prometheus::{Encoder, TextEncoder};

use crate::error::InitError;

/// Resource attributes copied onto every pulled series.
pub const SHARED_LABEL_KEYS: &[&str] = &[
    semconv::SERVICE_NAME,
    semconv::SERVICE_NAMESPACE,
    semconv::DEPLOYMENT_ENVIRONMENT_NAME,
];

/// Renders the engine's metrics for a Prometheus scrape. Cheap to clone.
///
/// ```
/// use opentelemetry::metrics::MeterProvider as _;
/// let telemetry = telemetry::Telemetry::builder("doc-engine")
///     .with_env([("OTEL_METRICS_EXPORTER", "prometheus"), ("OTEL_TRACES_EXPORTER", "none"),
///                ("OTEL_LOGS_EXPORTER", "none"), ("OTEL_EXPORTER_PROMETHEUS_PORT", "0")])
///     .build()
///     .unwrap();
/// telemetry.meter().u64_counter("doc.requests").build().add(1, &[]);
/// let text = telemetry.prometheus().unwrap().render();
/// assert!(text.contains("doc_requests_total{"));
/// assert!(text.contains("service_name=\"doc-engine\""));
/// ```
#[derive(Clone)]
pub struct PrometheusHandle {
    registry: prometheus::Registry,
    /// The last rendering's length. A scrape's text (tens of KiB) grown by
    /// doubling touches several fresh large blocks, each a page fault on
    /// memory the allocator returned to the system since the last scrape;
    /// sized from the last one it is a single allocation.
    last_len: Arc<AtomicUsize>,
}

impl std::fmt::Debug for PrometheusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrometheusHandle")
    }
}

/// `Content-Type` of [`PrometheusHandle::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl PrometheusHandle {
    /// The current metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let hint = self.last_len.load(Ordering::Relaxed);
        // Room for a few new series before the buffer has to grow.
        let mut buf = Vec::with_capacity(hint + hint / 8);
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::warn!(target: "telemetry::prometheus", error = %e, "cannot encode metrics");
        }
        self.last_len.store(buf.len(), Ordering::Relaxed);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The `Content-Type` to send with [`render`](Self::render).
    pub fn content_type(&self) -> &'static str {
        CONTENT_TYPE
    }
}

/// Builds the reader and the handle that renders it.
pub(crate) fn reader() -> Result<
    (
        opentelemetry_prometheus::PrometheusExporter,
        PrometheusHandle,
    ),
    InitError,
> {
    let registry = prometheus::Registry::new();
    let keys: HashSet<Key> = SHARED_LABEL_KEYS
        .iter()
        .map(|k| Key::from_static_str(k))
        .collect();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .with_resource_selector(keys)
        .build()
        .map_err(|e| InitError::exporter(crate::config::Signal::Metrics, e))?;
    Ok((
        exporter,
        PrometheusHandle {
            registry,
            last_len: Arc::new(AtomicUsize::new(0)),
        },
    ))
}

/// Binds the pull endpoint; fails at start-up when the address is taken.
pub(crate) fn bind(host: &str, port: u16) -> Result<std::net::TcpListener, InitError> {
    let address = format!("{host}:{port}");
    let listener =
        std::net::TcpListener::bind(&address).map_err(|source| InitError::PrometheusBind {
            address: address.clone(),
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| InitError::PrometheusBind { address, source })?;
    Ok(listener)
}

/// What the endpoint holds for scrapers. The port faces whoever can reach
/// it: at most 256 connections at once, and more are closed as they arrive
/// (a scrape answered late is lost anyway; Prometheus reconnects). A
/// request is due within 10 s of connecting and an idle keep-alive
/// connection closes after it, so slow or silent clients hold nothing;
/// Prometheus retries a GET on a connection closed idle.
const LIMITS: bounded_serve::Limits = bounded_serve::Limits {
    max_connections: 256,
    max_requests: 256,
    header_read_timeout: bounded_serve::HEADER_READ_TIMEOUT,
    idle_timeout: bounded_serve::IDLE_TIMEOUT,
    request_timeout: bounded_serve::REQUEST_TIMEOUT,
    // A render takes milliseconds: a stop does not wait for slow readers.
    drain_timeout: std::time::Duration::from_secs(1),
    when_full: bounded_serve::WhenFull::Close,
};

/// Serves `GET /metrics` (and `/`) on telemetry's runtime until `stop` fires.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    handle: PrometheusHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(target: "telemetry::prometheus", error = %e, "cannot serve Prometheus endpoint");
            return;
        }
    };
    let service = move || {
        let handle = handle.clone();
        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let handle = handle.clone();
            async move { Ok::<_, Infallible>(respond(&handle, &req)) }
        })
    };
    let stop = async move {
        let _ = stop.changed().await;
    };
    bounded_serve::serve(listener, service, LIMITS, stop).await;
}

fn respond<B>(handle: &PrometheusHandle, req: &hyper::Request<B>) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path();
    let builder = hyper::Response::builder();
    let response = if req.method() != hyper::Method::GET {
        builder
            .status(405)
            .header("allow", "GET")
            .body(Full::new(Bytes::from_static(b"use GET\n")))
    } else if path == "/metrics" || path == "/" {
        builder
            .header("content-type", CONTENT_TYPE)
            .body(Full::new(Bytes::from(handle.render())))
    } else {
        builder.status(404).body(Full::new(Bytes::from_static(
            b"metrics are served at /metrics\n",
        )))
    };
    response.unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}
