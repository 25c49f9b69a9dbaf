//! The collector's exporters and the backends they send to (Prometheus,
//! Loki, Tempo): each endpoint must name a service of the stack on a port
//! speaking the exporter's protocol, and the backend must accept what it
//! is sent — which only shows when the stack runs, as dropped telemetry.

use std::path::PathBuf;

use serde_yaml_ng::Value;

use super::endpoint::Endpoint;
use super::findings::{finding, finish};
use super::flags::has_flag;
use super::listeners::Protocol;
use super::read::get_path;
use super::service::{Kind, Service};
use super::stack::Stack;
use super::variables::substitute_env;
use super::{ComposeError, Finding};

/// The collector's exporters reach their backends: each `endpoint` (with
/// `${env:…}` taken from the collector's environment) names a service of
/// the stack and a port it listens on with the exporter's protocol; OTLP
/// into Prometheus needs `--web.enable-otlp-receiver` and the path
/// `/api/v1/otlp`; into Loki the path `/otlp` and structured metadata
/// allowed (OTLP attributes land there).
pub fn check_collector_exporters(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    let file = &stack.path;
    for service in stack.services_of(&Kind::Collector) {
        let Some(config) = stack.collector_config(service, &mut findings) else {
            continue;
        };
        let Some(exporters) = config.get("exporters").and_then(Value::as_mapping) else {
            continue;
        };
        for (name, exporter) in exporters {
            let Some(name) = name.as_str() else { continue };
            let Some(raw) = exporter.get("endpoint").and_then(Value::as_str) else {
                continue;
            };
            let url = substitute_env(raw, &service.environment);
            if url.contains("${") {
                continue; // reported by check_collector
            }
            let kind = name.split('/').next().unwrap_or_default();
            let Some(protocols) = exporter_protocols(kind) else {
                continue;
            };
            let what = format!(
                "service {}: exporters.{name}.endpoint ({raw})",
                service.name
            );
            let Some((endpoint, target)) =
                stack.resolve(file, &what, &url, protocols, &mut findings)
            else {
                continue;
            };
            let exporter = Exporter {
                name,
                kind,
                what: &what,
                url: &url,
                endpoint: &endpoint,
            };
            findings.extend(backend_findings(stack, &exporter, target));
        }
    }
    finish(findings)
}

/// The protocols an exporter of `kind` speaks; `None` for kinds that do
/// not send to a service of the stack.
fn exporter_protocols(kind: &str) -> Option<&'static [Protocol]> {
    match kind {
        "otlp" => Some(&[Protocol::OtlpGrpc]),
        "otlphttp" => Some(&[Protocol::OtlpHttp, Protocol::Http]),
        "prometheusremotewrite" => Some(&[Protocol::Http]),
        _ => None,
    }
}

/// One exporter whose endpoint was followed to its backend.
struct Exporter<'a> {
    /// `otlphttp/prometheus`.
    name: &'a str,
    /// `otlphttp`.
    kind: &'a str,
    /// How messages name the endpoint setting.
    what: &'a str,
    /// The endpoint, variables substituted.
    url: &'a str,
    /// The endpoint, parsed.
    endpoint: &'a Endpoint,
}

/// What `target` (the service `exporter` sends to) needs to accept it.
fn backend_findings(stack: &Stack, exporter: &Exporter<'_>, target: &Service) -> Vec<Finding> {
    let file = &stack.path;
    let Exporter {
        name,
        what,
        url,
        endpoint,
        ..
    } = exporter;
    let mut findings = Vec::new();
    match (exporter.kind, target.kind()) {
        ("otlphttp", Kind::Prometheus) => {
            if endpoint.path != "/api/v1/otlp" {
                findings.push(finding(file, format!("{what} = {url:?}: Prometheus' OTLP receiver is at /api/v1/otlp (the exporter appends /v1/metrics)")));
            }
            if !has_flag(&target.args(), "web.enable-otlp-receiver") {
                findings.push(finding(file, format!("service {}: add --web.enable-otlp-receiver, or Prometheus refuses the collector's {name}", target.name)));
            }
            // The span metrics carry exemplars (trace ids); Prometheus 3
            // drops them unless exemplar storage is on.
            if !target
                .args()
                .iter()
                .any(|a| a.trim_start_matches('-') == "enable-feature=exemplar-storage")
            {
                findings.push(finding(file, format!("service {}: add --enable-feature=exemplar-storage, or the span metrics' exemplars (links from a latency panel to its traces) are dropped", target.name)));
            }
        }
        ("prometheusremotewrite", Kind::Prometheus)
            if !has_flag(&target.args(), "web.enable-remote-write-receiver") =>
        {
            findings.push(finding(
                file,
                format!(
                    "service {}: add --web.enable-remote-write-receiver for the collector's {name}",
                    target.name
                ),
            ));
        }
        ("otlphttp", Kind::Loki) => {
            if endpoint.path != "/otlp" {
                findings.push(finding(file, format!("{what} = {url:?}: Loki's OTLP endpoint is /otlp (the exporter appends /v1/logs)")));
            }
            if let Some(path) = loki_refusing_attributes(stack, target) {
                findings.push(finding(&path, "limits_config.allow_structured_metadata is false: Loki refuses OTLP logs with attributes; set it to true"));
            }
        }
        ("otlphttp", Kind::Grafana | Kind::Alertmanager) => findings.push(finding(
            file,
            format!("{what} = {url:?}: {} does not receive OTLP", target.name),
        )),
        _ => {}
    }
    findings
}

/// Loki's configuration file, when it turns structured metadata off (OTLP
/// attributes land there, so Loki would refuse the collector's logs).
fn loki_refusing_attributes(stack: &Stack, loki: &Service) -> Option<PathBuf> {
    let (path, config) = stack.config_file(loki, "config.file", &mut Vec::new())?;
    let allowed =
        get_path(&config, &["limits_config", "allow_structured_metadata"]).and_then(Value::as_bool);
    (allowed == Some(false)).then_some(path)
}
