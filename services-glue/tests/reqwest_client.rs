//! reqwest client spans and metrics, and one trace across client → axum
//! server on loopback.
#![cfg(all(feature = "reqwest", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use services_glue::axum::HttpServerLayer;
use services_glue::http::HttpServerConfig;
use services_glue::reqwest::TracedClient;
use telemetry::testing::{SpanKind, SpanStatus, find_metric};
use tracing::Instrument;

#[test]
fn client_and_server_share_one_trace() {
    let sink = common::run_in_telemetry("caller", |meter| async move {
        let app = Router::new()
            .route("/screen/{party}", get(|| async { "clear" }))
            .route("/denied", get(|| async { StatusCode::FORBIDDEN }))
            .layer(HttpServerLayer::new(
                HttpServerConfig::new(&meter).with_propagator(common::w3c()),
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let client =
            TracedClient::new(reqwest::Client::new(), &meter).with_propagator(common::w3c());
        async {
            let req = client
                .inner()
                .get(format!("http://{addr}/screen/alice?acct=qs-leak-marker"))
                .build()
                .unwrap();
            assert_eq!(
                client.execute(req).await.unwrap().text().await.unwrap(),
                "clear"
            );
            let req = client
                .inner()
                .get(format!("http://{addr}/denied"))
                .build()
                .unwrap();
            assert_eq!(client.execute(req).await.unwrap().status(), 403);
            let refused = format!("http://127.0.0.1:{}/x", free_port());
            let req = client.inner().get(refused).build().unwrap();
            assert!(client.execute(req).await.is_err());
        }
        .instrument(tracing::info_span!("payment"))
        .await;
        server.abort();
    });

    let spans = sink.spans();
    let payment = spans.iter().find(|s| s.name == "payment").unwrap();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client)
        .collect();
    assert_eq!(clients.len(), 3);
    let server = spans
        .iter()
        .find(|s| s.name == "GET /screen/{party}")
        .unwrap();
    let first_client = clients
        .iter()
        .find(|c| Some(&c.span_id) == server.parent_span_id.as_ref())
        .expect("server span is the client span's child");
    assert_eq!(first_client.parent_span_id.as_ref(), Some(&payment.span_id));
    assert_eq!(first_client.trace_id, server.trace_id);
    assert_eq!(first_client.name, "GET");
    for c in &clients {
        assert!(
            !common::mentions(&c.attributes, "qs-leak-marker"),
            // A marker nothing masks: if the query reached a span, it shows.
            "no query strings"
        );
    }
    let errors = clients
        .iter()
        .filter(|c| matches!(c.status, SpanStatus::Error(_)))
        .count();
    assert_eq!(errors, 2, "403 and connection refused are client errors");

    let metrics = sink.metrics();
    let duration = find_metric(&metrics, "http.client.request.duration").expect("metrics exported");
    let mut kinds: Vec<String> = duration
        .histogram_points()
        .iter()
        .map(|p| {
            p.attributes
                .get("error.type")
                .map(common::text)
                .unwrap_or_default()
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec!["".to_string(), "403".to_string(), "connect".to_string()]
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
