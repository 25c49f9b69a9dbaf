//! Exact accounting: when the queue overflows, every item is still counted
//! once, so that `exported + dropped == emitted` per signal, and the
//! collector holds exactly what health says was exported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{Captured, env};
use telemetry::testing::OtlpReceiver;
use telemetry::{ExportState, Signal, SignalStatus, Telemetry};

/// OTLP to `receiver`, spans and logs through queues of `queue` items
/// exported in batches of `batch`.
fn accounting_env(
    receiver: &OtlpReceiver,
    protocol: &str,
    queue: usize,
    batch: usize,
) -> HashMap<String, String> {
    let (queue, batch) = (queue.to_string(), batch.to_string());
    let endpoint = if protocol == "grpc" {
        receiver.grpc_endpoint()
    } else {
        receiver.http_endpoint()
    };
    env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_BSP_MAX_QUEUE_SIZE", &queue),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", &queue),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &batch),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", &batch),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        // Only what the test emits is counted: no self-metrics, no metric
        // pipeline at all.
        ("OTEL_METRICS_EXPORTER", "none"),
        ("TELEMETRY_LOG_FORMAT", "json"),
    ])
}

/// Emits `per_thread` spans, each with one log event, from `threads` threads
/// as fast as they go.
fn emit(t: &Telemetry, threads: usize, per_thread: usize) {
    std::thread::scope(|s| {
        for thread in 0..threads {
            s.spawn(move || {
                tracing::dispatcher::with_default(t.dispatch(), || {
                    for i in 0..per_thread {
                        let id = (thread * per_thread + i) as i64;
                        tracing::info_span!("burst", id).in_scope(|| {
                            tracing::info!(id, "burst event");
                        });
                    }
                });
            });
        }
    });
}

/// Shuts down and checks every signal's books against the receiver.
fn settle(t: &Telemetry, receiver: &OtlpReceiver, emitted: u64) -> (SignalStatus, SignalStatus) {
    let health = t.health();
    assert_eq!(t.shutdown(), Ok(()), "{health:?}");
    let traces = health.signal(Signal::Traces).unwrap();
    let logs = health.signal(Signal::Logs).unwrap();
    assert!(health.signal(Signal::Metrics).is_none(), "{health:?}");
    for s in [&traces, &logs] {
        assert_eq!(s.emitted, emitted, "{s:?}");
        assert_eq!(s.failed, 0, "{s:?}");
        assert_eq!(s.queued, 0, "{s:?}");
        assert_eq!(s.exported + s.dropped, s.emitted, "{s:?}");
        assert_eq!(s.state, ExportState::Ok, "{s:?}");
    }
    // The receiver holds exactly what was counted as exported, each once.
    // Shutdown returned after the last acknowledgement: no waiting needed.
    let spans = receiver.spans();
    assert_eq!(spans.len() as u64, traces.exported);
    let ids: HashSet<i64> = spans
        .iter()
        .map(|s| s.attributes.i64("id").unwrap())
        .collect();
    assert_eq!(ids.len() as u64, traces.exported, "no span twice");
    let logs_received = receiver.logs();
    assert_eq!(logs_received.len() as u64, logs.exported);
    let ids: HashSet<i64> = logs_received
        .iter()
        .map(|l| l.attributes.i64("id").unwrap())
        .collect();
    assert_eq!(ids.len() as u64, logs.exported, "no log twice");
    (traces, logs)
}

fn overflow(protocol: &str) {
    let receiver = OtlpReceiver::start().unwrap();
    let t = Telemetry::builder("burst-engine")
        .with_env(accounting_env(&receiver, protocol, 16, 16))
        .with_stdout_writer(Captured::default())
        .with_shutdown_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    emit(&t, 2, 10_000);
    let (traces, logs) = settle(&t, &receiver, 20_000);
    for s in [traces, logs] {
        assert!(s.dropped > 0, "a 16-item queue must overflow: {s:?}");
        assert!(s.exported > 0, "{s:?}");
        assert_eq!(s.queue_capacity, 16);
    }
    receiver.shutdown();
}

#[test]
fn full_queue_drops_are_counted_exactly_grpc() {
    overflow("grpc");
}

#[test]
fn full_queue_drops_are_counted_exactly_http() {
    overflow("http/protobuf");
}

#[test]
fn nothing_dropped_when_the_queue_is_large_enough() {
    let receiver = OtlpReceiver::start().unwrap();
    let t = Telemetry::builder("calm-engine")
        .with_env(accounting_env(&receiver, "grpc", 2048, 512))
        .with_stdout_writer(Captured::default())
        .with_shutdown_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    emit(&t, 1, 1_000);
    let (traces, logs) = settle(&t, &receiver, 1_000);
    for s in [traces, logs] {
        assert_eq!(s.dropped, 0, "{s:?}");
        assert_eq!(s.exported, 1_000, "{s:?}");
        assert_eq!(s.queue_capacity, 2048);
    }
    receiver.shutdown();
}
