//! What one metric update and one span cost on the calling thread.
//!
//! `cargo bench -p telemetry --bench hot_path` (about 90 s once built).
//! Every pipeline exports over OTLP to a local port nobody listens on, so
//! exports fail off the hot path (with retries); the figures are the calling
//! thread's cost only. The span benchmarks give their OTLP span queue room
//! for every span of a run (3 Mi entries, so the process peaks at ~4.3 GB of
//! memory) so that they measure queueing, not dropping; `f0` measures the
//! drop path. The `sampling` group times one request's five spans under
//! each sampler against a bare registry and against a registry with one
//! empty layer, the smallest subscriber that frees closed spans (`cargo
//! bench -p telemetry --bench hot_path -- sampling/`); its spans go to the
//! default queue, drained by an exporter that drops every batch, as a
//! service's queue is drained by a collector that keeps up (`r7` keeps the
//! never-drained queue for comparison); the `lone_root` group times that
//! request's root alone, and the `downstream` group the request as a
//! service down the call chain serves it (its root given the incoming
//! context). See BENCHMARKS.md at the workspace root for runs and ratios.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use opentelemetry::trace::TracerProvider as _;
use telemetry::Telemetry;
use tracing::Dispatch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;

/// A local port nobody listens on: connecting is refused at once.
fn refused_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// The environment of every benchmark's telemetry, `extra` winning.
fn bench_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", refused_endpoint().as_str()),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        // No periodic export during the measurement.
        ("OTEL_METRIC_EXPORT_INTERVAL", "3600000"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
        ("RUST_LOG", "info"),
        ("TELEMETRY_LOG_FORMAT", "json"),
        ("TELEMETRY_SHUTDOWN_TIMEOUT", "2000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Telemetry with no traces unless `extra` turns an exporter on.
fn telemetry(name: &str, extra: &[(&str, &str)]) -> Telemetry {
    let mut env = vec![("OTEL_TRACES_EXPORTER", "none")];
    env.extend_from_slice(extra);
    Telemetry::builder(name)
        .with_env(bench_env(&env))
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap()
}

fn counter(t: &Telemetry) -> Counter<u64> {
    t.meter().u64_counter("http.server.requests").build()
}

/// The attribute set of one request, built per call as services do.
#[inline(always)]
fn request_attrs() -> [KeyValue; 3] {
    [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.route", "/orders/{id}"),
        KeyValue::new("http.response.status_code", 200),
    ]
}

#[inline(never)]
fn one_span() {
    tracing::info_span!("x").in_scope(|| {});
}

/// Spans per [`one_request`].
const REQUEST_SPANS: u64 = 5;

/// One request's spans as a service makes them: a root with two fields,
/// entered, and four children with one field each, created inside it.
#[inline(never)]
fn one_request() {
    let root = tracing::info_span!(
        "request",
        http.request.method = "GET",
        http.route = "/orders/{id}"
    );
    root.in_scope(|| {
        for step in 0..(REQUEST_SPANS - 1) {
            tracing::info_span!("step", step).in_scope(|| {});
        }
    });
}

/// Reports anything that would skew a figure (drops, exports that did run).
fn report(label: &str, t: &Telemetry) {
    for s in t.health().signals() {
        eprintln!(
            "  [{label}] {}: emitted {} exported {} failed {} dropped {} queued {}",
            s.signal, s.emitted, s.exported, s.failed, s.dropped, s.queued
        );
    }
}

fn metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics");

    // (a) The floor: one relaxed atomic add.
    let atomic = AtomicU64::new(0);
    g.bench_function("a_atomic_fetch_add", |b| {
        b.iter(|| black_box(&atomic).fetch_add(1, Ordering::Relaxed))
    });

    // (b) The hand-built set-ups' pattern: prometheus IntCounterVec, 3 labels looked up per call.
    let registry = prometheus::Registry::new();
    let vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new("http_server_requests_total", "requests"),
        &["method", "route", "status"],
    )
    .unwrap();
    registry.register(Box::new(vec.clone())).unwrap();
    g.bench_function("b_prometheus_with_label_values_inc", |b| {
        b.iter(|| {
            vec.with_label_values(black_box(&["GET", "/orders/{id}", "200"]))
                .inc()
        })
    });

    // (c)/(g) OTel counter, 3 attributes, OTLP periodic reader only.
    let otlp = telemetry("bench-otlp", &[("OTEL_METRICS_EXPORTER", "otlp")]);
    let c_otlp = counter(&otlp);
    g.bench_function("c_otel_counter_add_3_attrs_otlp", |b| {
        b.iter(|| c_otlp.add(1, black_box(&request_attrs())))
    });

    // (d) The same counter bound once to its attributes
    // (opentelemetry `experimental_metrics_bound_instruments`).
    let bound = c_otlp.bind(&request_attrs());
    g.bench_function("d_otel_bound_counter_add", |b| {
        b.iter(|| bound.add(black_box(1)))
    });

    // (h) The same counter with OTLP and Prometheus readers.
    let both = telemetry(
        "bench-both",
        &[("OTEL_METRICS_EXPORTER", "otlp,prometheus")],
    );
    assert!(both.prometheus_addr().is_some());
    let c_both = counter(&both);
    g.bench_function("h_otel_counter_add_3_attrs_otlp_prometheus", |b| {
        b.iter(|| c_both.add(1, black_box(&request_attrs())))
    });
    let bound_both = c_both.bind(&request_attrs());
    g.bench_function("h2_otel_bound_counter_add_otlp_prometheus", |b| {
        b.iter(|| bound_both.add(black_box(1)))
    });
    g.finish();
    drop(bound);
    drop(bound_both);
    let _ = otlp.shutdown();
    let _ = both.shutdown();
    // The final exports fail (nobody listens) and retry in the background
    // for a moment; let that settle before the next group.
    std::thread::sleep(Duration::from_secs(3));
}

/// Telemetry exporting traces over OTLP (to a refused port) with a queue
/// big enough for every span of one benchmark, so spans are queued, not
/// dropped: the OTLP exporter retries with backoff, so the worker drains
/// only a few batches during a run.
fn traced(name: &str, extra: &[(&str, &str)]) -> Telemetry {
    let mut env = vec![
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "3145728"),
    ];
    env.extend_from_slice(extra);
    telemetry(name, &env)
}

/// Takes every batch and drops it: the queue drains as fast as a collector
/// that keeps up would drain it, so a run measures the steady state of a
/// service (spans queued, exported and freed), not a queue that only grows.
#[derive(Debug)]
struct DiscardSpans;

impl opentelemetry_sdk::trace::SpanExporter for DiscardSpans {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// Telemetry recording spans into its default queue (2048 spans), which
/// [`DiscardSpans`] drains.
fn drained(name: &str, extra: &[(&str, &str)]) -> Telemetry {
    Telemetry::builder(name)
        .with_env(bench_env(extra))
        .with_stdout_writer(std::io::sink)
        .with_span_exporter(DiscardSpans)
        .build()
        .unwrap()
}

/// The smallest subscriber that frees closed spans: a registry with one
/// layer that does nothing.
fn freeing_registry() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new()))
}

/// Times `routine` with `dispatch` as the default subscriber.
fn bench_on(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    dispatch: &Dispatch,
    routine: fn(),
) {
    tracing::dispatcher::with_default(dispatch, || {
        g.bench_function(id, |b| b.iter(routine));
    });
}

fn bench_span(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    dispatch: &Dispatch,
) {
    bench_on(g, id, dispatch, one_span);
}

/// The OTel layer as telemetry configures it.
fn otel_layer<S>(
    tp: &opentelemetry_sdk::trace::SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tp.tracer("bench"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
}

fn spans(c: &mut Criterion) {
    let mut g = c.benchmark_group("spans");

    // (e) A bare registry: the floor for a span.
    bench_span(
        &mut g,
        "e_span_bare_registry",
        &Dispatch::new(tracing_subscriber::registry()),
    );

    // (f) The subscriber `build()` makes: EnvFilter(info) + JSON stdout layer
    // + OTel layer (NoFeedback-filtered) feeding the OTLP span queue; logs off.
    let t = traced("bench-spans", &[]);
    bench_span(&mut g, "f_span_telemetry_dispatch", t.dispatch());
    report("f", &t);
    let _ = t.shutdown();
    // f0: (f) with the default queue (2048): once it is full, every span is
    // built and then dropped, as while a collector is down.
    let t = telemetry("bench-queue-full", &[("OTEL_TRACES_EXPORTER", "otlp")]);
    bench_span(&mut g, "f0_telemetry_dispatch_queue_full", t.dispatch());
    report("f0", &t);
    let _ = t.shutdown();

    // Where (f)'s time goes.
    // f1: telemetry's subscriber without the OTel layer (EnvFilter + JSON
    // layer): traces not recorded and nothing to propagate.
    let t = telemetry("bench-no-otel", &[("OTEL_PROPAGATORS", "none")]);
    bench_span(&mut g, "f1_telemetry_dispatch_traces_none", t.dispatch());
    let _ = t.shutdown();
    // f1p: traces not recorded, context still propagated: the pass-through
    // OTel layer over the no-op tracer (the default with
    // `OTEL_TRACES_EXPORTER=none`).
    let t = telemetry("bench-pass-through", &[]);
    bench_span(
        &mut g,
        "f1p_telemetry_dispatch_traces_none_pass_through",
        t.dispatch(),
    );
    let _ = t.shutdown();
    // f2: EnvFilter alone on the registry.
    let filtered = Dispatch::new(
        tracing_subscriber::registry().with(EnvFilter::builder().parse("info").unwrap()),
    );
    bench_span(&mut g, "f2_registry_envfilter", &filtered);
    // f3: the OTel layer alone on the registry, feeding the same span queue
    // set-up as (f).
    let t = traced("bench-otel-only", &[]);
    let tp = t.tracer_provider().unwrap().clone();
    bench_span(
        &mut g,
        "f3_registry_otel_layer_queue",
        &Dispatch::new(tracing_subscriber::registry().with(otel_layer(&tp))),
    );
    report("f3", &t);
    let _ = t.shutdown();
    // f4: the OTel layer on a provider without any span processor: building
    // the span, without queueing it.
    let bare_tp = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    bench_span(
        &mut g,
        "f4_registry_otel_layer_no_processor",
        &Dispatch::new(tracing_subscriber::registry().with(otel_layer(&bare_tp))),
    );
    // f6: tracing-opentelemetry's defaults (location, thread ids and
    // inactivity tracking on), no processor.
    bench_span(
        &mut g,
        "f6_registry_otel_layer_defaults_no_processor",
        &Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(bare_tp.tracer("bench"))),
        ),
    );
    // f7: (f) with OTEL_TRACES_SAMPLER=always_off: sampling is not the off switch.
    let t = telemetry(
        "bench-always-off",
        &[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_TRACES_SAMPLER", "always_off"),
        ],
    );
    bench_span(&mut g, "f7_telemetry_dispatch_always_off", t.dispatch());
    let _ = t.shutdown();
    // f8: (f) with RUST_LOG=warn: level filtering is.
    let t = telemetry(
        "bench-warn",
        &[("OTEL_TRACES_EXPORTER", "otlp"), ("RUST_LOG", "warn")],
    );
    bench_span(&mut g, "f8_telemetry_dispatch_rust_log_warn", t.dispatch());
    let _ = t.shutdown();

    // (e) again at the end: the floor drifts with the machine's load.
    bench_span(
        &mut g,
        "e2_span_bare_registry_again",
        &Dispatch::new(tracing_subscriber::registry()),
    );
    g.finish();
}

/// Times [`one_request`] on `t`'s dispatch, then reports and shuts it down.
fn bench_telemetry(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    t: Telemetry,
) {
    bench_on(g, id, t.dispatch(), one_request);
    report(&id[..id.find('_').unwrap_or(id.len())], &t);
    let _ = t.shutdown();
}

/// Sampling: what a request's spans cost when most are not sampled. Every
/// figure is per request of [`REQUEST_SPANS`] spans (one root, four
/// children); divided by the bare registry's it is the per-span ratio.
fn sampling(c: &mut Criterion) {
    let mut g = c.benchmark_group("sampling");
    g.throughput(criterion::Throughput::Elements(REQUEST_SPANS));
    let bare = Dispatch::new(tracing_subscriber::registry());
    // r0: the floor, a bare registry. A registry with no layer never frees
    // a closed span's data (tokio-rs/tracing#900): it skips the work every
    // real subscriber does when a span closes.
    bench_on(&mut g, "r0_request_bare_registry", &bare, one_request);
    // r5: the smallest subscriber that frees closed spans, a registry with
    // one layer that does nothing.
    let freeing = freeing_registry();
    bench_on(
        &mut g,
        "r5_request_registry_and_empty_layer",
        &freeing,
        one_request,
    );
    // r1: telemetry's dispatch, every span recorded, queued and exported
    // (into a queue that drains: `drained`).
    let t = drained("bench-r-always-on", &[]);
    bench_telemetry(&mut g, "r1_request_telemetry_always_on", t);
    // r2: nothing sampled.
    let t = drained(
        "bench-r-always-off",
        &[("OTEL_TRACES_SAMPLER", "always_off")],
    );
    bench_telemetry(&mut g, "r2_request_telemetry_always_off", t);
    // r3: one request in ten sampled, as production fleets run.
    let sampler = ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio");
    let t = drained(
        "bench-r-ratio",
        &[sampler, ("OTEL_TRACES_SAMPLER_ARG", "0.1")],
    );
    bench_telemetry(&mut g, "r3_request_telemetry_parentbased_ratio_0_1", t);
    // r6: r3's unsampled nine tenths alone, the same sampler at a ratio
    // that keeps almost nothing: r3 - 0.9 x r6 is the sampled tenth.
    let t = drained(
        "bench-r-ratio-tiny",
        &[sampler, ("OTEL_TRACES_SAMPLER_ARG", "0.000001")],
    );
    bench_telemetry(&mut g, "r6_request_telemetry_parentbased_ratio_tiny", t);
    // r7: r3 with a queue that never drains (OTLP to a refused port, which
    // retries the first batch for the whole run) and room for every span:
    // the heap grows by every span recorded, as no service runs.
    let t = traced(
        "bench-r-ratio-undrained",
        &[
            sampler,
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4194304"),
        ],
    );
    bench_telemetry(
        &mut g,
        "r7_request_telemetry_parentbased_ratio_0_1_undrained",
        t,
    );
    // r4: telemetry's dispatch without any OpenTelemetry layer (traces and
    // propagation off): EnvFilter and the JSON stdout layer, the floor the
    // rest of telemetry's subscriber sets.
    let t = telemetry("bench-r-none", &[("OTEL_PROPAGATORS", "none")]);
    bench_on(
        &mut g,
        "r4_request_telemetry_no_otel_layer",
        t.dispatch(),
        one_request,
    );
    let _ = t.shutdown();
    // r0 again: the floor drifts with the machine's load.
    bench_on(
        &mut g,
        "r0b_request_bare_registry_again",
        &bare,
        one_request,
    );
    g.finish();
}

/// One log event as a service writes it: a message and two fields.
#[inline(never)]
fn one_event() {
    tracing::info!(
        payment_id = "pay-7f3a9c",
        amount_minor = 1250u64,
        "payment accepted"
    );
}

/// Events: what one log line costs — stdout JSON alone, and with OTLP log
/// records too (their queue to a refused port, as the span benchmarks).
fn events(c: &mut Criterion) {
    let mut g = c.benchmark_group("events");
    let bench = |g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
                 id: &str,
                 t: &Telemetry| {
        tracing::dispatcher::with_default(t.dispatch(), || {
            g.bench_function(id, |b| b.iter(one_event));
        });
    };
    // l1: the JSON stdout line only.
    let t = telemetry("bench-l-json", &[]);
    bench(&mut g, "l1_event_json_stdout", &t);
    let _ = t.shutdown();
    // l2: the JSON stdout line and an OTLP log record.
    let t = telemetry(
        "bench-l-otlp",
        &[
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "4194304"),
        ],
    );
    bench(&mut g, "l2_event_json_stdout_and_otlp", &t);
    report("l2", &t);
    let _ = t.shutdown();
    // l3: the OTLP log record alone (`TELEMETRY_LOG_FORMAT=none`).
    let t = telemetry(
        "bench-l-none",
        &[
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "4194304"),
            ("TELEMETRY_LOG_FORMAT", "none"),
        ],
    );
    bench(&mut g, "l3_event_otlp_only", &t);
    report("l3", &t);
    let _ = t.shutdown();
    g.finish();
}

/// A request's root alone: two fields, entered once, no children.
#[inline(never)]
fn lone_root() {
    tracing::info_span!(
        "request",
        http.request.method = "GET",
        http.route = "/orders/{id}"
    )
    .in_scope(|| {});
}

/// Where a request's cost sits: its root alone, by what becomes of it (no
/// OpenTelemetry layer, dropped at creation with or without its fields
/// kept, recorded). Divided into [`sampling`]'s figures, the rest is the
/// four children.
fn lone_root_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("lone_root");
    let freeing = freeing_registry();
    bench_on(&mut g, "n5_registry_and_empty_layer", &freeing, lone_root);
    let t = telemetry("bench-n-none", &[("OTEL_PROPAGATORS", "none")]);
    bench_on(
        &mut g,
        "n4_telemetry_no_otel_layer",
        t.dispatch(),
        lone_root,
    );
    let _ = t.shutdown();
    let sampler = ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio");
    let t = drained(
        "bench-n-ratio-tiny",
        &[sampler, ("OTEL_TRACES_SAMPLER_ARG", "0.000001")],
    );
    bench_on(
        &mut g,
        "n6_dropped_fields_kept_ratio_tiny",
        t.dispatch(),
        lone_root,
    );
    let _ = t.shutdown();
    let t = drained(
        "bench-n-always-off",
        &[("OTEL_TRACES_SAMPLER", "always_off")],
    );
    bench_on(&mut g, "n2_dropped_always_off", t.dispatch(), lone_root);
    let _ = t.shutdown();
    let t = drained("bench-n-always-on", &[]);
    bench_on(&mut g, "n1_recorded_always_on", t.dispatch(), lone_root);
    report("n1", &t);
    let _ = t.shutdown();
    g.finish();
}

/// The context an incoming request carries, sampled upstream or not.
fn incoming(sampled: bool) -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId};
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
        SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
        flags,
        true,
        Default::default(),
    ))
}

static INCOMING_UNSAMPLED: std::sync::LazyLock<opentelemetry::Context> =
    std::sync::LazyLock::new(|| incoming(false));
static INCOMING_SAMPLED: std::sync::LazyLock<opentelemetry::Context> =
    std::sync::LazyLock::new(|| incoming(true));

/// [`one_request`] as a service down the call chain serves it: the root is
/// created, then given the incoming context (`set_parent`, as services
/// written against tracing-opentelemetry's API do), then entered.
#[inline(never)]
fn downstream_request(incoming: &opentelemetry::Context) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let root = tracing::info_span!(
        "request",
        http.request.method = "GET",
        http.route = "/orders/{id}"
    );
    let _ = root.set_parent(incoming.clone());
    downstream_children(root);
}

/// [`downstream_request`] as services-glue's middleware serves it: the root
/// is created while the incoming context is the current one, and decided
/// under it.
#[inline(never)]
fn downstream_request_attached(incoming: &opentelemetry::Context) {
    let root = {
        let _incoming = incoming.clone().attach();
        tracing::info_span!(
            "request",
            http.request.method = "GET",
            http.route = "/orders/{id}"
        )
    };
    downstream_children(root);
}

fn downstream_children(root: tracing::Span) {
    root.in_scope(|| {
        for step in 0..(REQUEST_SPANS - 1) {
            tracing::info_span!("step", step).in_scope(|| {});
        }
    });
}

#[inline(never)]
fn downstream_unsampled() {
    downstream_request(&INCOMING_UNSAMPLED);
}

#[inline(never)]
fn downstream_sampled() {
    downstream_request(&INCOMING_SAMPLED);
}

#[inline(never)]
fn downstream_attached_unsampled() {
    downstream_request_attached(&INCOMING_UNSAMPLED);
}

#[inline(never)]
fn downstream_attached_sampled() {
    downstream_request_attached(&INCOMING_SAMPLED);
}

/// A request reaching a service down the call chain, where the incoming
/// context decides (nine times in ten "not sampled" under a ratio of 0.1 at
/// the edge), under `parentbased_traceidratio` 0.1 and under the default
/// sampler. Per request of [`REQUEST_SPANS`] spans, against the same
/// request on a registry that frees its spans (where `set_parent` does
/// nothing).
fn downstream_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("downstream");
    g.throughput(criterion::Throughput::Elements(REQUEST_SPANS));
    let freeing = freeing_registry();
    bench_on(
        &mut g,
        "d5_registry_and_empty_layer",
        &freeing,
        downstream_unsampled,
    );
    let sampler = ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio");
    let t = drained(
        "bench-d-ratio",
        &[sampler, ("OTEL_TRACES_SAMPLER_ARG", "0.1")],
    );
    bench_on(
        &mut g,
        "d6_incoming_unsampled",
        t.dispatch(),
        downstream_unsampled,
    );
    bench_on(
        &mut g,
        "d1_incoming_sampled",
        t.dispatch(),
        downstream_sampled,
    );
    bench_on(
        &mut g,
        "d6a_incoming_unsampled_attached",
        t.dispatch(),
        downstream_attached_unsampled,
    );
    bench_on(
        &mut g,
        "d1a_incoming_sampled_attached",
        t.dispatch(),
        downstream_attached_sampled,
    );
    report("d", &t);
    let _ = t.shutdown();
    // The default sampler (`parentbased_always_on`), which services down the
    // call chain keep when only the edge samples by ratio.
    let t = drained("bench-d-default", &[]);
    bench_on(
        &mut g,
        "d8_default_sampler_incoming_unsampled",
        t.dispatch(),
        downstream_unsampled,
    );
    bench_on(
        &mut g,
        "d9_default_sampler_incoming_sampled",
        t.dispatch(),
        downstream_sampled,
    );
    bench_on(
        &mut g,
        "d8a_default_sampler_incoming_unsampled_attached",
        t.dispatch(),
        downstream_attached_unsampled,
    );
    report("d", &t);
    let _ = t.shutdown();
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(20)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = metrics, spans, sampling, lone_root_group, downstream_group, events
}
criterion_main!(benches);
