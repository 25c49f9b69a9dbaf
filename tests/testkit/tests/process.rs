//! The generic process plumbing, exercised with `sh` children.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{ChildProcess, Error, find_binary, free_port, http_get, pid_alive, temp_dir};

#[test]
fn missing_binary_says_how_to_install() {
    let err = find_binary(
        "testkit-no-such-binary",
        &["/nonexistent"],
        "apt-get install testkit-no-such-binary",
    )
    .unwrap_err();
    assert!(matches!(err, Error::MissingBinary { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("install it with: apt-get install testkit-no-such-binary"),
        "{msg}"
    );
}

/// A picked port is free, not just non-zero. Between the pick and the bind
/// the kernel may hand the same port to another socket (a connection made
/// by a test running alongside takes its local port from the same range),
/// so one pick in a few is allowed to lose that race; a port that is in use
/// when picked fails every time.
#[test]
fn free_port_is_bindable() {
    let mut lost = Vec::new();
    for _ in 0..5 {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => return,
            Err(e) => lost.push(format!("{port}: {e}")),
        }
    }
    panic!("no picked port could be bound: {lost:?}");
}

#[test]
fn not_ready_error_has_log_tail_and_child_is_killed() {
    let dir = temp_dir("proc").unwrap();
    let dir_path = dir.path().to_path_buf();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo hello-from-child; exec sleep 60"]);
    let mut child = ChildProcess::spawn("sleeper", cmd, dir).unwrap();
    let pid = child.pid();
    let started = Instant::now();
    let err = child
        .wait_ready(Duration::from_millis(700), || false)
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let msg = err.to_string();
    assert!(matches!(err, Error::NotReady { .. }), "{msg}");
    assert!(msg.contains("hello-from-child"), "{msg}");
    assert!(pid_alive(pid));
    let started = Instant::now();
    drop(child);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM should stop sleep"
    );
    assert!(!pid_alive(pid), "pid {pid} still alive after drop");
    assert!(!dir_path.exists(), "temp dir not removed");
}

#[test]
fn early_exit_is_reported_with_log() {
    let dir = temp_dir("proc").unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo boom-on-stderr >&2; exit 3"]);
    let mut child = ChildProcess::spawn("crasher", cmd, dir).unwrap();
    let err = child
        .wait_ready(Duration::from_secs(10), || false)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Exited { .. }), "{msg}");
    assert!(msg.contains("boom-on-stderr"), "{msg}");
    child.stop().unwrap();
}

#[test]
fn term_ignoring_child_is_killed_after_bounded_wait() {
    let dir = temp_dir("proc").unwrap();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    let mut child = ChildProcess::spawn("stubborn", cmd, dir).unwrap();
    child.set_stop_timeout(Duration::from_millis(500));
    let pid = child.pid();
    let log = child.log_path().to_path_buf();
    child
        .wait_ready(Duration::from_secs(5), || {
            std::fs::read_to_string(&log).is_ok_and(|s| s.contains("ready"))
        })
        .unwrap();
    let started = Instant::now();
    child.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!pid_alive(pid));
}

#[test]
fn http_get_to_closed_port_is_an_error() {
    let port = free_port().unwrap();
    let err = http_get(&format!("http://127.0.0.1:{port}/")).unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err}");
}
