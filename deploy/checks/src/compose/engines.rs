//! The engines' view of the stack: each engine finds the collector, its
//! peer engines, NATS and PostgreSQL only through the URLs in its
//! environment, whose defaults point at 127.0.0.1 — its own container —
//! so every one of them must name the service and port that serve it.

use std::collections::BTreeMap;

use super::findings::{finding, finish};
use super::listeners::Protocol;
use super::passwords::required_variable;
use super::service::{Kind, Service};
use super::stack::Stack;
use super::{ComposeError, Finding};

/// What every engine needs to find the rest of the stack: listening on
/// every interface; `OTEL_EXPORTER_OTLP_ENDPOINT` at the collector's OTLP
/// receiver for the protocol it uses; a `DELTRAN_<ENGINE>_URL` for each
/// other engine naming that engine's service and port (the default is
/// 127.0.0.1, the engine's own container); NATS; the database URL, with
/// the user, database and password variable PostgreSQL is started with.
pub fn check_engines(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    let engines = stack.engines();
    if engines.is_empty() {
        findings.push(finding(
            &stack.path,
            "no engine service (command: [engine, <kind>])",
        ));
    }
    for (kind, service) in &engines {
        if service.environment.get("DELTRAN_HOST").map(String::as_str) != Some("0.0.0.0") {
            findings.push(finding(
                &stack.path,
                format!("service {}: set DELTRAN_HOST: 0.0.0.0 (engines listen on 127.0.0.1 by default, unreachable from other containers)", service.name),
            ));
        }
        check_otlp(stack, service, &mut findings);
        check_peers(stack, kind, service, &engines, &mut findings);
        check_nats(stack, service, &mut findings);
        check_database(stack, service, &mut findings);
    }
    finish(findings)
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` names the collector on a port speaking
/// the protocol `OTEL_EXPORTER_OTLP_PROTOCOL` chooses; without it an
/// engine that exports OTLP sends into its own container.
fn check_otlp(stack: &Stack, service: &Service, findings: &mut Vec<Finding>) {
    let file = &stack.path;
    let env = &service.environment;
    let name = &service.name;
    let exporters_use_otlp = [
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
    ]
    .iter()
    .any(|v| {
        env.get(*v)
            .is_none_or(|e| e.split(',').any(|x| x.trim() == "otlp"))
    });
    let protocol = match env.get("OTEL_EXPORTER_OTLP_PROTOCOL").map(String::as_str) {
        None | Some("grpc") => Protocol::OtlpGrpc,
        Some("http/protobuf") => Protocol::OtlpHttp,
        Some(other) => {
            findings.push(finding(
                file,
                format!("service {name}: OTEL_EXPORTER_OTLP_PROTOCOL={other} is not one the engines accept (grpc, http/protobuf)"),
            ));
            Protocol::OtlpGrpc
        }
    };
    match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(url) => {
            let what = format!("service {name}: OTEL_EXPORTER_OTLP_ENDPOINT");
            if let Some((_, target)) = stack.resolve(file, &what, url, &[protocol], findings)
                && target.kind() != Kind::Collector
            {
                findings.push(finding(
                    file,
                    format!("{what} = {url:?} names {}, which is not the collector; engines send to the collector", target.name),
                ));
            }
        }
        None if exporters_use_otlp => findings.push(finding(
            file,
            format!("service {name}: exports OTLP but has no OTEL_EXPORTER_OTLP_ENDPOINT, so it sends to localhost inside its own container; set it to the collector service"),
        )),
        None => {}
    }
}

/// A `DELTRAN_<PEER>_URL` for every other engine, naming the service that
/// runs that engine on the port it listens on.
fn check_peers(
    stack: &Stack,
    kind: &str,
    service: &Service,
    engines: &BTreeMap<String, &Service>,
    findings: &mut Vec<Finding>,
) {
    let file = &stack.path;
    let name = &service.name;
    for (peer_kind, peer) in engines {
        if peer_kind == kind {
            continue;
        }
        let var = format!(
            "DELTRAN_{}_URL",
            peer_kind.to_ascii_uppercase().replace('-', "_")
        );
        let port = peer
            .environment
            .get("DELTRAN_PORT")
            .cloned()
            .unwrap_or_default();
        match service.environment.get(&var) {
            None => findings.push(finding(
                file,
                format!("service {name}: no {var}, so it calls 127.0.0.1 (its own container) for {peer_kind}; set {var}: http://{}:{port}", peer.name),
            )),
            Some(url) => {
                let what = format!("service {name}: {var}");
                if let Some((_, target)) = stack.resolve(file, &what, url, &[Protocol::Http], findings)
                    && target.name != peer.name
                {
                    findings.push(finding(
                        file,
                        format!("{what} = {url:?} names service {}, but {peer_kind} runs in service {}; write http://{}:{port}", target.name, peer.name, peer.name),
                    ));
                }
            }
        }
    }
}

/// `DELTRAN_NATS_URL` names the NATS service's client port.
fn check_nats(stack: &Stack, service: &Service, findings: &mut Vec<Finding>) {
    let file = &stack.path;
    let name = &service.name;
    match service.environment.get("DELTRAN_NATS_URL") {
        Some(url) => {
            stack.resolve(
                file,
                &format!("service {name}: DELTRAN_NATS_URL"),
                url,
                &[Protocol::Nats],
                findings,
            );
        }
        None => findings.push(finding(
            file,
            format!("service {name}: no DELTRAN_NATS_URL, so it looks for NATS on 127.0.0.1; set it to the NATS service"),
        )),
    }
}

/// `DELTRAN_DATABASE_URL`, where set, names PostgreSQL with the user and
/// database it creates and the same required password variable.
fn check_database(stack: &Stack, service: &Service, findings: &mut Vec<Finding>) {
    let file = &stack.path;
    let Some(url) = service.environment.get("DELTRAN_DATABASE_URL") else {
        return;
    };
    let what = format!("service {}: DELTRAN_DATABASE_URL", service.name);
    let Some((endpoint, postgres)) =
        stack.resolve(file, &what, url, &[Protocol::Postgres], findings)
    else {
        return;
    };
    let penv = &postgres.environment;
    let user = penv
        .get("POSTGRES_USER")
        .cloned()
        .unwrap_or_else(|| "postgres".into());
    let db = penv
        .get("POSTGRES_DB")
        .cloned()
        .unwrap_or_else(|| user.clone());
    if endpoint.user.as_deref() != Some(user.as_str()) {
        findings.push(finding(
            file,
            format!(
                "{what}: user {:?}, but {} creates user {user:?} (POSTGRES_USER)",
                endpoint.user.unwrap_or_default(),
                postgres.name
            ),
        ));
    }
    if endpoint.path.trim_start_matches('/') != db {
        findings.push(finding(
            file,
            format!(
                "{what}: database {:?}, but {} creates {db:?} (POSTGRES_DB)",
                endpoint.path.trim_start_matches('/'),
                postgres.name
            ),
        ));
    }
    let used = endpoint.password.as_deref().and_then(required_variable);
    let expected = penv
        .get("POSTGRES_PASSWORD")
        .and_then(|p| required_variable(p));
    if used.is_none() || used != expected {
        findings.push(finding(
            file,
            format!(
                "{what}: the password must be the required variable {} starts PostgreSQL with (${{{}:?…}}), not {:?}",
                postgres.name,
                expected.unwrap_or_else(|| "POSTGRES_PASSWORD".into()),
                endpoint.password.unwrap_or_default()
            ),
        ));
    }
}
