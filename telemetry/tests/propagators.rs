//! `OTEL_PROPAGATORS=b3`, `b3multi` and `jaeger`: the headers a configured
//! service writes cross a real HTTP hop (a socket, HTTP/1.1 framing, header
//! case as the wire has it) and continue the trace on the other side; and
//! they interoperate with the OpenTelemetry Rust family's own propagators
//! (`opentelemetry-zipkin`'s B3, `opentelemetry-jaeger-propagator`) both ways.
#![allow(clippy::unwrap_used, clippy::expect_used, deprecated)]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use telemetry::Telemetry;
use telemetry::testing::InMemory;
use telemetry::tracing_opentelemetry::OpenTelemetrySpanExt;

/// One request: answers with the request's header lines as its body.
fn echo_server() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/pay", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = String::from_utf8_lossy(&head).into_owned();
        let _ = conn.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    });
    (url, handle)
}

/// Header lines of an echoed request, names lowercased as HTTP makes them equal.
fn headers_from(echo: &str) -> HashMap<String, String> {
    echo.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn service(name: &str, propagators: &str, sink: &InMemory) -> Telemetry {
    Telemetry::builder(name)
        .with_env(vec![(
            "OTEL_PROPAGATORS".to_string(),
            propagators.to_string(),
        )])
        .with_in_memory(sink)
        .build()
        .unwrap()
}

#[test]
fn each_propagator_carries_the_trace_across_a_real_http_hop() {
    for (propagators, expected_headers) in [
        ("b3", vec!["b3"]),
        (
            "b3multi",
            vec!["x-b3-traceid", "x-b3-spanid", "x-b3-sampled"],
        ),
        ("jaeger", vec!["uber-trace-id"]),
        (
            "tracecontext,b3multi,jaeger",
            vec!["traceparent", "x-b3-traceid", "uber-trace-id"],
        ),
    ] {
        let (client_sink, server_sink) = (InMemory::new(), InMemory::new());
        let client = service("caller", propagators, &client_sink);
        let server = service("callee", propagators, &server_sink);
        let (url, echo) = echo_server();

        // The caller: a span, its context written with the configured propagator.
        let (sent, client_trace, client_span) =
            tracing::dispatcher::with_default(client.dispatch(), || {
                let span = tracing::info_span!("POST /pay");
                let cx = span.context();
                let mut headers = http::HeaderMap::new();
                telemetry::propagation::inject(client.propagator(), &cx, &mut headers);
                let pairs: Vec<(String, String)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
                    .collect();
                let refs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let response = testkit::http_request("GET", &url, &refs, None).unwrap();
                let sc = cx.span().span_context().clone();
                (response.text(), sc.trace_id(), sc.span_id())
            });
        echo.join().unwrap();
        let received = headers_from(&sent);
        for name in &expected_headers {
            assert!(
                received.contains_key(*name),
                "{propagators}: no {name} in {received:?}"
            );
        }

        // The callee: continues the trace from what arrived.
        tracing::dispatcher::with_default(server.dispatch(), || {
            let mut headers = http::HeaderMap::new();
            for (k, v) in &received {
                headers.insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            let parent = telemetry::propagation::extract(server.propagator(), &headers);
            let span = tracing::info_span!("handle /pay");
            span.set_parent(parent).unwrap();
            span.in_scope(|| {});
        });
        client.shutdown().unwrap();
        server.shutdown().unwrap();
        let spans = server_sink.spans();
        let handled = spans.iter().find(|s| s.name == "handle /pay").unwrap();
        assert_eq!(handled.trace_id, client_trace.to_string(), "{propagators}");
        assert_eq!(
            handled.parent_span_id.as_deref(),
            Some(client_span.to_string().as_str()),
            "{propagators}"
        );
        assert_eq!(handled.parent_is_remote(), Some(true));
    }
}

/// A remote sampled context with these ids.
fn remote(trace: &str, span: &str, sampled: bool) -> opentelemetry::Context {
    let sc = opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from_hex(trace).unwrap(),
        opentelemetry::trace::SpanId::from_hex(span).unwrap(),
        if sampled {
            opentelemetry::trace::TraceFlags::SAMPLED
        } else {
            opentelemetry::trace::TraceFlags::default()
        },
        true,
        Default::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(sc)
}

fn ids(cx: &opentelemetry::Context) -> (String, String, bool) {
    let span = cx.span();
    let sc = span.span_context();
    (
        sc.trace_id().to_string(),
        sc.span_id().to_string(),
        sc.is_sampled(),
    )
}

const CASES: [(&str, &str, bool); 3] = [
    ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true),
    (
        "0000000000000000a3ce929d0e0e4736",
        "0000000000000001",
        false,
    ),
    ("ffffffffffffffffffffffffffffffff", "ffffffffffffffff", true),
];

#[test]
fn b3_interoperates_with_the_zipkin_crates_propagator_both_ways() {
    use opentelemetry_zipkin::{B3Encoding, Propagator as ZipkinB3};
    for (ours, theirs) in [
        (
            telemetry::propagation::B3Propagator::single(),
            ZipkinB3::with_encoding(B3Encoding::SingleHeader),
        ),
        (
            telemetry::propagation::B3Propagator::multi(),
            ZipkinB3::with_encoding(B3Encoding::MultipleHeader),
        ),
    ] {
        for (trace, span, sampled) in CASES {
            let cx = remote(trace, span, sampled);
            let mut ours_wrote: HashMap<String, String> = HashMap::new();
            ours.inject_context(&cx, &mut ours_wrote);
            let mut theirs_wrote: HashMap<String, String> = HashMap::new();
            theirs.inject_context(&cx, &mut theirs_wrote);
            // Every header we write, they write the same (their single
            // encoding also writes the X-B3-* headers; the specification's
            // `b3` writes the single header only).
            for (name, value) in &ours_wrote {
                assert_eq!(theirs_wrote.get(name), Some(value), "{name}");
            }
            assert_eq!(
                ids(&theirs.extract(&ours_wrote)),
                (trace.into(), span.into(), sampled)
            );
            assert_eq!(
                ids(&ours.extract(&theirs_wrote)),
                (trace.into(), span.into(), sampled)
            );
        }
    }
}

#[test]
fn jaeger_interoperates_with_the_jaeger_propagator_crate_both_ways() {
    use opentelemetry_jaeger_propagator::Propagator as TheirJaeger;
    // Their crate is built on opentelemetry 0.32: contexts meet as header text.
    use opentelemetry032::propagation::TextMapPropagator as _;
    use opentelemetry032::trace::TraceContextExt as _;
    let ours = telemetry::propagation::JaegerPropagator::new();
    let theirs = TheirJaeger::new();
    for (trace, span, sampled) in CASES {
        let mut ours_wrote: HashMap<String, String> = HashMap::new();
        ours.inject_context(&remote(trace, span, sampled), &mut ours_wrote);
        let their_cx = theirs.extract(&ours_wrote);
        let their_span = their_cx.span();
        let their_sc = their_span.span_context();
        assert_eq!(
            (
                their_sc.trace_id().to_string(),
                their_sc.span_id().to_string(),
                their_sc.is_sampled()
            ),
            (trace.to_string(), span.to_string(), sampled)
        );
        let mut theirs_wrote: HashMap<String, String> = HashMap::new();
        theirs.inject_context(&their_cx, &mut theirs_wrote);
        assert_eq!(ours_wrote, theirs_wrote, "same wire format");
        assert_eq!(
            ids(&ours.extract(&theirs_wrote)),
            (trace.into(), span.into(), sampled)
        );
    }
}
