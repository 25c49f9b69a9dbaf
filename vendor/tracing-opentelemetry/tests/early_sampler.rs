//! `OpenTelemetryLayer::with_early_sampler` (a local addition to 0.34.0).
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tracing::{Metadata, Subscriber};
use tracing_opentelemetry::{
    layer, EarlyDecision, EarlySampler, OpenTelemetrySpanExt, SetParentError,
};
use tracing_subscriber::prelude::*;

#[derive(Clone, Default, Debug)]
struct TestExporter(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for TestExporter {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().append(&mut batch);
        Ok(())
    }
}

impl TestExporter {
    fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        names.sort();
        names
    }
}

/// Drops children of unsampled parents, as a parent-based sampler would,
/// giving each the span id 42.
struct ParentUnsampled;

impl EarlySampler for ParentUnsampled {
    fn decide(&self, parent_cx: &Context, _metadata: &'static Metadata<'static>) -> EarlyDecision {
        let parent = parent_cx.span();
        let sc = parent.span_context();
        if sc.is_valid() && !sc.is_sampled() {
            EarlyDecision::Drop(SpanContext::new(
                sc.trace_id(),
                SpanId::from(42),
                TraceFlags::default(),
                false,
                sc.trace_state().clone(),
            ))
        } else {
            EarlyDecision::Build
        }
    }

    fn records_event(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() != "kept_out"
    }
}

fn subscriber() -> (SdkTracerProvider, TestExporter, impl Subscriber) {
    let exporter = TestExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(
        layer()
            .with_tracer(provider.tracer("test"))
            .with_early_sampler(ParentUnsampled),
    );
    (provider, exporter, subscriber)
}

fn remote(sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(7),
        SpanId::from(9),
        flags,
        true,
        TraceState::default(),
    ))
}

#[test]
fn a_dropped_span_records_nothing_but_has_its_context() {
    let (provider, exporter, subscriber) = subscriber();
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("root");
        root.set_parent(remote(false)).unwrap();
        root.in_scope(|| {
            let child = tracing::info_span!("child", field = 1);
            child.record("field", 2);
            child.in_scope(|| {
                tracing::error!("not an OpenTelemetry event");
                // Entered: its context is the current one.
                let current = Context::current().span().span_context().clone();
                assert_eq!(current.span_id(), SpanId::from(42));
                let grandchild = tracing::info_span!("grandchild");
                assert_eq!(
                    grandchild.context().span().span_context().span_id(),
                    SpanId::from(42)
                );
            });
            let explicit = tracing::info_span!(parent: &child, "explicit");
            let sc = explicit.context().span().span_context().clone();
            assert_eq!(sc.trace_id(), TraceId::from(7));
            assert!(!sc.is_sampled());
            let cx = child.context();
            assert_eq!(cx.span().span_context().trace_id(), TraceId::from(7));
            assert_eq!(cx.span().span_context().span_id(), SpanId::from(42));
        });
    });
    provider.force_flush().unwrap();
    assert!(exporter.names().is_empty(), "{:?}", exporter.names());
}

#[test]
fn set_parent_moves_a_dropped_span_until_it_starts() {
    let (provider, exporter, subscriber) = subscriber();
    tracing::subscriber::with_default(subscriber, || {
        let unsampled = tracing::info_span!("unsampled");
        unsampled.set_parent(remote(false)).unwrap();
        unsampled.in_scope(|| {
            let moved = tracing::info_span!("moved");
            moved.set_parent(remote(true)).unwrap();
            moved.in_scope(|| tracing::info_span!("moved_child").in_scope(|| {}));
        });
        // Entered: its parent is fixed.
        assert!(matches!(
            unsampled.set_parent(remote(true)),
            Err(SetParentError::AlreadyStarted)
        ));
        let sampled = tracing::info_span!("sampled");
        sampled.in_scope(|| {});
        assert!(matches!(
            sampled.set_parent(remote(false)),
            Err(SetParentError::AlreadyStarted)
        ));
    });
    provider.force_flush().unwrap();
    assert_eq!(exporter.names(), ["moved", "moved_child", "sampled"]);
    for span in exporter.0.lock().unwrap().iter() {
        if span.name != "sampled" {
            assert_eq!(span.span_context.trace_id(), TraceId::from(7));
        }
    }
}

#[test]
fn a_sampled_span_following_a_dropped_one_links_to_its_context() {
    let (provider, exporter, subscriber) = subscriber();
    tracing::subscriber::with_default(subscriber, || {
        let unsampled = tracing::info_span!("unsampled");
        unsampled.set_parent(remote(false)).unwrap();
        let dropped = unsampled.in_scope(|| tracing::info_span!("dropped"));
        let sampled = tracing::info_span!("sampled");
        sampled.follows_from(&dropped);
        sampled.in_scope(|| {});
    });
    provider.force_flush().unwrap();
    let spans = exporter.0.lock().unwrap();
    assert_eq!(spans.len(), 1);
    let links = &spans[0].links.links;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].span_context.span_id(), SpanId::from(42));
    assert_eq!(links[0].span_context.trace_id(), TraceId::from(7));
}

/// The dropped span of `f`'s spans: one given a remote parent that is not
/// sampled.
fn in_dropped_span<R>(f: impl FnOnce(&tracing::Span) -> R) -> R {
    let dropped = tracing::info_span!("dropped");
    dropped.set_parent(remote(false)).unwrap();
    f(&dropped)
}

#[test]
fn spans_created_under_a_dropped_span_are_dropped_and_answer_with_its_context() {
    let (provider, exporter, subscriber) = subscriber();
    tracing::subscriber::with_default(subscriber, || {
        in_dropped_span(|dropped| {
            let (child, grandchild) = dropped.in_scope(|| {
                let child = tracing::info_span!("child", field = 1);
                let grandchild = child.in_scope(|| {
                    // The dropped span's context stays the current one.
                    let current = Context::current().span().span_context().clone();
                    assert_eq!(current.span_id(), SpanId::from(42));
                    tracing::info_span!("grandchild")
                });
                (child, grandchild)
            });
            // Outside the dropped span, as in a task that entered only the
            // child: what the child creates is dropped too, not a new root.
            let in_task = child.in_scope(|| tracing::info_span!("in_task"));
            in_task.in_scope(|| {});
            let explicit = tracing::info_span!(parent: &grandchild, "explicit");
            for span in [&child, &grandchild, &in_task, &explicit] {
                let cx = span.context();
                let sc = cx.span().span_context().clone();
                assert_eq!(sc.trace_id(), TraceId::from(7));
                assert_eq!(sc.span_id(), SpanId::from(42));
                assert!(!sc.is_sampled());
            }
        });
    });
    provider.force_flush().unwrap();
    assert!(exporter.names().is_empty(), "{:?}", exporter.names());
}

#[test]
fn a_context_attached_inside_a_dropped_span_parents_what_is_created_there() {
    let (provider, exporter, subscriber) = subscriber();
    tracing::subscriber::with_default(subscriber, || {
        in_dropped_span(|dropped| {
            dropped.in_scope(|| {
                let _attached = remote(true).attach();
                tracing::info_span!("joins_the_sampled_trace").in_scope(|| {});
            });
        });
    });
    provider.force_flush().unwrap();
    assert_eq!(exporter.names(), ["joins_the_sampled_trace"]);
    let spans = exporter.0.lock().unwrap();
    let joined = spans
        .iter()
        .find(|s| s.name == "joins_the_sampled_trace")
        .unwrap();
    assert_eq!(joined.parent_span_id, SpanId::from(9));
}

#[test]
fn set_parent_builds_a_span_created_under_a_dropped_span() {
    let (provider, exporter, subscriber) = subscriber();
    tracing::subscriber::with_default(subscriber, || {
        in_dropped_span(|dropped| {
            let child = dropped.in_scope(|| tracing::info_span!("child"));
            child.set_parent(remote(true)).unwrap();
            child.in_scope(|| tracing::info_span!("child_of_child").in_scope(|| {}));
            let sc = child.context().span().span_context().clone();
            assert!(sc.is_sampled());
            assert_ne!(sc.span_id(), SpanId::from(42));
        });
    });
    provider.force_flush().unwrap();
    assert_eq!(exporter.names(), ["child", "child_of_child"]);
}

#[test]
fn events_the_early_sampler_keeps_out_are_not_span_events() {
    let (provider, exporter, subscriber) = subscriber();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("recorded").in_scope(|| {
            tracing::info!(target: "kept_out", "not recorded");
            tracing::info!("recorded");
        });
    });
    provider.force_flush().unwrap();
    let spans = exporter.0.lock().unwrap();
    let names: Vec<_> = spans[0].events.iter().map(|e| e.name.to_string()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn set_parent_on_another_thread_builds_a_span_this_thread_created_without_data() {
    let (provider, exporter, subscriber) = subscriber();
    tracing::subscriber::with_default(subscriber, || {
        in_dropped_span(|dropped| {
            // Created and entered here while it has no data.
            let child = dropped.in_scope(|| tracing::info_span!("child"));
            child.in_scope(|| {});
            std::thread::scope(|s| {
                s.spawn(|| child.set_parent(remote(true)).unwrap());
            });
            let child_sc = child.context().span().span_context().clone();
            assert!(child_sc.is_sampled());
            child.in_scope(|| {
                // Entering it now makes its own context current.
                let current = Context::current().span().span_context().clone();
                assert_eq!(current.span_id(), child_sc.span_id());
                tracing::info_span!("grandchild").in_scope(|| {});
            });
        });
    });
    provider.force_flush().unwrap();
    assert_eq!(exporter.names(), ["child", "grandchild"]);
    let spans = exporter.0.lock().unwrap();
    let child = spans.iter().find(|s| s.name == "child").unwrap();
    let grandchild = spans.iter().find(|s| s.name == "grandchild").unwrap();
    assert_eq!(grandchild.parent_span_id, child.span_context.span_id());
    assert_eq!(child.parent_span_id, SpanId::from(9));
}

#[test]
fn a_dropped_context_attached_inside_a_sampled_span_is_the_parent_of_what_is_created_there() {
    let (provider, exporter, subscriber) = subscriber();
    tracing::subscriber::with_default(subscriber, || {
        in_dropped_span(|dropped| {
            let dropped_cx = dropped.context();
            dropped.in_scope(|| {
                // A root of its own, sampled, entered inside the dropped span.
                let sampled = tracing::info_span!(parent: None, "sampled");
                sampled.in_scope(|| {
                    tracing::info!("a span event of the sampled span");
                    let _attached = dropped_cx.clone().attach();
                    let created = tracing::info_span!("created");
                    let sc = created.context().span().span_context().clone();
                    assert!(sc.is_valid(), "the attached dropped context is its parent");
                    assert_eq!(sc.trace_id(), TraceId::from(7));
                    assert!(!sc.is_sampled());
                });
            });
        });
    });
    provider.force_flush().unwrap();
    assert_eq!(exporter.names(), ["sampled"]);
    let spans = exporter.0.lock().unwrap();
    assert_eq!(spans[0].events.len(), 1, "{:?}", spans[0].events);
}

#[test]
fn two_layers_on_one_thread_do_not_mistake_each_others_spans() {
    let (provider_a, exporter_a, subscriber_a) = subscriber();
    let (provider_b, exporter_b, subscriber_b) = subscriber();
    let a = tracing::Dispatch::new(subscriber_a);
    let b = tracing::Dispatch::new(subscriber_b);
    // Three spans in each registry, created in the same order on the same
    // thread, get the same ids: the third is sampled in b, and has no data
    // in a, where it is created under a dropped span afterwards.
    let (b_root, b_mid, b_child) = tracing::dispatcher::with_default(&b, || {
        let root = tracing::info_span!("b_root");
        let mid = root.in_scope(|| tracing::info_span!("b_mid"));
        let child = mid.in_scope(|| tracing::info_span!("b_child"));
        (root, mid, child)
    });
    let a_child = tracing::dispatcher::with_default(&a, || {
        in_dropped_span(|dropped| {
            let mid = dropped.in_scope(|| tracing::info_span!("a_mid"));
            mid.in_scope(|| tracing::info_span!("a_child"))
        })
    });
    assert_eq!(a_child.id(), b_child.id());
    tracing::dispatcher::with_default(&b, || {
        b_child.in_scope(|| {
            let current = Context::current().span().span_context().clone();
            assert!(current.is_sampled());
            assert_eq!(
                current.span_id(),
                b_child.context().span().span_context().span_id()
            );
        });
    });
    // A registry releases a closed span's parent through the default
    // dispatcher: each closes its spans as the default.
    tracing::dispatcher::with_default(&a, || drop(a_child));
    tracing::dispatcher::with_default(&b, || drop((b_child, b_mid, b_root)));
    provider_a.force_flush().unwrap();
    provider_b.force_flush().unwrap();
    assert!(exporter_a.names().is_empty(), "{:?}", exporter_a.names());
    assert_eq!(exporter_b.names(), ["b_child", "b_mid", "b_root"]);
}

/// Drops roots unless `set_parent` gives them a sampled parent (as a ratio
/// that rejected them does), children of unsampled parents, and builds the
/// rest.
struct RootsDroppedUnlessReparented;

impl EarlySampler for RootsDroppedUnlessReparented {
    fn decide(&self, parent_cx: &Context, metadata: &'static Metadata<'static>) -> EarlyDecision {
        let parent = parent_cx.span();
        let sc = parent.span_context();
        if !sc.is_valid() {
            EarlyDecision::DropUnlessReparented(SpanContext::new(
                TraceId::from(11),
                SpanId::from(12),
                TraceFlags::default(),
                false,
                TraceState::default(),
            ))
        } else {
            ParentUnsampled.decide(parent_cx, metadata)
        }
    }

    fn records_event(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }
}

/// An error with a source, as a root's field.
#[derive(Debug)]
struct Failure(&'static str, Option<Box<Failure>>);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|e| e as _)
    }
}

/// What of an exported span its fields decide.
fn recorded_fields(span: &SpanData) -> String {
    format!(
        "{} {:?} {:?} {:?} {}",
        span.name, span.span_kind, span.status, span.attributes, span.dropped_attributes_count
    )
}

/// Exports the span `make` creates four times: built at creation (created
/// in a sampled context); dropped at creation, then built by `set_parent`;
/// and each of those given a parent that is not sampled first (which drops
/// it, or keeps it dropped) and a sampled one after. Returns the fields
/// each was exported with.
fn built_and_reparented(make: fn() -> tracing::Span) -> [String; 4] {
    let exporter = TestExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(
        layer()
            .with_tracer(provider.tracer("test"))
            .with_early_sampler(RootsDroppedUnlessReparented)
            // What only a span built at creation has: its code location,
            // thread, target and timings.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false),
    );
    tracing::subscriber::with_default(subscriber, || {
        let built_twice = {
            let _sampled = remote(true).attach();
            make().in_scope(|| {});
            make()
        };
        let reparented = make();
        reparented.set_parent(remote(true)).unwrap();
        reparented.in_scope(|| {});
        let reparented_twice = make();
        for span in [&built_twice, &reparented_twice] {
            span.set_parent(remote(false)).unwrap();
            span.set_parent(remote(true)).unwrap();
            span.in_scope(|| {});
        }
    });
    provider.force_flush().unwrap();
    let spans = exporter.0.lock().unwrap();
    assert_eq!(spans.len(), 4, "{spans:?}");
    [0, 1, 2, 3].map(|i| recorded_fields(&spans[i]))
}

/// Asserts that every way of exporting a span records the same fields.
fn assert_all_equal(fields: [String; 4]) {
    for other in &fields[1..] {
        assert_eq!(&fields[0], other);
    }
}

#[test]
fn a_dropped_root_built_by_set_parent_has_the_fields_it_was_created_with() {
    // Few and short: kept inline.
    let fields = built_and_reparented(|| tracing::info_span!("few", http.route = "/pay", n = 3));
    assert!(fields[0].contains("\"/pay\""), "{fields:?}");
    assert_all_equal(fields);
    // Every kind of value, the special fields, and more values and text
    // than are kept inline.
    let fields = built_and_reparented(|| {
        tracing::info_span!(
            "many",
            otel.name = "renamed",
            otel.kind = "client",
            otel.status_code = "error",
            text = "a text value longer than the sixty-four bytes kept inline at creation",
            negative = -5,
            small = 7u64,
            huge = u64::MAX,
            float = 1.5,
            flag = true,
            debug = ?vec![1, 2],
            display = %"shown",
            wide = 1i128 << 100,
        )
    });
    assert!(fields[0].starts_with("renamed Client"), "{fields:?}");
    assert!(fields[0].contains("18446744073709551615"), "{fields:?}");
    assert_all_equal(fields);
    // An error: its source chain is walked at creation.
    let fields = built_and_reparented(|| {
        let failure = Failure("refused", Some(Box::new(Failure("reset", None))));
        tracing::info_span!(
            "failed",
            error = &failure as &(dyn std::error::Error + 'static),
            after = 1
        )
    });
    assert!(fields[0].contains("reset"), "{fields:?}");
    assert_all_equal(fields);
}

/// Decides as [`ParentUnsampled`], counting its decisions.
struct Counting(Arc<AtomicUsize>);

impl EarlySampler for Counting {
    fn decide(&self, parent_cx: &Context, metadata: &'static Metadata<'static>) -> EarlyDecision {
        self.0.fetch_add(1, Ordering::Relaxed);
        ParentUnsampled.decide(parent_cx, metadata)
    }
}

#[test]
fn a_span_given_a_parent_that_is_not_sampled_is_dropped_and_what_it_holds_keeps_nothing() {
    // A request into a service down the call chain, from a trace that is not
    // sampled upstream: its span is created, then given the incoming parent.
    let decisions = Arc::new(AtomicUsize::new(0));
    let exporter = TestExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(
        layer()
            .with_tracer(provider.tracer("test"))
            .with_early_sampler(Counting(decisions.clone())),
    );
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("request", http.route = "/pay");
        request.set_parent(remote(false)).unwrap();
        // Decided at creation (a root: built) and again under its parent.
        assert_eq!(decisions.load(Ordering::Relaxed), 2);
        request.in_scope(|| {
            let current = Context::current().span().span_context().clone();
            assert_eq!(current.trace_id(), TraceId::from(7));
            assert_eq!(current.span_id(), SpanId::from(42));
            for _ in 0..3 {
                tracing::info_span!("step").in_scope(|| {
                    let cx = tracing::Span::current().context();
                    let sc = cx.span().span_context().clone();
                    assert_eq!(sc.trace_id(), TraceId::from(7));
                    assert_eq!(sc.span_id(), SpanId::from(42));
                    assert!(!sc.is_sampled());
                });
            }
        });
        // Spans created under a dropped span are not decided: they are
        // dropped with it.
        assert_eq!(decisions.load(Ordering::Relaxed), 2);
    });
    provider.force_flush().unwrap();
    assert!(exporter.names().is_empty(), "{:?}", exporter.names());
}

#[test]
fn a_span_without_data_given_a_parent_in_another_trace_answers_with_that_trace() {
    let (provider, exporter, subscriber) = subscriber();
    let other_trace = || {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(8),
            SpanId::from(10),
            TraceFlags::default(),
            true,
            TraceState::default(),
        ))
    };
    tracing::subscriber::with_default(subscriber, || {
        in_dropped_span(|dropped| {
            let (message, inside) = dropped.in_scope(|| {
                let message = tracing::info_span!("message");
                message.set_parent(other_trace()).unwrap();
                let inside = message.in_scope(|| tracing::info_span!("inside"));
                (message, inside)
            });
            for span in [&message, &inside] {
                let cx = span.context();
                let sc = cx.span().span_context().clone();
                assert_eq!(sc.trace_id(), TraceId::from(8));
                assert!(!sc.is_sampled());
            }
            // The dropped span it was created under keeps its own trace.
            let cx = dropped.context();
            assert_eq!(cx.span().span_context().trace_id(), TraceId::from(7));
        });
    });
    provider.force_flush().unwrap();
    assert!(exporter.names().is_empty(), "{:?}", exporter.names());
}

#[test]
fn a_span_moved_back_and_forth_many_times_is_exported_once_whole() {
    // A hostile or confused caller: ten thousand parents, unsampled and
    // sampled in turn, before the span starts. Each move replaces what the
    // span holds; it ends as one span, with its fields, in the last trace.
    let exporter = TestExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(
        layer()
            .with_tracer(provider.tracer("test"))
            .with_early_sampler(RootsDroppedUnlessReparented),
    );
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("moved", http.route = "/pay");
        for i in 0..10_000 {
            span.set_parent(remote(i % 2 == 1)).unwrap();
        }
        span.in_scope(|| tracing::info_span!("inside").in_scope(|| {}));
    });
    provider.force_flush().unwrap();
    let spans = exporter.0.lock().unwrap();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let moved = spans.iter().find(|s| s.name == "moved").unwrap();
    assert_eq!(moved.span_context.trace_id(), TraceId::from(7));
    assert_eq!(moved.parent_span_id, SpanId::from(9));
    assert!(recorded_fields(moved).contains("\"/pay\""), "{moved:?}");
}
