//! The gateway tier: agents route spans by trace id to gateways through a
//! `loadbalancing` exporter, which must resolve a headless Service (DNS
//! returning pod IPs); through a normal Service every span would go to one
//! virtual IP and a trace would be split across gateways.

use serde_json::Value;

use super::collector_config::{collector_configs, map_keys_with_prefix};
use super::env::{EnvValue, container_env, env_get};
use super::error::Problems;
use super::json::{object_id, str_at};
use super::services::{selected_workloads, service_host, service_port};
use super::workload::{Workload, is_collector_container};
use super::{K8sError, Manifest};

/// For every collector whose files use a `loadbalancing` exporter with the
/// dns resolver: the hostname (after `${env:…}`) is the DNS name of a
/// rendered headless Service (`clusterIP: None`, so DNS returns pod IPs to
/// hash trace ids onto), which exposes the resolver's port and selects the
/// pods of a collector Deployment. Returns how many exporters were checked,
/// so a caller can tell "all fine" from "nothing to check".
pub fn check_gateway_routing(m: &Manifest) -> Result<usize, K8sError> {
    let mut problems = Problems::default();
    let mut checked = 0;
    // Problems loading the files are check_collectors' to report.
    let mut scratch = Problems::default();
    for w in m.workloads() {
        for c in w.containers().filter(|c| is_collector_container(c)) {
            let at = w.container_id(c);
            let env = container_env(m, &w.namespace, c);
            for (path, config) in collector_configs(m, &w, c, &mut scratch)? {
                for (name, exporter) in map_keys_with_prefix(&config, "/exporters", "loadbalancing")
                {
                    checked += 1;
                    let Some(dns) = exporter.pointer("/resolver/dns") else {
                        problems.push(format!(
                            "{at}: {path} exporter {name} does not use the dns resolver; only a headless Service behind resolver.dns is checked here"
                        ));
                        continue;
                    };
                    match resolver_host(dns, &env) {
                        Ok(host) => {
                            let route = Route {
                                name,
                                host: &host,
                                port: resolver_port(dns),
                            };
                            route.check(m, &w, &at, &mut problems);
                        }
                        Err(var) => problems.push(format!(
                            "{at}: {name} resolves ${{env:{var}}}, which the container does not set to a known value; set env {var} to the gateway headless Service's DNS name"
                        )),
                    }
                }
            }
        }
    }
    problems.finish("gateway routing").map(|()| checked)
}

/// The resolver's `hostname`, `${env:VAR}` taken from the container's
/// environment; `Err(VAR)` when that has no known value.
fn resolver_host<'a>(dns: &'a Value, env: &[(String, EnvValue)]) -> Result<String, &'a str> {
    let raw = str_at(dns, "/hostname").unwrap_or_default();
    match raw.strip_prefix("${env:").and_then(|r| r.strip_suffix('}')) {
        Some(var) => env_get(env, var)
            .and_then(EnvValue::known)
            .map(str::to_string)
            .ok_or(var),
        None => Ok(raw.to_string()),
    }
}

/// The resolver's `port` (the exporter's default 4317 when unset).
fn resolver_port(dns: &Value) -> u64 {
    match dns.get("port") {
        Some(Value::String(p)) => p.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 4317,
    }
}

/// Where one `loadbalancing` exporter sends: its name, host and port.
struct Route<'a> {
    name: &'a str,
    host: &'a str,
    port: u64,
}

impl Route<'_> {
    /// The host is a rendered headless Service exposing the port and
    /// selecting collector gateway Deployments that declare it.
    fn check(&self, m: &Manifest, w: &Workload<'_>, at: &str, problems: &mut Problems) {
        let Route { name, host, port } = *self;
        let Some((svc_name, svc_ns)) = service_host(host, &w.namespace) else {
            problems.push(format!(
                "{at}: {name} hostname {host} is not <service>.<namespace>.svc.cluster.local"
            ));
            return;
        };
        let Some(svc) = m.get("Service", Some(&svc_ns), &svc_name) else {
            problems.push(format!(
                "{at}: {name} hostname {host} names Service {svc_ns}/{svc_name}, which is not rendered; point it at the gateway's headless Service"
            ));
            return;
        };
        if str_at(svc, "/spec/clusterIP") != Some("None") {
            problems.push(format!(
                "{}: set clusterIP: None; {name} in {} must resolve the gateway pods, not one virtual IP (traces would split across gateways)",
                object_id(svc),
                w.id()
            ));
        }
        if service_port(svc, port).is_none() {
            problems.push(format!(
                "{}: exposes no port {port}, which {name} in {} dials",
                object_id(svc),
                w.id()
            ));
        }
        let targets = selected_workloads(m, &svc_ns, svc.pointer("/spec/selector"));
        if targets.is_empty() {
            problems.push(format!(
                "{}: its selector matches no rendered pods; {name} in {} would find no gateway",
                object_id(svc),
                w.id()
            ));
        }
        for t in targets {
            if t.kind != "Deployment" || !t.is_collector() {
                problems.push(format!(
                    "{}: selects {}, which is not a collector gateway Deployment",
                    object_id(svc),
                    t.id()
                ));
            }
            if !t.ports().iter().any(|(_, p)| u64::from(*p) == port) {
                problems.push(format!(
                    "{}: declares no containerPort {port}, which the agents dial",
                    t.id()
                ));
            }
        }
    }
}
