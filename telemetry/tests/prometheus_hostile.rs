//! The pull endpoint faces whoever can reach its port. A flood of
//! connections that send half a request and wait must not take the
//! service's file descriptors, and must not hold the endpoint: the server
//! closes them, and the next scrape is answered.
//!
//! One test in its own binary: it counts the process's open descriptors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use telemetry::Telemetry;
use testkit::{H2_PREFACE, closes_within, half_sent_request, http_request, stalled_connection};

/// More than the endpoint serves at once (256).
const ATTACKERS: usize = 400;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn half_sent_requests_neither_take_descriptors_nor_hold_the_endpoint() {
    let t = Telemetry::builder("exposed-engine")
        .with_env(common::env(&[
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ]))
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    t.meter()
        .u64_counter("payments.settled")
        .build()
        .add(1, &[]);
    let addr = t.prometheus_addr().expect("bound");
    let url = format!("http://{addr}/metrics");

    let before = open_descriptors();
    let mut held = Vec::with_capacity(ATTACKERS);
    for i in 0..ATTACKERS {
        // Half-sent requests, and connections that start no request:
        // silent, or an HTTP/2 preface without its settings.
        held.push(match i % 4 {
            0 => stalled_connection(addr, b"").unwrap(),
            1 => stalled_connection(addr, H2_PREFACE).unwrap(),
            _ => half_sent_request(addr, "/metrics").unwrap(),
        });
    }
    // The server-side sockets the flood took: give it time to accept all
    // it will, and read the highest count seen.
    let mut server_side = 0;
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        server_side = server_side.max(open_descriptors().saturating_sub(before + ATTACKERS));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server_side <= 256 + 8,
        "{server_side} descriptors taken by {ATTACKERS} half-sent requests"
    );

    // Every attacker is closed by the server: those over the bound at once,
    // the rest when their headers do not arrive in time (10 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut open: Vec<TcpStream> = held;
    while !open.is_empty() && Instant::now() < deadline {
        open.retain_mut(|s| !closes_within(s, Duration::from_millis(10)));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        open.is_empty(),
        "{} half-sent requests still held open after 40 s",
        open.len()
    );

    // And the endpoint answers the next scrape.
    let r = http_request("GET", &url, &[], None).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("payments_settled_total"), "{}", r.text());
    t.shutdown().unwrap();
}
