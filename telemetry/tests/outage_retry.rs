//! A collector outage shorter than the queue holds loses nothing: the
//! engine → real collector (rotel) → backend path, the collector stopped
//! mid-run and started again on the same ports. Batches that fail for a
//! transient reason are kept and retried; newer items wait in the bounded
//! queue. Afterwards every span and log record emitted was exported
//! (nothing failed, nothing dropped) and the backend holds them all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use telemetry::testing::OtlpReceiver;
use telemetry::{Signal, Telemetry};

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn an_outage_shorter_than_the_queue_loses_nothing() {
    let backend = OtlpReceiver::start().unwrap();
    let collector = testkit::Rotel::start(&backend.grpc_endpoint()).unwrap();
    let (grpc, http) = (collector.grpc_addr().port(), collector.http_addr().port());
    let env = common::env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.grpc_endpoint()),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
        // Room for the whole outage: about 3 s at 200 spans and 200 records a second.
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "4096"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("TELEMETRY_LOG_FORMAT", "json"),
    ]);
    let t = Telemetry::builder("outage-engine")
        .with_env(env)
        .with_stdout_writer(common::Captured::default())
        .with_shutdown_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = t.health();
    let emitted = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (dispatch, emitted, stop) = (t.dispatch().clone(), emitted.clone(), stop.clone());
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                while !stop.load(Ordering::Relaxed) {
                    let seq = emitted.fetch_add(1, Ordering::Relaxed) as i64;
                    let span = tracing::info_span!("outage-span", seq);
                    let _e = span.enter();
                    tracing::info!(seq, "outage-record");
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    collector.stop().unwrap();
    let outage = Instant::now();
    // Down long enough for several failed attempts and backoffs.
    let failing = wait_until(Duration::from_secs(10), || {
        [Signal::Traces, Signal::Logs].iter().all(|s| {
            matches!(
                health.signal(*s).map(|x| x.state),
                Some(telemetry::ExportState::Failing { .. })
            )
        })
    });
    assert!(failing, "{health:?}");
    std::thread::sleep(Duration::from_secs(3).saturating_sub(outage.elapsed()));
    let again = testkit::Rotel::builder(&backend.grpc_endpoint())
        .ports(grpc, http)
        .start()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    let total = emitted.load(Ordering::Relaxed);

    // Everything held during the outage goes out once the collector is back.
    let drained = wait_until(Duration::from_secs(20), || {
        [Signal::Traces, Signal::Logs].iter().all(|s| {
            let x = health.signal(*s).unwrap();
            x.queued == 0 && x.exported == x.emitted
        })
    });
    assert!(drained, "{health:?}");
    for signal in [Signal::Traces, Signal::Logs] {
        let s = health.signal(signal).unwrap();
        assert_eq!(s.emitted, total, "{s:?}");
        assert_eq!(
            (s.exported, s.failed, s.dropped),
            (total, 0, 0),
            "{signal:?}: {s:?}"
        );
    }
    t.shutdown().unwrap();
    // And the backend behind the collector holds every one of them.
    let spans = backend.wait_for_spans(Duration::from_secs(15), |s| {
        s.iter().filter(|x| x.name == "outage-span").count() as u64 >= total
    });
    let seqs: std::collections::BTreeSet<i64> = spans
        .iter()
        .filter(|x| x.name == "outage-span")
        .filter_map(|x| x.attributes.i64("seq"))
        .collect();
    assert_eq!(
        seqs.len() as u64,
        total,
        "spans missing at the backend: {} received, e.g. {:?}",
        spans.len(),
        spans.first()
    );
    let logs = backend.wait_for_logs(Duration::from_secs(15), |l| {
        l.iter()
            .filter(|x| x.body.as_deref() == Some("outage-record"))
            .count() as u64
            >= total
    });
    let records = logs
        .iter()
        .filter(|x| x.body.as_deref() == Some("outage-record"))
        .filter_map(|x| x.attributes.i64("seq"))
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        records.len() as u64,
        total,
        "log records missing at the backend"
    );
    drop(again);
}
