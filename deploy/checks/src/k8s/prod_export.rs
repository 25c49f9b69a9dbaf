//! How prod engines export telemetry: prod collectors accept only TLS with
//! client certificates and the ingest token, and the telemetry crate
//! refuses to start when a certificate path is not a readable file, so a
//! wrong setting here is a crash loop or lost telemetry, not a warning.

use serde_json::Value;

use super::env::{EnvValue, container_env, env_get};
use super::error::Problems;
use super::json::array_at;
use super::mounts::{MountedFile, mounted_file};
use super::secrets::{ExternalSecret, secret_file_problem};
use super::workload::Workload;
use super::{K8sError, Manifest};

/// The files an engine needs for mTLS: the CA, its certificate, its key.
const CLIENT_TLS_FILES: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
];

/// Prod: every engine exports over https with a client certificate, key and
/// CA read from a mounted Secret (keys listed in the README), and sends the
/// ingest token in OTEL_EXPORTER_OTLP_HEADERS, expanded from a Secret. The
/// telemetry crate refuses to start when a certificate path is not a
/// readable file, so a wrong path is a crash loop, not a warning.
pub fn check_engines_export_securely(
    m: &Manifest,
    secrets: &[ExternalSecret],
) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    for w in m.workloads().into_iter().filter(Workload::is_engine) {
        for c in array_at(w.pod, "/containers") {
            let at = w.container_id(c);
            let env = container_env(m, &w.namespace, c);
            check_endpoints(&at, &env, &mut problems);
            check_tls_files(m, secrets, &w, c, &env, &mut problems);
            check_token_header(&at, &env, &mut problems);
        }
    }
    problems.finish("prod engine export")
}

/// Prod: collectors reach every backend over TLS. The collector configs
/// give every exporter a CA, but an `http://` endpoint would send the
/// OTLP/HTTP exporters' data in plaintext all the same; gRPC endpoints are
/// `host:port`, TLS unless `insecure`, which the lint refuses.
pub fn check_collectors_export_securely(m: &Manifest) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    let mut endpoints = 0;
    for w in m.workloads().into_iter().filter(Workload::is_collector) {
        for c in array_at(w.pod, "/containers") {
            let at = w.container_id(c);
            for (name, value) in container_env(m, &w.namespace, c) {
                if !name.ends_with("_ENDPOINT") {
                    continue;
                }
                endpoints += 1;
                match value.known() {
                    Some(url) if url.starts_with("http://") => problems.push(format!(
                        "{at}: {name}={url} is plaintext; prod backends are reached over TLS (https://, or host:port for gRPC)"
                    )),
                    Some(_) => {}
                    None => problems.push(format!("{at}: {name} has no known value")),
                }
            }
        }
    }
    if endpoints == 0 {
        problems.push("no collector has a backend *_ENDPOINT variable".to_string());
    }
    problems.finish("prod collector export")
}

/// Every OTLP endpoint variable is an https URL, and there is one.
fn check_endpoints(at: &str, env: &[(String, EnvValue)], problems: &mut Problems) {
    let mut endpoints = 0;
    for (name, value) in env {
        if !(name.starts_with("OTEL_EXPORTER_OTLP") && name.ends_with("ENDPOINT")) {
            continue;
        }
        endpoints += 1;
        match value.known() {
            Some(url) if url.starts_with("https://") => {}
            Some(url) => problems.push(format!(
                "{at}: {name}={url} is not https://; prod collectors accept TLS only"
            )),
            None => problems.push(format!("{at}: {name} has no known value")),
        }
    }
    if endpoints == 0 {
        problems.push(format!("{at}: no OTEL_EXPORTER_OTLP_ENDPOINT"));
    }
}

/// Each of [`CLIENT_TLS_FILES`] names a key of a mounted Secret that will
/// exist.
fn check_tls_files(
    m: &Manifest,
    secrets: &[ExternalSecret],
    w: &Workload<'_>,
    c: &Value,
    env: &[(String, EnvValue)],
    problems: &mut Problems,
) {
    let at = w.container_id(c);
    for var in CLIENT_TLS_FILES {
        match env_get(env, var).and_then(EnvValue::known) {
            None => problems.push(format!(
                "{at}: set {var} to a file of the mounted client-certificate Secret (the collectors require mTLS)"
            )),
            Some(path) => match mounted_file(m, w, c, path) {
                Ok(file @ MountedFile::Secret { .. }) => {
                    if let Some(p) = secret_file_problem(secrets, m, &w.namespace, &file) {
                        problems.push(format!("{at}: {var}={path}: {p}"));
                    }
                }
                Ok(_) => problems.push(format!("{at}: {var}={path} is not in a Secret volume")),
                Err(e) => problems.push(format!("{at}: {var}: {e}")),
            },
        }
    }
}

/// OTEL_EXPORTER_OTLP_HEADERS sends `authorization=Bearer …` expanded
/// from a variable read from a Secret, never a literal token.
fn check_token_header(at: &str, env: &[(String, EnvValue)], problems: &mut Problems) {
    let Some(h) = env_get(env, "OTEL_EXPORTER_OTLP_HEADERS").and_then(EnvValue::known) else {
        problems.push(format!(
            "{at}: set OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20$(OTLP_INGEST_TOKEN) (the collectors require the ingest token)"
        ));
        return;
    };
    let has_auth = h.split(',').any(|kv| {
        kv.trim()
            .to_ascii_lowercase()
            .starts_with("authorization=bearer")
    });
    let from_secret = h.split("$(").skip(1).all(|rest| {
        rest.split(')')
            .next()
            .and_then(|var| env_get(env, var))
            .is_some_and(|v| matches!(v, EnvValue::Secret { .. }))
    }) && h.contains("$(");
    if !has_auth || !from_secret {
        problems.push(format!(
            "{at}: OTEL_EXPORTER_OTLP_HEADERS must be authorization=Bearer%20$(VAR) with VAR from a Secret (never a literal token)"
        ));
    }
}
