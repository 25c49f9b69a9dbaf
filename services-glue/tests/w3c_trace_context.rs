//! W3C Trace Context header by header, against real servers on loopback:
//! raw HTTP/1.1 requests (so each test controls every header line, repeated
//! ones included) into an axum service with `HttpServerLayer`, whose handler
//! calls a downstream server through `TracedClient`. What the service
//! extracted is asserted on its exported SERVER span; what it propagated, on
//! the raw header lines the downstream received.
#![cfg(all(feature = "axum", feature = "reqwest"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use opentelemetry::metrics::Meter;
use services_glue::axum::HttpServerLayer;
use services_glue::http::HttpServerConfig;
use services_glue::reqwest::TracedClient;
use telemetry::Telemetry;
use telemetry::testing::{InMemory, ReceivedSpan, SpanKind};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use common::w3c::*;

/// `GET /pay` calls `GET http://{downstream}/next` and answers its status.
fn forwarding_app(meter: &Meter, downstream: SocketAddr, traceresponse: bool) -> Router {
    let client = TracedClient::new(
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        meter,
    )
    .with_propagator(common::w3c());
    Router::new()
        .route(
            "/pay",
            get(move || {
                let client = client.clone();
                async move {
                    let req = client
                        .inner()
                        .get(format!("http://{downstream}/next"))
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
        .layer(HttpServerLayer::new(
            HttpServerConfig::new(meter)
                .with_traceresponse(traceresponse)
                .with_propagator(common::w3c()),
        ))
}

/// One request through the service: its SERVER and CLIENT spans and the
/// header lines its downstream call carried.
struct Hop {
    server: ReceivedSpan,
    client: ReceivedSpan,
    downstream: Lines,
}

impl Hop {
    /// The service joined the incoming trace, as a child of the sender.
    fn assert_joined(&self) {
        assert_eq!(self.server.trace_id, PARENT_TRACE);
        assert_eq!(self.server.parent_span_id.as_deref(), Some(PARENT_SPAN));
    }

    /// Exactly one `traceparent` went out: this trace, the CLIENT span.
    fn assert_one_traceparent(&self) {
        let expected = format!("00-{}-{}-01", self.server.trace_id, self.client.span_id);
        assert_eq!(values(&self.downstream, "traceparent"), [expected]);
    }

    fn tracestate_out(&self) -> Vec<&str> {
        values(&self.downstream, "tracestate")
    }
}

fn through_service(lines: &[(&str, &str)]) -> Hop {
    let recorder = Recorder::start();
    let sink = InMemory::new();
    let t = in_memory_telemetry("payments", &sink);
    let served = serve(
        t.dispatch().clone(),
        forwarding_app(&t.meter(), recorder.addr, false),
    );
    let (code, raw) = raw_get(served.addr, "/pay", lines);
    assert_eq!(code, 200, "{raw}");
    drop(served);
    t.shutdown().unwrap();
    let spans = sink.spans();
    let kind = |k: SpanKind| {
        let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind == k).collect();
        assert_eq!(found.len(), 1, "{k:?}: {spans:?}");
        found[0].clone()
    };
    let (server, client) = (kind(SpanKind::Server), kind(SpanKind::Client));
    assert_eq!(client.parent_span_id.as_ref(), Some(&server.span_id));
    let hop = Hop {
        server,
        client,
        downstream: recorder.take_one(),
    };
    hop.assert_one_traceparent();
    hop
}

#[test]
fn two_tracestate_lines_are_one_list() {
    let hop = through_service(&[
        ("traceparent", PARENT),
        ("tracestate", "rojo=00f067aa0ba902b7"),
        ("tracestate", "congo=t61rcWkgMzE"),
    ]);
    hop.assert_joined();
    let both = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    assert_eq!(hop.server.trace_state, both);
    assert_eq!(hop.tracestate_out(), [both]);

    // Empty and whitespace-only lines and members, optional whitespace:
    // members of later lines count as much as the first line's.
    let hop = through_service(&[
        ("traceparent", PARENT),
        ("tracestate", ""),
        ("tracestate", "foo=1"),
        ("tracestate", " bar=2 ,\t, baz=3"),
    ]);
    hop.assert_joined();
    assert_eq!(hop.tracestate_out(), ["foo=1,bar=2,baz=3"]);

    // A key in two lines is a duplicate: the list is invalid and dropped,
    // the trace is still joined.
    let hop = through_service(&[
        ("traceparent", PARENT),
        ("tracestate", "foo=1"),
        ("tracestate", "foo=2"),
    ]);
    hop.assert_joined();
    assert!(hop.tracestate_out().is_empty(), "{:?}", hop.downstream);
}

#[test]
fn duplicated_traceparent_starts_a_new_trace() {
    for second in [PARENT, OTHER_PARENT] {
        let hop = through_service(&[
            ("traceparent", PARENT),
            ("traceparent", second),
            ("tracestate", "foo=1"),
        ]);
        assert_eq!(hop.server.parent_span_id, None, "no remote parent");
        let trace = hop.server.trace_id.clone();
        assert_ne!(trace, PARENT_TRACE);
        assert_ne!(trace, ids(OTHER_PARENT).0);
        // The new trace has no state: the received one is not carried over.
        assert!(hop.tracestate_out().is_empty(), "{:?}", hop.downstream);
    }
}

#[test]
fn tracestate_key_grammar_edge_cases() {
    let key_256 = format!("{}=1", "k".repeat(256));
    let key_257 = format!("{}=1", "k".repeat(257));
    let cases: &[(&str, bool)] = &[
        // 14 characters after `@`: valid, rejected by the 0.33 TraceState.
        ("foo=1,a@vvvvvvvvvvvvvv=1", true),
        // `@` anywhere after the first character (Trace Context Level 2).
        ("foo@@bar=1,bar=2", true),
        ("foo@=1,bar=2", true),
        ("t@vvvvvvvvvvvvvvv=1,1abc=2", true),
        (&key_256, true),
        ("@foo=1,bar=2", false),
        ("FOO=1", false),
        ("foo.bar=1", false),
        ("foo =1", false),
        ("foo=1,bar", false),
        (&key_257, false),
    ];
    for (state, valid) in cases {
        let hop = through_service(&[("traceparent", PARENT), ("tracestate", state)]);
        // A bad tracestate never costs the trace.
        hop.assert_joined();
        if *valid {
            assert_eq!(hop.tracestate_out(), [*state], "{state}");
        } else {
            assert!(
                hop.tracestate_out().is_empty(),
                "{state}: {:?}",
                hop.downstream
            );
        }
    }
    // What the upstream TraceState can hold is on the exported span.
    let hop = through_service(&[
        ("traceparent", PARENT),
        ("tracestate", "foo=1,a@vvvvvvvvvvvvvv=1"),
    ]);
    let foo: Vec<&str> = hop
        .server
        .trace_state
        .split(',')
        .filter_map(|member| member.split_once('='))
        .filter(|(key, _)| *key == "foo")
        .map(|(_, value)| value)
        .collect();
    assert_eq!(foo, ["1"], "{:?}", hop.server.trace_state);
}

#[test]
fn more_than_32_members_are_discarded_and_long_lists_truncated() {
    let m = members(33);
    let lines = |n: usize| -> Vec<String> { m[..n].chunks(10).map(|c| c.join(",")).collect() };
    let mut request = vec![("traceparent", PARENT)];
    let thirty_two = lines(32);
    request.extend(thirty_two.iter().map(|l| ("tracestate", l.as_str())));
    assert_eq!(request.len(), 5, "four tracestate lines");
    let hop = through_service(&request);
    hop.assert_joined();
    assert_eq!(hop.tracestate_out(), [m[..32].join(",")]);

    let mut request = vec![("traceparent", PARENT)];
    let thirty_three = lines(33);
    request.extend(thirty_three.iter().map(|l| ("tracestate", l.as_str())));
    let hop = through_service(&request);
    hop.assert_joined();
    assert!(hop.tracestate_out().is_empty(), "{:?}", hop.downstream);

    // 20 members of 30 characters: 619 characters, past the 512 propagated;
    // whole members are dropped from the end (16 fit in 495).
    let long: Vec<String> = (0..20)
        .map(|i| format!("m{i:02}={}", "z".repeat(26)))
        .collect();
    let hop = through_service(&[("traceparent", PARENT), ("tracestate", &long.join(","))]);
    hop.assert_joined();
    assert_eq!(hop.tracestate_out(), [long[..16].join(",")]);
}

#[test]
fn no_tracestate_means_no_tracestate_line() {
    for lines in [
        vec![("traceparent", PARENT)],
        vec![("traceparent", PARENT), ("tracestate", "")],
        vec![("traceparent", PARENT), ("tracestate", " , ")],
    ] {
        let hop = through_service(&lines);
        hop.assert_joined();
        assert!(
            !hop.downstream.iter().any(|(k, _)| k == "tracestate"),
            "{:?}",
            hop.downstream
        );
    }
    // Nothing incoming: a new trace goes out, still without tracestate.
    let hop = through_service(&[]);
    assert_eq!(hop.server.parent_span_id, None);
    assert!(hop.tracestate_out().is_empty(), "{:?}", hop.downstream);
}

#[test]
fn traced_client_writes_one_tracestate_line_or_none() {
    let recorder = Recorder::start();
    let addr = recorder.addr;
    let sink = common::run_in_telemetry("caller", |meter| async move {
        let client =
            TracedClient::new(reqwest::Client::new(), &meter).with_propagator(common::w3c());
        let call = || async {
            let req = client
                .inner()
                .get(format!("http://{addr}/next"))
                .build()
                .unwrap();
            assert_eq!(client.execute(req).await.unwrap().status(), 200);
        };
        // A new trace: empty tracestate, so no header at all.
        call().instrument(tracing::info_span!("root")).await;
        // A trace joined with a state spread over two lines: one header.
        let mut incoming = http::HeaderMap::new();
        incoming.insert("traceparent", PARENT.parse().unwrap());
        incoming.append("tracestate", "rojo=1".parse().unwrap());
        incoming.append("tracestate", "a@vvvvvvvvvvvvvv=2".parse().unwrap());
        let joined = tracing::info_span!("joined");
        joined
            .set_parent(common::w3c().extract_headers(&incoming))
            .unwrap();
        call().instrument(joined).await;
    });
    let requests = recorder.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(values(&requests[0], "traceparent").len(), 1);
    assert!(
        !requests[0].iter().any(|(k, _)| k == "tracestate"),
        "{:?}",
        requests[0]
    );
    assert_eq!(
        values(&requests[1], "tracestate"),
        ["rojo=1,a@vvvvvvvvvvvvvv=2"]
    );
    let (trace, _) = ids(values(&requests[1], "traceparent")[0]);
    assert_eq!(trace, PARENT_TRACE);
    assert_eq!(
        sink.spans()
            .iter()
            .filter(|s| s.kind == SpanKind::Client)
            .count(),
        2
    );
}

/// client → A (configured by `middle_env`, records nothing) → B (recorded):
/// the incoming trace must reach B, with its state and baggage.
fn chain_through(middle_env: &[(&str, &str)]) {
    let sink_b = InMemory::new();
    let b = in_memory_telemetry("settlement", &sink_b);
    let seen: Arc<Mutex<Vec<Lines>>> = Arc::default();
    let b_app = {
        let seen = Arc::clone(&seen);
        Router::new()
            .route(
                "/next",
                get(move |headers: http::HeaderMap| {
                    let lines = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                        .collect();
                    seen.lock().unwrap().push(lines);
                    async { "ok" }
                }),
            )
            .layer(HttpServerLayer::new(
                HttpServerConfig::new(&b.meter()).with_propagator(common::w3c()),
            ))
    };
    let served_b = serve(b.dispatch().clone(), b_app);

    let env: Vec<(String, String)> = middle_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let a = Telemetry::builder("gateway")
        .with_env(env)
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    assert!(a.tracer_provider().is_none());
    let served_a = serve(
        a.dispatch().clone(),
        forwarding_app(&a.meter(), served_b.addr, true),
    );

    let (code, raw) = raw_get(
        served_a.addr,
        "/pay",
        &[
            ("traceparent", PARENT),
            ("tracestate", "rojo=1"),
            ("tracestate", "a@vvvvvvvvvvvvvv=2"),
            ("baggage", "user=alice"),
        ],
    );
    assert_eq!(code, 200, "{raw}");
    // A has no span of its own to name in a traceresponse.
    assert!(!raw.to_lowercase().contains("traceresponse"), "{raw}");
    // Nothing incoming: A invents nothing, B starts its own trace.
    assert_eq!(raw_get(served_a.addr, "/pay", &[]).0, 200);
    drop(served_a);
    drop(served_b);
    a.shutdown().unwrap();
    b.shutdown().unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        values(&seen[0], "traceparent"),
        [PARENT],
        "passed on unchanged"
    );
    assert_eq!(
        values(&seen[0], "tracestate"),
        ["rojo=1,a@vvvvvvvvvvvvvv=2"]
    );
    assert_eq!(values(&seen[0], "baggage"), ["user=alice"]);
    for name in ["traceparent", "tracestate", "baggage"] {
        assert!(values(&seen[1], name).is_empty(), "{name}: {:?}", seen[1]);
    }

    let spans = sink_b.spans();
    let servers: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), 2, "{spans:?}");
    let joined = servers
        .iter()
        .find(|s| s.trace_id == PARENT_TRACE)
        .expect("the incoming trace id reached B");
    assert_eq!(joined.parent_span_id.as_deref(), Some(PARENT_SPAN));
    let fresh = servers.iter().find(|s| s.trace_id != PARENT_TRACE).unwrap();
    assert_eq!(fresh.parent_span_id, None);
}

#[test]
fn traces_exporter_none_in_the_middle_passes_the_trace_on() {
    chain_through(&[
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
    ]);
}

#[test]
fn sdk_disabled_in_the_middle_passes_the_trace_on() {
    chain_through(&[("OTEL_SDK_DISABLED", "true")]);
}
