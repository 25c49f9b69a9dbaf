//! The environment variables do what they say, observed through the
//! in-memory mode (same pipelines, exporters in memory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use telemetry::Telemetry;
use telemetry::testing::InMemory;
use telemetry::tracing_opentelemetry::OpenTelemetrySpanExt;

fn run(env: &[(&str, &str)], body: impl FnOnce()) -> (InMemory, Telemetry) {
    let sink = InMemory::new();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let t = Telemetry::builder("config-engine")
        .with_env(env)
        .with_in_memory(&sink)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), body);
    t.shutdown().unwrap();
    (sink, t)
}

fn ten_roots() {
    for i in 0..10 {
        tracing::info_span!("root", i).in_scope(|| {});
    }
}

#[test]
fn always_off_and_ratio_zero_export_no_spans() {
    let (sink, t) = run(&[("OTEL_TRACES_SAMPLER", "always_off")], ten_roots);
    assert!(sink.spans().is_empty());
    assert_eq!(
        t.health()
            .signal(telemetry::Signal::Traces)
            .unwrap()
            .emitted,
        0
    );
    let (sink, _) = run(
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
        ten_roots,
    );
    assert!(sink.spans().is_empty());
    let (sink, _) = run(
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1"),
        ],
        ten_roots,
    );
    assert_eq!(sink.spans().len(), 10);
}

#[test]
fn parent_based_follows_a_remote_parent() {
    let remote = |sampled: bool| {
        let flags = if sampled { "01" } else { "00" };
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}")
                .parse()
                .unwrap(),
        );
        telemetry::propagation::extract(&telemetry::propagation::default_propagator(), &h)
    };
    let (sink, _) = run(&[("OTEL_TRACES_SAMPLER", "parentbased_always_off")], || {
        let span = tracing::info_span!("child_of_sampled");
        span.set_parent(remote(true)).unwrap();
        span.in_scope(|| {});
        let span = tracing::info_span!("child_of_unsampled");
        span.set_parent(remote(false)).unwrap();
        span.in_scope(|| {});
        tracing::info_span!("new_root").in_scope(|| {});
    });
    let spans = sink.spans();
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["child_of_sampled"], "parent decides; roots off");
    assert_eq!(spans[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(spans[0].parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(spans[0].parent_is_remote(), Some(true));
}

#[test]
fn attribute_limits_truncate_and_cap() {
    let (sink, _) = run(
        &[
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "8"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3"),
        ],
        || {
            let span = tracing::info_span!(
                "limited",
                note = "0123456789abcdef",
                a = 1,
                b = 2,
                c = 3,
                d = 4
            );
            span.in_scope(|| {});
        },
    );
    let span = &sink.spans()[0];
    // Five fields, three kept: the count limit caps rather than empties.
    assert_eq!(span.attributes.len(), 3, "{:?}", span.attributes);
    assert!(span.dropped_attributes_count >= 2, "{span:?}");
    // `note` is recorded first, so the count limit keeps it, truncated.
    assert_eq!(
        span.attributes.str("note"),
        Some("01234567"),
        "{:?}",
        span.attributes
    );
    // With only the length limit, the value is kept, truncated.
    let (sink, _) = run(&[("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")], || {
        tracing::info_span!("short", note = "abcdefgh").in_scope(|| {});
    });
    assert_eq!(sink.spans()[0].attributes.str("note"), Some("abcd"));
}

#[test]
fn event_and_link_limits_cap_a_long_lived_span() {
    let (sink, _) = run(
        &[
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "2"),
            ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "1"),
            ("OTEL_SPAN_LINK_COUNT_LIMIT", "1"),
        ],
        || {
            let earlier = tracing::info_span!("earlier");
            let later = tracing::info_span!("later");
            let span = tracing::info_span!("busy");
            span.in_scope(|| {
                for i in 0..20 {
                    tracing::info!(i, extra = "x", "tick");
                }
            });
            span.follows_from(&earlier);
            span.follows_from(&later);
        },
    );
    let spans = sink.spans();
    let busy = spans.iter().find(|s| s.name == "busy").unwrap();
    // The first events and link are kept (what is cut is counted on the
    // span, which this model does not show).
    assert_eq!(busy.events.len(), 2, "{busy:?}");
    for event in &busy.events {
        assert_eq!(event.attributes.len(), 1, "{event:?}");
    }
    assert_eq!(busy.links.len(), 1);
    let earlier = spans.iter().find(|s| s.name == "earlier").unwrap();
    assert_eq!(busy.links[0].span_id, earlier.span_id);
}

#[test]
fn spans_after_shutdown_get_no_ids_and_are_neither_queued_nor_counted() {
    let sink = InMemory::new();
    let t = Telemetry::builder("config-engine")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!("before").in_scope(|| {});
    });
    t.shutdown().unwrap();
    let mut after = None;
    tracing::dispatcher::with_default(t.dispatch(), || {
        let span = tracing::info_span!("after");
        span.in_scope(|| {});
        after = Some(span.context().span().span_context().clone());
    });
    // As the SDK's tracer after shutdown: nothing to propagate.
    assert!(!after.unwrap().is_valid());
    let traces = t.health().signal(telemetry::Signal::Traces).unwrap();
    assert_eq!((traces.emitted, traces.dropped), (1, 0), "{traces:?}");
    let names: Vec<_> = sink.spans().iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["before"]);
}

#[test]
fn rust_log_is_the_off_switch_for_spans_and_logs() {
    let (sink, _) = run(&[("RUST_LOG", "warn")], || {
        tracing::info_span!("filtered").in_scope(|| tracing::info!("hidden"));
        tracing::warn_span!("kept").in_scope(|| tracing::warn!("shown"));
    });
    let names: Vec<_> = sink.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["kept"]);
    let logs = sink.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].trace_id.as_deref(),
        Some(sink.spans()[0].trace_id.as_str())
    );
}

#[test]
fn unsigned_fields_arrive_as_integers_where_they_fit() {
    let (sink, _) = run(&[], || {
        let span = tracing::info_span!("settle", amount_minor = 1250u64, huge = u64::MAX);
        span.in_scope(|| tracing::info!(attempts = 2u64, "settled"));
    });
    let span = &sink.spans()[0];
    assert_eq!(span.attributes.i64("amount_minor"), Some(1250));
    // Past i64, the value is kept exactly, as text.
    assert_eq!(span.attributes.str("huge"), Some("18446744073709551615"));
    assert_eq!(span.events[0].attributes.i64("attempts"), Some(2));
    let log = &sink.logs()[0];
    assert_eq!(log.attributes.i64("attempts"), Some(2));
}

#[test]
fn exporter_internals_never_reach_otlp() {
    let (sink, _) = run(&[("RUST_LOG", "trace")], || {
        tracing::info!(target: "h2::codec", "frame");
        tracing::info!(target: "tonic::transport", "connect");
        tracing::info!(target: "opentelemetry_sdk", "internal");
        tracing::info_span!(target: "hyper::proto", "poll").in_scope(|| {
            // Created under the exporter's span: dropped with it.
            tracing::info_span!("under_poll").in_scope(|| {});
        });
        tracing::info!(target: "token_engine", "business");
        // Inside an application's span: the exporter's events are not its
        // span events, and its spans are not its children.
        tracing::info_span!("mint").in_scope(|| {
            tracing::info!(target: "hyper_util::client", "checkout");
            tracing::info_span!(target: "h2::proto", "stream").in_scope(|| {});
            tracing::info!(target: "token_engine", "minted");
        });
    });
    let bodies: Vec<String> = sink.logs().iter().filter_map(|l| l.body.clone()).collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies[0].contains("business"));
    assert!(bodies[1].contains("minted"));
    let spans = sink.spans();
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["mint"]);
    let events: Vec<_> = spans[0].events.iter().map(|e| e.name.to_string()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
}

#[test]
fn propagators_none_is_honoured() {
    let sink = InMemory::new();
    let t = Telemetry::builder("p")
        .with_env(vec![("OTEL_PROPAGATORS".to_string(), "none".to_string())])
        .with_in_memory(&sink)
        .build()
        .unwrap();
    let cx = tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!("s").in_scope(|| tracing::Span::current().context())
    });
    assert!(cx.span().span_context().is_valid());
    let mut headers = http::HeaderMap::new();
    telemetry::propagation::inject(t.propagator(), &cx, &mut headers);
    assert!(headers.is_empty());
    let mut headers = http::HeaderMap::new();
    let default = Telemetry::builder("p")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    telemetry::propagation::inject(default.propagator(), &cx, &mut headers);
    assert!(headers.contains_key("traceparent"));
    let _ = t.tracer_provider().unwrap().tracer("x");
}

#[test]
fn card_and_account_numbers_in_span_attributes_are_masked() {
    let (sink, _) = run(&[], || {
        let span = tracing::info_span!(
            "pay",
            card = "4111 1111 1111 1111",
            iban = "DE89370400440532013000",
            order = "A-12345"
        );
        span.in_scope(|| {});
    });
    let span = &sink.spans()[0];
    assert_eq!(span.attributes.str("card"), Some("****1111"));
    assert_eq!(span.attributes.str("iban"), Some("DE89****3000"));
    assert_eq!(span.attributes.str("order"), Some("A-12345"));
}

/// "No exporter" must not mean "no tracing": with traces not recorded
/// (`OTEL_TRACES_EXPORTER=none`, alone or with the other signals exported,
/// or `OTEL_SDK_DISABLED=true`) a span still carries the context it was
/// given, so what came in goes out unchanged on calls made inside it.
#[test]
fn without_recorded_traces_the_incoming_context_passes_through() {
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const STATE: &str = "rojo=1,a@vvvvvvvvvvvvvv=2";
    let configs: [&[(&str, &str)]; 3] = [
        &[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
        &[("OTEL_TRACES_EXPORTER", "none")],
        &[("OTEL_SDK_DISABLED", "true")],
    ];
    for config in configs {
        let env: Vec<(String, String)> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sink = InMemory::new();
        let t = Telemetry::builder("relay-engine")
            .with_env(env)
            .with_in_memory(&sink)
            .with_stdout_writer(std::io::sink)
            .build()
            .unwrap();
        assert!(t.tracer_provider().is_none(), "{config:?}");
        let mut incoming = http::HeaderMap::new();
        incoming.insert("traceparent", PARENT.parse().unwrap());
        incoming.insert("tracestate", STATE.parse().unwrap());
        incoming.insert("baggage", "user=alice".parse().unwrap());
        let (out, root_out) = tracing::dispatcher::with_default(t.dispatch(), || {
            let server = tracing::info_span!("server");
            server
                .set_parent(telemetry::propagation::extract(t.propagator(), &incoming))
                .unwrap();
            let out = server.in_scope(|| {
                let client = tracing::info_span!("client");
                tracing::info!("inside the request");
                let mut out = http::HeaderMap::new();
                telemetry::propagation::inject(t.propagator(), &client.context(), &mut out);
                out
            });
            // Nothing came in, nothing is invented.
            let mut root_out = http::HeaderMap::new();
            let root = tracing::info_span!("root");
            telemetry::propagation::inject(t.propagator(), &root.context(), &mut root_out);
            (out, root_out)
        });
        assert_eq!(out["traceparent"], PARENT, "{config:?}");
        assert_eq!(out["tracestate"], STATE, "{config:?}");
        assert_eq!(out["baggage"], "user=alice", "{config:?}");
        assert!(root_out.is_empty(), "{config:?}: {root_out:?}");
        t.shutdown().unwrap();
        assert!(sink.spans().is_empty(), "{config:?}");
        // Where logs are exported, they carry the trace they belong to.
        let logs = sink.logs();
        let logs_exported = !config.iter().any(|(k, _)| *k != "OTEL_TRACES_EXPORTER");
        assert_eq!(logs.len(), usize::from(logs_exported), "{config:?}");
        for log in logs {
            assert_eq!(
                log.trace_id.as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
        }
    }
}
