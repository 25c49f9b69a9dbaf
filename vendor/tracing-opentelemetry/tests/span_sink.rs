//! `OpenTelemetryLayer::with_span_sink` (a local addition to 0.34.0): kept
//! spans are recorded by the layer and handed to the sink whole.
use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::{Metadata, Subscriber};
use tracing_opentelemetry::{
    layer, EarlyDecision, EarlySampler, OpenTelemetrySpanExt, RecordLimits, RecordedSpan,
    SetParentError, SpanSink,
};
use tracing_subscriber::prelude::*;

/// The trace a root named "decided" is kept on.
const DECIDED: TraceId = TraceId::from_bytes([7; 16]);

#[derive(Clone, Default)]
struct Sink {
    spans: Arc<Mutex<Vec<RecordedSpan>>>,
    next_id: Arc<AtomicU64>,
    limits: RecordLimits,
    shut_down: Arc<std::sync::atomic::AtomicBool>,
}

impl SpanSink for Sink {
    fn new_span_id(&self) -> SpanId {
        SpanId::from(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn new_trace_id(&self) -> TraceId {
        TraceId::from(0xabc_u128)
    }
    fn limits(&self) -> RecordLimits {
        self.limits
    }
    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Relaxed)
    }
    fn end(&self, span: RecordedSpan) {
        self.spans.lock().unwrap().push(span);
    }
}

impl Sink {
    fn take(&self) -> Vec<RecordedSpan> {
        std::mem::take(&mut *self.spans.lock().unwrap())
    }
}

/// Parent-based: children of unsampled parents are dropped; roots are kept,
/// on [`DECIDED`] when named so.
struct ParentBased;

impl EarlySampler for ParentBased {
    fn decide(&self, parent_cx: &Context, metadata: &'static Metadata<'static>) -> EarlyDecision {
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
        } else if !sc.is_valid() && metadata.name() == "decided" {
            EarlyDecision::BuildInTrace(DECIDED)
        } else if !sc.is_valid() && metadata.name() == "unlucky" {
            EarlyDecision::DropUnlessReparented(SpanContext::new(
                TraceId::from(0xdead_u128),
                SpanId::from(43),
                TraceFlags::default(),
                false,
                TraceState::default(),
            ))
        } else {
            EarlyDecision::Build
        }
    }
}

#[derive(Clone, Default, Debug)]
struct TracerExports(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for TracerExports {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().append(&mut batch);
        Ok(())
    }
}

fn subscriber(sink: &Sink) -> (TracerExports, impl Subscriber) {
    let exports = TracerExports::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exports.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(
        layer()
            .with_tracer(provider.tracer("test"))
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_early_sampler(ParentBased)
            .with_span_sink(sink.clone()),
    );
    (exports, subscriber)
}

fn remote(trace_id: u128, span_id: u64, sampled: bool) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::from_key_value([("vendor", "x")]).unwrap(),
    ))
}

fn attr<'a>(span: &'a RecordedSpan, key: &str) -> Option<&'a opentelemetry::Value> {
    span.builder
        .attributes
        .iter()
        .flatten()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[test]
fn kept_spans_reach_the_sink_whole_and_the_tracer_starts_none() {
    let sink = Sink::default();
    let (exports, subscriber) = subscriber(&sink);
    let (mut seen_root, mut seen_child, mut current) = (None, None, None);
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("root", request = "GET /", otel.kind = "server");
        let _g = root.enter();
        seen_root = Some(root.context().span().span_context().clone());
        let child = tracing::info_span!("child", step = 1_i64);
        child.in_scope(|| {
            current = Some(Context::current().span().span_context().clone());
            tracing::info!(answer = 42_i64, "an event");
        });
        child.set_attribute("late", "yes");
        seen_child = Some(child.context().span().span_context().clone());
        child.set_status(Status::error("broken"));
    });
    assert!(
        exports.0.lock().unwrap().is_empty(),
        "the tracer started a span"
    );

    let spans = sink.take();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let (child, root) = (&spans[0], &spans[1]);
    assert_eq!(child.builder.name, "child");
    assert_eq!(root.builder.name, "root");
    // The contexts handed out are the recorded spans'.
    assert_eq!(Some(&root.span_context), seen_root.as_ref());
    assert_eq!(Some(&child.span_context), seen_child.as_ref());
    assert_eq!(Some(&child.span_context), current.as_ref());
    // A root in a new trace, its child in it, both sampled and local.
    assert_eq!(root.span_context.trace_id(), TraceId::from(0xabc_u128));
    assert_eq!(child.span_context.trace_id(), root.span_context.trace_id());
    assert!(root.span_context.is_sampled() && child.span_context.is_sampled());
    assert!(!child.span_context.is_remote());
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_eq!(child.parent_span_id, root.span_context.span_id());
    assert!(!child.parent_span_is_remote);
    // Fields, kind, events, attributes and status set later.
    assert_eq!(attr(root, "request"), Some(&"GET /".into()));
    assert_eq!(
        root.builder.span_kind,
        Some(opentelemetry::trace::SpanKind::Server)
    );
    assert_eq!(attr(child, "step"), Some(&1_i64.into()));
    assert_eq!(attr(child, "late"), Some(&"yes".into()));
    let events = child.builder.events.as_ref().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "an event");
    assert!(events[0]
        .attributes
        .contains(&KeyValue::new("answer", 42_i64)));
    assert_eq!(child.status, Status::error("broken"));
    let start = child.builder.start_time.unwrap();
    assert!(start <= child.end_time);
    assert!(root.builder.start_time.unwrap() <= start && child.end_time <= root.end_time);
}

#[test]
fn a_root_kept_on_a_trace_id_is_recorded_in_it() {
    let sink = Sink::default();
    let (_, subscriber) = subscriber(&sink);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("decided").in_scope(|| {
            tracing::info_span!("inside").in_scope(|| {});
        });
    });
    let spans = sink.take();
    assert_eq!(spans.len(), 2);
    assert!(spans.iter().all(|s| s.span_context.trace_id() == DECIDED));
}

#[test]
fn set_parent_moves_a_span_not_started_and_is_refused_once_it_has() {
    let sink = Sink::default();
    let (_, subscriber) = subscriber(&sink);
    let (mut before, mut after) = (None, None);
    tracing::subscriber::with_default(subscriber, || {
        // Never entered: recorded when it closes, under its new parent.
        let server = tracing::info_span!("decided");
        before = Some(server.set_parent(remote(0x99, 5, true)));
        drop(server);

        let started = tracing::info_span!("started");
        started.in_scope(|| {});
        after = Some(started.set_parent(remote(0x98, 6, true)));
    });
    assert!(matches!(before, Some(Ok(()))), "{before:?}");
    assert!(
        matches!(after, Some(Err(SetParentError::AlreadyStarted))),
        "{after:?}"
    );
    let spans = sink.take();
    let server = &spans[0];
    assert_eq!(server.span_context.trace_id(), TraceId::from(0x99_u128));
    assert_eq!(server.parent_span_id, SpanId::from(5));
    assert!(server.parent_span_is_remote);
    assert_eq!(server.span_context.trace_state().get("vendor"), Some("x"));
    // The started span stayed where it was.
    assert_eq!(spans[1].span_context.trace_id(), TraceId::from(0xabc_u128));
    assert_eq!(spans[1].parent_span_id, SpanId::INVALID);
}

#[test]
fn a_request_not_sampled_upstream_reaches_the_sink_with_nothing() {
    let sink = Sink::default();
    let (_, subscriber) = subscriber(&sink);
    tracing::subscriber::with_default(subscriber, || {
        let server = tracing::info_span!("server");
        let _ = server.set_parent(remote(0x97, 7, false));
        server.in_scope(|| tracing::info_span!("work").in_scope(|| {}));
    });
    assert!(sink.take().is_empty());
}

#[test]
fn a_long_lived_span_keeps_its_first_items_within_the_limits() {
    let sink = Sink {
        limits: RecordLimits {
            attributes: 3,
            events: 2,
            links: 1,
            event_attributes: 8,
            link_attributes: 8,
        },
        ..Sink::default()
    };
    let (_, subscriber) = subscriber(&sink);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("busy", first = 0_i64);
        let linked = tracing::info_span!("linked");
        span.in_scope(|| {
            for i in 0..100_i64 {
                tracing::info!(i, "tick");
                span.set_attribute("n", i);
                span.add_link(SpanContext::new(
                    TraceId::from(1_u128),
                    SpanId::from(i as u64 + 1),
                    TraceFlags::SAMPLED,
                    true,
                    TraceState::default(),
                ));
            }
        });
        span.follows_from(&linked);
    });
    let spans = sink.take();
    let busy = spans.iter().find(|s| s.builder.name == "busy").unwrap();
    let attrs = busy.builder.attributes.as_ref().unwrap();
    assert_eq!(attrs.len(), 3);
    assert_eq!(attrs[0], KeyValue::new("first", 0_i64));
    assert_eq!(attrs[2], KeyValue::new("n", 1_i64));
    assert_eq!(busy.dropped_attributes, 98);
    let events = busy.builder.events.as_ref().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events[1].attributes.contains(&KeyValue::new("i", 1_i64)));
    assert_eq!(busy.dropped_events, 98);
    let links = busy.builder.links.as_ref().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].span_context.span_id(), SpanId::from(1));
    assert_eq!(busy.dropped_links, 100);
}

#[test]
fn otel_name_recorded_after_start_renames_the_span_either_way() {
    // Recorded by the layer.
    let sink = Sink::default();
    let (_, subscriber) = subscriber(&sink);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("call", otel.name = tracing::field::Empty);
        span.in_scope(|| {});
        span.record("otel.name", "pkg.Service/Method");
    });
    assert_eq!(sink.take()[0].builder.name, "pkg.Service/Method");

    // Started through the tracer (no sink).
    let exports = TracerExports::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exports.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("call", otel.name = tracing::field::Empty);
        span.in_scope(|| {});
        span.record("otel.name", "pkg.Service/Method");
    });
    assert_eq!(exports.0.lock().unwrap()[0].name, "pkg.Service/Method");
}

#[test]
fn a_span_moved_to_no_parent_is_decided_as_the_root_it_becomes() {
    let sink = Sink::default();
    let (_, subscriber) = subscriber(&sink);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("outer").in_scope(|| {
            // Kept under a sampled parent, then detached: decided again.
            let unlucky = tracing::info_span!("unlucky");
            unlucky.set_parent(Context::new()).unwrap();
            unlucky.in_scope(|| tracing::info_span!("under_unlucky").in_scope(|| {}));
            let decided = tracing::info_span!("decided");
            decided.set_parent(Context::new()).unwrap();
            decided.in_scope(|| {});
        });
    });
    let spans = sink.take();
    let names: Vec<_> = spans.iter().map(|s| s.builder.name.to_string()).collect();
    assert_eq!(names, ["decided", "outer"]);
    assert_eq!(spans[0].span_context.trace_id(), DECIDED);
    assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
}

#[test]
fn status_follows_the_sdks_order_ok_over_error_over_unset() {
    let sink = Sink::default();
    let (_, subscriber) = subscriber(&sink);
    tracing::subscriber::with_default(subscriber, || {
        let ok = tracing::info_span!("ok", otel.status_code = tracing::field::Empty);
        ok.set_status(Status::Ok);
        ok.in_scope(|| tracing::error!("failed after all"));
        ok.record("otel.status_code", "ERROR");
        ok.set_status(Status::Unset);

        let described = tracing::info_span!("described");
        described.set_status(Status::error("connection reset"));
        described.set_status(Status::error(""));
        described.set_status(Status::Unset);
    });
    let spans = sink.take();
    let status = |name: &str| {
        &spans
            .iter()
            .find(|s| s.builder.name == name)
            .unwrap()
            .status
    };
    assert_eq!(status("ok"), &Status::Ok);
    assert_eq!(status("described"), &Status::error("connection reset"));
}

/// One workload of everything a span records, as services write it.
fn workload() {
    let earlier = tracing::info_span!("earlier");
    earlier.in_scope(|| {});
    let root = tracing::info_span!(
        "root",
        otel.kind = "server",
        http.route = "/pay",
        amount = 12_i64,
        late = tracing::field::Empty,
        otel.name = tracing::field::Empty
    );
    root.in_scope(|| {
        tracing::info!(step = "validate", "checked");
        let child = tracing::info_span!("child", ok = true);
        child.in_scope(|| {
            tracing::warn!(retries = 2_i64, "slow");
            tracing::info_span!("grandchild", ratio = 0.5).in_scope(|| {
                let e = std::io::Error::other("disk full");
                tracing::error!(error = &e as &dyn std::error::Error, "write failed");
            });
        });
        child.set_attribute("ext.attr", "v");
        child.add_event("ext event", vec![KeyValue::new("k", 1_i64)]);
        child.follows_from(&earlier);
        tracing::info_span!("never_entered", n = 3_i64);
    });
    root.record("late", "recorded after");
    // A started span's kind is fixed.
    root.record("otel.kind", "client");
    root.record("otel.name", "POST /pay");
    root.set_status(Status::Ok);
}

/// What a span looks like without its ids and times.
fn shape(
    name: &str,
    parent: Option<String>,
    kind: Option<&opentelemetry::trace::SpanKind>,
    attributes: &[KeyValue],
    events: &[opentelemetry::trace::Event],
    links: usize,
    status: &Status,
) -> String {
    let mut attrs: Vec<String> = attributes.iter().map(|kv| format!("{kv:?}")).collect();
    attrs.sort();
    let events: Vec<String> = events
        .iter()
        .map(|e| {
            let mut a: Vec<String> = e.attributes.iter().map(|kv| format!("{kv:?}")).collect();
            a.sort();
            format!("{}{a:?}", e.name)
        })
        .collect();
    format!("{name} <- {parent:?} {kind:?} {attrs:?} {events:?} links={links} {status:?}")
}

#[test]
fn the_sink_gets_what_the_tracer_would_have_exported() {
    // Through the SDK: the tracer starts each span.
    let exports = TracerExports::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exports.clone())
        .build();
    let through_sdk = tracing_subscriber::registry().with(
        layer()
            .with_tracer(provider.tracer("test"))
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_early_sampler(ParentBased),
    );
    tracing::subscriber::with_default(through_sdk, workload);
    let sdk = exports.0.lock().unwrap().clone();
    let name_of = |id: SpanId| {
        sdk.iter()
            .find(|s| s.span_context.span_id() == id)
            .map(|s| s.name.to_string())
    };
    let mut expected: Vec<String> = sdk
        .iter()
        .map(|s| {
            shape(
                &s.name,
                name_of(s.parent_span_id),
                Some(&s.span_kind),
                &s.attributes,
                &s.events,
                s.links.len(),
                &s.status,
            )
        })
        .collect();

    // Recorded by the layer.
    let sink = Sink::default();
    let (_, through_sink) = subscriber(&sink);
    tracing::subscriber::with_default(through_sink, workload);
    let recorded = sink.take();
    let name_of = |id: SpanId| {
        recorded
            .iter()
            .find(|s| s.span_context.span_id() == id)
            .map(|s| s.builder.name.to_string())
    };
    let internal = opentelemetry::trace::SpanKind::Internal;
    let mut got: Vec<String> = recorded
        .iter()
        .map(|s| {
            assert!(s.builder.start_time.unwrap() <= s.end_time);
            shape(
                &s.builder.name,
                name_of(s.parent_span_id),
                Some(s.builder.span_kind.as_ref().unwrap_or(&internal)),
                s.builder.attributes.as_deref().unwrap_or_default(),
                s.builder.events.as_deref().unwrap_or_default(),
                s.builder.links.as_ref().map_or(0, Vec::len),
                &s.status,
            )
        })
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got.len(), 5, "{got:#?}");
    assert_eq!(got, expected);
}

#[test]
fn after_the_sink_shuts_down_spans_get_no_ids_and_are_not_handed_over() {
    let sink = Sink::default();
    let (_, subscriber) = subscriber(&sink);
    let (mut before, mut after, mut child) = (None, None, None);
    tracing::subscriber::with_default(subscriber, || {
        let early = tracing::info_span!("early");
        early.in_scope(|| {});
        before = Some(early.context().span().span_context().clone());
        sink.shut_down.store(true, Ordering::Relaxed);
        let late = tracing::info_span!("late");
        late.in_scope(|| {
            after = Some(Context::current().span().span_context().clone());
            tracing::info_span!("late_child").in_scope(|| {
                child = Some(Context::current().span().span_context().clone());
            });
        });
    });
    // Started before: still recorded; after: as the SDK's tracer after
    // shutdown, an empty context, nothing to propagate, nothing handed over.
    assert!(before.unwrap().is_valid());
    assert!(!after.unwrap().is_valid());
    assert!(!child.unwrap().is_valid());
    let names: Vec<_> = sink
        .take()
        .iter()
        .map(|s| s.builder.name.to_string())
        .collect();
    assert_eq!(names, ["early"]);
}
