//! A hello-world axum server for CPU-per-request measurement
//! (`scripts/bench-http.sh`): `HELLO_MODE=bare` serves the plain handler,
//! `HELLO_MODE=instrumented` puts `HttpServerLayer` in front of it with
//! telemetry exporting OTLP (to `OTEL_EXPORTER_OTLP_ENDPOINT`) as in production.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::routing::get;
use services_glue::axum::HttpServerLayer;
use services_glue::http::HttpServerConfig;

fn main() {
    let instrumented = std::env::var("HELLO_MODE").as_deref() == Ok("instrumented");
    let port: u16 = std::env::var("HELLO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18080);
    let guard = telemetry::Telemetry::builder("hello").try_init().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut app = Router::new().route("/payments/{id}", get(|| async { "hello" }));
        if instrumented {
            app = app.layer(HttpServerLayer::new(HttpServerConfig::new(&guard.meter())));
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .unwrap();
    });
    let _ = guard.shutdown();
}
