//! Unsampled spans are dropped when created (see `telemetry/src/sampling.rs`);
//! these tests pin what that must not change: sampled traces stay whole,
//! unsampled ones stay out, remote parents decide, contexts still propagate,
//! logs keep their trace ids, and the books stay exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};

use common::Captured;
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceId};
use telemetry::testing::{InMemory, ReceivedSpan};
use telemetry::tracing_opentelemetry::OpenTelemetrySpanExt;
use telemetry::{Signal, SignalStatus, Telemetry};

const REMOTE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REMOTE_SPAN: &str = "00f067aa0ba902b7";

/// Runs `body` under telemetry with `env`, spans and logs in memory, stdout
/// captured; returns what was exported, printed and counted for traces.
fn run<T>(
    env: &[(&str, &str)],
    body: impl FnOnce() -> T,
) -> (T, InMemory, Captured, SignalStatus, SignalStatus) {
    let sink = InMemory::new();
    let stdout = Captured::default();
    let mut vars = common::env(&[
        ("OTEL_METRICS_EXPORTER", "none"),
        ("TELEMETRY_LOG_FORMAT", "json"),
    ]);
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let t = Telemetry::builder("sampling-engine")
        .with_env(vars)
        .with_in_memory(&sink)
        .with_stdout_writer(stdout.clone())
        .build()
        .unwrap();
    let out = tracing::dispatcher::with_default(t.dispatch(), body);
    let health = t.health();
    t.shutdown().unwrap();
    let traces = health.signal(Signal::Traces).unwrap();
    let logs = health.signal(Signal::Logs).unwrap();
    (out, sink, stdout, traces, logs)
}

/// An extracted W3C parent from another process.
fn remote(sampled: bool) -> Context {
    let flags = if sampled { "01" } else { "00" };
    let mut h = http::HeaderMap::new();
    h.insert(
        "traceparent",
        format!("00-{REMOTE_TRACE}-{REMOTE_SPAN}-{flags}")
            .parse()
            .unwrap(),
    );
    telemetry::propagation::extract(&telemetry::propagation::default_propagator(), &h)
}

/// The `traceparent` a span's context would send downstream.
fn traceparent(cx: &Context) -> Option<String> {
    let mut h = http::HeaderMap::new();
    telemetry::propagation::inject(&telemetry::propagation::default_propagator(), cx, &mut h);
    h.get("traceparent")
        .map(|v| v.to_str().unwrap().to_string())
}

fn span_context(span: &tracing::Span) -> SpanContext {
    span.context().span().span_context().clone()
}

/// Whether the SDK's `TraceIdRatioBased(ratio)` samples `trace_id`
/// (opentelemetry_sdk 0.33: the low 63 bits against `ratio * 2^63`).
fn ratio_samples(ratio: f64, trace_id: TraceId) -> bool {
    let low = u64::from_be_bytes(trace_id.to_bytes()[8..].try_into().unwrap());
    (low >> 1) < (ratio * (1u64 << 63) as f64) as u64
}

/// One request: a root with a field, three children with a field each, a
/// grandchild under the second child made with an explicit parent. Returns
/// the root's span context and every child's, as the spans saw them.
fn request(i: i64) -> (SpanContext, Vec<SpanContext>) {
    let root = tracing::info_span!("request", i);
    root.in_scope(|| {
        let mut children = Vec::new();
        for step in 0..3 {
            let child = tracing::info_span!("step", step);
            child.in_scope(|| {
                if step == 1 {
                    let grandchild = tracing::info_span!(parent: &child, "detail");
                    children.push(span_context(&grandchild));
                }
            });
            children.push(span_context(&child));
        }
        (span_context(&root), children)
    })
}

#[test]
fn ratio_sampling_exports_whole_traces_and_nothing_of_the_others() {
    const RATIO: f64 = 0.25;
    let arg = RATIO.to_string();
    let (requests, sink, _, traces, _) = run(
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", &arg),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
        ],
        || (0..200).map(request).collect::<Vec<_>>(),
    );
    let spans = sink.spans();
    let mut by_trace: BTreeMap<String, Vec<&ReceivedSpan>> = BTreeMap::new();
    for s in &spans {
        by_trace.entry(s.trace_id.clone()).or_default().push(s);
    }

    let mut sampled = 0;
    for (root, children) in &requests {
        assert!(root.is_valid());
        // The decision is the SDK's ratio sampler's on the root's trace id.
        assert_eq!(
            root.is_sampled(),
            ratio_samples(RATIO, root.trace_id()),
            "{root:?}"
        );
        for child in children {
            // Children share the root's trace and its decision. Sampled, each
            // has a span id of its own; unsampled, nothing is kept of them and
            // they answer with the dropped root's context.
            assert_eq!(child.trace_id(), root.trace_id());
            assert_eq!(child.is_sampled(), root.is_sampled());
            assert!(child.is_valid());
            assert_eq!(child.span_id() == root.span_id(), !root.is_sampled());
        }
        let exported = by_trace
            .get(&root.trace_id().to_string())
            .map_or(0, Vec::len);
        if root.is_sampled() {
            sampled += 1;
            // The whole trace: root, three steps, the detail; each span with
            // its recorded field and the right parent.
            assert_eq!(exported, 5, "{:?}", by_trace[&root.trace_id().to_string()]);
            let trace = &by_trace[&root.trace_id().to_string()];
            let r = trace.iter().find(|s| s.name == "request").unwrap();
            assert_eq!(r.parent_span_id, None);
            assert_eq!(r.span_id, root.span_id().to_string());
            assert!(r.attributes.i64("i").is_some());
            let steps: Vec<_> = trace.iter().filter(|s| s.name == "step").collect();
            assert_eq!(steps.len(), 3);
            for s in &steps {
                assert_eq!(s.parent_span_id.as_deref(), Some(r.span_id.as_str()));
                assert!(s.attributes.i64("step").is_some(), "{s:?}");
            }
            let detail = trace.iter().find(|s| s.name == "detail").unwrap();
            let second = steps
                .iter()
                .find(|s| s.attributes.i64("step") == Some(1))
                .unwrap();
            assert_eq!(
                detail.parent_span_id.as_deref(),
                Some(second.span_id.as_str())
            );
        } else {
            assert_eq!(exported, 0, "nothing of an unsampled trace is exported");
        }
    }
    assert!(sampled > 0 && sampled < 200, "{sampled} of 200 sampled");
    assert_eq!(by_trace.len(), sampled, "no trace but the sampled ones");
    assert_eq!(spans.len(), sampled * 5);
    // The books: every exported span was counted once, nothing dropped.
    assert_eq!(traces.emitted, spans.len() as u64, "{traces:?}");
    assert_eq!(traces.exported, traces.emitted, "{traces:?}");
    assert_eq!(traces.dropped, 0, "{traces:?}");
}

#[test]
fn a_remote_unsampled_parent_keeps_the_trace_unsampled_and_propagated() {
    let ((server, client, explicit, outgoing), sink, _, traces, _) =
        run(&[("OTEL_TRACES_SAMPLER", "parentbased_always_on")], || {
            let server = tracing::info_span!("server", http.route = "/pay");
            server.set_parent(remote(false)).unwrap();
            let (client, outgoing) = server.in_scope(|| {
                let client = tracing::info_span!("client");
                let outgoing = traceparent(&client.context());
                (span_context(&client), outgoing)
            });
            let explicit = tracing::info_span!(parent: &server, "explicit");
            (
                span_context(&server),
                client,
                span_context(&explicit),
                outgoing,
            )
        });
    assert!(sink.spans().is_empty(), "{:?}", sink.spans());
    assert_eq!(traces.emitted, 0, "{traces:?}");
    // The server span carries the remote trace, unsampled, as a local span of
    // its own.
    assert_eq!(server.trace_id().to_string(), REMOTE_TRACE);
    assert!(!server.is_sampled());
    assert!(!server.is_remote());
    assert_ne!(server.span_id().to_string(), REMOTE_SPAN);
    // Its children, contextual or explicit, are dropped with it and keep no
    // state: they answer with its context, and what they send downstream
    // keeps the trace unsampled.
    for child in [&client, &explicit] {
        assert_eq!(child, &server);
    }
    assert_eq!(
        outgoing.as_deref(),
        Some(format!("00-{REMOTE_TRACE}-{}-00", client.span_id()).as_str())
    );
}

#[test]
fn a_remote_sampled_parent_is_followed_with_the_spans_fields() {
    // Ratio 0: no root of this service is ever sampled, only what the
    // caller sampled is.
    let (_, sink, _, traces, _) = run(
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
        || {
            let server = tracing::info_span!("server", otel.kind = "server", http.route = "/pay");
            server.set_parent(remote(true)).unwrap();
            server.in_scope(|| tracing::info_span!("step", n = 1).in_scope(|| {}));
            tracing::info_span!("own_root").in_scope(|| {
                tracing::info_span!("own_child").in_scope(|| {});
            });
        },
    );
    let spans = sink.spans();
    let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let server = spans.iter().find(|s| s.name == "server").unwrap();
    assert_eq!(server.trace_id, REMOTE_TRACE);
    assert_eq!(server.parent_span_id.as_deref(), Some(REMOTE_SPAN));
    assert_eq!(server.parent_is_remote(), Some(true));
    // Created before `set_parent`, its fields are still there.
    assert_eq!(server.attributes.str("http.route"), Some("/pay"));
    assert_eq!(format!("{:?}", server.kind), "Server");
    let step = spans.iter().find(|s| s.name == "step").unwrap();
    assert_eq!(step.trace_id, REMOTE_TRACE);
    assert_eq!(
        step.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );
    assert_eq!(step.attributes.i64("n"), Some(1));
    assert_eq!(traces.emitted, 2, "{traces:?}");
    assert_eq!(traces.exported, 2, "{traces:?}");
}

#[test]
fn set_parent_still_moves_a_span_created_inside_an_unsampled_trace() {
    // A consumer span made inside a long-lived unsampled span, then given
    // the message's sampled remote parent: it follows the remote parent.
    let ((before, after, in_unsampled), sink, _, _, _) = run(
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
        || {
            let outer = tracing::info_span!("consumer loop");
            outer.in_scope(|| {
                let span = tracing::info_span!("process");
                let before = span.set_parent(remote(true));
                span.in_scope(|| tracing::info_span!("handle").in_scope(|| {}));
                // Once started, the parent is fixed, as for any span.
                let after = span.set_parent(remote(false)).is_err();
                let stays = tracing::info_span!("stays");
                stays.in_scope(|| {});
                (before.is_ok(), after, span_context(&stays))
            })
        },
    );
    assert!(before && after);
    let spans = sink.spans();
    let mut names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["handle", "process"], "{spans:?}");
    for s in &spans {
        assert_eq!(s.trace_id, REMOTE_TRACE);
    }
    let process = spans.iter().find(|s| s.name == "process").unwrap();
    assert_eq!(process.parent_span_id.as_deref(), Some(REMOTE_SPAN));
    // A sibling never re-parented stays in the unsampled local trace.
    assert!(!in_unsampled.is_sampled() && in_unsampled.is_valid());
    assert_ne!(in_unsampled.trace_id().to_string(), REMOTE_TRACE);
}

#[test]
fn always_off_exports_nothing_and_still_propagates() {
    let ((root, child, followed), sink, _, traces, _) =
        run(&[("OTEL_TRACES_SAMPLER", "always_off")], || {
            let root = tracing::info_span!("root");
            let child = root.in_scope(|| span_context(&tracing::info_span!("child")));
            // `always_off` ignores the parent: a sampled caller changes nothing.
            let followed = tracing::info_span!("server");
            followed.set_parent(remote(true)).unwrap();
            followed.in_scope(|| {});
            (span_context(&root), child, span_context(&followed))
        });
    assert!(sink.spans().is_empty());
    assert_eq!(traces.emitted, 0);
    assert!(root.is_valid() && !root.is_sampled());
    assert_eq!(child.trace_id(), root.trace_id());
    assert!(child.is_valid() && !child.is_sampled());
    assert_eq!(followed.trace_id().to_string(), REMOTE_TRACE);
    assert!(!followed.is_sampled());
}

#[test]
fn logs_inside_spans_keep_trace_ids_sampled_or_not() {
    let ((sampled, unsampled), sink, stdout, _, logs) = run(
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
        || {
            let event_in = |parent: Context, label: &str| {
                let server = tracing::info_span!("server");
                server.set_parent(parent).unwrap();
                server.in_scope(|| {
                    let step = tracing::info_span!("step");
                    step.in_scope(|| tracing::info!(label, "inside"));
                    span_context(&step)
                })
            };
            let sampled = event_in(remote(true), "sampled");
            // Another trace id for the unsampled one: one of this service's
            // own roots (ratio 0: never sampled).
            let unsampled = tracing::info_span!("own_root").in_scope(|| {
                let step = tracing::info_span!("step");
                step.in_scope(|| tracing::info!(label = "unsampled", "inside"));
                span_context(&step)
            });
            (sampled, unsampled)
        },
    );
    assert!(sampled.is_sampled() && !unsampled.is_sampled());
    let exported_step = sink.spans().into_iter().find(|s| s.name == "step").unwrap();
    assert_eq!(exported_step.span_id, sampled.span_id().to_string());

    // OTLP log records: both events, each with its span's trace and span ids.
    let records = sink.logs();
    let by_label: HashMap<_, _> = records
        .iter()
        .filter_map(|r| Some((r.attributes.str("label")?.to_string(), r)))
        .collect();
    assert_eq!(by_label.len(), 2, "{records:?}");
    for (label, sc) in [("sampled", &sampled), ("unsampled", &unsampled)] {
        let r = by_label[label];
        assert_eq!(r.trace_id, Some(sc.trace_id().to_string()), "{label}");
        assert_eq!(r.span_id, Some(sc.span_id().to_string()), "{label}");
    }
    assert_eq!(logs.emitted, 2, "{logs:?}");
    assert_eq!(logs.exported, 2, "{logs:?}");

    // Stdout JSON lines: the same.
    let lines = stdout.json_lines();
    for (label, sc) in [("sampled", &sampled), ("unsampled", &unsampled)] {
        let line = lines
            .iter()
            .find(|l| l["fields"]["label"] == label)
            .unwrap_or_else(|| panic!("no stdout line for {label}: {lines:?}"));
        assert_eq!(line["message"], "inside");
        assert_eq!(line["span"], "step");
        assert_eq!(line["trace_id"], sc.trace_id().to_string(), "{label}");
        assert_eq!(line["span_id"], sc.span_id().to_string(), "{label}");
    }
}

#[test]
fn what_is_created_under_an_unsampled_span_stays_unsampled_wherever_it_runs() {
    let ((root, in_scope, in_task, joined), sink, _, traces, _) = run(
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
        || {
            let root = tracing::info_span!("request");
            let child = root.in_scope(|| tracing::info_span!("step"));
            let in_scope =
                root.in_scope(|| child.in_scope(|| span_context(&tracing::info_span!("io"))));
            // As a task that entered only the child (its parent not
            // entered, no OpenTelemetry context current): still unsampled,
            // in the same trace, and it propagates so.
            let in_task = child.in_scope(|| {
                let spawned = tracing::info_span!("spawned");
                spawned.in_scope(|| {});
                traceparent(&spawned.context())
            });
            // A sampled context made current inside the unsampled trace
            // parents what is created there.
            let joined = root.in_scope(|| {
                let _caller = remote(true).attach();
                let span = tracing::info_span!("joined");
                span.in_scope(|| {});
                span_context(&span)
            });
            (span_context(&root), in_scope, in_task, joined)
        },
    );
    assert!(root.is_valid() && !root.is_sampled());
    assert_eq!(in_scope.trace_id(), root.trace_id());
    assert!(!in_scope.is_sampled());
    assert_eq!(
        in_task.as_deref(),
        Some(format!("00-{}-{}-00", root.trace_id(), root.span_id()).as_str())
    );
    assert!(joined.is_sampled());
    assert_eq!(joined.trace_id().to_string(), REMOTE_TRACE);
    let names: Vec<_> = sink.spans().iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["joined"]);
    assert_eq!(traces.emitted, 1, "{traces:?}");
}

#[test]
fn a_root_given_an_empty_incoming_context_is_sampled_at_the_ratio() {
    // A gRPC or NATS server sets the parent it extracted from each request;
    // a request without `traceparent` gives an empty one. The root keeps the
    // decision drawn for it at creation: a second draw would sample
    // 1 - (1 - r)^2 of such requests (0.75 at r = 0.5), not r.
    const REQUESTS: usize = 1000;
    let (contexts, sink, _, _, _) = run(
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ],
        || {
            (0..REQUESTS)
                .map(|_| {
                    let server = tracing::info_span!(parent: None, "server");
                    let incoming = telemetry::propagation::extract(
                        &telemetry::propagation::default_propagator(),
                        &http::HeaderMap::new(),
                    );
                    server.set_parent(incoming).unwrap();
                    server.in_scope(|| span_context(&tracing::Span::current()))
                })
                .collect::<Vec<_>>()
        },
    );
    let exported: std::collections::HashSet<String> =
        sink.spans().iter().map(|s| s.trace_id.clone()).collect();
    let mut sampled = 0;
    for sc in &contexts {
        assert_eq!(sc.is_sampled(), ratio_samples(0.5, sc.trace_id()), "{sc:?}");
        assert_eq!(
            exported.contains(&sc.trace_id().to_string()),
            sc.is_sampled()
        );
        sampled += usize::from(sc.is_sampled());
    }
    // Binomial(1000, 0.5): 500 ± 16; a second draw gives 750 ± 14.
    assert!(
        (400..600).contains(&sampled),
        "{sampled} of {REQUESTS} sampled"
    );
}
