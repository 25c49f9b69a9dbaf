//! The guard's shutdown: bounded by its deadline on every kind of thread
//! (outside any runtime, on a multi-thread runtime worker, on the only thread
//! of a `current_thread` runtime — explicit `shutdown_async().await` and a
//! plain drop, the upstream deadlock) against a healthy, a refused and a
//! tarpit collector, over gRPC and HTTP/protobuf. Healthy: nothing that was
//! queued is lost. Calling it twice is harmless and Drop afterwards is free.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{Captured, env, refused_port};
use opentelemetry::KeyValue;
use telemetry::testing::{MetricData, OtlpReceiver, find_metric};
use telemetry::{ExportState, ShutdownError, Signal, Telemetry, TelemetryHealth};

/// The shutdown deadline every case is built with.
const DEADLINE: Duration = Duration::from_secs(2);
/// Scheduling slack on a loaded 2-core machine: the guarantee is "returns at
/// the deadline", this is only the tolerance of measuring it.
const MARGIN: Duration = Duration::from_millis(1500);
/// Spans (each with one log event inside) emitted per case.
const N: usize = 50;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Healthy,
    Refused,
    Tarpit,
}

enum Collector {
    Healthy(OtlpReceiver),
    Refused,
    Tarpit(testkit::Tarpit),
}

/// One telemetry instance pointed at one collector, with data already emitted.
struct Case {
    kind: Kind,
    collector: Collector,
    telemetry: Telemetry,
    health: TelemetryHealth,
    _stdout: Captured,
}

fn case_env(endpoint: &str, protocol: &str) -> HashMap<String, String> {
    env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        // Nothing is exported before shutdown: no timer fires in the test's
        // lifetime and N is far below a batch. Whatever arrives, shutdown sent.
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "60000"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
        ("TELEMETRY_LOG_FORMAT", "json"),
    ])
}

fn start(kind: Kind, protocol: &str) -> Case {
    let (collector, endpoint) = match kind {
        Kind::Healthy => {
            let r = OtlpReceiver::start().unwrap();
            let e = if protocol == "grpc" {
                r.grpc_endpoint()
            } else {
                r.http_endpoint()
            };
            (Collector::Healthy(r), e)
        }
        Kind::Refused => (
            Collector::Refused,
            format!("http://127.0.0.1:{}", refused_port()),
        ),
        Kind::Tarpit => {
            let t = testkit::Tarpit::start().unwrap();
            let e = t.endpoint();
            (Collector::Tarpit(t), e)
        }
    };
    let stdout = Captured::default();
    let telemetry = Telemetry::builder("shutdown-test")
        .with_env(case_env(&endpoint, protocol))
        .with_shutdown_timeout(DEADLINE)
        .with_stdout_writer(stdout.clone())
        .build()
        .unwrap();
    emit(&telemetry);
    let health = telemetry.health();
    // Everything is still queued: the pipelines only export on shutdown.
    let traces = health.signal(Signal::Traces).unwrap();
    assert_eq!(traces.emitted, N as u64);
    assert_eq!(traces.exported, 0, "{traces:?}");
    assert_eq!(traces.queued, N, "{traces:?}");
    Case {
        kind,
        collector,
        telemetry,
        health,
        _stdout: stdout,
    }
}

fn emit(t: &Telemetry) {
    let items = t.meter().u64_counter("shutdown.test.items").build();
    tracing::dispatcher::with_default(t.dispatch(), || {
        for i in 0..N as i64 {
            tracing::info_span!("unit_of_work", i).in_scope(|| {
                tracing::info!(i, "work item done");
            });
        }
    });
    items.add(N as u64, &[KeyValue::new("stage", "done")]);
}

/// Asserts what a finished shutdown must guarantee for this kind of collector.
/// `result` is `None` when the guard was dropped (no result to look at).
fn check(
    kind: Kind,
    collector: &Collector,
    health: &TelemetryHealth,
    result: Option<&Result<(), ShutdownError>>,
    elapsed: Duration,
) {
    assert!(
        elapsed <= DEADLINE + MARGIN,
        "{kind:?}: shutdown took {elapsed:?}, deadline {DEADLINE:?}"
    );
    let traces = health.signal(Signal::Traces).unwrap();
    let logs = health.signal(Signal::Logs).unwrap();
    let metrics = health.signal(Signal::Metrics).unwrap();
    match collector {
        Collector::Healthy(receiver) => {
            if let Some(r) = result {
                assert_eq!(r, &Ok(()), "healthy collector");
            }
            // Shutdown returns only after the collector acknowledged, so the
            // data is there now, without waiting.
            let spans: BTreeSet<i64> = receiver
                .spans()
                .iter()
                .filter(|s| s.name == "unit_of_work")
                .map(|s| s.attributes.i64("i").unwrap_or_else(|| panic!("{s:?}")))
                .collect();
            assert_eq!(spans, (0..N as i64).collect(), "every span arrived once");
            assert_eq!(receiver.spans().len(), N);
            let logs_received: BTreeSet<i64> = receiver
                .logs()
                .iter()
                .filter(|l| l.body.as_deref() == Some("work item done"))
                .map(|l| l.attributes.i64("i").unwrap_or_else(|| panic!("{l:?}")))
                .collect();
            assert_eq!(logs_received, (0..N as i64).collect(), "every log arrived");
            assert_eq!(receiver.logs().len(), N);
            // The metric was only ever exported by the final collection.
            let received = receiver.metrics();
            let m = find_metric(&received, "shutdown.test.items").expect("final metric export");
            match &m.data {
                MetricData::Sum { points, .. } => assert_eq!(points[0].value, N as f64),
                other => panic!("expected a sum, got {other:?}"),
            }
            for s in [&traces, &logs] {
                assert_eq!(s.emitted, N as u64, "{s:?}");
                assert_eq!(s.exported, s.emitted, "{s:?}");
                assert_eq!((s.dropped, s.failed, s.queued), (0, 0, 0), "{s:?}");
                assert_eq!(s.state, ExportState::Ok, "{s:?}");
            }
            assert_eq!(metrics.state, ExportState::Ok, "{metrics:?}");
            assert!(metrics.exported > 0, "{metrics:?}");
            assert!(health.is_healthy());
        }
        Collector::Refused => {
            // Nothing was exported; everything is accounted as lost, and
            // health says which signal is failing.
            for s in [&traces, &logs] {
                assert_eq!(s.exported, 0, "{s:?}");
                assert!(
                    matches!(s.state, ExportState::Failing { .. }),
                    "refused collector must show as failing: {s:?}"
                );
            }
            assert_eq!(traces.failed + traces.dropped, N as u64, "{traces:?}");
            assert!(!health.is_healthy());
            if let Some(r) = result {
                assert!(
                    r.is_err(),
                    "a refused collector cannot flush cleanly: {r:?}"
                );
            }
        }
        Collector::Tarpit(tarpit) => {
            assert!(tarpit.connections() > 0, "the exporter did connect");
            // The export hangs longer than the deadline (OTLP timeout 10 s):
            // only the deadline ends the shutdown.
            if let Some(r) = result {
                assert_eq!(r, &Err(ShutdownError::TimedOut(DEADLINE)));
                assert!(
                    elapsed >= DEADLINE,
                    "gave up after {elapsed:?}, before the deadline"
                );
            }
            for s in [&traces, &logs] {
                assert_eq!(s.exported, 0, "{s:?}");
                assert_ne!(s.state, ExportState::Ok, "{s:?}");
            }
        }
    }
}

/// Explicit, blocking shutdown; then the second call and the guard's Drop.
fn shutdown_sync(case: Case) {
    let t0 = Instant::now();
    let first = case.telemetry.shutdown();
    let elapsed = t0.elapsed();
    check(
        case.kind,
        &case.collector,
        &case.health,
        Some(&first),
        elapsed,
    );
    repeat_and_drop(case, &first);
}

/// A second shutdown returns the first result without blocking, and so does
/// the guard's Drop.
fn repeat_and_drop(case: Case, first: &Result<(), ShutdownError>) {
    let t0 = Instant::now();
    let second = case.telemetry.shutdown();
    let again = t0.elapsed();
    assert_eq!(&second, first, "second shutdown returns the first result");
    assert!(
        again < Duration::from_millis(300),
        "second call took {again:?}"
    );
    let Case { telemetry, .. } = case;
    let t0 = Instant::now();
    drop(telemetry);
    let dropped = t0.elapsed();
    assert!(
        dropped < Duration::from_millis(300),
        "drop after shutdown took {dropped:?}"
    );
}

async fn shutdown_async(case: Case) {
    let t0 = Instant::now();
    let first = case.telemetry.shutdown_async().await;
    let elapsed = t0.elapsed();
    check(
        case.kind,
        &case.collector,
        &case.health,
        Some(&first),
        elapsed,
    );
    // The async form agrees with the blocking one afterwards.
    let again = case.telemetry.shutdown_async().await;
    assert_eq!(again, first);
    repeat_and_drop(case, &first);
}

/// No explicit shutdown: the guard goes out of scope.
fn shutdown_by_drop(case: Case) {
    let Case {
        kind,
        collector,
        telemetry,
        health,
        _stdout,
    } = case;
    let t0 = Instant::now();
    drop(telemetry);
    let elapsed = t0.elapsed();
    check(kind, &collector, &health, None, elapsed);
}

macro_rules! matrix {
    ($($module:ident: $kind:expr, $protocol:literal;)*) => {$(
        mod $module {
            use super::*;

            #[test]
            fn outside_any_runtime() {
                shutdown_sync(start($kind, $protocol));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_multi_thread_runtime() {
                shutdown_sync(start($kind, $protocol));
            }

            #[tokio::test(flavor = "current_thread")]
            async fn current_thread_shutdown_async() {
                shutdown_async(start($kind, $protocol)).await;
            }

            #[tokio::test(flavor = "current_thread")]
            async fn current_thread_drop() {
                shutdown_by_drop(start($kind, $protocol));
            }
        }
    )*};
}

matrix! {
    healthy_grpc: Kind::Healthy, "grpc";
    healthy_http: Kind::Healthy, "http/protobuf";
    refused_grpc: Kind::Refused, "grpc";
    refused_http: Kind::Refused, "http/protobuf";
    tarpit_grpc: Kind::Tarpit, "grpc";
    tarpit_http: Kind::Tarpit, "http/protobuf";
}

/// `TELEMETRY_SHUTDOWN_TIMEOUT` sets the deadline; the builder overrides it.
#[test]
fn deadline_comes_from_env_and_code_wins() {
    for (from_code, expected) in [
        (None, Duration::from_millis(1200)),
        (Some(Duration::from_millis(600)), Duration::from_millis(600)),
    ] {
        let tarpit = testkit::Tarpit::start().unwrap();
        let mut vars = case_env(&tarpit.endpoint(), "grpc");
        vars.insert("TELEMETRY_SHUTDOWN_TIMEOUT".into(), "1200".into());
        let mut b = Telemetry::builder("deadline-test").with_env(vars);
        if let Some(d) = from_code {
            b = b.with_shutdown_timeout(d);
        }
        let t = b.with_stdout_writer(Captured::default()).build().unwrap();
        emit(&t);
        let t0 = Instant::now();
        let r = t.shutdown();
        let elapsed = t0.elapsed();
        assert_eq!(r, Err(ShutdownError::TimedOut(expected)));
        assert!(
            elapsed >= expected && elapsed <= expected + MARGIN,
            "took {elapsed:?}, deadline {expected:?}"
        );
    }
}
