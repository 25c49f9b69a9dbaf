//! The ways to start — `set_default` scoped to a thread, `layer()` in a
//! registry the service owns — and how exporters given in code meet the
//! ones the environment selects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use common::Captured;
use telemetry::testing::{InMemory, find_span};
use telemetry::{Signal, Telemetry};
use tracing_subscriber::layer::SubscriberExt as _;

use common::env;

#[test]
fn set_default_records_on_this_thread_only_and_leaves_globals_alone() {
    let sink = InMemory::new();
    let scoped = Telemetry::builder("scoped-engine")
        .with_in_memory(&sink)
        .with_stdout_writer(std::io::sink)
        .set_default()
        .unwrap();
    tracing::info_span!("on_this_thread").in_scope(|| {});
    std::thread::spawn(|| tracing::info_span!("on_another_thread").in_scope(|| {}))
        .join()
        .unwrap();
    // Nothing process-wide: the global propagator is still the no-op one.
    let cx = {
        use telemetry::tracing_opentelemetry::OpenTelemetrySpanExt as _;
        tracing::info_span!("for_context").context()
    };
    let mut headers = http::HeaderMap::new();
    telemetry::propagation::inject_global(&cx, &mut headers);
    assert!(headers.is_empty(), "global propagator changed: {headers:?}");
    scoped.force_flush();
    drop(scoped);
    // The previous default is back: this span goes nowhere.
    tracing::info_span!("after_the_guard").in_scope(|| {});

    let names: Vec<String> = sink.spans().into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"on_this_thread".to_string()), "{names:?}");
    assert!(
        !names.contains(&"on_another_thread".to_string()),
        "{names:?}"
    );
    assert!(!names.contains(&"after_the_guard".to_string()), "{names:?}");
}

/// Counts events, standing in for a layer the service owns.
#[derive(Clone, Default)]
struct CountEvents(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountEvents {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn layers_join_a_registry_the_service_owns_and_filter_only_themselves() {
    let sink = InMemory::new();
    let telemetry = Telemetry::builder("own-registry-engine")
        .with_env(env(&[("RUST_LOG", "warn")]))
        .with_in_memory(&sink)
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    let own = CountEvents::default();
    let subscriber = tracing_subscriber::registry()
        .with(own.clone())
        .with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn_span!("kept").in_scope(|| tracing::warn!(order = 7, "shown"));
        tracing::info!("below RUST_LOG");
    });
    telemetry.shutdown().unwrap();

    // The service's own layer saw both events: RUST_LOG filters
    // telemetry's layers, not the registry.
    assert_eq!(own.0.load(Ordering::Relaxed), 2);
    let spans = sink.spans();
    let kept = find_span(&spans, "kept").expect("span through the service's registry");
    assert_eq!(
        kept.resource.str("service.name"),
        Some("own-registry-engine")
    );
    let logs = sink.logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].attributes.i64("order"), Some(7));
    assert_eq!(logs[0].trace_id.as_deref(), Some(kept.trace_id.as_str()));
}

/// A layer added with `with_layer` sits beside telemetry's own, behind
/// `RUST_LOG`, and its own per-layer filter narrows what it gets further.
#[test]
fn added_layers_see_what_rust_log_lets_through_and_their_own_filter_keeps() {
    use tracing_subscriber::Layer as _;
    let sink = InMemory::new();
    let plain = CountEvents::default();
    let filtered = CountEvents::default();
    let telemetry = Telemetry::builder("added-layer-engine")
        .with_env(env(&[("RUST_LOG", "info")]))
        .with_in_memory(&sink)
        .with_stdout_writer(std::io::sink)
        .with_layer(plain.clone())
        .with_layer(
            filtered
                .clone()
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("request").in_scope(|| {
            tracing::debug!("below RUST_LOG");
            tracing::info!("info");
            tracing::warn!("warn");
        });
    });
    telemetry.shutdown().unwrap();
    assert_eq!(plain.0.load(Ordering::Relaxed), 2, "info and warn");
    assert_eq!(filtered.0.load(Ordering::Relaxed), 1, "warn only");
    assert_eq!(sink.logs().len(), 2, "{:?}", sink.logs());
    assert!(find_span(&sink.spans(), "request").is_some());
}

fn span_pipelines(t: &Telemetry) -> usize {
    t.health()
        .signals()
        .iter()
        .filter(|s| s.signal == Signal::Traces)
        .count()
}

#[test]
fn code_exporters_replace_the_default_but_not_an_operators_choice() {
    // Unset: the code's exporter instead of the default OTLP.
    let sink = InMemory::new();
    let t = Telemetry::builder("a")
        .with_env(env(&[
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ]))
        .with_span_exporter(sink.span_exporter())
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    assert_eq!(span_pipelines(&t), 1);
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!("to_code").in_scope(|| {})
    });
    t.shutdown().unwrap();
    assert_eq!(sink.spans().len(), 1);

    // An explicit list: used beside the code's.
    let t = Telemetry::builder("b")
        .with_env(env(&[("OTEL_TRACES_EXPORTER", "console")]))
        .with_span_exporter(sink.span_exporter())
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    assert_eq!(span_pipelines(&t), 2);
    drop(t);

    // `none`: the operator turned spans off; the code's exporter is not used.
    let t = Telemetry::builder("c")
        .with_env(env(&[("OTEL_TRACES_EXPORTER", "none")]))
        .with_span_exporter(sink.span_exporter())
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    assert_eq!(span_pipelines(&t), 0);
    assert!(t.tracer_provider().is_none());

    // Disabled SDK: nothing at all.
    let t = Telemetry::builder("d")
        .with_env(env(&[("OTEL_SDK_DISABLED", "true")]))
        .with_in_memory(&sink)
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    assert!(t.health().signals().is_empty());
}

#[test]
fn a_code_metric_exporter_shares_the_prometheus_reader() {
    let sink = InMemory::new();
    let t = Telemetry::builder("metrics-engine")
        .with_env(env(&[
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ]))
        .with_metric_exporter(sink.metric_exporter())
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    let counter = opentelemetry::metrics::MeterProvider::meter(t.meter_provider().unwrap(), "test")
        .u64_counter("payments")
        .build();
    counter.add(3, &[]);
    t.force_flush();
    // One aggregation, two paths: the pull endpoint and the pushed copy agree.
    let rendered = t.prometheus().unwrap().render();
    assert!(rendered.contains("payments_total"), "{rendered}");
    let metrics = sink.metrics();
    let pushed = telemetry::testing::find_metric(&metrics, "payments").expect("pushed copy");
    assert_eq!(pushed.number_points()[0].value, 3.0);
    t.shutdown().unwrap();
}

#[test]
fn an_ignored_otel_service_name_is_said_not_swallowed() {
    let quiet = [
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("TELEMETRY_LOG_FORMAT", "json"),
    ];
    let warned = |name_from_env: &str| {
        let out = Captured::default();
        let mut vars = env(&quiet);
        vars.insert("OTEL_SERVICE_NAME".into(), name_from_env.into());
        let t = Telemetry::builder("named-in-code")
            .with_env(vars)
            .with_stdout_writer(out.clone())
            .build()
            .unwrap();
        assert_eq!(t.service().name, "named-in-code");
        out.json_lines()
            .into_iter()
            .filter(|l| l["fields"]["variable"] == "OTEL_SERVICE_NAME")
            .collect::<Vec<_>>()
    };
    let lines = warned("renamed-by-operator");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "WARN");
    assert_eq!(lines[0]["fields"]["ignored"], "renamed-by-operator");
    // The same name is no news.
    assert!(warned("named-in-code").is_empty());
}

/// With metrics going nowhere, instruments are the API's no-op ones: an SDK
/// provider without a reader would log `InstrumentCreationFailed` at ERROR
/// for every observable instrument a service registers at start.
#[test]
fn without_metric_readers_instruments_are_silent_no_ops() {
    for off in [
        &[("OTEL_SDK_DISABLED", "true")][..],
        &[
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ][..],
    ] {
        let out = Captured::default();
        let mut vars = env(off);
        vars.insert("TELEMETRY_LOG_FORMAT".into(), "json".into());
        let t = Telemetry::builder("quiet-engine")
            .with_env(vars)
            .with_stdout_writer(out.clone())
            .build()
            .unwrap();
        assert!(t.meter_provider().is_none(), "{off:?}");
        tracing::dispatcher::with_default(t.dispatch(), || {
            let meter = t.meter();
            let _uptime = meter
                .f64_observable_gauge("process.uptime")
                .with_callback(|g| g.observe(1.0, &[]))
                .build();
            let counter = meter.u64_counter("payments").build();
            counter.add(1, &[]);
            tracing::info!("started");
        });
        t.shutdown().unwrap();
        let lines = out.json_lines();
        assert!(
            lines
                .iter()
                .all(|l| l["level"] != "ERROR" && l["level"] != "WARN"),
            "{off:?}: {}",
            out.text()
        );
        // The stdout layer itself still works.
        assert!(lines.iter().any(|l| l["message"] == "started"), "{off:?}");
    }
}
