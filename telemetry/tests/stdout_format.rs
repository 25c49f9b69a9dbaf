//! `TELEMETRY_LOG_FORMAT=none`: the service's events go over OTLP only,
//! while telemetry's own and its exporters' events, which say whether that
//! path works, still reach stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use std::collections::HashMap;

use common::{Captured, env, otlp_env, refused_port};
use telemetry::Telemetry;
use telemetry::testing::OtlpReceiver;

/// Runs `emit` in a service configured by `vars`, shut down after it; its
/// stdout.
fn run(vars: HashMap<String, String>, emit: impl FnOnce()) -> Captured {
    let stdout = Captured::default();
    let t = Telemetry::builder("quiet-engine")
        .with_env(vars)
        .with_stdout_writer(stdout.clone())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), emit);
    t.shutdown().unwrap();
    stdout
}

#[test]
fn none_leaves_the_services_events_to_otlp_and_keeps_telemetrys_own_on_stdout() {
    let receiver = OtlpReceiver::start().unwrap();
    let mut vars = otlp_env(&receiver, "grpc");
    vars.insert("TELEMETRY_LOG_FORMAT".into(), "none".into());
    let stdout = run(vars, || {
        tracing::info_span!("settle").in_scope(|| {
            tracing::info!(order = 7, "payment accepted");
            tracing::warn!(target: "token_engine::ledger", "ledger slow");
            tracing::warn!(target: "telemetry::export", "export probe");
            tracing::warn!(target: "tonic::transport", "transport probe");
        });
    });

    let lines = stdout.json_lines();
    assert_eq!(lines.len(), stdout.lines().len(), "every line is JSON");
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        messages,
        ["export probe", "transport probe"],
        "stdout: {}",
        stdout.text()
    );
    for line in &lines {
        assert_eq!(line["level"], "WARN", "{line}");
        assert!(
            line["trace_id"].is_string(),
            "own lines keep trace ids: {line}"
        );
    }

    // The service's events went over OTLP; the exporters' own never do.
    let logs = receiver.wait_for_logs(Duration::from_secs(5), |l| l.len() >= 2);
    let mut bodies: Vec<String> = logs.iter().filter_map(|l| l.body.clone()).collect();
    bodies.sort();
    assert_eq!(bodies, ["ledger slow", "payment accepted"], "{logs:?}");
}

#[test]
fn none_without_a_logs_exporter_says_so_once_unless_the_sdk_is_disabled() {
    let lines_with = |extra: &[(&str, &str)]| {
        let mut vars = env(&[
            ("TELEMETRY_LOG_FORMAT", "none"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ]);
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        run(vars, || tracing::error!("nobody hears this")).json_lines()
    };
    let lines = lines_with(&[]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["level"], "WARN");
    assert_eq!(lines[0]["target"], "telemetry::config");
    let message = lines[0]["message"].as_str().unwrap();
    assert!(
        message.contains("TELEMETRY_LOG_FORMAT=none")
            && message.contains("OTEL_LOGS_EXPORTER=otlp"),
        "{message}"
    );
    // A logs exporter (the console one writes its records to stdout):
    // nothing to say.
    let lines = lines_with(&[("OTEL_LOGS_EXPORTER", "console")]);
    assert!(
        lines.iter().all(|l| l["target"] != "telemetry::config"),
        "{lines:?}"
    );
    assert!(!lines.is_empty(), "the console exporter's record");
    // A disabled SDK is silent.
    assert_eq!(lines_with(&[("OTEL_SDK_DISABLED", "true")]).len(), 0);
}

/// With stdout left to telemetry, the warning a failing collector causes
/// (emitted on an exporter thread) still reaches it, and the service's own
/// events still do not.
#[test]
fn none_keeps_the_export_warning_of_a_refused_collector_on_stdout() {
    let endpoint = format!("http://127.0.0.1:{}", refused_port());
    let vars = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ("TELEMETRY_SHUTDOWN_TIMEOUT", "1000"),
        ("TELEMETRY_LOG_FORMAT", "none"),
    ]);
    let stdout = run(vars, || {
        for i in 0..3 {
            tracing::info_span!("settle", i).in_scope(|| tracing::info!("payment accepted"));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let lines = stdout.json_lines();
    assert_eq!(lines.len(), stdout.lines().len(), "every line is JSON");
    assert!(
        lines.iter().any(|l| l["target"] == "telemetry::export"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("telemetry export failing"))),
        "{}",
        stdout.text()
    );
    assert!(
        lines.iter().all(|l| l["message"] != "payment accepted"),
        "{}",
        stdout.text()
    );
}
