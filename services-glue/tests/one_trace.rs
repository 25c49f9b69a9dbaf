//! One payment, one trace, every hop: an HTTP request into an axum service
//! that calls an actix-web service over reqwest, which publishes on NATS,
//! whose consumer queries PostgreSQL and answers over gRPC. Real servers on
//! loopback (nats-server, PostgreSQL); telemetry installed globally because
//! actix-web runs its own worker threads (this binary holds only this test).
#![cfg(all(
    feature = "axum",
    feature = "actix",
    feature = "reqwest",
    feature = "nats",
    feature = "sqlx",
    feature = "grpc"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use services_glue::db::DbTelemetry;
use services_glue::grpc::{GrpcConfig, GrpcLayer};
use services_glue::http::HttpServerConfig;
use services_glue::nats::NatsTelemetry;
use services_glue::reqwest::TracedClient;
use telemetry::Telemetry;
use telemetry::testing::{InMemory, ReceivedSpan, SpanKind};

struct Settlement;

#[tonic::async_trait]
impl TraceService for Settlement {
    async fn export(
        &self,
        _request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

const INSERT: &str = "INSERT INTO obligations (id, amount) VALUES ($1, $2)";

#[test]
fn one_trace_across_http_nats_postgres_and_grpc() {
    let nats_server = testkit::Nats::start().unwrap();
    let pg = testkit::Postgres::start().unwrap();
    let sink = InMemory::new();
    let t = Telemetry::builder("deltran")
        .with_in_memory(&sink)
        .try_init()
        .unwrap();
    let meter = t.meter();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Settlement gRPC server.
    let grpc_listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let grpc_addr = grpc_listener.local_addr().unwrap();
    let grpc_server = tonic::transport::Server::builder()
        .layer(GrpcLayer::new(GrpcConfig::server(&meter)))
        .add_service(TraceServiceServer::new(Settlement))
        .serve_with_incoming(futures_util::stream::unfold(
            grpc_listener,
            |l| async move { Some((l.accept().await.map(|(s, _)| s), l)) },
        ));
    rt.spawn(grpc_server);

    // NATS consumer: process, write to PostgreSQL, answer over gRPC.
    let nats = NatsTelemetry::new(&meter);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let (nats, meter, url, pg_url) = (nats.clone(), meter.clone(), nats_server.url(), pg.url());
        let client = rt.block_on(async_nats::connect(url)).unwrap();
        let mut sub = rt
            .block_on(client.subscribe("obligations.created"))
            .unwrap();
        rt.block_on(client.flush()).unwrap();
        rt.spawn(async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&pg_url)
                .await
                .unwrap();
            sqlx::query("CREATE TABLE obligations (id TEXT, amount BIGINT)")
                .execute(&pool)
                .await
                .unwrap();
            let db = DbTelemetry::new(&meter, "postgresql");
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut settlement = TraceServiceClient::new(
                tower::ServiceBuilder::new()
                    .layer(GrpcLayer::new(GrpcConfig::client(&meter)))
                    .service(channel),
            );
            let msg = sub.next().await.unwrap();
            let processing = nats.process(&msg);
            let work = async {
                db.run(
                    INSERT,
                    sqlx::query(INSERT)
                        .bind("ob-1")
                        .bind(1250_i64)
                        .execute(&pool),
                )
                .await
                .unwrap();
                settlement
                    .export(ExportTraceServiceRequest::default())
                    .await
                    .unwrap();
            };
            tracing::Instrument::instrument(work, processing.span().clone()).await;
            processing.finish(Ok::<(), String>(()));
            done_tx.send(()).unwrap();
        });
    }

    // actix-web obligation service: publishes on NATS.
    let (tx, rx) = std::sync::mpsc::channel();
    let actix_config = HttpServerConfig::new(&meter);
    let (actix_nats, nats_url) = (nats.clone(), nats_server.url());
    let actix_thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let client = async_nats::connect(nats_url).await.unwrap();
            let srv = actix_web::HttpServer::new(move || {
                let (client, nats) = (client.clone(), actix_nats.clone());
                actix_web::App::new()
                    .wrap(services_glue::actix::HttpServerMiddleware::new(
                        actix_config.clone(),
                    ))
                    .route(
                        "/obligations",
                        actix_web::web::post().to(move || {
                            let (client, nats) = (client.clone(), nats.clone());
                            async move {
                                nats.publish(&client, "obligations.created", "{}".into())
                                    .await
                                    .unwrap();
                                actix_web::HttpResponse::Accepted().finish()
                            }
                        }),
                    )
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .unwrap();
            let addr = srv.addrs()[0];
            let srv = srv.run();
            tx.send((addr, srv.handle())).unwrap();
            srv.await.unwrap();
        })
    });
    let (actix_addr, actix_handle) = rx.recv().unwrap();

    // axum gateway: calls the obligation service over reqwest.
    let client = TracedClient::new(reqwest::Client::new(), &meter);
    let app = axum::Router::new()
        .route(
            "/payments",
            axum::routing::post(move || {
                let client = client.clone();
                async move {
                    let req = client
                        .inner()
                        .post(format!("http://{actix_addr}/obligations"))
                        .build()
                        .unwrap();
                    client
                        .execute(req)
                        .await
                        .unwrap()
                        .status()
                        .as_u16()
                        .to_string()
                }
            }),
        )
        .layer(services_glue::axum::HttpServerLayer::new(
            HttpServerConfig::new(&meter),
        ));
    let gateway = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let gateway_addr = gateway.local_addr().unwrap();
    rt.spawn(async move { axum::serve(gateway, app).await.unwrap() });

    // One payment from outside (no incoming trace context).
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{gateway_addr}/payments"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert_eq!(status, "202");
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("consumer finished");

    actix_web::rt::System::new().block_on(actix_handle.stop(true));
    actix_thread.join().unwrap();
    drop(rt);
    t.shutdown().unwrap();

    let spans = sink.spans();
    let find = |name: &str, kind: SpanKind| -> &ReceivedSpan {
        spans
            .iter()
            .find(|s| s.name == name && s.kind == kind)
            .unwrap_or_else(|| {
                panic!(
                    "no {kind:?} span {name}: {:?}",
                    spans.iter().map(|s| (&s.name, &s.kind)).collect::<Vec<_>>()
                )
            })
    };
    let grpc_name = "opentelemetry.proto.collector.trace.v1.TraceService/Export";
    let chain = [
        find("POST /payments", SpanKind::Server),
        find("POST", SpanKind::Client),
        find("POST /obligations", SpanKind::Server),
        find("publish obligations.created", SpanKind::Producer),
        find("process obligations.created", SpanKind::Consumer),
    ];
    assert_eq!(
        chain[0].parent_span_id, None,
        "the gateway span is the root"
    );
    for pair in chain.windows(2) {
        assert_eq!(
            pair[1].parent_span_id.as_ref(),
            Some(&pair[0].span_id),
            "{} -> {}",
            pair[0].name,
            pair[1].name
        );
    }
    let process = chain[4];
    let insert = find("INSERT obligations", SpanKind::Client);
    let grpc_client = find(grpc_name, SpanKind::Client);
    let grpc_server = find(grpc_name, SpanKind::Server);
    assert_eq!(insert.parent_span_id.as_ref(), Some(&process.span_id));
    assert_eq!(grpc_client.parent_span_id.as_ref(), Some(&process.span_id));
    assert_eq!(
        grpc_server.parent_span_id.as_ref(),
        Some(&grpc_client.span_id)
    );
    let trace_ids: HashSet<_> = chain
        .iter()
        .chain([&insert, &grpc_client, &grpc_server])
        .map(|s| s.trace_id.as_str())
        .collect();
    assert_eq!(trace_ids.len(), 1, "one trace id across every hop");

    let metrics = sink.metrics();
    let names: HashSet<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    for metric in [
        "http.server.request.duration",
        "http.client.request.duration",
        "messaging.client.sent.messages",
        "messaging.client.consumed.messages",
        "messaging.process.duration",
        "db.client.operation.duration",
        "rpc.client.call.duration",
        "rpc.server.call.duration",
    ] {
        assert!(names.contains(metric), "{metric} missing: {names:?}");
    }
}
