//! TLS and mTLS to the collector, over both transports, for spans and log
//! records, through a real rustls terminator that requires a client
//! certificate and forwards to the in-process receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use telemetry::testing::{OtlpReceiver, find_span};
use telemetry::{InitError, Signal, Telemetry};
use tokio_rustls::rustls;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for localhost signed by it, and a client
    /// certificate signed by it; plus a second, unrelated CA.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params.clone(), KeyPair::generate().unwrap()).unwrap();
        let other_ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["engine".to_string()])
            .unwrap()
            .signed_by(&client_key, &ca)
            .unwrap();
        let w = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        w("ca.pem", ca.pem());
        w("other-ca.pem", other_ca.pem());
        w("server.pem", server.pem());
        w("server.key", server_key.serialize_pem());
        w("client.pem", client.pem());
        w("client.key", client_key.serialize_pem());
        w("garbage.pem", "this is not PEM".to_string());
        Pki { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A TLS server requiring client certificates from `ca`, forwarding the
/// decrypted stream to `backend`. Counts handshakes that presented a client cert.
struct Terminator {
    port: u16,
    verified_clients: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

fn terminator(pki: &Pki, backend: std::net::SocketAddr) -> Terminator {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.path("ca.pem")).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let certs = vec![CertificateDer::from_pem_file(pki.path("server.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let verified_clients = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&verified_clients);
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty())
                {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    Terminator {
        port,
        verified_clients,
        _runtime: runtime,
    }
}

fn tls_env(protocol: &str, port: u16, pki: &Pki, ca: &str, client: bool) -> Vec<(String, String)> {
    let s = |p: &Path| p.to_string_lossy().to_string();
    let mut env = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            format!("https://localhost:{port}"),
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
            protocol.to_string(),
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE".to_string(),
            s(&pki.path(ca)),
        ),
        ("OTEL_METRICS_EXPORTER".to_string(), "none".to_string()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT".to_string(), "2000".to_string()),
        ("OTEL_BSP_EXPORT_TIMEOUT".to_string(), "2000".to_string()),
        ("OTEL_BLRP_EXPORT_TIMEOUT".to_string(), "2000".to_string()),
    ];
    if client {
        env.push((
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE".to_string(),
            s(&pki.path("client.pem")),
        ));
        env.push((
            "OTEL_EXPORTER_OTLP_CLIENT_KEY".to_string(),
            s(&pki.path("client.key")),
        ));
    }
    env
}

/// Sends one span and, inside it, one log record.
fn send_one_span(env: Vec<(String, String)>) -> Telemetry {
    let t = Telemetry::builder("tls-engine")
        .with_env(env)
        .with_shutdown_timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!("over_tls").in_scope(|| tracing::info!("logged over tls"))
    });
    let _ = t.shutdown();
    t
}

fn mtls_roundtrip(protocol: &str) {
    let pki = Pki::new();
    let receiver = OtlpReceiver::start().unwrap();
    let backend = if protocol == "grpc" {
        receiver.grpc_addr()
    } else {
        receiver.http_addr()
    };
    let term = terminator(&pki, backend);

    let t = send_one_span(tls_env(protocol, term.port, &pki, "ca.pem", true));
    let spans = receiver.wait_for_spans(Duration::from_secs(5), |s| !s.is_empty());
    assert!(
        find_span(&spans, "over_tls").is_some(),
        "span must arrive over mTLS"
    );
    assert!(
        term.verified_clients.load(Ordering::SeqCst) >= 1,
        "client certificate presented"
    );
    assert_eq!(t.health().signal(Signal::Traces).unwrap().exported, 1);
    let logs = receiver.wait_for_logs(Duration::from_secs(5), |l| {
        l.iter()
            .any(|l| l.body.as_deref() == Some("logged over tls"))
    });
    assert!(
        logs.iter()
            .any(|l| l.body.as_deref() == Some("logged over tls")),
        "the log record must arrive over mTLS: {logs:?}"
    );
    assert!(t.health().signal(Signal::Logs).unwrap().exported >= 1);

    // Without a client certificate the server refuses the handshake.
    receiver.clear();
    let t = send_one_span(tls_env(protocol, term.port, &pki, "ca.pem", false));
    for signal in [Signal::Traces, Signal::Logs] {
        let status = t.health().signal(signal).unwrap();
        assert_eq!(status.exported, 0, "{status:?}");
    }
    assert!(receiver.spans().is_empty() && receiver.logs().is_empty());

    // Trusting the wrong CA, the client refuses the server.
    let t = send_one_span(tls_env(protocol, term.port, &pki, "other-ca.pem", true));
    for signal in [Signal::Traces, Signal::Logs] {
        let status = t.health().signal(signal).unwrap();
        assert_eq!(status.exported, 0, "{status:?}");
    }
    assert!(receiver.spans().is_empty() && receiver.logs().is_empty());
}

#[test]
fn mtls_over_grpc() {
    mtls_roundtrip("grpc");
}

#[test]
fn mtls_over_http_protobuf() {
    mtls_roundtrip("http/protobuf");
}

#[test]
fn unreadable_or_garbage_pem_is_a_clear_start_up_error() {
    let pki = Pki::new();
    for protocol in ["grpc", "http/protobuf"] {
        let mut env = tls_env(protocol, 1, &pki, "garbage.pem", false);
        env.push(("OTEL_TRACES_EXPORTER".into(), "otlp".into()));
        let err = Telemetry::builder("x").with_env(env).build().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, InitError::Tls { .. }), "{protocol}: {err:?}");
        assert!(msg.contains("OTEL_EXPORTER_OTLP_CERTIFICATE"), "{msg}");
        assert!(msg.contains("garbage.pem"), "{msg}");
    }
    let missing = Telemetry::builder("x")
        .with_env(vec![(
            "OTEL_EXPORTER_OTLP_CERTIFICATE".to_string(),
            "/nonexistent/ca.pem".to_string(),
        )])
        .build()
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("OTEL_EXPORTER_OTLP_CERTIFICATE=\"/nonexistent/ca.pem\""),
        "{missing}"
    );
}
