//! The engine Deployments: each of the eight engines runs once, on the
//! tagged fleet image, probed on its business port, with a metrics port,
//! the downward-API variables the telemetry crate turns into `k8s.*`
//! attributes, writable storage, and URLs that reach its peers and the
//! node-local agent. Each is an engine that starts but cannot be reached,
//! observed or told apart.

use deltran_fleet::catalogue::EngineKind;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::env::{EnvValue, container_env, env_get};
use super::error::Problems;
use super::json::{array_at, object_id, str_at};
use super::mounts::{MountedFile, mounted_file};
use super::services::{check_url_reaches, url_service};
use super::workload::{Workload, container_name};
use super::{K8sError, Manifest};

/// The fleet image as the base names it; overlays give it a tag.
pub const ENGINE_IMAGE: &str = "ghcr.io/example/deltran";

/// The engines and their business ports, from the fleet's own catalogue.
pub fn engines() -> impl Iterator<Item = (&'static str, u16)> {
    EngineKind::ALL
        .into_iter()
        .map(|kind| (kind.name(), kind.default_port()))
}

/// The pull metrics port of an engine is its business port plus this.
pub use deltran_fleet::catalogue::METRICS_PORT_OFFSET;

/// The engine kind a container runs (`args: [engine, <kind>]`).
pub(super) fn engine_kind(c: &Value) -> Option<&str> {
    let args: Vec<&str> = array_at(c, "/args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match args.as_slice() {
        ["engine", kind, ..] => Some(kind),
        _ => None,
    }
}

/// The business port of engine `kind`.
pub(super) fn engine_port(kind: &str) -> Option<u16> {
    EngineKind::from_name(kind).map(EngineKind::default_port)
}

/// Whether a container of `w` runs engine `kind`.
pub(super) fn runs_engine(w: &Workload<'_>, kind: &str) -> bool {
    array_at(w.pod, "/containers")
        .iter()
        .any(|c| engine_kind(c) == Some(kind))
}

/// The engine (kind and business port) whose URL variable is `name`
/// (`DELTRAN_RISK_ENGINE_URL`).
pub(super) fn peer_of(name: &str) -> Option<(&'static str, u16)> {
    EngineKind::ALL
        .into_iter()
        .find(|kind| kind.url_variable() == name)
        .map(|kind| (kind.name(), kind.default_port()))
}

/// The eight engines, each once: `args: [engine, <kind>]` on an image with a
/// tag; liveness `/health` and readiness `/ready` on a declared port that is
/// DELTRAN_PORT; a port named `metrics` that is OTEL_EXPORTER_PROMETHEUS_PORT
/// = business port + 1400; the downward-API variables the telemetry crate
/// turns into `k8s.*` attributes (and the literal container and Deployment
/// names matching the objects); DELTRAN_DATA_DIR on an emptyDir; one metric
/// path; every DELTRAN_*_URL reaching the peer's Service and pods; the OTLP
/// endpoint at a node-local (`internalTrafficPolicy: Local`) collector
/// Service.
pub fn check_engines(m: &Manifest) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for w in m.workloads().into_iter().filter(Workload::is_engine) {
        let containers: Vec<&Value> = array_at(w.pod, "/containers").iter().collect();
        let [c] = containers.as_slice() else {
            problems.push(format!(
                "{}: an engine pod runs exactly one container",
                w.id()
            ));
            continue;
        };
        let at = w.container_id(c);
        let Some(kind) = engine_kind(c) else {
            problems.push(format!("{at}: args must be [engine, <kind>]"));
            continue;
        };
        let Some(port) = engine_port(kind) else {
            problems.push(format!("{at}: unknown engine kind {kind}"));
            continue;
        };
        if let Some(other) = seen.insert(kind.to_string(), w.id()) {
            problems.push(format!("{at}: engine {kind} also runs in {other}"));
        }
        let engine = EngineContainer {
            m,
            w: &w,
            c,
            at,
            kind,
            port,
            env: container_env(m, &w.namespace, c),
        };
        engine.check(&mut problems);
    }
    for (kind, _) in engines() {
        if !seen.contains_key(kind) {
            problems.push(format!("no Deployment runs engine {kind}"));
        }
    }
    problems.finish("engines")
}

/// One engine container and what its checks keep looking up.
struct EngineContainer<'a> {
    m: &'a Manifest,
    w: &'a Workload<'a>,
    c: &'a Value,
    /// How problems name the container.
    at: String,
    /// The engine it runs.
    kind: &'a str,
    /// That engine's business port.
    port: u16,
    /// Its environment.
    env: Vec<(String, EnvValue)>,
}

impl EngineContainer<'_> {
    /// The value of variable `name`, where known before the pod runs.
    fn known(&self, name: &str) -> Option<&str> {
        env_get(&self.env, name).and_then(EnvValue::known)
    }

    /// Every check below, in the order problems are reported.
    fn check(&self, problems: &mut Problems) {
        self.check_image(problems);
        self.check_ports(problems);
        self.check_attributes(problems);
        self.check_data_dir(problems);
        self.check_metrics_exporter(problems);
        self.check_peers(problems);
        self.check_telemetry_endpoint(problems);
    }

    /// The fleet image with a tag other than `latest`.
    fn check_image(&self, problems: &mut Problems) {
        let at = &self.at;
        let image = str_at(self.c, "/image").unwrap_or_default();
        match image.strip_prefix(ENGINE_IMAGE).and_then(|r| r.strip_prefix(':')) {
            Some(tag) if !tag.is_empty() && tag != "latest" => {}
            _ => problems.push(format!(
                "{at}: image {image} must be {ENGINE_IMAGE}:<tag> (set newTag under images: in the overlay; never latest)"
            )),
        }
    }

    /// DELTRAN_PORT is the engine's port, the probes hit it, the metrics
    /// port is declared and served, and both listen on every interface.
    fn check_ports(&self, problems: &mut Problems) {
        let (at, kind, port) = (&self.at, self.kind, self.port);
        let ports = self.w.ports();
        let declared = |p: &Value| {
            self.w
                .port_of(p)
                .filter(|n| ports.iter().any(|(_, d)| d == n))
        };
        let business: Option<u16> = self.known("DELTRAN_PORT").and_then(|p| p.parse().ok());
        if business != Some(port) {
            problems.push(format!(
                "{at}: DELTRAN_PORT must be {port}, {kind}'s port (the Services and peers use it)"
            ));
        }
        for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
            let get = self.c.pointer(&format!("/{probe}/httpGet"));
            if get.and_then(|g| str_at(g, "/path")) != Some(path) {
                problems.push(format!("{at}: {probe} must be httpGet {path}"));
            }
            match get.and_then(|g| g.get("port")).and_then(declared) {
                Some(p) if Some(p) == business => {}
                Some(p) => problems.push(format!(
                    "{at}: {probe} hits port {p}, not the business port DELTRAN_PORT serves {path} on"
                )),
                None => problems.push(format!(
                    "{at}: {probe} port is not a declared containerPort; name the business port and probe it"
                )),
            }
        }
        let metrics = ports
            .iter()
            .find(|(n, _)| n.as_deref() == Some("metrics"))
            .map(|(_, p)| *p);
        let prom_port: Option<u16> = self
            .known("OTEL_EXPORTER_PROMETHEUS_PORT")
            .and_then(|p| p.parse().ok());
        if metrics != Some(port + METRICS_PORT_OFFSET) || prom_port != metrics {
            problems.push(format!(
                "{at}: declare containerPort {} named metrics and set OTEL_EXPORTER_PROMETHEUS_PORT to it (business port + {METRICS_PORT_OFFSET})",
                port + METRICS_PORT_OFFSET
            ));
        }
        for host_var in ["DELTRAN_HOST", "OTEL_EXPORTER_PROMETHEUS_HOST"] {
            if self.known(host_var) != Some("0.0.0.0") {
                problems.push(format!(
                    "{at}: set {host_var}=0.0.0.0 (the engines default to loopback, unreachable from the kubelet and Prometheus)"
                ));
            }
        }
    }

    /// The variables the telemetry crate turns into `k8s.*` attributes:
    /// downward API for the pod, literal names matching the objects.
    fn check_attributes(&self, problems: &mut Problems) {
        let at = &self.at;
        // Every variable the telemetry crate reads, by its first
        // (`K8S_*`) name, and where its value must come from.
        for (names, attribute) in telemetry::KUBERNETES_VARIABLES {
            let var = names[0];
            match var {
                "K8S_POD_NAME" | "K8S_POD_UID" | "K8S_NAMESPACE_NAME" | "K8S_NODE_NAME" => {
                    let field = match var {
                        "K8S_POD_NAME" => "metadata.name",
                        "K8S_POD_UID" => "metadata.uid",
                        "K8S_NAMESPACE_NAME" => "metadata.namespace",
                        _ => "spec.nodeName",
                    };
                    if env_get(&self.env, var) != Some(&EnvValue::Field(field.to_string())) {
                        problems.push(format!(
                            "{at}: set {var} from fieldRef {field} (downward API)"
                        ));
                    }
                }
                "K8S_CONTAINER_NAME" | "K8S_DEPLOYMENT_NAME" => {
                    let want = if var == "K8S_CONTAINER_NAME" {
                        container_name(self.c)
                    } else {
                        self.w.name.as_str()
                    };
                    if self.known(var) != Some(want) {
                        problems.push(format!("{at}: set {var}={want} (the object's own name)"));
                    }
                }
                // Checked below: any non-empty name.
                "K8S_CLUSTER_NAME" => {}
                _ => problems.push(format!(
                    "the telemetry crate reads {var} for {attribute}, which this check does not know how to set; add it here"
                )),
            }
        }
        if self.known("K8S_CLUSTER_NAME").is_none_or(str::is_empty) {
            problems.push(format!(
                "{at}: K8S_CLUSTER_NAME has no value; set it in the overlay's deltran-env"
            ));
        }
    }

    /// DELTRAN_DATA_DIR is on an emptyDir (the root filesystem is read-only).
    fn check_data_dir(&self, problems: &mut Problems) {
        let at = &self.at;
        match self.known("DELTRAN_DATA_DIR") {
            None => problems.push(format!("{at}: set DELTRAN_DATA_DIR to a mounted emptyDir")),
            Some(dir) => {
                let probe_file = format!("{}/x", dir.trim_end_matches('/'));
                if mounted_file(self.m, self.w, self.c, &probe_file) != Ok(MountedFile::EmptyDir) {
                    problems.push(format!(
                        "{at}: DELTRAN_DATA_DIR={dir} is not an emptyDir mount (the root filesystem is read-only)"
                    ));
                }
            }
        }
    }

    /// One metric path: pushed over OTLP or scraped, never both.
    fn check_metrics_exporter(&self, problems: &mut Problems) {
        let at = &self.at;
        match self.known("OTEL_METRICS_EXPORTER") {
            Some(v) => {
                let items: BTreeSet<&str> = v.split(',').map(str::trim).collect();
                if items.contains("otlp") && items.contains("prometheus") {
                    problems.push(format!(
                        "{at}: OTEL_METRICS_EXPORTER={v} sends every series twice into one Prometheus; choose otlp or prometheus"
                    ));
                }
            }
            None => problems.push(format!(
                "{at}: OTEL_METRICS_EXPORTER has no known value (otlp or prometheus)"
            )),
        }
    }

    /// Every DELTRAN_<PEER>_URL reaches the peer's Service and pods.
    fn check_peers(&self, problems: &mut Problems) {
        let at = &self.at;
        for (name, value) in &self.env {
            let Some((peer, _)) = peer_of(name) else {
                continue;
            };
            let Some(url) = value.known() else {
                problems.push(format!("{at}: {name} has no known value"));
                continue;
            };
            if let Err(e) = check_url_reaches(self.m, &self.w.namespace, url, |t| {
                t.is_engine() && runs_engine(t, peer)
            }) {
                problems.push(format!("{at}: {name}={url}: {e}"));
            }
        }
    }

    /// OTEL_EXPORTER_OTLP_ENDPOINT reaches the agent on the engine's node.
    fn check_telemetry_endpoint(&self, problems: &mut Problems) {
        let at = &self.at;
        let Some(url) = self.known("OTEL_EXPORTER_OTLP_ENDPOINT") else {
            problems.push(format!(
                "{at}: OTEL_EXPORTER_OTLP_ENDPOINT has no known value"
            ));
            return;
        };
        let namespace = &self.w.namespace;
        if let Err(e) = check_url_reaches(self.m, namespace, url, |t| {
            t.kind == "DaemonSet" && t.is_collector()
        }) {
            problems.push(format!(
                "{at}: OTEL_EXPORTER_OTLP_ENDPOINT={url}: {e} (engines send to the agent on their node)"
            ));
        } else if let Some((svc, _)) = url_service(self.m, namespace, url)
            && str_at(svc, "/spec/internalTrafficPolicy") != Some("Local")
        {
            problems.push(format!(
                "{}: set internalTrafficPolicy: Local, so {} reaches the agent on its own node",
                object_id(svc),
                self.w.id()
            ));
        }
    }
}
