//! Grafana as the stack provisions it: locked (a password the user sets,
//! no anonymous access — anyone reaching the port would be a user),
//! provisioned from this repository where Grafana looks, and its
//! datasources naming services and ports of the stack.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::findings::{finding, finish};
use super::listeners::Protocol;
use super::passwords::required_password;
use super::read::{get_path, read_yaml, sequence};
use super::service::{Kind, Service};
use super::stack::Stack;
use super::{ComposeError, Finding};

/// Grafana is provisioned from the repository and locked: the admin
/// password is one the user must set (never a literal or a default: the
/// image's fallback is admin/admin), anonymous access is off, the
/// provisioning directory and the dashboards are mounted where Grafana and
/// the dashboard provider look, and every datasource URL names a service
/// and port of the stack.
pub fn check_grafana(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    let file = &stack.path;
    let grafanas: Vec<&Service> = stack.services_of(&Kind::Grafana).collect();
    if grafanas.is_empty() {
        findings.push(finding(file, "no Grafana service (image grafana/grafana)"));
    }
    for service in grafanas {
        required_password(
            stack,
            service,
            "GF_SECURITY_ADMIN_PASSWORD",
            &["GF_SECURITY_ADMIN_PASSWORD__FILE"],
            "admin/admin",
            &mut findings,
        );
        if service
            .environment
            .get("GF_AUTH_ANONYMOUS_ENABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            findings.push(finding(
                file,
                format!("service {}: GF_AUTH_ANONYMOUS_ENABLED is true; set it to \"false\" (anyone reaching the port would be a user)", service.name),
            ));
        }
        let provisioning = service
            .environment
            .get("GF_PATHS_PROVISIONING")
            .cloned()
            .unwrap_or_else(|| "/etc/grafana/provisioning".into());
        let Some(host) = stack.host_path(service, &provisioning) else {
            findings.push(finding(
                file,
                format!("service {}: nothing is mounted at {provisioning}; mount deploy/grafana/provisioning there read-only", service.name),
            ));
            continue;
        };
        check_dashboard_providers(stack, service, &host.join("dashboards"), &mut findings);
        check_datasources(stack, service, &host.join("datasources"), &mut findings);
    }
    finish(findings)
}

/// Each dashboard provider in `dir` loads a path where dashboards are
/// mounted (Grafana starts fine with none: the dashboards are just absent).
fn check_dashboard_providers(
    stack: &Stack,
    service: &Service,
    dir: &Path,
    findings: &mut Vec<Finding>,
) {
    for provider_file in yaml_files(dir) {
        let Ok(doc) = read_yaml(&provider_file) else {
            findings.push(finding(&provider_file, "not valid YAML"));
            continue;
        };
        for provider in sequence(&doc, "providers") {
            let Some(path) = get_path(provider, &["options", "path"]).and_then(Value::as_str)
            else {
                continue;
            };
            if dashboard_count(stack.host_path(service, path).as_deref()) == 0 {
                findings.push(finding(
                    &stack.path,
                    format!(
                        "service {}: the dashboard provider in {} loads {path}, where no dashboard (*.json) is mounted; mount deploy/grafana/dashboards at {path}",
                        service.name,
                        provider_file.display()
                    ),
                ));
            }
        }
    }
}

/// How many dashboards (`*.json`) `dir` holds (none when it is not mounted).
fn dashboard_count(dir: Option<&Path>) -> usize {
    dir.and_then(|d| std::fs::read_dir(d).ok())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

/// Every datasource URL in `dir` names a service and HTTP port of the stack.
fn check_datasources(stack: &Stack, service: &Service, dir: &Path, findings: &mut Vec<Finding>) {
    for datasource_file in yaml_files(dir) {
        let Ok(doc) = read_yaml(&datasource_file) else {
            findings.push(finding(&datasource_file, "not valid YAML"));
            continue;
        };
        for datasource in sequence(&doc, "datasources") {
            let Some(url) = datasource.get("url").and_then(Value::as_str) else {
                continue;
            };
            let name = datasource
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            stack.resolve(
                &datasource_file,
                &format!("datasource {name}: url (as {} reads it)", service.name),
                url,
                &[Protocol::Http],
                findings,
            );
        }
    }
}

/// The `*.yaml` and `*.yml` files of `dir`, sorted (none when it is missing).
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
