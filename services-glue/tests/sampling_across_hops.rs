//! A caller's sampling decision crosses real hops: over HTTP (reqwest →
//! axum) and over NATS (publish → process), a callee that samples every
//! trace it starts (`parentbased_always_on`) records nothing of a caller's
//! unsampled trace, and the whole of a sampled one. The caller samples by
//! ratio; its unsampled spans are dropped at creation, and what its client
//! spans send is their dropped ancestor's context (flags `00`).
#![cfg(all(feature = "axum", feature = "reqwest", feature = "nats"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use futures_util::StreamExt;
use services_glue::axum::HttpServerLayer;
use services_glue::http::HttpServerConfig;
use services_glue::nats::NatsTelemetry;
use services_glue::reqwest::TracedClient;
use telemetry::Telemetry;
use telemetry::testing::InMemory;
use tracing::Instrument;

fn service(name: &str, sink: &InMemory, sampler: &[(&str, &str)]) -> Telemetry {
    let env = sampler
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>();
    Telemetry::builder(name)
        .with_env(env)
        .with_in_memory(sink)
        .build()
        .unwrap()
}

/// What the callee saw and exported when a caller sampling at `ratio` made
/// one request over HTTP and one message over NATS.
struct Crossed {
    /// The `traceparent` the HTTP handler received.
    http_traceparent: String,
    /// The `traceparent` header of the NATS message.
    nats_traceparent: String,
    /// Names of the callee's exported spans.
    callee_spans: Vec<String>,
    /// Trace ids of the callee's exported spans.
    callee_traces: Vec<String>,
    /// The caller's root trace id.
    caller_trace: String,
    /// Names of the caller's exported spans.
    caller_spans: Vec<String>,
}

fn cross(ratio: &str) -> Crossed {
    let nats_server = testkit::Nats::start().unwrap();
    let nats_url = nats_server.url().to_string();
    let caller_sink = InMemory::new();
    let callee_sink = InMemory::new();
    let caller = service(
        "caller",
        &caller_sink,
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", ratio),
        ],
    );
    let callee = service(
        "callee",
        &callee_sink,
        &[("OTEL_TRACES_SAMPLER", "parentbased_always_on")],
    );

    // The callee's HTTP server, on a thread of its own whose default
    // subscriber is the callee's (every task of its runtime runs there).
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let callee_dispatch = callee.dispatch().clone();
    let callee_meter = callee.meter();
    let server = std::thread::spawn(move || {
        let _default = tracing::dispatcher::set_default(&callee_dispatch);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route(
                    "/screen",
                    get(|headers: HeaderMap| async move {
                        headers
                            .get("traceparent")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default()
                    }),
                )
                .layer(HttpServerLayer::new(
                    HttpServerConfig::new(&callee_meter).with_propagator(common::w3c()),
                ));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Propagators passed, never set globally.
    let caller_nats = NatsTelemetry::new(&caller.meter()).with_propagator(common::w3c());
    let callee_nats = NatsTelemetry::new(&callee.meter()).with_propagator(common::w3c());
    let client =
        TracedClient::new(reqwest::Client::new(), &caller.meter()).with_propagator(common::w3c());
    let (caller_trace, http_traceparent, message) =
        tracing::dispatcher::with_default(caller.dispatch(), || {
            rt.block_on(async {
                let nats = async_nats::connect(&nats_url).await.unwrap();
                let mut sub = nats.subscribe("screen.requests").await.unwrap();
                nats.flush().await.unwrap();
                let root = tracing::info_span!("accept_payment");
                let caller_trace = {
                    use telemetry::opentelemetry::trace::TraceContextExt as _;
                    use telemetry::tracing_opentelemetry::OpenTelemetrySpanExt as _;
                    root.context().span().span_context().trace_id().to_string()
                };
                let (http_traceparent, message) = async {
                    // A step under the root: the client spans are under it.
                    let http_traceparent = async {
                        let req = client
                            .inner()
                            .get(format!("http://{addr}/screen"))
                            .build()
                            .unwrap();
                        client.execute(req).await.unwrap().text().await.unwrap()
                    }
                    .instrument(tracing::info_span!("screen_party"))
                    .await;
                    caller_nats
                        .publish(&nats, "screen.requests", "{}".into())
                        .await
                        .unwrap();
                    let message = tokio::time::timeout(Duration::from_secs(5), sub.next())
                        .await
                        .unwrap()
                        .unwrap();
                    (http_traceparent, message)
                }
                .instrument(root)
                .await;
                (caller_trace, http_traceparent, message)
            })
        });
    // The callee processes the message under its own subscriber.
    tracing::dispatcher::with_default(callee.dispatch(), || {
        let processing = callee_nats.process(&message);
        processing.in_scope(|| tracing::info_span!("screen").in_scope(|| {}));
        processing.finish(Ok::<(), String>(()));
    });
    let nats_traceparent = message
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();

    stop_tx.send(()).unwrap();
    server.join().unwrap();
    caller.shutdown().unwrap();
    callee.shutdown().unwrap();
    let callee_exported = callee_sink.spans();
    Crossed {
        http_traceparent,
        nats_traceparent,
        callee_spans: callee_exported.iter().map(|s| s.name.clone()).collect(),
        callee_traces: callee_exported.iter().map(|s| s.trace_id.clone()).collect(),
        caller_trace,
        caller_spans: caller_sink.spans().iter().map(|s| s.name.clone()).collect(),
    }
}

#[test]
fn an_unsampled_caller_keeps_every_callee_unsampled() {
    let c = cross("0");
    for (hop, traceparent) in [("http", &c.http_traceparent), ("nats", &c.nats_traceparent)] {
        let parts: Vec<_> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{hop}: {traceparent:?}");
        assert_eq!(parts[1], c.caller_trace, "{hop}: the caller's trace");
        assert_eq!(parts[3], "00", "{hop}: not sampled");
    }
    assert!(c.caller_spans.is_empty(), "{:?}", c.caller_spans);
    // The callee would sample a trace of its own: it records nothing.
    assert!(c.callee_spans.is_empty(), "{:?}", c.callee_spans);
}

#[test]
fn a_sampled_caller_gets_every_callee_span_in_its_trace() {
    let c = cross("1");
    for traceparent in [&c.http_traceparent, &c.nats_traceparent] {
        assert!(traceparent.ends_with("-01"), "{traceparent}");
        assert!(traceparent.contains(&c.caller_trace), "{traceparent}");
    }
    let mut callee = c.callee_spans.clone();
    callee.sort();
    assert_eq!(callee, ["GET /screen", "process screen.requests", "screen"]);
    assert!(c.callee_traces.iter().all(|t| *t == c.caller_trace));
    for name in ["accept_payment", "screen_party", "publish screen.requests"] {
        assert!(
            c.caller_spans.iter().any(|s| s == name),
            "{name}: {:?}",
            c.caller_spans
        );
    }
}
