//! Never hurt the engine: with the collector refused, killed mid-run or
//! unresponsive (a tarpit), emitting never blocks or panics, memory stays
//! bounded by the queues, health says exports are failing, one warning per
//! signal says so (not one per failed export), and recovery is automatic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::{Captured, env, refused_port};
use telemetry::testing::OtlpReceiver;
use telemetry::{ExportState, Signal, SignalStatus, Telemetry, TelemetryHealth};

/// The tests here time single spans; running them one at a time keeps
/// their busy threads from competing for the two cores.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one emitting thread observed.
#[derive(Debug, Default, Clone, Copy)]
struct EmitStats {
    spans: u64,
    /// The longest single span (create, enter, one log event, end).
    worst: Duration,
}

/// Emission must never wait on the exporter. An emitter that did would
/// stall for whole export rounds: with a failing collector the worker holds
/// a full queue through retries 250 ms to 5 s apart, so a waiting span would
/// take seconds. A span itself costs microseconds; the margin between the
/// two absorbs scheduling noise on a loaded 2-core machine (descheduled
/// threads were seen at 85 ms), so the check says "never waited for an
/// export", not "was fast". That pushes never block on a full queue is
/// shown separately: the queue overflows and counts drops.
const NEVER_BLOCKS: Duration = Duration::from_millis(1000);

/// Emits `request` spans, each with one log event, until `stop` is set.
fn emit_until(t: &Telemetry, stop: &AtomicBool, phase: &AtomicU64) -> EmitStats {
    let mut stats = EmitStats::default();
    tracing::dispatcher::with_default(t.dispatch(), || {
        while !stop.load(Ordering::Relaxed) {
            let p = phase.load(Ordering::Relaxed) as i64;
            let t0 = Instant::now();
            tracing::info_span!("request", phase = p).in_scope(|| {
                tracing::info!(phase = p, "request handled");
            });
            stats.worst = stats.worst.max(t0.elapsed());
            stats.spans += 1;
            // Leave the CPU to the exporter threads now and then, as a
            // real service would between requests.
            if stats.spans % 8 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    stats
}

/// Samples every signal's queue; keeps the first snapshot that held more
/// items than its queue's capacity (the memory bound), to assert on later.
#[derive(Debug, Default)]
struct BoundCheck {
    samples: usize,
    violation: Option<SignalStatus>,
    max_queued: usize,
}

impl BoundCheck {
    fn sample(&mut self, health: &TelemetryHealth) {
        self.samples += 1;
        for s in health.signals() {
            self.max_queued = self.max_queued.max(s.queued);
            if s.queued > s.queue_capacity && self.violation.is_none() {
                self.violation = Some(s);
            }
        }
    }

    fn assert_bounded(&self) {
        assert!(self.samples > 20, "too few samples: {self:?}");
        assert!(
            self.violation.is_none(),
            "a queue held more than its capacity: {self:?}"
        );
    }
}

/// Sets the flag when dropped, so emitting threads stop even when the
/// sampling thread panics (a scoped thread would otherwise wait forever).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `emitters` threads of [`emit_until`] while `during` runs on this
/// thread; stops them when it returns (or panics) and returns what each saw.
fn with_traffic<R>(
    t: &Telemetry,
    emitters: usize,
    phase: &AtomicU64,
    during: impl FnOnce() -> R,
) -> (R, Vec<EmitStats>) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..emitters)
            .map(|_| s.spawn(|| emit_until(t, &stop, phase)))
            .collect();
        let r = {
            let _stop = StopOnDrop(&stop);
            during()
        };
        let stats = handles
            .into_iter()
            .map(|h| h.join().expect("an emitting thread panicked"))
            .collect();
        (r, stats)
    })
}

fn assert_never_blocked(results: &[EmitStats]) {
    for r in results {
        assert!(r.spans > 100, "the engine kept serving: {r:?}");
        assert!(r.worst < NEVER_BLOCKS, "one span took {:?}", r.worst);
    }
}

fn failing_env(endpoint: &str, protocol: &str) -> HashMap<String, String> {
    env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "20"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "256"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "256"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "64"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
        ("TELEMETRY_LOG_FORMAT", "json"),
    ])
}

/// Stdout JSON lines with `message` starting with `prefix` and
/// `fields.endpoint` containing `endpoint`, per signal.
fn lines_per_signal(stdout: &Captured, prefix: &str, endpoint: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in stdout.json_lines() {
        let message = line["message"].as_str().unwrap_or_default();
        let ep = line["fields"]["endpoint"].as_str().unwrap_or_default();
        if message.starts_with(prefix) && ep.contains(endpoint) {
            let signal = line["fields"]["signal"].as_str().unwrap_or("?").to_string();
            *out.entry(signal).or_insert(0) += 1;
        }
    }
    out
}

fn consecutive_failures(health: &TelemetryHealth, signal: Signal) -> u64 {
    match health.signal(signal).map(|s| s.state) {
        Some(ExportState::Failing {
            consecutive_failures,
            ..
        }) => consecutive_failures,
        _ => 0,
    }
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (a) A refused collector, for 1.5 s of traffic from three threads.
#[test]
fn refused_collector_never_blocks_and_warns_once_per_signal() {
    let _serial = serial();
    let port = refused_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let stdout = Captured::default();
    let t = Telemetry::builder("refused-engine")
        .with_env(failing_env(&endpoint, "grpc"))
        .with_stdout_writer(stdout.clone())
        .with_shutdown_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let health = t.health();
    let phase = AtomicU64::new(0);
    let (bounds, results) = with_traffic(&t, 3, &phase, || {
        let mut bounds = BoundCheck::default();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1500) {
            bounds.sample(&health);
            std::thread::sleep(Duration::from_millis(5));
        }
        bounds
    });
    assert_never_blocked(&results);
    bounds.assert_bounded();
    assert!(!health.is_healthy());
    let traces = health.signal(Signal::Traces).unwrap();
    let emitted: u64 = results.iter().map(|r| r.spans).sum();
    assert_eq!(traces.emitted, emitted, "every span was counted");
    assert_eq!(traces.exported, 0);
    // Many exports fail: the full queue keeps the workers trying (each
    // failed export of logs and metrics takes the OTLP crate's own retries, ~1 s).
    let many_failed = wait_until(Duration::from_secs(8), || {
        [(Signal::Traces, 3), (Signal::Logs, 3), (Signal::Metrics, 2)]
            .into_iter()
            .all(|(signal, n)| consecutive_failures(&health, signal) >= n)
    });
    assert!(many_failed, "{health:?}");
    let traces = health.signal(Signal::Traces).unwrap();
    match &traces.state {
        ExportState::Failing { last_error, .. } => {
            assert!(last_error.contains("refused"), "{last_error}");
        }
        other => panic!("traces should be failing: {other:?}"),
    }
    // ...the queue overflowed and said so...
    assert!(traces.dropped > 0, "{traces:?}");
    // ...but each signal warned exactly once.
    let warnings = lines_per_signal(&stdout, "telemetry export failing", &port.to_string());
    for signal in ["traces", "logs", "metrics"] {
        assert_eq!(
            warnings.get(signal),
            Some(&1),
            "one warning for {signal}: {warnings:?}\n{}",
            stdout.text()
        );
    }
    let t0 = Instant::now();
    drop(t);
    assert!(t0.elapsed() < Duration::from_secs(1) + Duration::from_millis(1500));
}

/// (b) The collector is killed mid-run, then comes back on the same ports.
fn killed_then_recovered(protocol: &str) {
    let _serial = serial();
    let first = OtlpReceiver::start().unwrap();
    let (grpc_port, http_port) = (first.grpc_addr().port(), first.http_addr().port());
    let (endpoint, port) = if protocol == "grpc" {
        (first.grpc_endpoint(), grpc_port)
    } else {
        (first.http_endpoint(), http_port)
    };
    let stdout = Captured::default();
    let t = Telemetry::builder("flaky-collector-engine")
        .with_env(failing_env(&endpoint, protocol))
        .with_stdout_writer(stdout.clone())
        .with_shutdown_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let health = t.health();
    let all_ok = |h: &TelemetryHealth| {
        h.signals()
            .iter()
            .all(|s| s.state == ExportState::Ok && s.exported > 0)
    };
    let phase = AtomicU64::new(0);
    let mut first = Some(first);
    let ((second, bounds), results) = with_traffic(&t, 2, &phase, || {
        let mut bounds = BoundCheck::default();
        // Phase 0: the collector serves.
        assert!(
            wait_until(Duration::from_secs(10), || all_ok(&health)),
            "{health:?}"
        );
        let a = first.take().unwrap();
        assert!(a.spans().iter().any(|s| s.name == "request"));
        // Phase 1: killed. Spans keep flowing; health turns to failing.
        a.shutdown();
        phase.store(1, Ordering::Relaxed);
        let went_failing = wait_until(Duration::from_secs(10), || {
            bounds.sample(&health);
            [Signal::Traces, Signal::Logs, Signal::Metrics]
                .into_iter()
                .all(|s| consecutive_failures(&health, s) > 0)
        });
        assert!(went_failing, "{health:?}");
        assert!(!health.is_healthy());
        // Phase 2: back on the same ports; nobody restarts anything.
        let b = OtlpReceiver::start_on(grpc_port, http_port).unwrap();
        phase.store(2, Ordering::Relaxed);
        let recovered = wait_until(Duration::from_secs(10), || {
            bounds.sample(&health);
            health.is_healthy() && health.signals().iter().all(|s| s.state == ExportState::Ok)
        });
        assert!(recovered, "{health:?}");
        let during = b.wait_for_spans(Duration::from_secs(10), |s| {
            s.iter().any(|x| x.attributes.i64("phase") == Some(2))
        });
        assert!(during.iter().any(|x| x.attributes.i64("phase") == Some(2)));
        (b, bounds)
    });
    assert_never_blocked(&results);
    bounds.assert_bounded();

    // Spans emitted after recovery all arrive (once the backlog the
    // traffic left in the queue is out, so that none of them is dropped).
    t.force_flush();
    let before = health.signal(Signal::Traces).unwrap();
    assert_eq!(before.queued, 0, "{before:?}");
    const K: i64 = 25;
    tracing::dispatcher::with_default(t.dispatch(), || {
        for id in 0..K {
            tracing::info_span!("after_recovery", id).in_scope(|| {});
        }
    });
    t.force_flush();
    let after = health.signal(Signal::Traces).unwrap();
    assert_eq!(after.dropped, before.dropped, "{after:?}");
    assert_eq!(after.exported, before.exported + K as u64, "{after:?}");
    let spans = second.wait_for_spans(Duration::from_secs(10), |s| {
        s.iter().filter(|x| x.name == "after_recovery").count() >= K as usize
    });
    let mut ids: Vec<i64> = spans
        .iter()
        .filter(|x| x.name == "after_recovery")
        .map(|x| x.attributes.i64("id").unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..K).collect::<Vec<_>>());
    assert!(health.is_healthy(), "{health:?}");

    // One warning when it went down, one line when it came back, per signal.
    let port = port.to_string();
    let failing = lines_per_signal(&stdout, "telemetry export failing", &port);
    let recovered = lines_per_signal(&stdout, "telemetry export recovered", &port);
    for signal in ["traces", "logs", "metrics"] {
        assert_eq!(failing.get(signal), Some(&1), "{signal}: {failing:?}");
        assert_eq!(recovered.get(signal), Some(&1), "{signal}: {recovered:?}");
    }
    let recovery_line = stdout
        .json_lines()
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("telemetry export recovered"))
        })
        .unwrap();
    assert_eq!(recovery_line["level"], "INFO");
    assert!(recovery_line["fields"]["failed_attempts"].as_u64().unwrap() >= 1);

    let t0 = Instant::now();
    assert_eq!(t.shutdown(), Ok(()));
    assert!(t0.elapsed() < Duration::from_secs(3) + Duration::from_millis(1500));
    second.shutdown();
}

#[test]
fn killed_collector_then_recovery_grpc() {
    killed_then_recovered("grpc");
}

#[test]
fn killed_collector_then_recovery_http() {
    killed_then_recovered("http/protobuf");
}

/// (c) A collector that accepts connections and never answers: a 300 ms
/// export timeout (set through `timeouts`) ends each attempt, and emitting
/// never waits for it. A timeout is transient: the batch is kept for the
/// next attempt (nothing given up yet), newer items overflow the full
/// queue and are counted as dropped. With the default timeouts (10 s, 30 s)
/// no attempt would have ended within this test.
fn tarpit(protocol: &str, timeouts: &[&str], expected_error: &str) {
    let _serial = serial();
    let tarpit = testkit::Tarpit::start().unwrap();
    let mut vars = failing_env(&tarpit.endpoint(), protocol);
    for var in timeouts.iter().chain(&["OTEL_METRIC_EXPORT_TIMEOUT"]) {
        vars.insert(var.to_string(), "300".into());
    }
    let stdout = Captured::default();
    let t = Telemetry::builder("tarpit-engine")
        .with_env(vars)
        .with_stdout_writer(stdout.clone())
        .with_shutdown_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let health = t.health();
    let phase = AtomicU64::new(0);
    let (bounds, results) = with_traffic(&t, 2, &phase, || {
        let mut bounds = BoundCheck::default();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1200) {
            bounds.sample(&health);
            std::thread::sleep(Duration::from_millis(5));
        }
        bounds
    });
    assert_never_blocked(&results);
    bounds.assert_bounded();
    assert!(tarpit.connections() > 0, "the exporter did connect");
    // Each export ends by its 300 ms timeout: several have failed by now.
    let failed = wait_until(Duration::from_secs(2), || {
        consecutive_failures(&health, Signal::Traces) >= 2
            && consecutive_failures(&health, Signal::Logs) >= 2
    });
    assert!(failed, "{health:?}");
    assert!(!health.is_healthy());
    for signal in [Signal::Traces, Signal::Logs] {
        let s = health.signal(signal).unwrap();
        assert_eq!(s.exported, 0, "{s:?}");
        assert_eq!(
            s.failed, 0,
            "a timed-out batch is retried, not given up: {s:?}"
        );
        assert_eq!(
            s.queued, s.queue_capacity,
            "the held batch keeps its slots: {s:?}"
        );
        assert!(s.dropped > 0, "overflow is dropped and counted: {s:?}");
        match &s.state {
            ExportState::Failing { last_error, .. } => {
                assert!(
                    last_error.contains(expected_error),
                    "a timeout, not another error: {last_error}"
                );
            }
            other => panic!("{signal:?} should be failing: {other:?}"),
        }
    }
    let port = tarpit.endpoint().rsplit(':').next().unwrap().to_string();
    let warnings = lines_per_signal(&stdout, "telemetry export failing", &port);
    assert_eq!(warnings.get("traces"), Some(&1), "{warnings:?}");
    assert_eq!(warnings.get("logs"), Some(&1), "{warnings:?}");
    let t0 = Instant::now();
    let _ = t.shutdown();
    assert!(t0.elapsed() < Duration::from_secs(1) + Duration::from_millis(1500));
    // Shutting down ends the retries; every item is accounted for.
    let done = wait_until(Duration::from_secs(3), || {
        [Signal::Traces, Signal::Logs].iter().all(|sig| {
            let s = health.signal(*sig).unwrap();
            s.queued == 0 && s.emitted == s.exported + s.failed + s.dropped
        })
    });
    assert!(done, "{health:?}");
}

/// The exporter's own timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`) ends the call.
#[test]
fn tarpit_collector_otlp_timeout_fails_exports_grpc() {
    tarpit("grpc", &["OTEL_EXPORTER_OTLP_TIMEOUT"], "Timeout expired");
}

/// The queue's export timeout (`OTEL_BSP_EXPORT_TIMEOUT`, `OTEL_BLRP_...`)
/// ends the call even when the exporter's own (10 s default) would not.
#[test]
fn tarpit_collector_queue_timeout_fails_exports_http() {
    tarpit(
        "http/protobuf",
        &["OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BLRP_EXPORT_TIMEOUT"],
        "export timed out after 300ms",
    );
}
