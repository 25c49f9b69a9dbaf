//! Real nats-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use testkit::{Nats, http_get, http_get_json, pid_alive};

#[test]
fn nats_healthz_and_protocol() {
    let nats = Nats::start().unwrap();
    let pid = nats.pid();
    assert_eq!(
        nats.url(),
        format!("nats://127.0.0.1:{}", nats.addr().port())
    );

    let (status, body) = http_get(&format!("{}/healthz", nats.monitor_url())).unwrap();
    assert_eq!(status, 200, "{body}");

    // JetStream is on.
    let jsz = http_get_json(&format!("{}/jsz", nats.monitor_url())).unwrap();
    assert!(jsz.get("config").is_some(), "{jsz}");

    // The client port speaks NATS: the server greets with INFO.
    let stream = TcpStream::connect(nats.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    assert!(line.starts_with("INFO {"), "{line}");

    drop(nats);
    assert!(!pid_alive(pid));
}
