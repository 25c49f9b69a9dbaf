//! The whole fleet stops in seconds whatever the collector does: with a
//! collector that accepts connections and never answers, every engine
//! spends its telemetry deadline flushing — in parallel, so Ctrl-C still
//! ends the run well under 10 s, with every engine exiting cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Launcher;

#[test]
fn the_fleet_stops_in_seconds_when_the_collector_never_answers() {
    let tarpit = testkit::Tarpit::start().unwrap();
    let mut launcher = Launcher::start(
        &["--rate", "20"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", tarpit.endpoint())],
    );
    // Let exports pile up against the silent collector.
    std::thread::sleep(Duration::from_secs(3));
    assert!(tarpit.connections() > 0, "the engines did connect");
    let engines: Vec<u16> = launcher.fleet.engines.iter().map(|e| e.port).collect();
    // fleet.json names the NATS server the run started, so a supervisor (and
    // this harness) can stop it should the launcher be killed.
    let nats_pid = launcher
        .fleet
        .nats_pid
        .expect("fleet.json names its nats-server");
    let nats_alive = || std::path::Path::new(&format!("/proc/{nats_pid}")).exists();
    assert!(
        std::fs::read_to_string(format!("/proc/{nats_pid}/cmdline"))
            .unwrap_or_default()
            .contains("nats-server"),
        "pid {nats_pid} is not the nats-server"
    );
    let t0 = Instant::now();
    let status = launcher.interrupt();
    let took = t0.elapsed();
    eprintln!("fleet stop with a silent collector: {took:?}");
    assert!(
        status.success(),
        "an engine did not exit cleanly:\n{}",
        launcher.logs()
    );
    assert!(
        took < Duration::from_secs(10),
        "stopping took {took:?}:\n{}",
        launcher.logs()
    );
    for port in engines {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still served"
        );
    }
    assert!(!nats_alive(), "the nats-server outlived the launcher");
    // The ending says how the stop went and what each engine served.
    let stop = launcher
        .last_line_starting("deltran: stopped in ")
        .unwrap_or_else(|| panic!("no stop line:\n{}", launcher.logs()));
    assert!(
        stop.contains("engines all exited cleanly") && stop.contains("nats-server exited cleanly"),
        "{stop}"
    );
    let said: f64 = stop["deltran: stopped in ".len()..]
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{stop}"));
    assert!(said <= took.as_secs_f64() + 0.1, "{stop} vs {took:?}");
    let per_engine = launcher
        .last_line_starting("deltran: requests per engine: ")
        .unwrap_or_else(|| panic!("no per-engine line:\n{}", launcher.logs()));
    for e in &launcher.fleet.engines {
        assert!(per_engine.contains(&format!("{} ", e.name)), "{per_engine}");
    }
    // Every payment sent is one gateway request (besides probes and streams).
    let sent: f64 = launcher
        .summary()
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "sent")?;
            words.get(at + 1)?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no sent count:\n{}", launcher.logs()));
    let gateway: f64 = per_engine
        .split("gateway ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{per_engine}"));
    assert!(
        sent > 0.0 && gateway >= sent,
        "gateway {gateway} < sent {sent}"
    );
}
