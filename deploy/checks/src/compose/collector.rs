//! The OpenTelemetry Collector service: the repository's configuration
//! files it is started with, merged as the collector merges them, the
//! ports that configuration opens, and the variables it needs its
//! environment to set (an unset one is an empty string to the collector,
//! which fails at start or, worse, binds or sends nowhere).

use std::path::PathBuf;

use serde_yaml_ng::{Mapping, Value};

use super::findings::{finding, finish};
use super::flags::flags;
use super::listeners::{Listener, Protocol, otlp_listeners, reachable_port};
use super::read::{get_path, read_yaml, scalar};
use super::service::{Kind, Service};
use super::stack::Stack;
use super::variables::{env_references, substitute_env};
use super::{ComposeError, Finding};

impl Stack {
    /// The collector's `--config` files as host paths, in order.
    pub fn collector_config_files(
        &self,
        service: &Service,
        findings: &mut Vec<Finding>,
    ) -> Vec<PathBuf> {
        let configs = flags(&service.args(), "config");
        if configs.is_empty() {
            findings.push(finding(
                &self.path,
                format!(
                    "service {}: no --config=<file>; the image's default configuration is not this repository's",
                    service.name
                ),
            ));
        }
        let mut out = Vec::new();
        for config in configs {
            match self.host_path(service, &config) {
                Some(host) if host.is_file() => out.push(host),
                Some(host) => findings.push(finding(
                    &self.path,
                    format!(
                        "service {}: --config={config} is {} on the host, which does not exist; fix the path or the mount",
                        service.name,
                        host.display()
                    ),
                )),
                None => findings.push(finding(
                    &self.path,
                    format!(
                        "service {}: --config={config} is not inside any bind mount; mount otel-collector/ read-only",
                        service.name
                    ),
                )),
            }
        }
        out
    }

    /// The collector's configuration merged as the collector merges its
    /// `--config` files (maps merge, everything else replaces).
    pub fn collector_config(
        &self,
        service: &Service,
        findings: &mut Vec<Finding>,
    ) -> Option<Value> {
        let files = self.collector_config_files(service, findings);
        if files.is_empty() {
            return None;
        }
        let mut merged = Value::Mapping(Mapping::new());
        for file in files {
            match read_yaml(&file) {
                Ok(value) => crate::collector::merge(&mut merged, value),
                Err(e) => {
                    findings.push(finding(&file, e.to_string()));
                    return None;
                }
            }
        }
        Some(merged)
    }

    /// The collector's listeners, each sourced to its `--config` files.
    pub(super) fn collector_listeners(
        &self,
        service: &Service,
        findings: &mut Vec<Finding>,
    ) -> Vec<Listener> {
        let Some(config) = self.collector_config(service, findings) else {
            return Vec::new();
        };
        let files = flags(&service.args(), "config").join(" + ");
        listeners_in_config(&config, service)
            .into_iter()
            .map(|mut listener| {
                listener.source = format!("{files}: {}", listener.source);
                listener
            })
            .collect()
    }
}

/// The collector's listeners from its merged configuration: OTLP
/// receivers, the health check and its own metrics, where bound to an
/// address other containers reach (`${env:…}` resolved from the service's
/// environment). pprof and zpages on loopback are deliberately not listed.
fn listeners_in_config(config: &Value, service: &Service) -> Vec<Listener> {
    let resolve = |s: &str| substitute_env(s, &service.environment);
    let mut out = Vec::new();
    let receivers = config.get("receivers").and_then(Value::as_mapping);
    for (name, receiver) in receivers.into_iter().flatten() {
        let Some(name) = name.as_str() else { continue };
        if name != "otlp" && !name.starts_with("otlp/") {
            continue;
        }
        out.extend(otlp_listeners(receiver.get("protocols"), resolve, |key| {
            format!("receivers.{name}.protocols.{key}.endpoint")
        }));
    }
    if let Some(endpoint) =
        get_path(config, &["extensions", "health_check", "endpoint"]).and_then(Value::as_str)
        && let Some(port) = reachable_port(&resolve(endpoint))
    {
        out.push(Listener::new(
            port,
            Protocol::Http,
            "extensions.health_check.endpoint",
        ));
    }
    let readers = get_path(config, &["service", "telemetry", "metrics", "readers"])
        .and_then(Value::as_sequence);
    for reader in readers.into_iter().flatten() {
        let Some(prometheus) = get_path(reader, &["pull", "exporter", "prometheus"]) else {
            continue;
        };
        let host = prometheus
            .get("host")
            .and_then(Value::as_str)
            .map(resolve)
            .unwrap_or_else(|| "localhost".into());
        let port = prometheus.get("port").and_then(scalar).map(|p| resolve(&p));
        if let Some(port) = port
            && let Some(port) = reachable_port(&format!("{host}:{port}"))
        {
            out.push(Listener::new(
                port,
                Protocol::Http,
                "service.telemetry.metrics.readers[].pull.exporter.prometheus",
            ));
        }
    }
    out
}

/// The collector runs the repository's files: its `--config` files exist
/// (through its bind mount), and its environment sets every `${env:NAME}`
/// they read without a default (an unset one is an empty string to the
/// collector, which fails at start or, worse, binds or sends nowhere).
pub fn check_collector(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    let collectors: Vec<&Service> = stack.services_of(&Kind::Collector).collect();
    if collectors.is_empty() {
        findings.push(finding(
            &stack.path,
            "no OpenTelemetry Collector service (image otel/opentelemetry-collector-contrib)",
        ));
    }
    for service in collectors {
        for file in stack.collector_config_files(service, &mut findings) {
            let value = match read_yaml(&file) {
                Ok(v) => v,
                Err(e) => {
                    findings.push(finding(&file, e.to_string()));
                    continue;
                }
            };
            for reference in env_references(&value) {
                if !reference.has_default && !service.environment.contains_key(&reference.name) {
                    findings.push(finding(
                        &stack.path,
                        format!(
                            "service {}: {} reads ${{env:{}}}, which its environment does not set; add {}: <value>",
                            service.name,
                            file.display(),
                            reference.name,
                            reference.name
                        ),
                    ));
                }
            }
        }
    }
    finish(findings)
}
