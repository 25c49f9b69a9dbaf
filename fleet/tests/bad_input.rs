//! Bad configuration stops an engine or the launcher at once, with a
//! message naming what to change (no panic, no half-started fleet).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn deltran(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deltran"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k.starts_with("DELTRAN_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).envs(env.iter().copied()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_engine_names_the_bad_variable_and_exits_2() {
    for (var, value, expected) in [
        ("DELTRAN_FAULT_ERROR_RATE", "2", "a number from 0 to 1"),
        ("DELTRAN_PORT", "http", "a TCP port"),
        ("DELTRAN_DATABASE_URL", "mysql://x", "postgres://"),
        ("DELTRAN_CLEARING_WINDOW_MS", "1s", "milliseconds"),
    ] {
        let out = deltran(&["engine", "risk-engine"], &[(var, value)]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(err.contains(var) && err.contains(expected), "{var}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // telemetry's own configuration errors come through the same way.
    let out = deltran(
        &["engine", "gateway"],
        &[("OTEL_TRACES_EXPORTER", "jaeger")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("OTEL_TRACES_EXPORTER"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_engine_names_every_bad_variable_at_once() {
    let out = deltran(
        &["engine", "risk-engine"],
        &[
            ("DELTRAN_PORT", "http"),
            ("DELTRAN_FAULT_ERROR_RATE", "2"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    // The engine's and telemetry's variables in one report, one line.
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for (var, expected) in [
        ("DELTRAN_PORT", "a TCP port"),
        ("DELTRAN_FAULT_ERROR_RATE", "a number from 0 to 1"),
        ("OTEL_TRACES_SAMPLER", "always_on"),
    ] {
        assert!(
            err.contains(&format!("{var}=")) && err.contains(expected),
            "{var}: {err}"
        );
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_engine_that_cannot_listen_says_which_variable_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = deltran(
        &["engine", "compliance-engine"],
        &[
            ("DELTRAN_PORT", &port),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("set DELTRAN_PORT to a free port"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn launcher_knobs_are_checked_before_anything_starts() {
    for (args, expected) in [
        (
            &["--errors", "ledger-engine=0.1"][..],
            "is not an engine; use one of settlement-engine",
        ),
        (
            &["--errors", "risk-engine=5"][..],
            "use a number from 0 to 1",
        ),
        (
            &["--outage", "risk-engine=40-20"][..],
            "use FROM-TO in seconds",
        ),
        (&["--latency", "gateway=fast"][..], "use whole milliseconds"),
        (&["--duration", "5 fortnights"][..], "unknown unit"),
        (&["--invalid", "1.5"][..], "use a number from 0 to 1"),
    ] {
        let out = deltran(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn an_engine_without_the_nats_token_refuses_to_start() {
    let nats = testkit::Nats::start_with(
        &["--auth", "run-token-3f9a"],
        testkit::DEFAULT_READY_TIMEOUT,
    )
    .unwrap();
    let url = nats.url();
    let port = testkit::free_port().unwrap().to_string();
    for token in [None, Some("wrong-token")] {
        let mut env = vec![
            ("DELTRAN_NATS_URL", url.as_str()),
            ("DELTRAN_PORT", port.as_str()),
            ("OTEL_SDK_DISABLED", "true"),
        ];
        if let Some(t) = token {
            env.push(("DELTRAN_NATS_TOKEN", t));
        }
        let out = deltran(&["engine", "obligation-engine"], &env);
        assert_eq!(
            out.status.code(),
            Some(2),
            "token {token:?}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains("refused") && err.contains("DELTRAN_NATS_TOKEN_FILE"),
            "{err}"
        );
        assert!(
            !err.contains("run-token-3f9a") && !err.contains("wrong-token"),
            "never print a token: {err}"
        );
    }
    // A token file that cannot be read is named too.
    let out = deltran(
        &["engine", "obligation-engine"],
        &[
            ("DELTRAN_NATS_URL", url.as_str()),
            ("DELTRAN_NATS_TOKEN_FILE", "/nonexistent/nats.token"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("DELTRAN_NATS_TOKEN_FILE"),
        "{}",
        stderr(&out)
    );
    // With the right token it comes up.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_deltran"))
        .args(["engine", "obligation-engine"])
        .envs([
            ("DELTRAN_NATS_URL", url.as_str()),
            ("DELTRAN_PORT", port.as_str()),
            ("DELTRAN_NATS_TOKEN", "run-token-3f9a"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = testkit::wait_until(
        "obligation-engine /ready",
        std::time::Duration::from_secs(30),
        || {
            Ok(matches!(
                testkit::http_get(&format!("http://127.0.0.1:{port}/ready")),
                Ok((200, _))
            ))
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    ready.unwrap();
}
