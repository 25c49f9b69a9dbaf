//! Prometheus' targets as the stack mounts them: the file_sd files and
//! static targets its configuration reads must name services and ports of
//! the stack (the shipped files name localhost, so compose mounts its own
//! over them), and an engine must be either pushed or scraped, never both.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde_yaml_ng::Value;

use super::findings::{finding, finish};
use super::flags::flag;
use super::listeners::Protocol;
use super::read::{read_yaml, sequence, string_items};
use super::service::{Kind, Service};
use super::stack::Stack;
use super::{ComposeError, Finding};

/// Prometheus scrapes and alerts what the stack runs: every target in the
/// file_sd files its mounted configuration reads (compose mounts its own
/// over `targets/`) names a service and a port it listens on; an engine
/// that pushes its metrics over OTLP is not also scraped (every series
/// would be stored twice and every sum doubled), and a scraped engine
/// serves `/metrics`.
pub fn check_prometheus_targets(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services_of(&Kind::Prometheus) {
        let Some(config) = PrometheusConfig::read(stack, service, &mut findings) else {
            continue;
        };
        for (what, block) in target_blocks(&config.value) {
            let mut targets = config.file_sd_targets(stack, &what, block, &mut findings);
            for static_config in sequence(block, "static_configs") {
                for target in string_items(static_config, "targets") {
                    targets.push((config.host.clone(), target.to_string()));
                }
            }
            for (file, target) in targets {
                check_target(stack, service, &what, &file, &target, &mut findings);
            }
        }
    }
    finish(findings)
}

/// One Prometheus service's configuration file, read through its mount.
struct PrometheusConfig<'a> {
    /// The Prometheus service.
    service: &'a Service,
    /// The file on the host.
    host: PathBuf,
    /// Its directory in the container, which file_sd paths are relative to.
    container_dir: PathBuf,
    /// Its content.
    value: Value,
}

impl<'a> PrometheusConfig<'a> {
    /// The file `--config.file` names (Prometheus' default otherwise).
    fn read(
        stack: &Stack,
        service: &'a Service,
        findings: &mut Vec<Finding>,
    ) -> Option<PrometheusConfig<'a>> {
        let config_path = flag(&service.args(), "config.file")
            .unwrap_or_else(|| "/etc/prometheus/prometheus.yml".into());
        let Some(host) = stack.host_path(service, &config_path) else {
            findings.push(finding(
                &stack.path,
                format!("service {}: --config.file={config_path} is not inside any bind mount; mount deploy/prometheus", service.name),
            ));
            return None;
        };
        let value = match read_yaml(&host) {
            Ok(c) => c,
            Err(e) => {
                findings.push(finding(&host, e.to_string()));
                return None;
            }
        };
        let container_dir = Path::new(&config_path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Some(PrometheusConfig {
            service,
            host,
            container_dir,
            value,
        })
    }

    /// The targets of `block`'s `file_sd_configs`, each with the host file
    /// it is written in; a file that is not mounted, or missing, is a
    /// finding.
    fn file_sd_targets(
        &self,
        stack: &Stack,
        what: &str,
        block: &Value,
        findings: &mut Vec<Finding>,
    ) -> Vec<(PathBuf, String)> {
        let mut targets = Vec::new();
        for sd in sequence(block, "file_sd_configs") {
            for pattern in string_items(sd, "files") {
                let container = self.container_dir.join(pattern);
                let container = container.to_string_lossy();
                let Some(host) = stack.host_path(self.service, &container) else {
                    findings.push(finding(
                        &self.host,
                        format!(
                            "{what}: target file {pattern} ({container} in {}) is not mounted",
                            self.service.name
                        ),
                    ));
                    continue;
                };
                let files = expand_glob(&host);
                if files.is_empty() {
                    findings.push(finding(
                        &stack.path,
                        format!(
                            "service {}: {what} reads {pattern}, which is {} on the host and does not exist; add the file (e.g. []) or fix the mount",
                            self.service.name,
                            host.display()
                        ),
                    ));
                }
                for file in files {
                    match read_yaml(&file) {
                        Ok(groups) => {
                            for group in groups.as_sequence().into_iter().flatten() {
                                for target in string_items(group, "targets") {
                                    targets.push((file.clone(), target.to_string()));
                                }
                            }
                        }
                        Err(e) => findings.push(finding(&file, e.to_string())),
                    }
                }
            }
        }
        targets
    }
}

/// The blocks of a Prometheus configuration that list targets, with how
/// messages name them: every scrape job, and every Alertmanager.
fn target_blocks(config: &Value) -> Vec<(String, &Value)> {
    let mut blocks: Vec<(String, &Value)> = Vec::new();
    for job in sequence(config, "scrape_configs") {
        let name = job.get("job_name").and_then(Value::as_str).unwrap_or("?");
        blocks.push((format!("job {name}"), job));
    }
    let alerting = config.get("alerting").unwrap_or(&Value::Null);
    for am in sequence(alerting, "alertmanagers") {
        blocks.push(("alerting.alertmanagers".into(), am));
    }
    blocks
}

/// `target` (written in `file`) names a service and HTTP port of the stack;
/// a scraped engine serves `/metrics` and does not push its metrics too.
fn check_target(
    stack: &Stack,
    prometheus: &Service,
    what: &str,
    file: &Path,
    target: &str,
    findings: &mut Vec<Finding>,
) {
    let Some((_, scraped)) = stack.resolve(
        file,
        &format!("{what} (Prometheus service {}): target", prometheus.name),
        &format!("http://{target}"),
        &[Protocol::Http],
        findings,
    ) else {
        return;
    };
    let Kind::Engine(_) = scraped.kind() else {
        return;
    };
    let exporters = scraped
        .environment
        .get("OTEL_METRICS_EXPORTER")
        .cloned()
        .unwrap_or_else(|| "otlp".into());
    let list: Vec<&str> = exporters.split(',').map(str::trim).collect();
    if list.contains(&"otlp") {
        findings.push(finding(
            file,
            format!(
                "target {target}: {} pushes its metrics over OTLP (OTEL_METRICS_EXPORTER={exporters}) and would be scraped too, storing every series twice; drop the target or set OTEL_METRICS_EXPORTER=prometheus in {}",
                scraped.name,
                stack.path.display()
            ),
        ));
    }
    if !list.contains(&"prometheus") {
        findings.push(finding(
            file,
            format!(
                "target {target}: {} does not serve /metrics (OTEL_METRICS_EXPORTER={exporters} has no prometheus)",
                scraped.name
            ),
        ));
    }
}

/// `path`, or the files its last component's `*` matches (file_sd's glob).
fn expand_glob(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains('*') {
        return if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let pattern = format!("^{}$", regex::escape(name).replace(r"\*", ".*"));
    let (Ok(re), Some(dir)) = (Regex::new(&pattern), path.parent()) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| re.is_match(n))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
