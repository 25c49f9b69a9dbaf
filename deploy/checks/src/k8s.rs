//! The Kubernetes manifests of `deploy/k8s`, checked offline.
//!
//! No cluster runs where these checks run, so each overlay is rendered the
//! way `kubectl apply -k` renders it (`kubectl kustomize`), validated against
//! the API schemas of one Kubernetes version (`kubernetes-validate --strict`,
//! which rejects unknown fields the API server would silently drop), and then
//! checked for what no schema knows: that the collector files in the
//! ConfigMaps are the files in `otel-collector/`, that every reference
//! (ConfigMap, key, Secret, ServiceAccount, `${env:…}`, `$(VAR)`) resolves,
//! that the NetworkPolicies let exactly the intended traffic through, that
//! probes hit declared ports, and that prod sends nothing in clear text.
//!
//! Every problem names the object and what to change, because whoever reads
//! it has a YAML file open, not this code.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

/// The overlays under `deploy/k8s/overlays`.
pub const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "prod"];

/// The Kubernetes version the manifests are validated against: the oldest
/// release they are meant for (every API and field they use is GA there).
pub const KUBERNETES_VERSION: &str = "1.30.0";

/// The collector image every collector container must run (the pinned
/// otelcol-contrib release the configs are written for).
pub const COLLECTOR_IMAGE: &str = "otel/opentelemetry-collector-contrib:0.136.0";

/// The fleet image as the base names it; overlays give it a tag.
pub const ENGINE_IMAGE: &str = "ghcr.io/example/deltran";

/// The engines and their business ports (`fleet/src/engines/mod.rs`).
pub const ENGINES: [(&str, u16); 8] = [
    ("gateway", 8080),
    ("token-engine", 8081),
    ("obligation-engine", 8082),
    ("liquidity-router", 8083),
    ("risk-engine", 8084),
    ("clearing-engine", 8085),
    ("compliance-engine", 8086),
    ("settlement-engine", 8088),
];

/// The pull metrics port of an engine is its business port plus this.
pub const METRICS_PORT_OFFSET: u16 = 1400;

/// Where Prometheus runs, as the NetworkPolicies and the README state it.
pub const PROMETHEUS_NAMESPACE: &str = "monitoring";
/// The label that marks Prometheus pods.
pub const PROMETHEUS_LABEL: (&str, &str) = ("app.kubernetes.io/name", "prometheus");

/// Where the persistent sending queues live inside collector containers.
pub const COLLECTOR_QUEUE_DIR: &str = "/var/lib/otelcol/queue";

/// The collector's health_check port (base.yaml).
pub const COLLECTOR_HEALTH_PORT: u16 = 13133;
/// The collector's own metrics port (base.yaml).
pub const COLLECTOR_METRICS_PORT: u16 = 8888;
/// OTLP/gRPC and OTLP/HTTP.
pub const OTLP_PORTS: [u16; 2] = [4317, 4318];

/// What can go wrong rendering, validating or checking the manifests.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// A tool could not be started at all.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// A tool ran and failed (kustomize refused the overlay, a document did
    /// not validate).
    #[error("`{command}` failed ({status}):\n{output}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (stdout, then stderr).
        output: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Rendered output or a collector file is not the YAML it should be.
    #[error("{what} is not valid YAML: {source}")]
    Yaml {
        /// Which document.
        what: String,
        /// The parser's complaint.
        source: serde_yaml_ng::Error,
    },
    /// A document could not be turned into JSON-like data (non-string keys).
    #[error("{what} cannot be read as a Kubernetes object: {source}")]
    Shape {
        /// Which document.
        what: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The README's list of Secrets to create is missing or malformed.
    #[error("{0}")]
    Readme(String),
    /// A check found problems; each line names the object and the fix.
    #[error("{check}: {} problem(s)\n  - {}", problems.len(), problems.join("\n  - "))]
    Problems {
        /// Which check.
        check: String,
        /// One line per problem.
        problems: Vec<String>,
    },
}

impl K8sError {
    /// The problem lines of a failed check (empty for other errors), so a
    /// test can assert what was found without parsing the message.
    pub fn problems(&self) -> &[String] {
        match self {
            K8sError::Problems { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// `deploy/k8s` under the repository root.
pub fn k8s_dir(repo_root: &Path) -> PathBuf {
    repo_root.join("deploy").join("k8s")
}

/// `deploy/k8s/overlays/<environment>`.
pub fn overlay_dir(repo_root: &Path, environment: &str) -> PathBuf {
    k8s_dir(repo_root).join("overlays").join(environment)
}

fn describe(program: &Path, args: &[&str]) -> String {
    let mut line = program.display().to_string();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line
}

fn run(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<String, K8sError> {
    let command = describe(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| K8sError::Spawn {
            command: command.clone(),
            source,
        })?;
    // Feed stdin from another thread: a tool that writes before it has read
    // everything would otherwise deadlock on a full pipe.
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&data)))
        }
        _ => None,
    };
    let output = child.wait_with_output().map_err(|source| K8sError::Spawn {
        command: command.clone(),
        source,
    })?;
    if let Some(w) = writer {
        // A tool that stops reading early reports why on its own output.
        let _ = w.join();
    }
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(K8sError::Failed {
            command,
            status: output.status.to_string(),
            output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        })
    }
}

/// Renders an overlay exactly as `kubectl apply -k` would
/// (`kubectl kustomize <dir>`), so what is checked is what a cluster gets.
pub fn render(kubectl: &Path, overlay: &Path) -> Result<String, K8sError> {
    let dir = overlay.display().to_string();
    run(kubectl, &["kustomize", &dir], None)
}

/// Validates multi-document YAML against the API schemas of `version` with
/// `kubernetes-validate --strict`: unknown fields fail, as they would be
/// silently dropped by an API server (a misspelt `readOnlyRootFilesystem`
/// is a writable root filesystem nobody notices).
pub fn validate_schema(tool: &Path, yaml: &str, version: &str) -> Result<(), K8sError> {
    run(
        tool,
        &["--strict", "--quiet", "-k", version, "-"],
        Some(yaml.as_bytes()),
    )
    .map(|_| ())
}

/// The objects of one rendered overlay.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Every document, in order.
    pub objects: Vec<Value>,
}

fn s<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn labels_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `kind/namespace/name` of an object, as problems name it.
pub fn object_id(v: &Value) -> String {
    let kind = s(v, "/kind").unwrap_or("?");
    let name = s(v, "/metadata/name").unwrap_or("?");
    match s(v, "/metadata/namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

impl Manifest {
    /// Parses `kubectl kustomize` output (documents separated by `---`).
    pub fn parse(yaml: &str) -> Result<Manifest, K8sError> {
        let mut objects = Vec::new();
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
            let what = format!("rendered document {}", index + 1);
            let value =
                serde_yaml_ng::Value::deserialize(doc).map_err(|source| K8sError::Yaml {
                    what: what.clone(),
                    source,
                })?;
            if value.is_null() {
                continue;
            }
            let json =
                serde_json::to_value(value).map_err(|source| K8sError::Shape { what, source })?;
            objects.push(json);
        }
        Ok(Manifest { objects })
    }

    /// Back to multi-document YAML (to validate a mutated copy).
    pub fn to_yaml(&self) -> Result<String, K8sError> {
        let mut out = String::new();
        for (i, o) in self.objects.iter().enumerate() {
            let text = serde_yaml_ng::to_string(o).map_err(|source| K8sError::Yaml {
                what: format!("document {}", i + 1),
                source,
            })?;
            out.push_str("---\n");
            out.push_str(&text);
        }
        Ok(out)
    }

    /// Objects of one kind.
    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> {
        self.objects
            .iter()
            .filter(move |o| s(o, "/kind") == Some(kind))
    }

    /// One object by kind, namespace (`None` for cluster-scoped) and name.
    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&Value> {
        self.of_kind(kind).find(|o| {
            s(o, "/metadata/name") == Some(name) && s(o, "/metadata/namespace") == namespace
        })
    }

    /// The first object of `kind` whose name is `name`, for a test to mutate.
    pub fn find_mut(&mut self, kind: &str, name: &str) -> Option<&mut Value> {
        self.objects
            .iter_mut()
            .find(|o| s(o, "/kind") == Some(kind) && s(o, "/metadata/name") == Some(name))
    }

    /// The first ConfigMap whose name, without kustomize's hash suffix, is
    /// `base_name`.
    pub fn config_map_generated(&self, base_name: &str) -> Option<&Value> {
        self.of_kind("ConfigMap")
            .find(|o| s(o, "/metadata/name").is_some_and(|n| strip_hash(n) == base_name))
    }

    /// Every Deployment, DaemonSet and StatefulSet with its pod template.
    pub fn workloads(&self) -> Vec<Workload<'_>> {
        self.objects
            .iter()
            .filter(|o| {
                matches!(
                    s(o, "/kind"),
                    Some("Deployment" | "DaemonSet" | "StatefulSet")
                )
            })
            .filter_map(|o| {
                let pod = o.pointer("/spec/template/spec")?;
                Some(Workload {
                    kind: s(o, "/kind").unwrap_or_default().to_string(),
                    name: s(o, "/metadata/name").unwrap_or_default().to_string(),
                    namespace: s(o, "/metadata/namespace").unwrap_or("default").to_string(),
                    object: o,
                    pod,
                    pod_labels: labels_of(o.pointer("/spec/template/metadata/labels")),
                })
            })
            .collect()
    }

    /// Labels of a namespace as NetworkPolicy namespaceSelectors see them:
    /// the rendered Namespace's labels plus `kubernetes.io/metadata.name`,
    /// which the API server sets on every namespace.
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .get("Namespace", None, namespace)
            .map(|n| labels_of(n.pointer("/metadata/labels")))
            .unwrap_or_default();
        labels.insert(
            "kubernetes.io/metadata.name".to_string(),
            namespace.to_string(),
        );
        labels
    }

    fn config_map_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<&serde_json::Map<String, Value>> {
        self.get("ConfigMap", Some(namespace), name)
            .and_then(|c| c.pointer("/data"))
            .and_then(Value::as_object)
    }
}

/// kustomize appends `-<10 chars>` to generated names; the checks compare
/// names without it so a content change never breaks them.
fn strip_hash(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, hash))
            if hash.len() == 10 && hash.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            base
        }
        _ => name,
    }
}

/// A Deployment, DaemonSet or StatefulSet and its pod template.
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    /// `Deployment`, `DaemonSet`, ...
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The whole object.
    pub object: &'a Value,
    /// `spec.template.spec`.
    pub pod: &'a Value,
    /// `spec.template.metadata.labels`.
    pub pod_labels: BTreeMap<String, String>,
}

impl Workload<'_> {
    /// `Kind namespace/name`.
    pub fn id(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// Containers and init containers.
    pub fn containers(&self) -> impl Iterator<Item = &Value> {
        arr(self.pod, "/initContainers")
            .iter()
            .chain(arr(self.pod, "/containers"))
    }

    /// True for an engine (label `app.kubernetes.io/component=engine`).
    pub fn is_engine(&self) -> bool {
        self.pod_labels
            .get("app.kubernetes.io/component")
            .map(String::as_str)
            == Some("engine")
    }

    /// True when a container runs the OpenTelemetry Collector image.
    pub fn is_collector(&self) -> bool {
        self.containers().any(is_collector_container)
    }

    fn volume(&self, name: &str) -> Option<&Value> {
        arr(self.pod, "/volumes")
            .iter()
            .find(|v| s(v, "/name") == Some(name))
    }

    /// Replicas as the Deployment states them (1 when absent, as the API
    /// defaults it; `None` for a DaemonSet).
    pub fn replicas(&self) -> Option<u64> {
        match self.kind.as_str() {
            "DaemonSet" => None,
            _ => Some(
                self.object
                    .pointer("/spec/replicas")
                    .and_then(Value::as_u64)
                    .unwrap_or(1),
            ),
        }
    }

    /// Container ports (name → number) of every container in the pod.
    pub fn ports(&self) -> Vec<(Option<String>, u16)> {
        self.containers()
            .flat_map(|c| arr(c, "/ports"))
            .filter_map(|p| {
                let number = p.pointer("/containerPort")?.as_u64()?;
                Some((
                    s(p, "/name").map(str::to_string),
                    u16::try_from(number).ok()?,
                ))
            })
            .collect()
    }
}

fn is_collector_container(c: &Value) -> bool {
    s(c, "/image").is_some_and(|i| i.starts_with("otel/opentelemetry-collector"))
}

fn container_name(c: &Value) -> &str {
    s(c, "/name").unwrap_or("?")
}

/// Collects problem lines and turns them into a result.
#[derive(Debug, Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, p: impl Into<String>) {
        self.0.push(p.into());
    }

    fn finish(self, check: &str) -> Result<(), K8sError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(K8sError::Problems {
                check: check.to_string(),
                problems: self.0,
            })
        }
    }
}

// ---------------------------------------------------------------------------
// Environment variables as a container sees them.

/// Where one environment variable of a container comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// `value:` (after `$(VAR)` expansion is not applied: as written).
    Literal(String),
    /// `configMapKeyRef`, with the value when the ConfigMap and key render.
    ConfigMap {
        /// ConfigMap name.
        name: String,
        /// Key.
        key: String,
        /// The value, if the ConfigMap and key exist in the rendered output.
        value: Option<String>,
    },
    /// `secretKeyRef` (never rendered: Secrets are created by the operator).
    Secret {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// `fieldRef` (downward API).
    Field(String),
    /// `resourceFieldRef`.
    Resource(String),
}

impl EnvValue {
    /// The value when it is known before the pod runs.
    pub fn known(&self) -> Option<&str> {
        match self {
            EnvValue::Literal(v) => Some(v),
            EnvValue::ConfigMap { value, .. } => value.as_deref(),
            _ => None,
        }
    }
}

/// A container's environment in declaration order, `envFrom` ConfigMaps
/// first (as the kubelet applies them; `env` wins on a clash).
pub fn container_env(m: &Manifest, namespace: &str, container: &Value) -> Vec<(String, EnvValue)> {
    let mut out = Vec::new();
    for from in arr(container, "/envFrom") {
        if let Some(name) = s(from, "/configMapRef/name") {
            let prefix = s(from, "/prefix").unwrap_or("");
            if let Some(data) = m.config_map_data(namespace, name) {
                for (k, v) in data {
                    out.push((
                        format!("{prefix}{k}"),
                        EnvValue::ConfigMap {
                            name: name.to_string(),
                            key: k.clone(),
                            value: v.as_str().map(str::to_string),
                        },
                    ));
                }
            }
        }
    }
    for e in arr(container, "/env") {
        let Some(name) = s(e, "/name") else { continue };
        let value = if let Some(v) = e.get("value") {
            EnvValue::Literal(v.as_str().unwrap_or_default().to_string())
        } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
            let cm = s(r, "/name").unwrap_or_default().to_string();
            let key = s(r, "/key").unwrap_or_default().to_string();
            let value = m
                .config_map_data(namespace, &cm)
                .and_then(|d| d.get(&key))
                .and_then(Value::as_str)
                .map(str::to_string);
            EnvValue::ConfigMap {
                name: cm,
                key,
                value,
            }
        } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
            EnvValue::Secret {
                name: s(r, "/name").unwrap_or_default().to_string(),
                key: s(r, "/key").unwrap_or_default().to_string(),
            }
        } else if let Some(p) = s(e, "/valueFrom/fieldRef/fieldPath") {
            EnvValue::Field(p.to_string())
        } else if let Some(r) = s(e, "/valueFrom/resourceFieldRef/resource") {
            EnvValue::Resource(r.to_string())
        } else {
            EnvValue::Literal(String::new())
        };
        out.push((name.to_string(), value));
    }
    out
}

fn env_get<'a>(env: &'a [(String, EnvValue)], name: &str) -> Option<&'a EnvValue> {
    env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
}

// ---------------------------------------------------------------------------
// Secrets the README lists as created by the operator.

/// A Secret the manifests reference but the repository never contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalSecret {
    /// Its name.
    pub name: String,
    /// The namespaces it must exist in.
    pub namespaces: Vec<String>,
    /// The keys it must hold.
    pub keys: Vec<String>,
}

/// Reads the table under the README heading that starts with
/// `## Secrets`: first column the name, second the namespaces, third the
/// keys (backticks and commas as written for humans). A Secret referenced
/// but missing there is one an operator will not know to create.
pub fn external_secrets(readme: &str) -> Result<Vec<ExternalSecret>, K8sError> {
    let mut in_section = false;
    let mut out = Vec::new();
    let cells = |cell: &str| -> Vec<String> {
        cell.split(',')
            .map(|c| c.trim().trim_matches('`').trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    for line in readme.lines() {
        if line.starts_with("## ") {
            in_section = line.starts_with("## Secrets");
            continue;
        }
        if !in_section || !line.trim_start().starts_with('|') {
            continue;
        }
        let columns: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if columns.len() < 3 {
            continue;
        }
        let name = columns[0].trim().trim_matches('`').trim();
        // The header row and the |---| separator.
        if name.is_empty() || name.starts_with('-') || name.eq_ignore_ascii_case("secret") {
            continue;
        }
        out.push(ExternalSecret {
            name: name.to_string(),
            namespaces: cells(columns[1]),
            keys: cells(columns[2]),
        });
    }
    if out.is_empty() {
        return Err(K8sError::Readme(
            "deploy/k8s/README.md has no table under a `## Secrets` heading (columns: Secret, namespaces, keys): operators would not know which Secrets to create".into(),
        ));
    }
    Ok(out)
}

fn external_secret<'a>(
    secrets: &'a [ExternalSecret],
    namespace: &str,
    name: &str,
) -> Option<&'a ExternalSecret> {
    secrets
        .iter()
        .find(|s| s.name == name && s.namespaces.iter().any(|n| n == namespace))
}

// ---------------------------------------------------------------------------
// (c) The collector files inside the ConfigMaps.

/// The ConfigMap `otel-collector-base` holds `otel-collector/base.yaml` and
/// `otel-collector-env` holds every `*.yaml` of `otel-collector/<env>/`,
/// byte for byte, and nothing else: the files the collector lint checked
/// are the files the cluster runs, and a file added to the directory but not
/// to its generator is caught.
pub fn check_collector_files(
    m: &Manifest,
    repo_root: &Path,
    environment: &str,
) -> Result<(), K8sError> {
    let dir = repo_root.join("otel-collector");
    let mut problems = Problems::default();
    for (cm_name, source_dir) in [
        ("otel-collector-base", dir.clone()),
        ("otel-collector-env", dir.join(environment)),
    ] {
        let Some(cm) = m.config_map_generated(cm_name) else {
            problems.push(format!(
                "no ConfigMap {cm_name}-<hash> rendered: include {} (its configMapGenerator) in the overlay",
                source_dir.display()
            ));
            continue;
        };
        let data = cm
            .pointer("/data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut expected = BTreeSet::new();
        let entries = std::fs::read_dir(&source_dir).map_err(|source| K8sError::Read {
            path: source_dir.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| K8sError::Read {
                    path: source_dir.clone(),
                    source,
                })?
                .path();
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            if !path.is_file()
                || !(file.ends_with(".yaml") || file.ends_with(".yml"))
                || file == "kustomization.yaml"
                || file == "builder-config.yaml"
            {
                continue;
            }
            expected.insert(file.to_string());
            let text = std::fs::read_to_string(&path).map_err(|source| K8sError::Read {
                path: path.clone(),
                source,
            })?;
            match data.get(file).and_then(Value::as_str) {
                None => problems.push(format!(
                    "{}: no key {file}; add {file} to the configMapGenerator in {}",
                    object_id(cm),
                    source_dir.join("kustomization.yaml").display()
                )),
                Some(rendered) if rendered != text => problems.push(format!(
                    "{}: key {file} differs from {} (first difference at byte {}); generate the ConfigMap from the file, never copy it",
                    object_id(cm),
                    path.display(),
                    rendered
                        .bytes()
                        .zip(text.bytes())
                        .position(|(a, b)| a != b)
                        .unwrap_or(rendered.len().min(text.len()))
                )),
                Some(_) => {}
            }
        }
        for key in data.keys() {
            if !expected.contains(key) {
                problems.push(format!(
                    "{}: key {key} has no file in {}; remove it from the generator",
                    object_id(cm),
                    source_dir.display()
                ));
            }
        }
    }
    problems.finish(&format!("collector files in the {environment} ConfigMaps"))
}

// ---------------------------------------------------------------------------
// (d) Pod security and resources.

fn effective_bool(container: &Value, pod: &Value, field: &str) -> Option<bool> {
    container
        .pointer(&format!("/securityContext/{field}"))
        .or_else(|| pod.pointer(&format!("/securityContext/{field}")))
        .and_then(Value::as_bool)
}

/// Every container runs as non-root with a read-only root filesystem, no
/// privilege escalation, every capability dropped, the RuntimeDefault
/// seccomp profile, and CPU and memory requests and limits: what the
/// restricted Pod Security Standard enforces (and a scheduler needs), so
/// the namespaces can enforce it.
pub fn check_pod_security(m: &Manifest) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    for w in m.workloads() {
        for c in w.containers() {
            let at = format!("{} container {}", w.id(), container_name(c));
            if effective_bool(c, w.pod, "runAsNonRoot") != Some(true) {
                problems.push(format!(
                    "{at}: set securityContext.runAsNonRoot: true (pod or container)"
                ));
            }
            let uid = c
                .pointer("/securityContext/runAsUser")
                .or_else(|| w.pod.pointer("/securityContext/runAsUser"))
                .and_then(Value::as_u64);
            if uid == Some(0) {
                problems.push(format!(
                    "{at}: runAsUser is 0 (root); use the image's non-root uid"
                ));
            }
            if c.pointer("/securityContext/readOnlyRootFilesystem")
                .and_then(Value::as_bool)
                != Some(true)
            {
                problems.push(format!(
                    "{at}: set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where it writes"
                ));
            }
            if c.pointer("/securityContext/allowPrivilegeEscalation")
                .and_then(Value::as_bool)
                != Some(false)
            {
                problems.push(format!(
                    "{at}: set securityContext.allowPrivilegeEscalation: false"
                ));
            }
            let drops_all = arr(c, "/securityContext/capabilities/drop")
                .iter()
                .any(|d| d.as_str() == Some("ALL"));
            if !drops_all {
                problems.push(format!(
                    "{at}: set securityContext.capabilities.drop: [ALL]"
                ));
            }
            if !arr(c, "/securityContext/capabilities/add").is_empty() {
                problems.push(format!("{at}: remove securityContext.capabilities.add"));
            }
            let seccomp = s(c, "/securityContext/seccompProfile/type")
                .or_else(|| s(w.pod, "/securityContext/seccompProfile/type"));
            if seccomp != Some("RuntimeDefault") {
                problems.push(format!(
                    "{at}: set securityContext.seccompProfile.type: RuntimeDefault (pod or container)"
                ));
            }
            for kind in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    if c.pointer(&format!("/resources/{kind}/{resource}"))
                        .is_none()
                    {
                        problems.push(format!("{at}: set resources.{kind}.{resource}"));
                    }
                }
            }
        }
        for flag in ["hostNetwork", "hostPID", "hostIPC"] {
            if w.pod.get(flag).and_then(Value::as_bool) == Some(true) {
                problems.push(format!("{}: remove {flag}: true", w.id()));
            }
        }
        for v in arr(w.pod, "/volumes") {
            if v.get("hostPath").is_some() {
                problems.push(format!(
                    "{}: volume {} is a hostPath; use an emptyDir",
                    w.id(),
                    s(v, "/name").unwrap_or("?")
                ));
            }
        }
    }
    problems.finish("pod security and resources")
}

// ---------------------------------------------------------------------------
// (d) References: ConfigMaps, keys, Secrets, ServiceAccounts, $(VAR).

/// Every ConfigMap, ConfigMap key, Secret and ServiceAccount a workload
/// names exists — rendered, or (Secrets) listed in the README as created by
/// the operator, in that namespace and with that key — and every `$(VAR)`
/// in an env value names a variable declared earlier in the same container
/// (the kubelet leaves it unexpanded otherwise: a literal `$(TOKEN)` header).
/// A dangling reference is a pod stuck in `CreateContainerConfigError`.
pub fn check_references(m: &Manifest, secrets: &[ExternalSecret]) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    let var_ref = regex::Regex::new(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
        .map_err(|e| K8sError::Readme(format!("internal pattern: {e}")))?;
    for w in m.workloads() {
        let ns = w.namespace.as_str();
        let cm_exists = |name: &str| m.get("ConfigMap", Some(ns), name).is_some();
        let secret_key = |at: &str, name: &str, key: Option<&str>, problems: &mut Problems| {
            if m.get("Secret", Some(ns), name).is_some() {
                return;
            }
            match external_secret(secrets, ns, name) {
                None => problems.push(format!(
                    "{at}: Secret {ns}/{name} is neither rendered nor listed under `## Secrets` in deploy/k8s/README.md; list it (namespace {ns}, its keys) or fix the name"
                )),
                Some(found) => {
                    if let Some(key) = key
                        && !found.keys.iter().any(|k| k == key)
                    {
                        problems.push(format!(
                            "{at}: key {key} of Secret {ns}/{name} is not among the keys the README lists ({}); add it there or fix the key",
                            found.keys.join(", ")
                        ));
                    }
                }
            }
        };
        if let Some(sa) = s(w.pod, "/serviceAccountName")
            && sa != "default"
            && m.get("ServiceAccount", Some(ns), sa).is_none()
        {
            problems.push(format!(
                "{}: ServiceAccount {ns}/{sa} is not rendered; add it or fix serviceAccountName",
                w.id()
            ));
        }
        for v in arr(w.pod, "/volumes") {
            let vname = s(v, "/name").unwrap_or("?");
            let at = format!("{} volume {vname}", w.id());
            if let Some(cm) = s(v, "/configMap/name") {
                if !cm_exists(cm) {
                    problems.push(format!(
                        "{at}: ConfigMap {ns}/{cm} is not rendered; generate it in the overlay or fix the name"
                    ));
                } else {
                    let data = m.config_map_data(ns, cm);
                    for item in arr(v, "/configMap/items") {
                        let key = s(item, "/key").unwrap_or("?");
                        if !data.is_some_and(|d| d.contains_key(key)) {
                            problems.push(format!(
                                "{at}: ConfigMap {ns}/{cm} has no key {key}; fix items[].key"
                            ));
                        }
                    }
                }
            }
            if let Some(secret) = s(v, "/secret/secretName") {
                let items = arr(v, "/secret/items");
                if items.is_empty() {
                    secret_key(&at, secret, None, &mut problems);
                }
                for item in items {
                    secret_key(&at, secret, s(item, "/key"), &mut problems);
                }
            }
        }
        for c in w.containers() {
            let at = format!("{} container {}", w.id(), container_name(c));
            for from in arr(c, "/envFrom") {
                if let Some(cm) = s(from, "/configMapRef/name")
                    && !cm_exists(cm)
                {
                    problems.push(format!("{at}: envFrom ConfigMap {ns}/{cm} is not rendered"));
                }
                if let Some(secret) = s(from, "/secretRef/name") {
                    secret_key(&at, secret, None, &mut problems);
                }
            }
            let env = container_env(m, ns, c);
            for (i, (name, value)) in env.iter().enumerate() {
                match value {
                    EnvValue::ConfigMap {
                        name: cm,
                        key,
                        value: None,
                    } => {
                        if cm_exists(cm) {
                            problems.push(format!(
                                "{at}: env {name} reads key {key} of ConfigMap {ns}/{cm}, which has no such key; add it to the overlay's configMapGenerator"
                            ));
                        } else {
                            problems.push(format!(
                                "{at}: env {name} reads ConfigMap {ns}/{cm}, which is not rendered; generate it in the overlay"
                            ));
                        }
                    }
                    EnvValue::Secret { name: secret, key } => {
                        secret_key(
                            &format!("{at} env {name}"),
                            secret,
                            Some(key),
                            &mut problems,
                        );
                    }
                    EnvValue::Literal(text) => {
                        for cap in var_ref.captures_iter(text) {
                            let Some(var) = cap.get(1) else { continue };
                            let var = var.as_str();
                            if !env[..i].iter().any(|(n, _)| n == var) {
                                problems.push(format!(
                                    "{at}: env {name} expands $({var}), which is not declared before it; declare {var} earlier in env (Kubernetes expands only earlier variables)"
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for binding in m
        .of_kind("ClusterRoleBinding")
        .chain(m.of_kind("RoleBinding"))
    {
        let role_kind = s(binding, "/roleRef/kind").unwrap_or("?");
        let role = s(binding, "/roleRef/name").unwrap_or("?");
        let role_ns = if role_kind == "Role" {
            s(binding, "/metadata/namespace")
        } else {
            None
        };
        if m.get(role_kind, role_ns, role).is_none() {
            problems.push(format!(
                "{}: roleRef {role_kind} {role} is not rendered",
                object_id(binding)
            ));
        }
        for subject in arr(binding, "/subjects") {
            if s(subject, "/kind") != Some("ServiceAccount") {
                continue;
            }
            let name = s(subject, "/name").unwrap_or("?");
            let ns = s(subject, "/namespace").unwrap_or("?");
            if m.get("ServiceAccount", Some(ns), name).is_none() {
                problems.push(format!(
                    "{}: subject ServiceAccount {ns}/{name} is not rendered; fix subjects[].namespace/name",
                    object_id(binding)
                ));
            }
        }
    }
    problems.finish("references")
}

// ---------------------------------------------------------------------------
// Files inside mounted volumes.

/// What a file path inside a container resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountedFile {
    /// A key of a rendered ConfigMap, with its content.
    ConfigMap {
        /// ConfigMap name.
        name: String,
        /// Key.
        key: String,
        /// Content.
        content: String,
    },
    /// A key of a Secret.
    Secret {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// Inside an emptyDir.
    EmptyDir,
}

/// Resolves an absolute path in a container to the volume key behind it,
/// or says why it cannot (not under a mount, no such key).
pub fn mounted_file(
    m: &Manifest,
    w: &Workload<'_>,
    container: &Value,
    path: &str,
) -> Result<MountedFile, String> {
    let mount = arr(container, "/volumeMounts")
        .iter()
        .filter_map(|vm| {
            let dir = s(vm, "/mountPath")?.trim_end_matches('/');
            let rest = path.strip_prefix(dir)?.strip_prefix('/')?;
            Some((vm, dir.len(), rest))
        })
        .max_by_key(|(_, len, _)| *len);
    let Some((vm, _, rest)) = mount else {
        return Err(format!("{path} is under no volumeMount"));
    };
    if s(vm, "/subPath").is_some() {
        return Err(format!(
            "{path} is under a subPath mount, which never sees ConfigMap/Secret updates; mount the volume as a directory"
        ));
    }
    let vname = s(vm, "/name").unwrap_or("?");
    let Some(volume) = w.volume(vname) else {
        return Err(format!("volumeMount {vname} names no volume"));
    };
    let key_for = |items: &[Value]| -> Option<String> {
        if items.is_empty() {
            Some(rest.to_string())
        } else {
            items
                .iter()
                .find(|i| s(i, "/path") == Some(rest))
                .and_then(|i| s(i, "/key"))
                .map(str::to_string)
        }
    };
    if let Some(cm) = s(volume, "/configMap/name") {
        let Some(key) = key_for(arr(volume, "/configMap/items")) else {
            return Err(format!(
                "{path}: volume {vname} (ConfigMap {cm}) projects no item with path {rest}"
            ));
        };
        let content = m
            .config_map_data(&w.namespace, cm)
            .and_then(|d| d.get(&key))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                format!(
                    "{path}: ConfigMap {}/{cm} (volume {vname}) has no key {key}",
                    w.namespace
                )
            })?;
        return Ok(MountedFile::ConfigMap {
            name: cm.to_string(),
            key,
            content: content.to_string(),
        });
    }
    if let Some(secret) = s(volume, "/secret/secretName") {
        let Some(key) = key_for(arr(volume, "/secret/items")) else {
            return Err(format!(
                "{path}: volume {vname} (Secret {secret}) projects no item with path {rest}"
            ));
        };
        return Ok(MountedFile::Secret {
            name: secret.to_string(),
            key,
        });
    }
    if volume.get("emptyDir").is_some() {
        return Ok(MountedFile::EmptyDir);
    }
    Err(format!(
        "{path}: volume {vname} is neither a ConfigMap, a Secret nor an emptyDir"
    ))
}

fn secret_file_problem(
    secrets: &[ExternalSecret],
    m: &Manifest,
    namespace: &str,
    file: &MountedFile,
) -> Option<String> {
    let MountedFile::Secret { name, key } = file else {
        return None;
    };
    if let Some(secret) = m.get("Secret", Some(namespace), name) {
        let has = secret
            .pointer("/data")
            .or_else(|| secret.pointer("/stringData"))
            .and_then(Value::as_object)
            .is_some_and(|d| d.contains_key(key));
        return (!has).then(|| format!("rendered Secret {namespace}/{name} has no key {key}"));
    }
    match external_secret(secrets, namespace, name) {
        None => Some(format!(
            "Secret {namespace}/{name} is not listed under `## Secrets` in deploy/k8s/README.md"
        )),
        Some(found) if !found.keys.iter().any(|k| k == key) => Some(format!(
            "the README lists Secret {namespace}/{name} without key {key}"
        )),
        Some(_) => None,
    }
}

// ---------------------------------------------------------------------------
// (d) The collectors.

fn parse_yaml(what: &str, text: &str) -> Result<Value, K8sError> {
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|source| K8sError::Yaml {
            what: what.to_string(),
            source,
        })?;
    serde_json::to_value(v).map_err(|source| K8sError::Shape {
        what: what.to_string(),
        source,
    })
}

/// Every string value of a YAML tree with the key it sits under.
fn strings<'a>(v: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    match v {
        Value::String(text) => out.push((key, text)),
        Value::Array(items) => items.iter().for_each(|i| strings(i, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| strings(v, k, out)),
        _ => {}
    }
}

/// `${env:NAME}` references without a `:-default`, as the collector expands
/// them in values (comments are not values; `$${…}` is an escape).
pub fn collector_env_refs(config: &Value) -> BTreeSet<String> {
    let mut all = Vec::new();
    strings(config, "", &mut all);
    let mut out = BTreeSet::new();
    for (_, text) in all {
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(pos) = text[i..].find("${env:") {
            let start = i + pos;
            let escaped = start > 0 && bytes[start - 1] == b'$';
            let body_start = start + "${env:".len();
            let Some(end) = text[body_start..].find('}') else {
                break;
            };
            let body = &text[body_start..body_start + end];
            if !escaped && !body.contains(":-") {
                out.insert(body.to_string());
            }
            i = body_start + end + 1;
        }
    }
    out
}

/// The `--config` files of a collector container, resolved through its
/// volume mounts to ConfigMap keys, and parsed.
fn collector_configs(
    m: &Manifest,
    w: &Workload<'_>,
    c: &Value,
    problems: &mut Problems,
) -> Result<Vec<(String, Value)>, K8sError> {
    let at = format!("{} container {}", w.id(), container_name(c));
    let args: Vec<&str> = arr(c, "/args")
        .iter()
        .chain(arr(c, "/command"))
        .filter_map(Value::as_str)
        .collect();
    let mut paths = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(p) = arg.strip_prefix("--config=") {
            paths.push(p.to_string());
        } else if *arg == "--config"
            && let Some(p) = iter.next()
        {
            paths.push((*p).to_string());
        }
    }
    if paths.is_empty() {
        problems.push(format!(
            "{at}: no --config argument; the collector would run its image's default config"
        ));
    }
    let mut out = Vec::new();
    for p in paths {
        if !p.starts_with('/') {
            problems.push(format!("{at}: --config={p} is not a file path (a provider URI is not checked here); mount the file from a ConfigMap"));
            continue;
        }
        match mounted_file(m, w, c, &p) {
            Ok(MountedFile::ConfigMap { content, .. }) => {
                out.push((p.clone(), parse_yaml(&format!("{at} {p}"), &content)?));
            }
            Ok(_) => problems.push(format!(
                "{at}: --config={p} is not in a ConfigMap volume; mount otel-collector-base / otel-collector-env there"
            )),
            Err(e) => problems.push(format!("{at}: --config: {e}")),
        }
    }
    Ok(out)
}

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

fn map_keys_with_prefix<'a>(
    v: &'a Value,
    pointer: &str,
    prefix: &str,
) -> Vec<(&'a str, &'a Value)> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() == prefix || k.starts_with(&format!("{prefix}/")))
                .map(|(k, v)| (k.as_str(), v))
                .collect()
        })
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let has = |field: &str, want: &str| {
        arr(rule, field)
            .iter()
            .any(|v| v.as_str() == Some(want) || v.as_str() == Some("*"))
    };
    has("/apiGroups", group) && has("/resources", resource) && has("/verbs", verb)
}

/// What `k8sattributes` needs (contrib v0.136 README): pods, namespaces and
/// nodes (node metadata), and ReplicaSets to name a pod's Deployment.
pub const K8SATTRIBUTES_PERMISSIONS: [(&str, &str); 4] = [
    ("", "pods"),
    ("", "namespaces"),
    ("", "nodes"),
    ("apps", "replicasets"),
];

fn service_account_can(
    m: &Manifest,
    namespace: &str,
    sa: &str,
    group: &str,
    resource: &str,
    verb: &str,
) -> bool {
    m.of_kind("ClusterRoleBinding")
        .chain(m.of_kind("RoleBinding"))
        .filter(|b| {
            arr(b, "/subjects").iter().any(|subject| {
                s(subject, "/kind") == Some("ServiceAccount")
                    && s(subject, "/name") == Some(sa)
                    && s(subject, "/namespace") == Some(namespace)
            })
        })
        .filter_map(|b| {
            let kind = s(b, "/roleRef/kind")?;
            let role_ns = if kind == "Role" {
                s(b, "/metadata/namespace")
            } else {
                None
            };
            m.get(kind, role_ns, s(b, "/roleRef/name")?)
        })
        .any(|role| {
            arr(role, "/rules")
                .iter()
                .any(|r| rule_allows(r, group, resource, verb))
        })
}

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
            let at = format!("{} container {}", w.id(), container_name(c));
            if s(c, "/image") != Some(COLLECTOR_IMAGE) {
                problems.push(format!(
                    "{at}: image {} is not the pinned {COLLECTOR_IMAGE} the configs are written for",
                    s(c, "/image").unwrap_or("?")
                ));
            }
            let env = container_env(m, &w.namespace, c);
            let configs = collector_configs(m, &w, c, &mut problems)?;
            for (path, config) in &configs {
                for var in collector_env_refs(config) {
                    match env_get(&env, &var) {
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
                let mut all = Vec::new();
                strings(config, "", &mut all);
                for (key, value) in all {
                    let is_file_setting = key.ends_with("_file") || key == "directory";
                    if !is_file_setting || !value.starts_with('/') {
                        continue;
                    }
                    match mounted_file(m, &w, c, value) {
                        Err(_) if key == "directory" => {
                            let mounted = arr(c, "/volumeMounts").iter().any(|vm| {
                                s(vm, "/mountPath").map(|p| p.trim_end_matches('/'))
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
                            if let Some(p) = secret_file_problem(secrets, m, &w.namespace, &file) {
                                problems.push(format!("{at}: {path} {key} {value}: {p}"));
                            }
                        }
                    }
                }
                for (name, processor) in
                    map_keys_with_prefix(config, "/processors", "k8sattributes")
                {
                    let sa = s(w.pod, "/serviceAccountName").unwrap_or("default");
                    for (group, resource) in K8SATTRIBUTES_PERMISSIONS {
                        for verb in ["get", "list", "watch"] {
                            if !service_account_can(m, &w.namespace, sa, group, resource, verb) {
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
                    if let Some(var) = s(processor, "/filter/node_from_env_var")
                        && env_get(&env, var) != Some(&EnvValue::Field("spec.nodeName".into()))
                    {
                        problems.push(format!(
                            "{at}: {name} filters pods by ${var}; set env {var} from fieldRef spec.nodeName"
                        ));
                    }
                }
            }
            let ports = w.ports();
            let port_number = |p: &Value| -> Option<u16> {
                match p {
                    Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    Value::String(name) => ports
                        .iter()
                        .find(|(n, _)| n.as_deref() == Some(name))
                        .map(|(_, number)| *number),
                    _ => None,
                }
            };
            for probe in ["livenessProbe", "readinessProbe"] {
                let port = c.pointer(&format!("/{probe}/httpGet/port"));
                match port.and_then(port_number) {
                    Some(COLLECTOR_HEALTH_PORT) => {}
                    Some(other) => problems.push(format!(
                        "{at}: {probe} hits port {other}; use health_check's {COLLECTOR_HEALTH_PORT}"
                    )),
                    None => problems.push(format!(
                        "{at}: {probe} must be an httpGet on a declared containerPort {COLLECTOR_HEALTH_PORT} (health_check)"
                    )),
                }
            }
            let queue_mount = arr(c, "/volumeMounts")
                .iter()
                .find(|vm| s(vm, "/mountPath") == Some(COLLECTOR_QUEUE_DIR));
            match queue_mount {
                None => problems.push(format!(
                    "{at}: mount a writable volume at {COLLECTOR_QUEUE_DIR} (persistent sending queues; the root filesystem is read-only)"
                )),
                Some(vm) => {
                    if vm.get("readOnly").and_then(Value::as_bool) == Some(true) {
                        problems.push(format!("{at}: the queue mount {COLLECTOR_QUEUE_DIR} is readOnly"));
                    }
                    let volume = s(vm, "/name").and_then(|n| w.volume(n));
                    if volume.and_then(|v| v.pointer("/emptyDir/sizeLimit")).is_none() {
                        problems.push(format!(
                            "{at}: the queue volume must be an emptyDir with a sizeLimit (a full disk must evict this pod, not the node's others)"
                        ));
                    }
                }
            }
            let limit = s(c, "/resources/limits/memory").and_then(parse_quantity);
            let gomemlimit = env_get(&env, "GOMEMLIMIT")
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
    if collectors == 0 {
        problems.push("no collector container rendered (image otel/opentelemetry-collector-*)");
    }
    problems.finish("collectors")
}

// ---------------------------------------------------------------------------
// The gateway tier.

/// Splits `name.namespace.svc[.cluster.local]` (or `name.namespace`, or a
/// bare `name` in `own_namespace`) into a Service name and namespace.
fn service_host(host: &str, own_namespace: &str) -> Option<(String, String)> {
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

fn selector_matches_labels(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(map) = selector.as_object() else {
        return false;
    };
    !map.is_empty()
        && map
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
}

/// For every collector whose files use a `loadbalancing` exporter with the
/// dns resolver: the hostname (after `${env:…}`) is the DNS name of a
/// rendered headless Service (`clusterIP: None`, so DNS returns pod IPs to
/// hash trace ids onto), which exposes the resolver's port and selects the
/// pods of a collector Deployment. Returns how many exporters were checked,
/// so a caller can tell "all fine" from "nothing to check".
pub fn check_gateway_routing(m: &Manifest) -> Result<usize, K8sError> {
    let mut problems = Problems::default();
    let mut checked = 0;
    let mut scratch = Problems::default();
    for w in m.workloads() {
        for c in w.containers().filter(|c| is_collector_container(c)) {
            let at = format!("{} container {}", w.id(), container_name(c));
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
                    let raw = s(dns, "/hostname").unwrap_or_default();
                    let host = match raw.strip_prefix("${env:").and_then(|r| r.strip_suffix('}')) {
                        Some(var) => match env_get(&env, var).and_then(EnvValue::known) {
                            Some(v) => v.to_string(),
                            None => {
                                problems.push(format!(
                                    "{at}: {name} resolves ${{env:{var}}}, which the container does not set to a known value; set env {var} to the gateway headless Service's DNS name"
                                ));
                                continue;
                            }
                        },
                        None => raw.to_string(),
                    };
                    let port: u64 = match dns.get("port") {
                        Some(Value::String(p)) => p.parse().unwrap_or(0),
                        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
                        _ => 4317,
                    };
                    let Some((svc_name, svc_ns)) = service_host(&host, &w.namespace) else {
                        problems.push(format!(
                            "{at}: {name} hostname {host} is not <service>.<namespace>.svc.cluster.local"
                        ));
                        continue;
                    };
                    let Some(svc) = m.get("Service", Some(&svc_ns), &svc_name) else {
                        problems.push(format!(
                            "{at}: {name} hostname {host} names Service {svc_ns}/{svc_name}, which is not rendered; point it at the gateway's headless Service"
                        ));
                        continue;
                    };
                    if s(svc, "/spec/clusterIP") != Some("None") {
                        problems.push(format!(
                            "{}: set clusterIP: None; {name} in {} must resolve the gateway pods, not one virtual IP (traces would split across gateways)",
                            object_id(svc),
                            w.id()
                        ));
                    }
                    if !arr(svc, "/spec/ports")
                        .iter()
                        .any(|p| p.pointer("/port").and_then(Value::as_u64) == Some(port))
                    {
                        problems.push(format!(
                            "{}: exposes no port {port}, which {name} in {} dials",
                            object_id(svc),
                            w.id()
                        ));
                    }
                    let selector = svc
                        .pointer("/spec/selector")
                        .cloned()
                        .unwrap_or(Value::Null);
                    let targets: Vec<Workload<'_>> = m
                        .workloads()
                        .into_iter()
                        .filter(|t| {
                            t.namespace == svc_ns
                                && selector_matches_labels(&selector, &t.pod_labels)
                        })
                        .collect();
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
        }
    }
    problems.finish("gateway routing").map(|()| checked)
}

// ---------------------------------------------------------------------------
// (d) The engines.

fn engine_kind(c: &Value) -> Option<&str> {
    let args: Vec<&str> = arr(c, "/args").iter().filter_map(Value::as_str).collect();
    match args.as_slice() {
        ["engine", kind, ..] => Some(kind),
        _ => None,
    }
}

fn engine_port(kind: &str) -> Option<u16> {
    ENGINES.iter().find(|(k, _)| *k == kind).map(|(_, p)| *p)
}

/// The variable an engine reads a peer's URL from (`DELTRAN_RISK_ENGINE_URL`).
pub fn url_variable(kind: &str) -> String {
    format!(
        "DELTRAN_{}_URL",
        kind.to_ascii_uppercase().replace('-', "_")
    )
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
        let containers: Vec<&Value> = arr(w.pod, "/containers").iter().collect();
        let [c] = containers.as_slice() else {
            problems.push(format!(
                "{}: an engine pod runs exactly one container",
                w.id()
            ));
            continue;
        };
        let at = format!("{} container {}", w.id(), container_name(c));
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
        let image = s(c, "/image").unwrap_or_default();
        match image.strip_prefix(ENGINE_IMAGE).and_then(|r| r.strip_prefix(':')) {
            Some(tag) if !tag.is_empty() && tag != "latest" => {}
            _ => problems.push(format!(
                "{at}: image {image} must be {ENGINE_IMAGE}:<tag> (set newTag under images: in the overlay; never latest)"
            )),
        }
        let env = container_env(m, &w.namespace, c);
        let known = |name: &str| env_get(&env, name).and_then(EnvValue::known);
        let ports = w.ports();
        let declared = |p: &Value| -> Option<u16> {
            match p {
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| ports.iter().any(|(_, d)| d == n)),
                Value::String(name) => ports
                    .iter()
                    .find(|(n, _)| n.as_deref() == Some(name))
                    .map(|(_, number)| *number),
                _ => None,
            }
        };
        let business: Option<u16> = known("DELTRAN_PORT").and_then(|p| p.parse().ok());
        if business != Some(port) {
            problems.push(format!(
                "{at}: DELTRAN_PORT must be {port}, {kind}'s port (the Services and peers use it)"
            ));
        }
        for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
            let get = c.pointer(&format!("/{probe}/httpGet"));
            if get.and_then(|g| s(g, "/path")) != Some(path) {
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
        let prom_port: Option<u16> =
            known("OTEL_EXPORTER_PROMETHEUS_PORT").and_then(|p| p.parse().ok());
        if metrics != Some(port + METRICS_PORT_OFFSET) || prom_port != metrics {
            problems.push(format!(
                "{at}: declare containerPort {} named metrics and set OTEL_EXPORTER_PROMETHEUS_PORT to it (business port + {METRICS_PORT_OFFSET})",
                port + METRICS_PORT_OFFSET
            ));
        }
        for host_var in ["DELTRAN_HOST", "OTEL_EXPORTER_PROMETHEUS_HOST"] {
            if known(host_var) != Some("0.0.0.0") {
                problems.push(format!(
                    "{at}: set {host_var}=0.0.0.0 (the engines default to loopback, unreachable from the kubelet and Prometheus)"
                ));
            }
        }
        for (var, field) in [
            ("K8S_POD_NAME", "metadata.name"),
            ("K8S_POD_UID", "metadata.uid"),
            ("K8S_NAMESPACE_NAME", "metadata.namespace"),
            ("K8S_NODE_NAME", "spec.nodeName"),
        ] {
            if env_get(&env, var) != Some(&EnvValue::Field(field.to_string())) {
                problems.push(format!(
                    "{at}: set {var} from fieldRef {field} (downward API)"
                ));
            }
        }
        for (var, want) in [
            ("K8S_CONTAINER_NAME", container_name(c)),
            ("K8S_DEPLOYMENT_NAME", w.name.as_str()),
        ] {
            if known(var) != Some(want) {
                problems.push(format!("{at}: set {var}={want} (the object's own name)"));
            }
        }
        if known("K8S_CLUSTER_NAME").is_none_or(str::is_empty) {
            problems.push(format!(
                "{at}: K8S_CLUSTER_NAME has no value; set it in the overlay's deltran-env"
            ));
        }
        match known("DELTRAN_DATA_DIR") {
            None => problems.push(format!("{at}: set DELTRAN_DATA_DIR to a mounted emptyDir")),
            Some(dir) => {
                let probe_file = format!("{}/x", dir.trim_end_matches('/'));
                if mounted_file(m, &w, c, &probe_file) != Ok(MountedFile::EmptyDir) {
                    problems.push(format!(
                        "{at}: DELTRAN_DATA_DIR={dir} is not an emptyDir mount (the root filesystem is read-only)"
                    ));
                }
            }
        }
        match known("OTEL_METRICS_EXPORTER") {
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
        // Peers.
        for (name, value) in &env {
            let Some(peer) = ENGINES
                .iter()
                .map(|(k, _)| *k)
                .find(|k| url_variable(k) == *name)
            else {
                continue;
            };
            let Some(url) = value.known() else {
                problems.push(format!("{at}: {name} has no known value"));
                continue;
            };
            if let Err(e) = check_url_reaches(m, &w.namespace, url, |t| {
                t.is_engine()
                    && arr(t.pod, "/containers")
                        .iter()
                        .any(|c| engine_kind(c) == Some(peer))
            }) {
                problems.push(format!("{at}: {name}={url}: {e}"));
            }
        }
        // Telemetry endpoint.
        match known("OTEL_EXPORTER_OTLP_ENDPOINT") {
            None => problems.push(format!(
                "{at}: OTEL_EXPORTER_OTLP_ENDPOINT has no known value"
            )),
            Some(url) => {
                if let Err(e) = check_url_reaches(m, &w.namespace, url, |t| {
                    t.kind == "DaemonSet" && t.is_collector()
                }) {
                    problems.push(format!(
                        "{at}: OTEL_EXPORTER_OTLP_ENDPOINT={url}: {e} (engines send to the agent on their node)"
                    ));
                } else if let Some((svc, _)) = url_service(m, &w.namespace, url)
                    && s(svc, "/spec/internalTrafficPolicy") != Some("Local")
                {
                    problems.push(format!(
                        "{}: set internalTrafficPolicy: Local, so {} reaches the agent on its own node",
                        object_id(svc),
                        w.id()
                    ));
                }
            }
        }
    }
    for (kind, _) in ENGINES {
        if !seen.contains_key(kind) {
            problems.push(format!("no Deployment runs engine {kind}"));
        }
    }
    problems.finish("engines")
}

fn url_parts(url: &str) -> Option<(&str, &str, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, if scheme == "https" { 443 } else { 80 }),
    };
    Some((scheme, host, port))
}

fn url_service<'a>(m: &'a Manifest, namespace: &str, url: &str) -> Option<(&'a Value, u16)> {
    let (_, host, port) = url_parts(url)?;
    let (name, ns) = service_host(host, namespace)?;
    Some((m.get("Service", Some(&ns), &name)?, port))
}

/// A URL names a rendered Service that exposes its port, whose targetPort
/// is declared by the pods it selects, and which selects only pods `want`
/// accepts.
fn check_url_reaches(
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
    let Some(svc_port) = arr(svc, "/spec/ports")
        .iter()
        .find(|p| p.pointer("/port").and_then(Value::as_u64) == Some(u64::from(port)))
    else {
        return Err(format!("Service {ns}/{name} exposes no port {port}"));
    };
    let selector = svc
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or(Value::Null);
    let targets: Vec<Workload<'_>> = m
        .workloads()
        .into_iter()
        .filter(|t| t.namespace == ns && selector_matches_labels(&selector, &t.pod_labels))
        .collect();
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
        let ok = match target {
            Value::Null => t.ports().iter().any(|(_, p)| *p == port),
            Value::Number(n) => t
                .ports()
                .iter()
                .any(|(_, p)| Some(u64::from(*p)) == n.as_u64()),
            Value::String(n) => t.ports().iter().any(|(name, _)| name.as_deref() == Some(n)),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "Service {ns}/{name} port {port} targets {target}, which {} does not declare",
                t.id()
            ));
        }
    }
    Ok(())
}

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
        for c in arr(w.pod, "/containers") {
            let at = format!("{} container {}", w.id(), container_name(c));
            let env = container_env(m, &w.namespace, c);
            let mut endpoints = 0;
            for (name, value) in &env {
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
            for var in [
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ] {
                match env_get(&env, var).and_then(EnvValue::known) {
                    None => problems.push(format!(
                        "{at}: set {var} to a file of the mounted client-certificate Secret (the collectors require mTLS)"
                    )),
                    Some(path) => match mounted_file(m, &w, c, path) {
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
            let headers = env_get(&env, "OTEL_EXPORTER_OTLP_HEADERS").and_then(EnvValue::known);
            match headers {
                None => problems.push(format!(
                    "{at}: set OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20$(OTLP_INGEST_TOKEN) (the collectors require the ingest token)"
                )),
                Some(h) => {
                    let has_auth = h
                        .split(',')
                        .any(|kv| kv.trim().to_ascii_lowercase().starts_with("authorization=bearer"));
                    let from_secret = h.split("$(").skip(1).all(|rest| {
                        rest.split(')')
                            .next()
                            .and_then(|var| env_get(&env, var))
                            .is_some_and(|v| matches!(v, EnvValue::Secret { .. }))
                    }) && h.contains("$(");
                    if !has_auth || !from_secret {
                        problems.push(format!(
                            "{at}: OTEL_EXPORTER_OTLP_HEADERS must be authorization=Bearer%20$(VAR) with VAR from a Secret (never a literal token)"
                        ));
                    }
                }
            }
        }
    }
    problems.finish("prod engine export")
}

// ---------------------------------------------------------------------------
// (d) Replicas and PodDisruptionBudgets.

/// Engines that keep state in memory and must run as exactly one replica:
/// a second one would see half of it (the gateway's payment book, the live
/// tokens a burn must find, the risk limits and breaker, the obligations of
/// a clearing window), so scaling them out would be wrong, not just wasteful.
pub const SINGLE_REPLICA_ENGINES: [&str; 4] =
    ["gateway", "token-engine", "risk-engine", "clearing-engine"];

/// Every Deployment has a PodDisruptionBudget that selects it, and every
/// budget selects something. With `min_replicas` ≥ 2 (staging, prod), each
/// Deployment runs at least that many pods and its budget both keeps one
/// serving and lets a drain proceed; with 1 (dev) a budget must never block
/// a drain. [`SINGLE_REPLICA_ENGINES`] run exactly one pod everywhere.
pub fn check_disruption_budgets(m: &Manifest, min_replicas: u64) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    let pdbs: Vec<&Value> = m.of_kind("PodDisruptionBudget").collect();
    for pdb in &pdbs {
        let ns = s(pdb, "/metadata/namespace").unwrap_or("default");
        let selector = pdb
            .pointer("/spec/selector/matchLabels")
            .cloned()
            .unwrap_or(Value::Null);
        if !m
            .workloads()
            .iter()
            .any(|w| w.namespace == ns && selector_matches_labels(&selector, &w.pod_labels))
        {
            problems.push(format!(
                "{}: selects no rendered pods; fix its selector",
                object_id(pdb)
            ));
        }
    }
    for w in m.workloads() {
        let Some(replicas) = w.replicas() else {
            continue;
        };
        let single = SINGLE_REPLICA_ENGINES.contains(&w.name.as_str());
        if single {
            if replicas != 1 {
                problems.push(format!(
                    "{}: {replicas} replicas of an engine that keeps its state in memory; run exactly 1",
                    w.id()
                ));
            }
        } else if replicas < min_replicas {
            problems.push(format!(
                "{}: {replicas} replica(s); this environment needs at least {min_replicas} (replicas: in the overlay)",
                w.id()
            ));
        }
        let budget = pdbs.iter().find(|p| {
            s(p, "/metadata/namespace") == Some(w.namespace.as_str())
                && selector_matches_labels(
                    p.pointer("/spec/selector/matchLabels")
                        .unwrap_or(&Value::Null),
                    &w.pod_labels,
                )
        });
        let Some(pdb) = budget else {
            problems.push(format!(
                "{}: no PodDisruptionBudget selects its pods",
                w.id()
            ));
            continue;
        };
        let int_or_percent = |v: &Value| -> Option<u64> {
            match v {
                Value::Number(n) => n.as_u64(),
                Value::String(p) => p
                    .strip_suffix('%')
                    .and_then(|p| p.parse::<u64>().ok())
                    .map(|p| (p * replicas).div_ceil(100)),
                _ => None,
            }
        };
        let allowed_down = match (
            pdb.pointer("/spec/maxUnavailable"),
            pdb.pointer("/spec/minAvailable"),
        ) {
            (Some(max), None) => int_or_percent(max),
            (None, Some(min)) => int_or_percent(min).map(|min| replicas.saturating_sub(min)),
            _ => None,
        };
        match allowed_down {
            None => problems.push(format!(
                "{}: set exactly one of maxUnavailable / minAvailable",
                object_id(pdb)
            )),
            Some(0) => problems.push(format!(
                "{}: allows no disruption of {} ({replicas} replica(s)): node drains would hang; use maxUnavailable: 1",
                object_id(pdb),
                w.id()
            )),
            Some(down) if min_replicas >= 2 && !single && down >= replicas => problems.push(format!(
                "{}: lets every pod of {} go at once; keep at least one serving",
                object_id(pdb),
                w.id()
            )),
            Some(_) => {}
        }
    }
    problems.finish("disruption budgets")
}

// ---------------------------------------------------------------------------
// (d) NetworkPolicies, evaluated.

/// A pod as NetworkPolicies see it.
#[derive(Debug, Clone)]
pub struct PodRef {
    /// What to call it in problems.
    pub what: String,
    /// Its namespace.
    pub namespace: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its container ports (name, number), to resolve named policy ports.
    pub ports: Vec<(Option<String>, u16)>,
}

impl PodRef {
    fn of(w: &Workload<'_>) -> PodRef {
        PodRef {
            what: format!("pods of {}", w.id()),
            namespace: w.namespace.clone(),
            labels: w.pod_labels.clone(),
            ports: w.ports(),
        }
    }

    fn outsider(what: &str, namespace: &str, labels: &[(&str, &str)]) -> PodRef {
        PodRef {
            what: what.to_string(),
            namespace: namespace.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            ports: Vec::new(),
        }
    }
}

fn label_selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector
        .pointer("/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        })
        .unwrap_or(true);
    let expressions = arr(selector, "/matchExpressions").iter().all(|e| {
        let key = s(e, "/key").unwrap_or_default();
        let values: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        let have = labels.get(key).map(String::as_str);
        match s(e, "/operator") {
            Some("In") => have.is_some_and(|h| values.contains(&h)),
            Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
            Some("Exists") => have.is_some(),
            Some("DoesNotExist") => have.is_none(),
            _ => false,
        }
    });
    match_labels && expressions
}

/// Whether `from` may open a TCP connection to `to` on `port` under the
/// rendered NetworkPolicies (ingress side; egress is not restricted here).
/// An `ipBlock` peer counts as matching any pod: the conservative answer
/// for checks that something is denied.
pub fn ingress_allowed(m: &Manifest, from: &PodRef, to: &PodRef, port: u16) -> bool {
    let from_ns_labels = m.namespace_labels(&from.namespace);
    let selecting: Vec<&Value> = m
        .of_kind("NetworkPolicy")
        .filter(|p| s(p, "/metadata/namespace") == Some(to.namespace.as_str()))
        .filter(|p| {
            p.pointer("/spec/podSelector")
                .is_some_and(|sel| label_selector_matches(sel, &to.labels))
        })
        .filter(|p| {
            let types = arr(p, "/spec/policyTypes");
            types.is_empty() || types.iter().any(|t| t.as_str() == Some("Ingress"))
        })
        .collect();
    if selecting.is_empty() {
        return true;
    }
    let port_matches = |p: &Value| -> bool {
        if s(p, "/protocol").is_some_and(|proto| proto != "TCP") {
            return false;
        }
        match p.get("port") {
            None => true,
            Some(Value::Number(n)) => {
                let start = n.as_u64().unwrap_or(0);
                let end = p
                    .pointer("/endPort")
                    .and_then(Value::as_u64)
                    .unwrap_or(start);
                (start..=end).contains(&u64::from(port))
            }
            Some(Value::String(name)) => to
                .ports
                .iter()
                .any(|(n, number)| n.as_deref() == Some(name) && *number == port),
            _ => false,
        }
    };
    let peer_matches = |policy_ns: &str, peer: &Value| -> bool {
        if peer.get("ipBlock").is_some() {
            return true;
        }
        let ns_ok = match peer.get("namespaceSelector") {
            Some(sel) => label_selector_matches(sel, &from_ns_labels),
            None => from.namespace == policy_ns,
        };
        let pod_ok = match peer.get("podSelector") {
            Some(sel) => label_selector_matches(sel, &from.labels),
            None => true,
        };
        ns_ok && pod_ok
    };
    selecting.iter().any(|p| {
        let policy_ns = s(p, "/metadata/namespace").unwrap_or_default();
        arr(p, "/spec/ingress").iter().any(|rule| {
            let froms = arr(rule, "/from");
            let ports = arr(rule, "/ports");
            (froms.is_empty() || froms.iter().any(|peer| peer_matches(policy_ns, peer)))
                && (ports.is_empty() || ports.iter().any(port_matches))
        })
    })
}

fn allowing_policies(m: &Manifest, to: &PodRef) -> String {
    let names: Vec<String> = m
        .of_kind("NetworkPolicy")
        .filter(|p| s(p, "/metadata/namespace") == Some(to.namespace.as_str()))
        .filter(|p| {
            p.pointer("/spec/podSelector")
                .is_some_and(|sel| label_selector_matches(sel, &to.labels))
        })
        .map(object_id)
        .collect();
    if names.is_empty() {
        format!("no NetworkPolicy selects {}; add one", to.what)
    } else {
        format!("change {}", names.join(", "))
    }
}

/// The traffic the NetworkPolicies must allow and deny, evaluated:
/// engines reach the collector their OTLP endpoint names on 4317 and 4318,
/// and nothing else does; no pod reaches an engine on an OTLP port; only
/// agents reach the gateways; Prometheus (and nothing else) reaches the
/// collectors' 8888 and the engines' `metrics` port; each engine's peers
/// reach its business port and strangers do not.
pub fn check_network_policies(m: &Manifest) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    let workloads = m.workloads();
    let engines: Vec<&Workload<'_>> = workloads.iter().filter(|w| w.is_engine()).collect();
    let agents: Vec<&Workload<'_>> = workloads
        .iter()
        .filter(|w| w.kind == "DaemonSet" && w.is_collector())
        .collect();
    let gateways: Vec<&Workload<'_>> = workloads
        .iter()
        .filter(|w| w.kind == "Deployment" && w.is_collector())
        .collect();
    let prometheus = PodRef::outsider("Prometheus", PROMETHEUS_NAMESPACE, &[PROMETHEUS_LABEL]);
    let mut strangers = vec![PodRef::outsider(
        "a pod in namespace default",
        "default",
        &[("app.kubernetes.io/name", "stranger")],
    )];
    let mut namespaces: BTreeSet<String> = workloads.iter().map(|w| w.namespace.clone()).collect();
    namespaces.insert(PROMETHEUS_NAMESPACE.to_string());
    for ns in namespaces {
        strangers.push(PodRef::outsider(
            &format!("an unlabelled pod in namespace {ns}"),
            &ns,
            &[],
        ));
    }
    if engines.is_empty() || agents.is_empty() {
        problems.push("no engine Deployments or no collector DaemonSet rendered");
    }
    let mut expect = |from: &PodRef, to: &PodRef, port: u16, allowed: bool, why: &str| {
        if ingress_allowed(m, from, to, port) != allowed {
            problems.push(format!(
                "{} {} reach {} on port {port} ({why}); {}",
                from.what,
                if allowed { "cannot" } else { "can" },
                to.what,
                allowing_policies(m, to)
            ));
        }
    };
    for a in &agents {
        let agent = PodRef::of(a);
        for e in &engines {
            for port in OTLP_PORTS {
                expect(
                    &PodRef::of(e),
                    &agent,
                    port,
                    true,
                    "engines export OTLP to the agent",
                );
            }
        }
        for stranger in &strangers {
            for port in OTLP_PORTS {
                expect(stranger, &agent, port, false, "only engines may send OTLP");
            }
            expect(
                stranger,
                &agent,
                COLLECTOR_METRICS_PORT,
                false,
                "only Prometheus scrapes",
            );
        }
        expect(
            &prometheus,
            &agent,
            COLLECTOR_METRICS_PORT,
            true,
            "Prometheus scrapes the collector",
        );
    }
    for g in &gateways {
        let gateway = PodRef::of(g);
        for a in &agents {
            expect(
                &PodRef::of(a),
                &gateway,
                4317,
                true,
                "agents route traces to the gateways",
            );
        }
        for e in &engines {
            expect(
                &PodRef::of(e),
                &gateway,
                4317,
                false,
                "engines go through their agent",
            );
        }
        for stranger in &strangers {
            expect(
                stranger,
                &gateway,
                4317,
                false,
                "only agents may send OTLP to gateways",
            );
            expect(
                stranger,
                &gateway,
                COLLECTOR_METRICS_PORT,
                false,
                "only Prometheus scrapes",
            );
        }
        expect(
            &prometheus,
            &gateway,
            COLLECTOR_METRICS_PORT,
            true,
            "Prometheus scrapes the collector",
        );
    }
    let others: Vec<PodRef> = workloads
        .iter()
        .map(PodRef::of)
        .chain(strangers.iter().cloned())
        .chain([prometheus.clone()])
        .collect();
    for e in &engines {
        let engine = PodRef::of(e);
        for from in &others {
            for port in OTLP_PORTS {
                expect(from, &engine, port, false, "engines never accept OTLP");
            }
        }
        if let Some((_, metrics)) = engine
            .ports
            .iter()
            .find(|(n, _)| n.as_deref() == Some("metrics"))
        {
            expect(
                &prometheus,
                &engine,
                *metrics,
                true,
                "Prometheus scrapes the engines",
            );
            for stranger in &strangers {
                expect(
                    stranger,
                    &engine,
                    *metrics,
                    false,
                    "only Prometheus scrapes",
                );
            }
        }
        let business = arr(e.pod, "/containers")
            .iter()
            .find_map(engine_kind)
            .and_then(engine_port);
        if let Some(port) = business {
            for stranger in &strangers {
                expect(
                    stranger,
                    &engine,
                    port,
                    false,
                    "only its callers reach an engine",
                );
            }
        }
    }
    // Callers reach their peers' business ports.
    for caller in &engines {
        for c in arr(caller.pod, "/containers") {
            for (name, value) in container_env(m, &caller.namespace, c) {
                let Some(peer) = ENGINES.iter().find(|(k, _)| url_variable(k) == name) else {
                    continue;
                };
                let Some(url) = value.known() else { continue };
                let Some((_, _, port)) = url_parts(url) else {
                    continue;
                };
                for callee in engines.iter().filter(|w| {
                    arr(w.pod, "/containers")
                        .iter()
                        .any(|c| engine_kind(c) == Some(peer.0))
                }) {
                    let target_port = callee
                        .ports()
                        .iter()
                        .find(|(_, p)| *p == port)
                        .map(|(_, p)| *p)
                        .unwrap_or(peer.1);
                    expect(
                        &PodRef::of(caller),
                        &PodRef::of(callee),
                        target_port,
                        true,
                        &format!("{name} is set on the caller"),
                    );
                }
            }
        }
    }
    problems.finish("network policies")
}
