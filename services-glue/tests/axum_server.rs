//! The axum layer against a real axum server on loopback, asserted through
//! telemetry's in-memory harness.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use services_glue::axum::HttpServerLayer;
use services_glue::http::HttpServerConfig;
use services_glue::propagation::Propagator;
use telemetry::Telemetry;
use telemetry::testing::{InMemory, MetricData, SpanKind, SpanStatus, find_metric};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn app(config: HttpServerConfig) -> Router {
    Router::new()
        .route(
            "/payments/{id}",
            get(|| async { "paid" }).post(|| async { StatusCode::CREATED }),
        )
        .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/stream",
            get(|| async { axum::body::Body::from_stream(slow_stream()) }),
        )
        .layer(HttpServerLayer::new(config))
}

/// How long [`slow_stream`] pauses between its two chunks.
const STREAM_PAUSE: std::time::Duration = std::time::Duration::from_millis(300);

/// A response body whose head is ready at once and whose second chunk
/// comes [`STREAM_PAUSE`] later.
fn slow_stream() -> impl futures_util::Stream<Item = Result<&'static str, std::io::Error>> {
    futures_util::stream::unfold(0u8, |i| async move {
        match i {
            0 => Some((Ok("first-chunk "), 1)),
            1 => {
                tokio::time::sleep(STREAM_PAUSE).await;
                Some((Ok("last-chunk"), 2))
            }
            _ => None,
        }
    })
}

/// Sends raw HTTP/1.1 requests so nothing but the server adds telemetry.
async fn send(addr: std::net::SocketAddr, method: &str, path: &str, extra: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf[9..12].parse().unwrap();
    (status, buf)
}

fn with_server<F, Fut>(sink: &InMemory, f: F)
where
    F: FnOnce(std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let t = Telemetry::builder("axum-engine")
        .with_in_memory(sink)
        .build()
        .unwrap();
    let config = HttpServerConfig::new(&t.meter())
        .with_traceresponse(true)
        // Passed, never set globally: the global propagator stays a no-op.
        .with_propagator(Propagator::new(telemetry::propagation::default_propagator()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server =
                tokio::spawn(async move { axum::serve(listener, app(config)).await.unwrap() });
            f(addr).await;
            server.abort();
        })
    });
    t.shutdown().unwrap();
}

#[test]
fn spans_follow_the_conventions() {
    let sink = InMemory::new();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    with_server(&sink, |addr| async move {
        let (code, raw) = send(
            addr,
            "GET",
            // A marker nothing masks: if the query reached a span, it shows.
            "/payments/123?marker=qs-leak-marker",
            &format!("traceparent: {parent}\r\n"),
        )
        .await;
        assert_eq!(code, 200);
        assert!(
            raw.to_lowercase()
                .contains("traceresponse: 00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        assert_eq!(send(addr, "GET", "/fail", "").await.0, 503);
        assert_eq!(send(addr, "GET", "/missing", "").await.0, 404);
        assert_eq!(send(addr, "GET", "/no/such/route", "").await.0, 404);
        assert_eq!(send(addr, "PURGE", "/payments/9", "").await.0, 405);
        assert_eq!(send(addr, "GET", "/health", "").await.0, 200);
    });
    let spans = sink.spans();
    let by_name = |n: &str| spans.iter().filter(|s| s.name == n).collect::<Vec<_>>();

    let paid = by_name("GET /payments/{id}");
    assert_eq!(
        paid.len(),
        1,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let paid = paid[0];
    assert_eq!(paid.kind, SpanKind::Server);
    assert_eq!(paid.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(paid.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(paid.attributes.str("http.route"), Some("/payments/{id}"));
    assert_eq!(paid.attributes.str("http.request.method"), Some("GET"));
    assert_eq!(paid.attributes.i64("http.response.status_code"), Some(200));
    assert!(
        spans.iter().all(|s| !s.name.contains("qs-leak-marker")
            && !common::mentions(&s.attributes, "qs-leak-marker")),
        "query strings never land in spans: {spans:?}"
    );

    let fail = by_name("GET /fail")[0];
    assert!(
        matches!(fail.status, SpanStatus::Error(_)),
        "5xx is an error"
    );
    assert_eq!(fail.attributes.str("error.type"), Some("503"));
    let missing = by_name("GET /missing")[0];
    assert!(
        !matches!(missing.status, SpanStatus::Error(_)),
        "4xx is not a server error"
    );

    // Unmatched path: method only, no route attribute, no raw path anywhere.
    let unmatched = by_name("GET");
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].attributes.get("http.route"), None);
    // Unknown method.
    assert_eq!(by_name("_OTHER /payments/{id}").len(), 1);
    // Health is not traced.
    assert!(spans.iter().all(|s| !s.name.contains("health")));
}

#[test]
fn ten_thousand_raw_paths_keep_series_bounded() {
    let sink = InMemory::new();
    with_server(&sink, |addr| async move {
        for i in 0..10_000u32 {
            let path = if i % 2 == 0 {
                format!("/payments/{i}")
            } else {
                format!("/random/{i}/x")
            };
            let method = ["GET", "POST", "BREW", "get"][(i % 4) as usize];
            send(addr, method, &path, "").await;
        }
    });
    let metrics = sink.metrics();
    let duration = find_metric(&metrics, "http.server.request.duration").expect("metrics exported");
    let series: HashSet<String> = duration
        .histogram_points()
        .iter()
        .map(|p| common::series_key(&p.attributes))
        .collect();
    assert!(!series.is_empty());
    assert!(series.len() <= 8, "{} series: {series:?}", series.len());
    assert!(series.iter().all(|s| !s.contains("/random/")));
}

/// The span and `http.server.request.duration` end when the response body
/// does: a body still streaming after its head is sent counts in full.
#[test]
fn slow_streaming_body_counts_in_span_and_duration() {
    let sink = InMemory::new();
    with_server(&sink, |addr| async move {
        let (code, raw) = send(addr, "GET", "/stream", "").await;
        assert_eq!(code, 200);
        assert!(raw.contains("last-chunk"), "the whole body arrived: {raw}");
    });
    let spans = sink.spans();
    let stream = spans
        .iter()
        .find(|s| s.name == "GET /stream")
        .expect("a span for /stream");
    let span_time = std::time::Duration::from_nanos(
        stream
            .end_unix_nanos
            .checked_sub(stream.start_unix_nanos)
            .expect("the span ends after it starts"),
    );
    assert!(
        span_time >= STREAM_PAUSE,
        "the span ended before the body did: {span_time:?}"
    );

    let metrics = sink.metrics();
    let duration = find_metric(&metrics, "http.server.request.duration").expect("metrics exported");
    assert!(
        matches!(duration.data, MetricData::Histogram { .. }),
        "http.server.request.duration is a histogram: {duration:?}"
    );
    let sums: Vec<f64> = duration
        .histogram_points()
        .iter()
        .filter(|p| p.attributes.str("http.route") == Some("/stream"))
        .map(|p| p.sum.expect("a histogram point carries its sum"))
        .collect();
    assert_eq!(sums.len(), 1, "one /stream series: {sums:?}");
    assert!(
        sums[0] >= STREAM_PAUSE.as_secs_f64(),
        "the duration ended before the body did: {}s",
        sums[0]
    );
}

/// `http.server.request.body.size` is recorded per method and scheme, for
/// known and unknown (`_OTHER`) methods alike.
#[test]
fn request_body_sizes_per_method() {
    let sink = InMemory::new();
    with_server(&sink, |addr| async move {
        for body in ["0123456789", "012345678901234567890123456789"] {
            let extra = format!("content-length: {}\r\n\r\n{body}", body.len());
            assert_eq!(send(addr, "POST", "/payments/7", &extra).await.0, 201);
        }
        send(
            addr,
            "BREW",
            "/payments/7",
            "content-length: 5\r\n\r\nhello",
        )
        .await;
    });
    let metrics = sink.metrics();
    let sizes = find_metric(&metrics, "http.server.request.body.size").expect("recorded");
    let mut points: Vec<(String, u64, Option<f64>)> = sizes
        .histogram_points()
        .iter()
        .map(|p| (common::series_key(&p.attributes), p.count, p.sum))
        .collect();
    points.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        points,
        vec![
            (
                "http.request.method=POST,url.scheme=http".to_string(),
                2,
                Some(40.0)
            ),
            (
                "http.request.method=_OTHER,url.scheme=http".to_string(),
                1,
                Some(5.0)
            ),
        ]
    );
}
