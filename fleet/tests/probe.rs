//! `deltran probe`, the container health check: exit 0 only while the
//! engine answers `/ready`, exit 1 with the reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn probe(args: &[&str], port: Option<u16>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deltran"));
    cmd.arg("probe").args(args).env_remove("DELTRAN_PORT");
    if let Some(port) = port {
        cmd.env("DELTRAN_PORT", port.to_string());
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn probe_exits_0_only_while_the_engine_is_ready() {
    let port = testkit::free_port().unwrap();

    // Nothing listening yet: 1, naming the URL.
    let out = probe(&["--timeout-ms", "500"], Some(port));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("http://127.0.0.1:{port}/ready")),
        "{}",
        stderr(&out)
    );
    // No port to probe: 1, saying what to set.
    let out = probe(&[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("DELTRAN_PORT"), "{}", stderr(&out));
    // A URL it cannot use.
    let out = probe(&["--url", "https://127.0.0.1:1/ready"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected http://"),
        "{}",
        stderr(&out)
    );

    let mut engine = Command::new(env!("CARGO_BIN_EXE_deltran"))
        .args(["engine", "compliance-engine"])
        .envs([
            ("DELTRAN_PORT", port.to_string().as_str()),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let became_ready =
        testkit::wait_until("deltran probe exits 0", Duration::from_secs(30), || {
            Ok(probe(&[], Some(port)).status.success())
        });
    // Any path is probed as given: a 404 is not ready.
    let missing = probe(
        &["--url", &format!("http://127.0.0.1:{port}/no-such-path")],
        None,
    );
    let health = probe(&["--url", &format!("http://127.0.0.1:{port}/health")], None);
    let _ = engine.kill();
    let _ = engine.wait();
    became_ready.unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("404"), "{}", stderr(&missing));
    assert!(health.status.success(), "{}", stderr(&health));

    // Gone again: 1.
    let out = probe(&["--timeout-ms", "500"], Some(port));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
