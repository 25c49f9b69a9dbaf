//! The collector containers as the cluster runs them: the pinned image,
//! every variable and file their configuration reads present in the pod,
//! probes on health_check, a writable bounded queue directory, GOMEMLIMIT
//! matched to the memory limit, and what k8sattributes needs. Each is a
//! collector that starts, or crash-loops, or silently drops data.

use serde_json::Value;

use super::collector_config::{
    collector_configs, collector_env_refs, map_keys_with_prefix, string_values,
};
use super::env::{EnvValue, container_env, env_get};
use super::error::Problems;
use super::json::{array_at, str_at};
use super::mounts::mounted_file;
use super::rbac::{K8SATTRIBUTES_PERMISSIONS, service_account_can};
use super::secrets::{ExternalSecret, secret_file_problem};
use super::workload::{Workload, is_collector_container};
use super::{K8sError, Manifest};

/// The collector image every collector container must run (the pinned
/// otelcol-contrib release the configs are written for).
/// The image the collector files are written for: the contrib
/// distribution at the release the builder manifest pins.
pub fn collector_image() -> String {
    format!(
        "otel/opentelemetry-collector-contrib:{}",
        crate::collector::builder::PINNED_RELEASE
    )
}

/// Where the persistent sending queues live inside collector containers.
pub const COLLECTOR_QUEUE_DIR: &str = "/var/lib/otelcol/queue";

/// The collector's health_check port (base.yaml).
pub const COLLECTOR_HEALTH_PORT: u16 = 13133;
/// The collector's own metrics port (base.yaml).
pub const COLLECTOR_METRICS_PORT: u16 = 8888;
/// OTLP/gRPC and OTLP/HTTP.
pub const OTLP_PORTS: [u16; 2] = [4317, 4318];

/// Every collector container: runs the pinned image; each `--config` is a
/// key of a mounted ConfigMap; every `${env:NAME}` those files use is set in
/// the container; every `*_file` they read is in a mounted volume (Secret
/// keys listed in the README); probes hit health_check (13133) on a declared
/// port; the queue directory is a writable, size-limited emptyDir;
/// GOMEMLIMIT is 70–90 % of the memory limit (memory_limiter refuses at
/// 80 %); k8sattributes has its RBAC and its node name from the downward API.
pub fn check_collectors(m: &Manifest, secrets: &[ExternalSecret]) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    let mut collectors = 0;
    for w in m.workloads() {
        for c in w.containers().filter(|c| is_collector_container(c)) {
            collectors += 1;
            let collector = CollectorContainer {
                m,
                w: &w,
                c,
                at: w.container_id(c),
                env: container_env(m, &w.namespace, c),
            };
            collector.check(secrets, &mut problems)?;
        }
    }
    if collectors == 0 {
        problems.push("no collector container rendered (image otel/opentelemetry-collector-*)");
    }
    unused_cluster_permissions(m, &mut problems)?;
    problems.finish("collectors")
}

/// A collector ServiceAccount bound to a ClusterRole while no collector
/// file runs `k8sattributes`: a cluster-wide read permission nothing uses.
fn unused_cluster_permissions(m: &Manifest, problems: &mut Problems) -> Result<(), K8sError> {
    let mut enriching = false;
    for w in m.workloads() {
        for c in w.containers().filter(|c| is_collector_container(c)) {
            let mut ignored = Problems::default();
            for (_, config) in &collector_configs(m, &w, c, &mut ignored)? {
                enriching |=
                    !map_keys_with_prefix(config, "/processors", "k8sattributes").is_empty();
            }
        }
    }
    if enriching {
        return Ok(());
    }
    for binding in m.of_kind("ClusterRoleBinding") {
        let collector_subject = array_at(binding, "/subjects").iter().any(|s| {
            str_at(s, "/kind") == Some("ServiceAccount")
                && str_at(s, "/name").is_some_and(|n| n.starts_with("otel-"))
        });
        if collector_subject {
            problems.push(format!(
                "ClusterRoleBinding {} grants a collector cluster-wide reads, but no collector runs k8sattributes; delete it (and its ClusterRole) in this overlay",
                str_at(binding, "/metadata/name").unwrap_or("?")
            ));
        }
    }
    Ok(())
}

/// One collector container and what its checks keep looking up.
struct CollectorContainer<'a> {
    m: &'a Manifest,
    w: &'a Workload<'a>,
    c: &'a Value,
    /// How problems name the container.
    at: String,
    /// Its environment.
    env: Vec<(String, EnvValue)>,
}

impl CollectorContainer<'_> {
    /// Every check below, in the order problems are reported.
    fn check(&self, secrets: &[ExternalSecret], problems: &mut Problems) -> Result<(), K8sError> {
        let at = &self.at;
        let pinned = collector_image();
        if str_at(self.c, "/image") != Some(pinned.as_str()) {
            problems.push(format!(
                "{at}: image {} is not the pinned {pinned} the configs are written for",
                str_at(self.c, "/image").unwrap_or("?")
            ));
        }
        for (path, config) in &collector_configs(self.m, self.w, self.c, problems)? {
            self.check_variables(path, config, problems);
            self.check_files(secrets, path, config, problems);
            self.check_k8sattributes(path, config, problems);
        }
        self.check_probes(problems);
        self.check_queue(problems);
        self.check_memory_limit(problems);
        Ok(())
    }

    /// Every `${env:NAME}` of the file at `path` is set, and not empty.
    fn check_variables(&self, path: &str, config: &Value, problems: &mut Problems) {
        let at = &self.at;
        for var in collector_env_refs(config) {
            match env_get(&self.env, &var) {
                None => problems.push(format!(
                    "{at}: {path} reads ${{env:{var}}}, which the container does not set; add env {var}"
                )),
                Some(EnvValue::Literal(v)) if v.is_empty() => problems.push(format!(
                    "{at}: env {var} is empty but {path} needs it"
                )),
                Some(EnvValue::ConfigMap { value: Some(v), name, key }) if v.is_empty() => {
                    problems.push(format!(
                        "{at}: env {var} (ConfigMap {name}, key {key}) is empty but {path} needs it"
                    ))
                }
                _ => {}
            }
        }
    }

    /// Every `*_file` the file at `path` reads is mounted (a Secret's key
    /// listed in the README), and every `directory` it writes is a mount.
    fn check_files(
        &self,
        secrets: &[ExternalSecret],
        path: &str,
        config: &Value,
        problems: &mut Problems,
    ) {
        let at = &self.at;
        let mut all = Vec::new();
        string_values(config, "", &mut all);
        for (key, value) in all {
            let is_file_setting = key.ends_with("_file") || key == "directory";
            if !is_file_setting || !value.starts_with('/') {
                continue;
            }
            match mounted_file(self.m, self.w, self.c, value) {
                Err(_) if key == "directory" => {
                    let mounted = array_at(self.c, "/volumeMounts").iter().any(|vm| {
                        str_at(vm, "/mountPath").map(|p| p.trim_end_matches('/'))
                            == Some(value.trim_end_matches('/'))
                    });
                    if !mounted {
                        problems.push(format!(
                            "{at}: {path} stores data in {value}, which is no volume mount; mount a writable emptyDir there (the root filesystem is read-only)"
                        ));
                    }
                }
                Err(e) => problems.push(format!(
                    "{at}: {path} {key}: {e}; mount the Secret that holds it"
                )),
                Ok(file) => {
                    if let Some(p) = secret_file_problem(secrets, self.m, &self.w.namespace, &file)
                    {
                        problems.push(format!("{at}: {path} {key} {value}: {p}"));
                    }
                }
            }
        }
    }

    /// Each `k8sattributes` processor of the file at `path` has its RBAC,
    /// the ServiceAccount token, and its node name from the downward API.
    fn check_k8sattributes(&self, path: &str, config: &Value, problems: &mut Problems) {
        let at = &self.at;
        let w = self.w;
        for (name, processor) in map_keys_with_prefix(config, "/processors", "k8sattributes") {
            let sa = str_at(w.pod, "/serviceAccountName").unwrap_or("default");
            for (group, resource) in K8SATTRIBUTES_PERMISSIONS {
                for verb in ["get", "list", "watch"] {
                    if !service_account_can(self.m, &w.namespace, sa, group, resource, verb) {
                        problems.push(format!(
                            "{at}: {path} uses {name}, but ServiceAccount {}/{sa} may not {verb} {resource} (apiGroup {group:?}); grant it in the ClusterRole bound to it",
                            w.namespace
                        ));
                    }
                }
            }
            if w.pod
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
                == Some(false)
            {
                problems.push(format!(
                    "{at}: {path} uses {name}, which needs the ServiceAccount token; remove automountServiceAccountToken: false"
                ));
            }
            if let Some(var) = str_at(processor, "/filter/node_from_env_var")
                && env_get(&self.env, var) != Some(&EnvValue::Field("spec.nodeName".into()))
            {
                problems.push(format!(
                    "{at}: {name} filters pods by ${var}; set env {var} from fieldRef spec.nodeName"
                ));
            }
        }
    }

    /// Liveness and readiness hit health_check's port.
    fn check_probes(&self, problems: &mut Problems) {
        let at = &self.at;
        for probe in ["livenessProbe", "readinessProbe"] {
            let port = self.c.pointer(&format!("/{probe}/httpGet/port"));
            match port.and_then(|p| self.w.port_of(p)) {
                Some(COLLECTOR_HEALTH_PORT) => {}
                Some(other) => problems.push(format!(
                    "{at}: {probe} hits port {other}; use health_check's {COLLECTOR_HEALTH_PORT}"
                )),
                None => problems.push(format!(
                    "{at}: {probe} must be an httpGet on a declared containerPort {COLLECTOR_HEALTH_PORT} (health_check)"
                )),
            }
        }
    }

    /// The sending queues live on a writable emptyDir with a sizeLimit.
    fn check_queue(&self, problems: &mut Problems) {
        let at = &self.at;
        let queue_mount = array_at(self.c, "/volumeMounts")
            .iter()
            .find(|vm| str_at(vm, "/mountPath") == Some(COLLECTOR_QUEUE_DIR));
        match queue_mount {
            None => problems.push(format!(
                "{at}: mount a writable volume at {COLLECTOR_QUEUE_DIR} (persistent sending queues; the root filesystem is read-only)"
            )),
            Some(vm) => {
                if vm.get("readOnly").and_then(Value::as_bool) == Some(true) {
                    problems.push(format!("{at}: the queue mount {COLLECTOR_QUEUE_DIR} is readOnly"));
                }
                let volume = str_at(vm, "/name").and_then(|n| self.w.volume(n));
                if volume.and_then(|v| v.pointer("/emptyDir/sizeLimit")).is_none() {
                    problems.push(format!(
                        "{at}: the queue volume must be an emptyDir with a sizeLimit (a full disk must evict this pod, not the node's others)"
                    ));
                }
            }
        }
    }

    /// GOMEMLIMIT is about 80 % of the memory limit, where memory_limiter
    /// starts refusing data (the Go runtime then collects before the kill).
    fn check_memory_limit(&self, problems: &mut Problems) {
        let at = &self.at;
        let limit = str_at(self.c, "/resources/limits/memory").and_then(parse_quantity);
        let gomemlimit = env_get(&self.env, "GOMEMLIMIT")
            .and_then(EnvValue::known)
            .and_then(parse_quantity);
        match (gomemlimit, limit) {
            (Some(g), Some(l)) if (0.7..=0.9).contains(&(g / l)) => {}
            (Some(g), Some(l)) => problems.push(format!(
                "{at}: GOMEMLIMIT is {:.0} % of the memory limit; keep it at about 80 % (memory_limiter refuses data at 80 %)",
                100.0 * g / l
            )),
            _ => problems.push(format!(
                "{at}: set resources.limits.memory and GOMEMLIMIT (about 80 % of it)"
            )),
        }
    }
}

/// A Kubernetes quantity (`512Mi`, `1G`, `1000MiB` as GOMEMLIMIT writes it)
/// in bytes.
fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (number, unit) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match unit {
        "" | "B" => 1.0,
        "k" | "K" | "KB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "T" | "TB" => 1e12,
        "Ki" | "KiB" => 1024.0,
        "Mi" | "MiB" => 1024.0 * 1024.0,
        "Gi" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "Ti" | "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * factor)
}
