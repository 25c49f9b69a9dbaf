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
}
