//! The gRPC layers on a real tonic server and client over loopback, using
//! the OTLP TraceService that opentelemetry-proto generates (no protoc).
#![cfg(feature = "grpc")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use services_glue::grpc::{GrpcConfig, GrpcLayer};
use telemetry::testing::{MetricData, ReceivedSpan, SpanKind, SpanStatus, find_metric};
use tracing::Instrument;

struct Settlement;

#[tonic::async_trait]
impl TraceService for Settlement {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        tracing::info!("settling");
        if request.get_ref().resource_spans.is_empty() {
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        } else {
            Err(tonic::Status::unavailable("ledger down"))
        }
    }
}

#[test]
fn client_and_server_spans_metrics_and_status() {
    let sink = common::run_in_telemetry("grpc-engine", |meter| async move {
        let (_addr, server, channel) = settlement_server(&meter).await;
        let layered = tower::ServiceBuilder::new()
            .layer(GrpcLayer::new(
                GrpcConfig::client(&meter).with_propagator(common::w3c()),
            ))
            .service(channel);
        let mut client = TraceServiceClient::new(layered);
        async {
            client
                .export(ExportTraceServiceRequest::default())
                .await
                .unwrap();
            let failing = ExportTraceServiceRequest {
                resource_spans: vec![Default::default()],
            };
            let err = client.export(failing).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unavailable);
        }
        .instrument(tracing::info_span!("settle_batch"))
        .await;
        server.abort();
    });

    let spans = sink.spans();
    let name = "opentelemetry.proto.collector.trace.v1.TraceService/Export";
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && s.kind == SpanKind::Client)
        .collect();
    let servers: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && s.kind == SpanKind::Server)
        .collect();
    assert_eq!(
        (clients.len(), servers.len()),
        (2, 2),
        "{:?}",
        spans.iter().map(|s| (&s.name, &s.kind)).collect::<Vec<_>>()
    );
    let root = spans.iter().find(|s| s.name == "settle_batch").unwrap();
    for server in &servers {
        let client = clients
            .iter()
            .find(|c| Some(&c.span_id) == server.parent_span_id.as_ref())
            .expect("server is the client's child");
        assert_eq!(client.parent_span_id.as_ref(), Some(&root.span_id));
    }
    let errors = |v: &[&ReceivedSpan]| {
        v.iter()
            .filter(|s| matches!(s.status, SpanStatus::Error(_)))
            .count()
    };
    assert_eq!(errors(&clients), 1);
    assert_eq!(errors(&servers), 1, "UNAVAILABLE is a server error");
    assert!(
        servers
            .iter()
            .any(|s| s.attributes.i64("rpc.grpc.status_code") == Some(14)),
        "{servers:?}"
    );
    assert!(
        servers
            .iter()
            .any(|s| s.attributes.i64("rpc.grpc.status_code") == Some(0)),
        "{servers:?}"
    );
    assert_eq!(servers[0].attributes.str("rpc.method"), Some("Export"));
    let settling = sink
        .logs()
        .into_iter()
        .find(|l| l.body.as_deref().is_some_and(|b| b.contains("settling")))
        .unwrap();
    let settling_span = settling.span_id.as_ref().expect("the log carries its span");
    assert!(
        servers.iter().any(|s| &s.span_id == settling_span),
        "logged inside a server span: {settling:?}"
    );

    let metrics = sink.metrics();
    let calls = |name: &str| {
        find_metric(&metrics, name).map(|m| {
            assert!(
                matches!(m.data, MetricData::Histogram { .. }),
                "{name} is a histogram: {m:?}"
            );
            m.histogram_points().iter().map(|p| p.count).sum::<u64>()
        })
    };
    assert_eq!(calls("rpc.server.call.duration"), Some(2));
    assert_eq!(calls("rpc.client.call.duration"), Some(2));
}

/// 10,000 calls to distinct methods the server does not have: the server
/// names them all `_OTHER` (they answer UNIMPLEMENTED), the client keeps at
/// most its budget of distinct methods, and the real method keeps its name.
#[test]
fn ten_thousand_unknown_methods_stay_bounded() {
    const CALLS: usize = 10_000;
    let sink = common::run_in_telemetry("grpc-engine", |meter| async move {
        let (addr, server, channel) = settlement_server(&meter).await;
        let mut real = TraceServiceClient::new(
            tower::ServiceBuilder::new()
                .layer(GrpcLayer::new(
                    GrpcConfig::client(&meter).with_propagator(common::w3c()),
                ))
                .service(channel.clone()),
        );
        real.export(ExportTraceServiceRequest::default())
            .await
            .unwrap();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Outermost first: the path is rewritten before the client layer sees it.
        let rewriting = tower::ServiceBuilder::new()
            .map_request(move |mut req: http::Request<tonic::body::Body>| {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *req.uri_mut() = format!("http://{addr}/probe.Service{i}/Method{i}")
                    .parse()
                    .unwrap();
                req
            })
            .layer(GrpcLayer::new(
                GrpcConfig::client(&meter).with_propagator(common::w3c()),
            ))
            .service(channel);
        let client = TraceServiceClient::new(rewriting);
        use futures_util::StreamExt;
        let unimplemented = futures_util::stream::iter(0..CALLS)
            .map(|_| {
                let mut client = client.clone();
                async move { client.export(ExportTraceServiceRequest::default()).await }
            })
            .buffer_unordered(32)
            .filter(|r| {
                std::future::ready(matches!(r, Err(s) if s.code() == tonic::Code::Unimplemented))
            })
            .count()
            .await;
        assert_eq!(unimplemented, CALLS);
        server.abort();
    });

    let spans = sink.spans();
    let server_names: std::collections::BTreeSet<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(
        server_names,
        [
            "_OTHER",
            "opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ]
        .map(String::from)
        .into()
    );
    let client_names: std::collections::BTreeSet<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client)
        .map(|s| s.name.to_string())
        .collect();
    assert!(client_names.len() <= 202, "{}", client_names.len());
    assert!(client_names.contains("_OTHER"), "{client_names:?}");

    let metrics = sink.metrics();
    let series = |name: &str| {
        find_metric(&metrics, name).map(|m| {
            assert!(
                matches!(m.data, MetricData::Histogram { .. }),
                "{name} is a histogram: {m:?}"
            );
            m.histogram_points().len()
        })
    };
    assert_eq!(
        series("rpc.server.call.duration"),
        Some(2),
        "{:?}",
        find_metric(&metrics, "rpc.server.call.duration")
    );
    let client_series =
        series("rpc.client.call.duration").expect("rpc.client.call.duration exported");
    assert!((2..=202).contains(&client_series), "{client_series}");
}

/// The server layer sets the parent it extracts from every call; a call
/// without `traceparent` gives it none, and its span is sampled at the
/// ratio, drawn once (not again when the span starts).
#[test]
fn calls_without_traceparent_are_sampled_at_the_ratio() {
    const CALLS: usize = 400;
    let sampler = [
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ];
    let sink = common::run_in_telemetry_with("grpc-engine", &sampler, |meter| async move {
        let (_addr, server, channel) = settlement_server(&meter).await;
        // A plain tonic client: no client layer, no `traceparent`.
        let mut client = TraceServiceClient::new(channel);
        for _ in 0..CALLS {
            client
                .export(ExportTraceServiceRequest::default())
                .await
                .unwrap();
        }
        server.abort();
    });
    let servers = sink
        .spans()
        .iter()
        .filter(|s| s.kind == SpanKind::Server && s.parent_span_id.is_none())
        .count();
    // Binomial(400, 0.5): 200 ± 10; drawn twice, 1 - 0.5² of them: 300 ± 9.
    assert!(
        (150..250).contains(&servers),
        "{servers} of {CALLS} sampled"
    );
}

/// The Settlement service on a real tonic server behind the server layer,
/// and a connected channel to it.
async fn settlement_server(
    meter: &opentelemetry::metrics::Meter,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    tonic::transport::Channel,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .layer(GrpcLayer::new(
            GrpcConfig::server(meter).with_propagator(common::w3c()),
        ))
        .add_service(TraceServiceServer::new(Settlement))
        .serve_with_incoming(tokio_stream_listener(listener));
    let server = tokio::spawn(server);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (addr, server, channel)
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}
