//! The actix-web middleware against a real actix-web server on loopback.
//! actix runs handlers on its own worker threads, so this binary installs
//! telemetry globally (it is alone in its process).
#![cfg(feature = "actix")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};

use actix_web::{App, HttpResponse, web};
use services_glue::actix::HttpServerMiddleware;
use services_glue::http::HttpServerConfig;
use telemetry::Telemetry;
use telemetry::testing::{InMemory, SpanKind, SpanStatus, find_metric};

fn send(addr: std::net::SocketAddr, method: &str, path: &str, extra: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    (buf[9..12].parse().unwrap(), buf)
}

/// How long [`slow_stream`] pauses between its two chunks.
const STREAM_PAUSE: std::time::Duration = std::time::Duration::from_millis(300);

/// A response body whose head is ready at once and whose second chunk
/// comes [`STREAM_PAUSE`] later.
fn slow_stream() -> impl futures_util::Stream<Item = Result<actix_web::web::Bytes, std::io::Error>>
{
    futures_util::stream::unfold(0u8, |i| async move {
        match i {
            0 => Some((Ok(actix_web::web::Bytes::from_static(b"first-chunk ")), 1)),
            1 => {
                tokio::time::sleep(STREAM_PAUSE).await;
                Some((Ok(actix_web::web::Bytes::from_static(b"last-chunk")), 2))
            }
            _ => None,
        }
    })
}

#[test]
fn actix_requests_follow_the_conventions_and_stay_bounded() {
    let sink = InMemory::new();
    let t = Telemetry::builder("actix-engine")
        .with_in_memory(&sink)
        .try_init()
        .unwrap();
    let config = HttpServerConfig::new(&t.meter()).with_traceresponse(true);

    let actix = common::start_actix!(move || {
        App::new()
            .wrap(HttpServerMiddleware::new(config.clone()))
            .route(
                "/obligations/{id}",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
            .route(
                "/boom",
                web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
            )
            .route("/health", web::get().to(|| async { "ok" }))
            .route(
                "/stream",
                web::get().to(|| async { HttpResponse::Ok().streaming(slow_stream()) }),
            )
    });
    let addr = actix.addr;

    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (code, raw) = send(
        addr,
        "GET",
        // A marker nothing masks: if the query reached a span, it shows.
        "/obligations/77?marker=qs-leak-marker",
        &format!("traceparent: {parent}\r\n"),
    );
    assert_eq!(code, 200);
    assert!(
        raw.to_lowercase()
            .contains("traceresponse: 00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{raw}"
    );
    assert_eq!(send(addr, "GET", "/boom", "").0, 500);
    assert_eq!(send(addr, "GET", "/health", "").0, 200);
    let (code, raw) = send(addr, "GET", "/stream", "");
    assert_eq!(code, 200);
    assert!(raw.contains("last-chunk"), "the whole body arrived: {raw}");
    for i in 0..10_000u32 {
        let method = ["GET", "BREW"][(i % 2) as usize];
        send(addr, method, &format!("/unknown/{i}"), "");
    }
    actix.stop();
    t.shutdown().unwrap();

    let spans = sink.spans();
    let named = |n: &str| spans.iter().filter(|s| s.name == n).collect::<Vec<_>>();
    let ok = named("GET /obligations/{id}");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].kind, SpanKind::Server);
    assert_eq!(ok[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(ok[0].parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert!(matches!(named("GET /boom")[0].status, SpanStatus::Error(_)));
    assert!(spans.iter().all(|s| !s.name.contains("health")));
    assert!(
        spans.iter().all(|s| {
            !s.name.contains("qs-leak-marker") && !common::mentions(&s.attributes, "qs-leak-marker")
        }),
        "query strings never land in spans: {spans:?}"
    );
    // The span ends with the body, not with the response head.
    let stream = named("GET /stream");
    assert_eq!(stream.len(), 1);
    let span_time = std::time::Duration::from_nanos(
        stream[0]
            .end_unix_nanos
            .checked_sub(stream[0].start_unix_nanos)
            .expect("the span ends after it starts"),
    );
    assert!(span_time >= STREAM_PAUSE, "span ended early: {span_time:?}");

    let metrics = sink.metrics();
    let duration = find_metric(&metrics, "http.server.request.duration").expect("metrics exported");
    let mut series = HashSet::new();
    let mut stream_sums = Vec::new();
    for p in duration.histogram_points() {
        if p.attributes.str("http.route") == Some("/stream") {
            stream_sums.push(p.sum.expect("a histogram point carries its sum"));
        }
        series.insert(common::series_key(&p.attributes));
    }
    // Empty would pass the bound below for the wrong reason.
    assert!(!series.is_empty(), "no http.server.request.duration series");
    assert!(series.len() <= 7, "{series:?}");
    assert_eq!(stream_sums.len(), 1, "{stream_sums:?}");
    assert!(
        stream_sums[0] >= STREAM_PAUSE.as_secs_f64(),
        "the duration ended before the body did: {}s",
        stream_sums[0]
    );
    assert!(
        series.iter().all(|s| !s.contains("/unknown/")),
        "{series:?}"
    );
}
