//! NATS over TLS where configured: with `tls://` and the CA in
//! `DELTRAN_NATS_CA_FILE` an engine comes up on a TLS-only, token-protected
//! nats-server; with a CA that did not sign the server it stops at once with
//! a message naming what to check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

fn engine(env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deltran"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k.starts_with("DELTRAN_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["engine", "obligation-engine"])
        .env("OTEL_SDK_DISABLED", "true")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits up to `timeout` for the child to exit; kills it otherwise.
fn exit_within(mut child: Child, timeout: Duration) -> Option<(i32, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return Some((status.code().unwrap_or(-1), err));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn engines_speak_tls_to_nats_when_a_ca_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params.clone(), KeyPair::generate().unwrap()).unwrap();
    let other_ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("other-ca.pem"), other_ca.pem()).unwrap();
    std::fs::write(path("server.pem"), server.pem()).unwrap();
    std::fs::write(path("server.key"), server_key.serialize_pem()).unwrap();
    let nats = testkit::Nats::start_with(
        &[
            "--tls",
            "--tlscert",
            &path("server.pem"),
            "--tlskey",
            &path("server.key"),
            "--auth",
            "tls-run-token",
        ],
        testkit::DEFAULT_READY_TIMEOUT,
    )
    .unwrap();
    let url = format!("tls://localhost:{}", nats.addr().port());
    let port = testkit::free_port().unwrap().to_string();

    // A CA that did not sign the server: stop, naming what to check.
    let refused = engine(&[
        ("DELTRAN_NATS_URL", &url),
        ("DELTRAN_NATS_CA_FILE", &path("other-ca.pem")),
        ("DELTRAN_NATS_TOKEN", "tls-run-token"),
        ("DELTRAN_PORT", &port),
    ]);
    let (code, err) = exit_within(refused, Duration::from_secs(20))
        .expect("an engine with the wrong CA must stop, not retry forever");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("DELTRAN_NATS_CA_FILE"), "{err}");

    // The right CA: it comes up.
    let child = engine(&[
        ("DELTRAN_NATS_URL", &url),
        ("DELTRAN_NATS_CA_FILE", &path("ca.pem")),
        ("DELTRAN_NATS_TOKEN", "tls-run-token"),
        ("DELTRAN_PORT", &port),
    ]);
    let ready = testkit::wait_until(
        "obligation-engine /ready over TLS",
        Duration::from_secs(30),
        || {
            Ok(matches!(
                testkit::http_get(&format!("http://127.0.0.1:{port}/ready")),
                Ok((200, _))
            ))
        },
    );
    let still_running = exit_within(child, Duration::from_millis(10)).is_none();
    ready.unwrap();
    assert!(still_running, "the engine kept running on TLS");
}
