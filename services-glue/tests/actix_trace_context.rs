//! W3C Trace Context header by header through a real actix-web service
//! (`HttpServerMiddleware`) whose handler calls a raw recording server with
//! `TracedClient`. actix runs handlers on its own worker threads, so this
//! binary installs telemetry globally (it is alone in its process).
#![cfg(all(feature = "actix", feature = "reqwest"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use actix_web::{App, HttpResponse, web};
use services_glue::actix::HttpServerMiddleware;
use services_glue::http::HttpServerConfig;
use services_glue::reqwest::TracedClient;
use telemetry::testing::InMemory;

use common::w3c::*;

struct Case {
    lines: Vec<(&'static str, String)>,
    /// The service is a child of the sender (else it started a new trace).
    joined: bool,
    /// The one `tracestate` line expected downstream, if any.
    tracestate: Option<String>,
}

fn case(lines: &[(&'static str, &str)], joined: bool, tracestate: Option<&str>) -> Case {
    Case {
        lines: lines.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        joined,
        tracestate: tracestate.map(str::to_string),
    }
}

#[test]
fn actix_reads_every_header_line() {
    let thirty_three = members(33);
    let in_lines = |n: usize| -> Vec<(&'static str, String)> {
        let mut lines = vec![("traceparent", PARENT.to_string())];
        lines.extend(
            thirty_three[..n]
                .chunks(10)
                .map(|c| ("tracestate", c.join(","))),
        );
        lines
    };
    let both = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    let cases = vec![
        case(
            &[
                ("traceparent", PARENT),
                ("tracestate", "rojo=00f067aa0ba902b7"),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
            true,
            Some(both),
        ),
        case(
            &[
                ("traceparent", PARENT),
                ("tracestate", ""),
                ("tracestate", "foo=1"),
            ],
            true,
            Some("foo=1"),
        ),
        case(
            &[
                ("traceparent", PARENT),
                ("traceparent", OTHER_PARENT),
                ("tracestate", "foo=1"),
            ],
            false,
            None,
        ),
        case(
            &[("traceparent", PARENT), ("traceparent", PARENT)],
            false,
            None,
        ),
        case(
            &[
                ("traceparent", PARENT),
                ("tracestate", "foo=1,a@vvvvvvvvvvvvvv=1"),
            ],
            true,
            Some("foo=1,a@vvvvvvvvvvvvvv=1"),
        ),
        case(
            &[("traceparent", PARENT), ("tracestate", "foo@@bar=1,bar=2")],
            true,
            Some("foo@@bar=1,bar=2"),
        ),
        case(
            &[("traceparent", PARENT), ("tracestate", "@foo=1,bar=2")],
            true,
            None,
        ),
        case(
            &[("traceparent", PARENT), ("tracestate", "FOO=1")],
            true,
            None,
        ),
        case(&[("traceparent", PARENT)], true, None),
        Case {
            lines: in_lines(32),
            joined: true,
            tracestate: Some(thirty_three[..32].join(",")),
        },
        Case {
            lines: in_lines(33),
            joined: true,
            tracestate: None,
        },
    ];

    let recorder = Recorder::start();
    let sink = InMemory::new();
    // Global: actix runs the handlers on its own worker threads.
    let t = in_memory_builder("actix-payments", &sink)
        .try_init()
        .unwrap();
    let config = HttpServerConfig::new(&t.meter());
    let client = TracedClient::new(
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        &t.meter(),
    );
    let downstream = recorder.addr;
    let actix = common::start_actix!(move || {
        let client = client.clone();
        App::new()
            .wrap(HttpServerMiddleware::new(config.clone()))
            .route(
                "/pay",
                web::get().to(move || {
                    let client = client.clone();
                    async move {
                        let req = client
                            .inner()
                            .get(format!("http://{downstream}/next"))
                            .build()
                            .unwrap();
                        let status = client.execute(req).await.unwrap().status();
                        HttpResponse::Ok().body(status.as_u16().to_string())
                    }
                }),
            )
    });
    let addr = actix.addr;

    let mut downstream_lines = Vec::new();
    for c in &cases {
        let lines: Vec<(&str, &str)> = c.lines.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, raw) = raw_get(addr, "/pay", &lines);
        assert_eq!(code, 200, "{raw}");
        downstream_lines.push(recorder.take_one());
    }
    actix.stop();
    t.shutdown().unwrap();

    let spans = sink.spans();
    for (c, down) in cases.iter().zip(&downstream_lines) {
        // The CLIENT span named in the outgoing traceparent, and its parent:
        // the SERVER span of this request.
        let traceparent = values(down, "traceparent");
        assert_eq!(traceparent.len(), 1, "{:?}: {down:?}", c.lines);
        let (trace, client_id) = ids(traceparent[0]);
        let client = spans.iter().find(|s| s.span_id == client_id).unwrap();
        let server = spans
            .iter()
            .find(|s| Some(&s.span_id) == client.parent_span_id.as_ref())
            .unwrap();
        assert_eq!(server.trace_id, trace);
        if c.joined {
            assert_eq!(trace, PARENT_TRACE, "{:?}", c.lines);
            assert_eq!(server.parent_span_id.as_deref(), Some(PARENT_SPAN));
        } else {
            assert_ne!(trace, PARENT_TRACE, "{:?}", c.lines);
            assert_ne!(trace, ids(OTHER_PARENT).0, "{:?}", c.lines);
            assert_eq!(server.parent_span_id, None, "{:?}", c.lines);
        }
        let expected: Vec<&str> = c.tracestate.iter().map(String::as_str).collect();
        assert_eq!(values(down, "tracestate"), expected, "{:?}", c.lines);
    }
}
