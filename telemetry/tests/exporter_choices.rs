//! The non-OTLP exporter choices (`console`, `none`), `OTEL_SDK_DISABLED`,
//! invalid configuration and double initialisation, through the public API.
//!
//! Some checks need a process of their own: the console exporters print
//! with `println!` (not capturable in-process), `OTEL_SDK_DISABLED` is
//! checked by listing the process' threads and sockets, and installing a
//! global subscriber must not leak into other tests. Those run as *child
//! tests*: the parent re-executes this test binary with
//! `--exact <child> --nocapture --test-threads=1` and `TELEMETRY_TEST_CHILD`
//! set on that command only; a child test returns at once unless the
//! variable names it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use telemetry::testing::OtlpReceiver;
use telemetry::{InitError, Signal, Telemetry};

const CHILD_VAR: &str = "TELEMETRY_TEST_CHILD";
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);
/// Printed by a child that reached its end.
const CHILD_OK: &str = "TELEMETRY-CHILD-OK";

/// What a child process printed.
struct ChildRun {
    success: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for ChildRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success={}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.success, self.stdout, self.stderr
        )
    }
}

/// Runs child test `name` of this binary with `CHILD_VAR=name`, an
/// environment cleaned of inherited `OTEL_*`/`RUST_LOG`/`TELEMETRY_*`
/// plus `env`; waits at most [`CHILD_TIMEOUT`], then kills it by its PID.
fn run_child(name: &str, env: &[(&str, &str)]) -> ChildRun {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("OTEL_") || k.starts_with("TELEMETRY_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, name)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // Our own child, still unreaped: its PID cannot have been reused.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = ChildRun {
        success: status.is_some_and(|s| s.success()),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    assert!(status.is_some(), "child {name} timed out: {run:?}");
    assert!(run.success, "child {name} failed: {run:?}");
    assert!(
        run.stdout.contains(CHILD_OK),
        "child {name} did not run (wrong test name?): {run:?}"
    );
    // libtest's summary proves exactly one test ran in the child.
    assert!(run.stdout.contains("1 passed"), "{run:?}");
    run
}

/// True in the child process started for `name`.
fn is_child(name: &str) -> bool {
    std::env::var(CHILD_VAR).is_ok_and(|v| v == name)
}

/// Threads of telemetry (`otel-*`) and of the OpenTelemetry SDK
/// (`OpenTelemetry.*`, e.g. the periodic metric reader), by `comm` name.
fn otel_threads() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let comm = task.unwrap().path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            let name = name.trim().to_string();
            if name.starts_with("otel") || name.starts_with("OpenTelemetry") {
                names.push(name);
            }
        }
    }
    names
}

/// The JSON object in a stdout line that contains `needle`. With
/// `--nocapture`, libtest's `test <name> ... ` may precede it on the line.
fn json_line(stdout: &str, needle: &str) -> Option<serde_json::Value> {
    let line = stdout.lines().find(|l| l.contains(needle))?;
    serde_json::from_str(&line[line.find('{')?..]).ok()
}

fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

// ---------------------------------------------------------------- console

#[test]
fn child_console() {
    if !is_child("child_console") {
        return;
    }
    let t = Telemetry::builder("console-engine")
        .with_env([
            ("OTEL_TRACES_EXPORTER", "console"),
            ("OTEL_METRICS_EXPORTER", "console"),
            ("OTEL_LOGS_EXPORTER", "console"),
            ("TELEMETRY_LOG_FORMAT", "json"),
        ])
        .build()
        .unwrap();
    let counter = t.meter().u64_counter("console.probe.counter").build();
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!(
            "console_probe_span",
            card = "4111 1111 1111 1111",
            note = "line one\nline \"two\""
        )
        .in_scope(|| {
            tracing::info!(order = 7, "console probe log body");
        });
    });
    counter.add(5, &[KeyValue::new("probe", "yes")]);
    t.shutdown().unwrap();
    println!("{CHILD_OK}");
}

/// Spans and log records: one JSON line each, where stdout logs go, with
/// the service, the ids that join them and masked values; metrics keep the
/// SDK's console rendering.
#[test]
fn console_exporters_print_one_json_line_per_span_and_log_record() {
    let run = run_child("child_console", &[]);
    let out = &run.stdout;
    let objects: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    let spans: Vec<_> = objects.iter().filter(|o| o["type"] == "span").collect();
    assert_eq!(spans.len(), 1, "{run:?}");
    let span = spans[0];
    assert_eq!(span["name"], "console_probe_span");
    assert_eq!(span["service"], "console-engine");
    assert_eq!(span["kind"], "internal");
    assert_eq!(span["status"], "unset");
    assert!(
        span["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{span}"
    );
    assert_eq!(span["attributes"]["card"], "****1111", "masked: {span}");
    // A newline and quotes in a value stay inside the one JSON line.
    assert_eq!(span["attributes"]["note"], "line one\nline \"two\"");
    let trace_id = span["trace_id"].as_str().expect("trace id");
    assert_eq!(trace_id.len(), 32);

    let logs: Vec<_> = objects.iter().filter(|o| o["type"] == "log").collect();
    assert_eq!(logs.len(), 1, "{run:?}");
    assert_eq!(logs[0]["body"], "console probe log body");
    assert_eq!(logs[0]["severity"], "INFO");
    assert_eq!(logs[0]["attributes"]["order"], 7);
    assert_eq!(logs[0]["trace_id"], trace_id, "the record joins its span");
    assert_eq!(logs[0]["span_id"], span["span_id"]);

    // No debug dump of spans or log records any more.
    assert!(!out.lines().any(|l| l == "Spans" || l == "Logs"), "{run:?}");
    // Metrics: the SDK's console block, exported at shutdown.
    assert!(out.lines().any(|l| l == "Metrics"), "{run:?}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("Name") && l.ends_with(": console.probe.counter")),
        "metric name: {run:?}"
    );
}

// ------------------------------------------------------------------- none

#[test]
fn none_everywhere_sends_nothing() {
    let receiver = OtlpReceiver::start().unwrap();
    let mut env = common::otlp_env(&receiver, "grpc");
    for var in [
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
    ] {
        env.insert(var.into(), "none".into());
    }
    let stdout = common::Captured::default();
    let t = Telemetry::builder("silent-engine")
        .with_env(env)
        .with_stdout_writer(stdout.clone())
        .build()
        .unwrap();
    let counter = t.meter().u64_counter("silent.counter").build();
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!("silent_span").in_scope(|| tracing::info!("silent log"));
    });
    counter.add(1, &[]);
    assert!(t.tracer_provider().is_none());
    assert!(t.prometheus().is_none() && t.prometheus_addr().is_none());
    assert!(t.health().signals().is_empty(), "{:?}", t.health());
    t.shutdown().unwrap();
    // Stdout logging is independent of the exporters.
    assert!(stdout.text().contains("silent log"));
    let requests = receiver.wait_for_requests(Duration::from_millis(600), |r| !r.is_empty());
    assert!(requests.is_empty(), "{requests:?}");
    receiver.shutdown();
}

#[test]
fn none_for_one_signal_leaves_the_others_exporting() {
    let receiver = OtlpReceiver::start().unwrap();
    let mut env = common::otlp_env(&receiver, "grpc");
    env.insert("OTEL_TRACES_EXPORTER".into(), "none".into());
    let t = Telemetry::builder("half-engine")
        .with_env(env)
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    let counter = t.meter().u64_counter("half.counter").build();
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!("half_span").in_scope(|| tracing::info!("half log"));
    });
    counter.add(1, &[]);
    let health = t.health();
    assert!(health.signal(Signal::Traces).is_none(), "{health:?}");
    assert!(health.signal(Signal::Logs).is_some());
    assert!(health.signal(Signal::Metrics).is_some());
    assert!(t.tracer_provider().is_none());
    t.shutdown().unwrap();
    let logs = receiver.wait_for_logs(Duration::from_secs(5), |l| !l.is_empty());
    assert_eq!(logs[0].body.as_deref(), Some("half log"));
    let metrics = receiver.wait_for_metrics(Duration::from_secs(5), |m| {
        telemetry::testing::find_metric(m, "half.counter").is_some()
    });
    assert!(telemetry::testing::find_metric(&metrics, "half.counter").is_some());
    let requests = receiver.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.signal != telemetry::testing::Signal::Traces),
        "{requests:?}"
    );
    assert!(receiver.spans().is_empty());
    receiver.shutdown();
}

// ------------------------------------------------------- OTEL_SDK_DISABLED

#[test]
fn child_sdk_disabled() {
    if !is_child("child_sdk_disabled") {
        return;
    }
    let endpoint = std::env::var("TELEMETRY_TEST_ENDPOINT").unwrap();
    let port = std::env::var("TELEMETRY_TEST_PROM_PORT").unwrap();
    let before = otel_threads();
    assert!(before.is_empty(), "{before:?}");
    let t = Telemetry::builder("disabled-engine")
        .with_env(common::env(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", &port),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "50"),
            ("TELEMETRY_LOG_FORMAT", "json"),
        ]))
        .build()
        .unwrap();
    // No background threads, no sockets, no Prometheus endpoint.
    assert_eq!(otel_threads(), Vec::<String>::new());
    assert_eq!(open_sockets(), 0, "no sockets at all");
    assert!(t.prometheus().is_none() && t.prometheus_addr().is_none());
    assert!(t.tracer_provider().is_none());
    assert!(t.health().signals().is_empty());
    assert!(t.health().is_healthy());
    std::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().unwrap()))
        .expect("the Prometheus port was never bound");

    // Instruments are no-ops: callable, and they start nothing.
    let meter = t.meter();
    meter.u64_counter("disabled.counter").build().add(1, &[]);
    meter
        .f64_histogram("disabled.duration")
        .with_unit("s")
        .build()
        .record(0.1, &[]);
    meter
        .i64_up_down_counter("disabled.inflight")
        .build()
        .add(-1, &[]);
    // Spans and events still go through `tracing` to stdout.
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!("disabled_span").in_scope(|| {
            tracing::info!(answer = 42, "still logged when disabled");
        });
    });
    t.force_flush();
    assert_eq!(otel_threads(), Vec::<String>::new());
    assert_eq!(open_sockets(), 0);

    let started = Instant::now();
    t.shutdown().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(250), "shutdown took {took:?}");
    // Nothing lingers after shutdown (a short-lived shutdown thread may
    // still be exiting: bounded wait).
    let until = Instant::now() + Duration::from_secs(1);
    while !otel_threads().is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        otel_threads(),
        Vec::<String>::new(),
        "threads left after shutdown"
    );
    drop(t);
    println!("{CHILD_OK}");
}

#[test]
fn sdk_disabled_starts_nothing_and_sends_nothing() {
    let receiver = OtlpReceiver::start().unwrap();
    let port = testkit::free_port().unwrap().to_string();
    let run = run_child(
        "child_sdk_disabled",
        &[
            ("TELEMETRY_TEST_ENDPOINT", &receiver.grpc_endpoint()),
            ("TELEMETRY_TEST_PROM_PORT", &port),
        ],
    );
    let v = json_line(&run.stdout, "still logged when disabled")
        .unwrap_or_else(|| panic!("stdout JSON line: {run:?}"));
    assert_eq!(v["span"], "disabled_span");
    assert_eq!(v["fields"]["answer"], 42);
    assert!(v.get("trace_id").is_none(), "no OTel layer, no trace id");
    // The child has exited: anything it sent would be here.
    let requests = receiver.wait_for_requests(Duration::from_millis(300), |r| !r.is_empty());
    assert!(requests.is_empty(), "{requests:?}");
    receiver.shutdown();
}

// ------------------------------------------------------- invalid config

#[test]
fn invalid_sampler_names_variable_value_and_choices() {
    let err = Telemetry::builder("x")
        .with_env([("OTEL_TRACES_SAMPLER", "sometimes")])
        .build()
        .expect_err("invalid sampler");
    match &err {
        InitError::Config(errors) => {
            assert_eq!(errors.0.len(), 1, "{errors:?}");
            assert_eq!(errors.0[0].variable, "OTEL_TRACES_SAMPLER");
            assert_eq!(errors.0[0].value, "sometimes");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    let msg = err.to_string();
    for needle in [
        "OTEL_TRACES_SAMPLER",
        "\"sometimes\"",
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_traceidratio",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
}

#[test]
fn invalid_rust_log_names_variable_and_value() {
    let err = Telemetry::builder("x")
        .with_env([
            ("OTEL_SDK_DISABLED", "true"),
            ("RUST_LOG", "info,token_engine=loud"),
        ])
        .build()
        .expect_err("invalid RUST_LOG");
    match &err {
        InitError::Config(errors) => {
            assert_eq!(errors.0[0].variable, "RUST_LOG");
            assert_eq!(errors.0[0].value, "info,token_engine=loud");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("RUST_LOG"), "{msg}");
    assert!(msg.contains("info,token_engine=loud"), "{msg}");
    assert!(msg.contains("filter directives"), "{msg}");
}

#[test]
fn every_invalid_variable_is_reported_in_one_error() {
    let err = Telemetry::builder("x")
        .with_env([
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_LOGS_EXPORTER", "file"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "http"),
        ])
        .build()
        .expect_err("three bad variables");
    let msg = err.to_string();
    for var in [
        "OTEL_TRACES_SAMPLER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_EXPORTER_PROMETHEUS_PORT",
    ] {
        assert!(msg.contains(var), "{var} missing from: {msg}");
    }
}

/// Waits up to 2 s for every telemetry/SDK thread to end; returns the rest.
fn otel_threads_after_settling() -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let left = otel_threads();
        if left.is_empty() || Instant::now() >= until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn child_failed_builds_leave_nothing_running() {
    if !is_child("child_failed_builds_leave_nothing_running") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("ca.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let garbage = garbage.to_string_lossy().to_string();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        // The Prometheus port is taken, after the OTLP metric reader exists.
        (
            "prometheus bind",
            vec![
                ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
                ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
                ("OTEL_EXPORTER_PROMETHEUS_PORT", &taken_port),
            ],
        ),
        // A traces-only TLS error, after the metric pipeline exists.
        (
            "traces TLS",
            vec![
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://127.0.0.1:1"),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &garbage),
            ],
        ),
        // Invalid configuration: nothing may start at all.
        ("config", vec![("OTEL_TRACES_SAMPLER", "sometimes")]),
    ];
    for (what, mut env) in cases {
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"));
        let err = Telemetry::builder("failing-engine")
            .with_env(
                env.into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .with_stdout_writer(std::io::sink)
            .build()
            .expect_err(what);
        let left = otel_threads_after_settling();
        assert!(
            left.is_empty(),
            "{what} ({err}): threads left running: {left:?}"
        );
    }
    drop(taken);
    println!("{CHILD_OK}");
}

#[test]
fn failed_builds_leave_no_threads_running() {
    run_child("child_failed_builds_leave_nothing_running", &[]);
}

// ------------------------------------------------- already initialised

#[test]
fn child_init_twice() {
    if !is_child("child_init_twice") {
        return;
    }
    let first = telemetry::builder!("first-engine")
        .try_init()
        .expect("first init installs");
    assert_eq!(first.service().version, env!("CARGO_PKG_VERSION"));
    let second = Telemetry::builder("second-engine").try_init();
    assert!(
        matches!(second, Err(InitError::AlreadyInitialized)),
        "{second:?}"
    );
    let msg = second.unwrap_err().to_string();
    assert!(msg.contains("already installed"), "{msg}");
    assert!(msg.contains(".set_default()"), "{msg}");
    let third = Telemetry::builder("third-engine")
        .with_env([("OTEL_SDK_DISABLED", "true")])
        .try_init();
    assert!(matches!(third, Err(InitError::AlreadyInitialized)));
    // `init!` panics with a message naming the service and the cause.
    let panic = std::panic::catch_unwind(|| telemetry::init!("fourth-engine"))
        .expect_err("init panics when already initialised");
    let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        text.contains("telemetry for \"fourth-engine\" could not start"),
        "{text}"
    );
    assert!(text.contains("already installed"), "{text}");
    // The first installation is still the global one.
    tracing::info!("global subscriber still the first");
    first.shutdown().unwrap();
    println!("{CHILD_OK}");
}

#[test]
fn second_init_is_already_initialized() {
    let run = run_child(
        "child_init_twice",
        &[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("TELEMETRY_LOG_FORMAT", "json"),
        ],
    );
    let v = json_line(&run.stdout, "global subscriber still the first")
        .unwrap_or_else(|| panic!("global JSON line: {run:?}"));
    assert_eq!(v["level"], "INFO");
}

#[test]
fn child_foreign_subscriber() {
    if !is_child("child_foreign_subscriber") {
        return;
    }
    tracing::subscriber::set_global_default(tracing_subscriber::registry())
        .expect("first global subscriber");
    let result = Telemetry::builder("late-engine").try_init();
    assert!(
        matches!(result, Err(InitError::AlreadyInitialized)),
        "{result:?}"
    );
    println!("{CHILD_OK}");
}

#[test]
fn try_init_after_another_global_subscriber_is_already_initialized() {
    run_child(
        "child_foreign_subscriber",
        &[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
    );
}
