//! A queue's bound is a limit, not an allocation. A service sized to ride
//! out a long collector outage (`OTEL_BSP_MAX_QUEUE_SIZE`,
//! `OTEL_BLRP_MAX_QUEUE_SIZE` in the hundreds of millions, and batch sizes
//! as large) must start, take memory only for what it queues, and export as
//! usual.
//!
//! One test in its own binary: it reads the process's resident memory,
//! which other tests running beside it would move.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Captured, env};
use telemetry::testing::OtlpReceiver;
use telemetry::{Signal, Telemetry};

/// A bound no machine has the memory to allocate up front: a billion spans
/// or log records is hundreds of gigabytes.
const HUGE: usize = 1_000_000_000;
const SPANS: usize = 2_000;

/// This process's resident memory, bytes (`VmRSS`, whatever the page size).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn a_huge_queue_bound_takes_memory_only_for_what_is_queued() {
    let receiver = OtlpReceiver::start().unwrap();
    let huge = HUGE.to_string();
    let before = resident_bytes();
    let t = Telemetry::builder("outage-ready-engine")
        .with_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_endpoint()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", &huge),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", &huge),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &huge),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", &huge),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ]))
        .with_stdout_writer(Captured::default())
        .with_shutdown_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        for id in 0..SPANS as i64 {
            tracing::info_span!("settle", id).in_scope(|| tracing::info!(id, "settled"));
        }
    });
    let grown = resident_bytes().saturating_sub(before);

    let health = t.health();
    assert_eq!(t.shutdown(), Ok(()), "{health:?}");
    for signal in [Signal::Traces, Signal::Logs] {
        let s = health.signal(signal).unwrap();
        assert_eq!(s.queue_capacity, HUGE, "the bound is the one configured");
        assert_eq!(s.dropped, 0, "{s:?}");
    }
    // Started, queued and exported: every span and record arrived.
    assert_eq!(receiver.spans().len(), SPANS);
    assert_eq!(receiver.logs().len(), SPANS);
    // The pipelines, a runtime and two thousand spans and records take a
    // few megabytes; a slot per item of the bound would be gigabytes.
    assert!(
        grown < 64 << 20,
        "resident memory grew by {} MiB for a queue holding {SPANS} items",
        grown >> 20
    );
    receiver.shutdown();
}
