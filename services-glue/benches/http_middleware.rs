//! CPU per request of an axum hello-world handler, bare vs behind
//! `HttpServerLayer`, in the same run.
//!
//! `cargo bench -p services-glue --bench http_middleware --features axum`
//!
//! Requests go through the router in-process (`tower::ServiceExt::oneshot`),
//! so hyper's parsing and socket I/O — the same for both — are not counted:
//! the ratio here is an upper bound for a served request. Telemetry exports
//! OTLP to a port nobody listens on with the default queue, so after the
//! first 2048 spans each span is built and then dropped; the hot_path bench
//! in `telemetry` measured that within 10 % of queueing it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use services_glue::axum::HttpServerLayer;
use services_glue::http::HttpServerConfig;
use telemetry::Telemetry;
use tower::ServiceExt;

fn telemetry(extra: &[(&str, &str)]) -> Telemetry {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env: Vec<(String, String)> = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_LOGS_EXPORTER".into(), "none".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL".into(), "3600000".into()),
        ("TELEMETRY_SHUTDOWN_TIMEOUT".into(), "1000".into()),
        // Production stdout format (dev's readable text formats every span's fields).
        ("TELEMETRY_LOG_FORMAT".into(), "json".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Telemetry::builder("bench")
        .with_env(env)
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap()
}

fn hello() -> Router {
    Router::new().route("/payments/{id}", get(|| async { "hello" }))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("http_server");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    let request = || Request::get("/payments/42").body(Body::empty()).unwrap();
    let run = |router: Router, dispatch: &tracing::Dispatch, b: &mut criterion::Bencher| {
        tracing::dispatcher::with_default(dispatch, || {
            b.iter(|| rt.block_on(router.clone().oneshot(request())).unwrap())
        })
    };

    let cases: [(&str, &[(&str, &str)]); 6] = [
        (
            "a_bare_handler",
            &[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ],
        ),
        ("b_instrumented_span_and_metrics", &[]),
        // Traces not recorded; the incoming context is still passed through
        // (telemetry's pass-through layer).
        (
            "c_instrumented_metrics_only",
            &[("OTEL_TRACES_EXPORTER", "none")],
        ),
        // As c with nothing to propagate: no OpenTelemetry layer at all.
        (
            "c2_instrumented_metrics_only_no_propagation",
            &[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_PROPAGATORS", "none"),
            ],
        ),
        (
            "d_instrumented_span_below_rust_log",
            &[("RUST_LOG", "warn")],
        ),
        (
            "e_instrumented_dev_text_stdout",
            &[("TELEMETRY_LOG_FORMAT", "text")],
        ),
    ];
    for (name, env) in cases {
        let t = telemetry(env);
        let router = if name == "a_bare_handler" {
            hello()
        } else {
            hello().layer(HttpServerLayer::new(HttpServerConfig::new(&t.meter())))
        };
        g.bench_function(name, |b| run(router.clone(), t.dispatch(), b));
        let _ = t.shutdown();
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
