//! The load generator's fault knobs do what dashboards and alerts will
//! later show: an outage stops and restarts an engine mid-run (callers see
//! 502s meanwhile), injected latency shows in that engine's latency, and
//! `--duration` ends the run cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use deltran_fleet::launcher::FleetFile;

/// `(requests, requests slower than le)` of `http.server.request.duration` in a scrape.
fn requests(text: &str, status: Option<&str>, le: &str) -> (f64, f64) {
    let (mut all, mut fast) = (0.0, 0.0);
    for line in text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_bucket{"))
    {
        if status.is_some_and(|s| !line.contains(&format!("http_response_status_code=\"{s}\""))) {
            continue;
        }
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        if line.contains("le=\"+Inf\"") {
            all += value;
        } else if line.contains(&format!("le=\"{le}\"")) {
            fast += value;
        }
    }
    (all, all - fast)
}

#[test]
fn outage_latency_and_duration_knobs() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let mut launcher = common::launcher_command(
        &[
            "--rate",
            "15",
            "--duration",
            "12s",
            "--outage",
            "risk-engine=3-7",
            "--latency",
            "compliance-engine=60",
        ],
        &[
            ("OTEL_METRICS_EXPORTER", "prometheus".into()),
            ("OTEL_TRACES_EXPORTER", "none".into()),
            ("OTEL_LOGS_EXPORTER", "none".into()),
        ],
        &run_dir,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let fleet: FleetFile = loop {
        if let Ok(text) = std::fs::read_to_string(run_dir.join("fleet.json")) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(Instant::now() < deadline, "fleet not ready");
        std::thread::sleep(Duration::from_millis(200));
    };
    let port = |name: &str| fleet.engine(name).unwrap().port;
    let scrape = |name: &str| {
        testkit::http_get(&format!("http://127.0.0.1:{}/metrics", port(name))).map(|(_, t)| t)
    };

    // During the outage risk-engine is gone and the gateway answers 502.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        scrape("risk-engine").is_err(),
        "risk-engine still answering during its outage"
    );
    let gateway = scrape("gateway").unwrap();
    assert!(
        requests(&gateway, Some("502"), "+Inf").0 > 0.0,
        "no 502s from the gateway during the outage"
    );

    // After it, risk-engine is back (a second start in its log) and serving.
    std::thread::sleep(Duration::from_secs(4));
    let risk = scrape("risk-engine").expect("risk-engine restarted");
    assert!(
        requests(&risk, Some("200"), "+Inf").0 > 0.0,
        "restarted risk-engine serves assessments"
    );
    let log = std::fs::read_to_string(run_dir.join("logs/risk-engine.log")).unwrap();
    assert_eq!(
        log.matches("\"listening\"").count(),
        2,
        "risk-engine started twice:\n{log}"
    );

    // Injected latency: every screening is slower than 50 ms.
    let compliance = scrape("compliance-engine").unwrap();
    let (all, slow) = requests(&compliance, Some("200"), "0.05");
    assert!(
        all > 0.0 && slow == all,
        "compliance requests {all}, slower than 50 ms {slow}"
    );

    // --duration ends the run; the launcher stops everything and exits 0.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = launcher.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = launcher.kill();
            panic!("launcher did not end after --duration");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "launcher exit {status}");
    for e in &fleet.engines {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", e.port)).is_err(),
            "{} still listening on {} after the launcher exited",
            e.name,
            e.port
        );
    }
}
