//! How a name or URL reaches pods: a DNS name resolved to a rendered
//! Service, its port, and the workloads its selector picks. Engines,
//! agents and gateways find each other only this way, so a wrong name,
//! port or label is traffic that goes nowhere.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Manifest;
use super::json::array_at;
use super::workload::Workload;

/// Splits `name.namespace.svc[.cluster.local]` (or `name.namespace`, or a
/// bare `name` in `own_namespace`) into a Service name and namespace.
pub(super) fn service_host(host: &str, own_namespace: &str) -> Option<(String, String)> {
    let host = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))
        .unwrap_or(host);
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [name] => Some(((*name).to_string(), own_namespace.to_string())),
        [name, ns] => Some(((*name).to_string(), (*ns).to_string())),
        _ => None,
    }
}

/// Whether a `key: value` selector (a Service's, a budget's matchLabels)
/// selects `labels`; an empty or missing selector selects nothing here.
pub(super) fn selector_matches_labels(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(map) = selector.as_object() else {
        return false;
    };
    !map.is_empty()
        && map
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
}

/// The workloads in `namespace` whose pods `selector` selects.
pub(super) fn selected_workloads<'a>(
    m: &'a Manifest,
    namespace: &str,
    selector: Option<&Value>,
) -> Vec<Workload<'a>> {
    let selector = selector.unwrap_or(&Value::Null);
    m.workloads()
        .into_iter()
        .filter(|w| w.namespace == namespace && selector_matches_labels(selector, &w.pod_labels))
        .collect()
}

/// The entry of a Service's `ports:` whose `port` is `port`.
pub(super) fn service_port(svc: &Value, port: u64) -> Option<&Value> {
    array_at(svc, "/spec/ports")
        .iter()
        .find(|p| p.pointer("/port").and_then(Value::as_u64) == Some(port))
}

/// Scheme, host and port (stated, or the scheme's default) of a URL.
pub(super) fn url_parts(url: &str) -> Option<(&str, &str, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, if scheme == "https" { 443 } else { 80 }),
    };
    Some((scheme, host, port))
}

/// The rendered Service a URL names (from `namespace`), and the port.
pub(super) fn url_service<'a>(
    m: &'a Manifest,
    namespace: &str,
    url: &str,
) -> Option<(&'a Value, u16)> {
    let (_, host, port) = url_parts(url)?;
    let (name, ns) = service_host(host, namespace)?;
    Some((m.get("Service", Some(&ns), &name)?, port))
}

/// A URL names a rendered Service that exposes its port, whose targetPort
/// is declared by the pods it selects, and which selects only pods `want`
/// accepts.
pub(super) fn check_url_reaches(
    m: &Manifest,
    namespace: &str,
    url: &str,
    want: impl Fn(&Workload<'_>) -> bool,
) -> Result<(), String> {
    let Some((_, host, port)) = url_parts(url) else {
        return Err("not a scheme://host:port URL".into());
    };
    let Some((name, ns)) = service_host(host, namespace) else {
        return Err(format!("host {host} is not a Service name"));
    };
    let Some(svc) = m.get("Service", Some(&ns), &name) else {
        return Err(format!("no Service {ns}/{name} is rendered"));
    };
    let Some(svc_port) = service_port(svc, u64::from(port)) else {
        return Err(format!("Service {ns}/{name} exposes no port {port}"));
    };
    let targets = selected_workloads(m, &ns, svc.pointer("/spec/selector"));
    if targets.is_empty() {
        return Err(format!("Service {ns}/{name} selects no rendered pods"));
    }
    for t in &targets {
        if !want(t) {
            return Err(format!(
                "Service {ns}/{name} selects {}, the wrong pods",
                t.id()
            ));
        }
        let target = svc_port.get("targetPort").unwrap_or(&Value::Null);
        if !declares_target_port(t, target, port) {
            return Err(format!(
                "Service {ns}/{name} port {port} targets {target}, which {} does not declare",
                t.id()
            ));
        }
    }
    Ok(())
}

/// Whether `w` declares the container port a Service's `targetPort`
/// names (by number or name; absent, it is the Service `port`).
fn declares_target_port(w: &Workload<'_>, target: &Value, port: u16) -> bool {
    let ports = w.ports();
    match target {
        Value::Null => ports.iter().any(|(_, p)| *p == port),
        Value::Number(n) => ports.iter().any(|(_, p)| Some(u64::from(*p)) == n.as_u64()),
        Value::String(n) => ports.iter().any(|(name, _)| name.as_deref() == Some(n)),
        _ => false,
    }
}
