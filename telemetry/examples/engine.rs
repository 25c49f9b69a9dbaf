//! A small engine that shows the whole crate working: one line at start-up,
//! an HTTP server whose requests become spans, metrics and logs, a load loop
//! calling it with W3C context propagation, `/metrics`, `/health`, `/ready`.
//!
//! ```text
//! cargo run -p telemetry --example engine                       # OTLP to localhost:4317 (warns once if absent)
//! OTEL_METRICS_EXPORTER=prometheus cargo run -p telemetry --example engine   # then: curl localhost:9464/metrics
//! OTEL_TRACES_EXPORTER=console cargo run -p telemetry --example engine
//! ```
//! Stops on Ctrl-C, or after `ENGINE_RUN_SECONDS`; the guard flushes on the way out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use telemetry::opentelemetry::KeyValue;
use telemetry::opentelemetry::metrics::{Counter, Histogram};
use telemetry::tracing::{self, Instrument};
use telemetry::tracing_opentelemetry::OpenTelemetrySpanExt;

#[derive(Clone)]
struct AppMetrics {
    duration: Histogram<f64>,
    orders: Counter<u64>,
}

#[tokio::main]
async fn main() {
    let guard = telemetry::init!("example-engine");
    let metrics = AppMetrics {
        duration: guard
            .meter()
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests")
            .build(),
        orders: guard
            .meter()
            .u64_counter("orders.placed")
            .with_unit("{order}")
            .build(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tracing::info!(%addr, prometheus = ?guard.prometheus_addr(), "example engine listening");

    let health = guard.health();
    let prometheus = guard.prometheus();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (metrics, health, prometheus) =
                (metrics.clone(), health.clone(), prometheus.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    handle(req, metrics.clone(), health.clone(), prometheus.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    let run_for = std::env::var("ENGINE_RUN_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let load = tokio::spawn(load_loop(addr));
    match run_for {
        Some(d) => tokio::time::sleep(d).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    load.abort();
    tracing::info!("shutting down");
    if let Err(e) = guard.shutdown_async().await {
        eprintln!("{e}");
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    metrics: AppMetrics,
    health: telemetry::TelemetryHealth,
    prometheus: Option<telemetry::PrometheusHandle>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/health" => return Ok(Response::new(Full::from("ok\n"))),
        "/ready" => {
            let status = if health.is_healthy() { 200 } else { 503 };
            let body = format!("{:?}\n", health.signals());
            return Ok(Response::builder()
                .status(status)
                .body(Full::from(body))
                .unwrap());
        }
        "/metrics" => {
            return Ok(match prometheus {
                Some(p) => Response::builder()
                    .header("content-type", p.content_type())
                    .body(Full::from(p.render()))
                    .unwrap(),
                None => Response::builder()
                    .status(404)
                    .body(Full::from("set OTEL_METRICS_EXPORTER=prometheus\n"))
                    .unwrap(),
            });
        }
        _ => {}
    }
    let start = Instant::now();
    let parent = telemetry::propagation::extract_global(req.headers());
    let span = tracing::info_span!("POST /orders", otel.kind = "server", http.route = "/orders");
    let _ = span.set_parent(parent);
    let status = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        metrics.orders.add(1, &[KeyValue::new("market", "eu")]);
        tracing::info!(order.amount = 1250, "order placed");
        200u16
    }
    .instrument(span)
    .await;
    metrics.duration.record(
        start.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", "/orders"),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
    Ok(Response::new(Full::from("placed\n")))
}

/// Calls the engine every 200 ms as a client would, injecting `traceparent`.
async fn load_loop(addr: std::net::SocketAddr) {
    loop {
        let span = tracing::info_span!("POST", otel.kind = "client", server.address = %addr);
        async {
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                return;
            };
            let Ok((mut sender, conn)) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
            else {
                return;
            };
            tokio::spawn(conn);
            let mut req = Request::post("/orders").header("host", addr.to_string());
            let cx = tracing::Span::current().context();
            telemetry::propagation::inject_global(&cx, req.headers_mut().unwrap());
            if let Ok(resp) = sender
                .send_request(req.body(Empty::<Bytes>::new()).unwrap())
                .await
            {
                let _ = resp.into_body().collect().await;
            }
        }
        .instrument(span)
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
