//! The compose stack of `deploy/compose/`, checked without Docker.
//!
//! Docker does not run where these checks run, so nothing here starts a
//! container. Instead the compose file is read the way Compose reads it
//! (paths relative to the file, YAML merge keys applied, short and long
//! syntax) and every place where one file names another service is followed
//! to the file that decides it: an engine's `OTEL_EXPORTER_OTLP_ENDPOINT`
//! must name the collector service and a port its OTLP receiver listens on
//! (read from the merged collector configuration), the collector's exporter
//! endpoints must name Prometheus, Loki and Tempo on the ports their
//! configurations open, Grafana's datasources and Prometheus' target files
//! likewise. What such a stack gets wrong is rarely a key: it is a port or
//! a name that two files disagree on, which only shows when the stack runs.
//!
//! Every problem is a [`Finding`]: the file to change and what to change.
//!
//! ```no_run
//! use deploy_checks::compose::{Stack, check_all, compose_file, validate_schema};
//! validate_schema(&compose_file()).unwrap();
//! let stack = Stack::load(&compose_file()).unwrap();
//! check_all(&stack).unwrap();
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use regex::Regex;
use serde_yaml_ng::{Mapping, Value};

/// The compose file, relative to the repository root.
pub const COMPOSE_FILE: &str = "deploy/compose/compose.yaml";

/// `deploy/compose/compose.yaml` in this repository.
pub fn compose_file() -> PathBuf {
    crate::repo_root().join(COMPOSE_FILE)
}

/// Why a compose check failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not YAML (or not the shape its reader expects).
    #[error("{path} is not valid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The validator could not be run at all (not installed, not executable).
    #[error("could not run `{command}`: {message}")]
    Tool {
        /// The command line.
        command: String,
        /// Why, and how to install it.
        message: String,
    },
    /// The compose file does not follow the compose specification.
    #[error("{path} does not follow the compose specification (`{command}`):\n{output}")]
    Schema {
        /// The compose file.
        path: PathBuf,
        /// The validator's command line.
        command: String,
        /// What the validator said.
        output: String,
    },
    /// The files disagree with each other; one line per problem.
    #[error("{}", findings_text(.0))]
    Findings(Vec<Finding>),
}

fn findings_text(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One problem: the file to change and what to change in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The file that has to change.
    pub file: PathBuf,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

fn finding(file: &Path, message: impl Into<String>) -> Finding {
    Finding {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

fn finish(findings: Vec<Finding>) -> Result<(), ComposeError> {
    if findings.is_empty() {
        Ok(())
    } else {
        Err(ComposeError::Findings(findings))
    }
}

// ------------------------------------------------------------------ schema

/// Validates `compose` against the compose specification's JSON schema,
/// offline: `check-jsonschema --builtin-schema vendor.compose-spec` (PyPI
/// `check-jsonschema`, installed by `scripts/install-test-deps.sh`) ships
/// the schema, so no network is needed. Catches misspelt or misplaced keys,
/// which Compose would refuse at `up`.
pub fn validate_schema(compose: &Path) -> Result<(), ComposeError> {
    let program = "check-jsonschema";
    let args = ["--builtin-schema", "vendor.compose-spec"];
    let command = format!("{program} {} {}", args.join(" "), compose.display());
    let output = Command::new(program)
        .args(args)
        .arg(compose)
        .output()
        .map_err(|e| ComposeError::Tool {
            command: command.clone(),
            message: format!(
                "{e}; install it with `pip install check-jsonschema` (scripts/install-test-deps.sh)"
            ),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(ComposeError::Schema {
        path: compose.to_path_buf(),
        command,
        output: text.trim().to_string(),
    })
}

// ------------------------------------------------------------ the model

/// A compose file, read as Compose reads it.
#[derive(Clone, Debug)]
pub struct Stack {
    /// The compose file.
    pub path: PathBuf,
    /// Its directory, which relative paths are resolved against.
    pub dir: PathBuf,
    /// The services by name.
    pub services: BTreeMap<String, Service>,
    /// The top-level `volumes:` names.
    pub named_volumes: BTreeSet<String>,
    /// The top-level `secrets:` with a `file:` source, by name (host path).
    pub secret_files: BTreeMap<String, PathBuf>,
}

/// One service of the compose file.
#[derive(Clone, Debug, Default)]
pub struct Service {
    /// Its name (also its host name on the compose network).
    pub name: String,
    /// `image:`.
    pub image: Option<String>,
    /// `build:`.
    pub build: Option<Build>,
    /// `entrypoint:` as a list.
    pub entrypoint: Vec<String>,
    /// `command:` as a list.
    pub command: Vec<String>,
    /// `environment:` (list or mapping), values as written (uninterpolated).
    pub environment: BTreeMap<String, String>,
    /// `ports:`.
    pub ports: Vec<PortMapping>,
    /// `volumes:`.
    pub mounts: Vec<Mount>,
    /// `secrets:` as container paths they are mounted at, by secret name.
    pub secrets: BTreeMap<String, String>,
    /// `healthcheck.test` as a list (empty without one).
    pub healthcheck: Vec<String>,
}

/// A service's `build:`.
#[derive(Clone, Debug)]
pub struct Build {
    /// The build context on the host.
    pub context: PathBuf,
    /// The Dockerfile on the host.
    pub dockerfile: PathBuf,
}

/// One entry of `ports:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    /// As written, for messages.
    pub spec: String,
    /// The host address it is published on (`None`: every address).
    pub host_ip: Option<String>,
    /// The host port (`None`: Docker picks one).
    pub published: Option<String>,
    /// The container port.
    pub target: Option<u16>,
}

/// One entry of `volumes:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    /// A host path.
    Bind {
        /// As written.
        source: String,
        /// Resolved against the compose file's directory.
        host: PathBuf,
        /// Where it appears in the container.
        target: String,
        /// Mounted read-only.
        read_only: bool,
    },
    /// A named (or anonymous) volume.
    Volume {
        /// The volume's name (empty for an anonymous volume).
        name: String,
        /// Where it appears in the container.
        target: String,
    },
}

/// What a service is, as far as these checks know (by image or command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `deltran engine <kind>`.
    Engine(String),
    /// An OpenTelemetry Collector distribution.
    Collector,
    /// Prometheus.
    Prometheus,
    /// Alertmanager.
    Alertmanager,
    /// Grafana Tempo.
    Tempo,
    /// Grafana Loki.
    Loki,
    /// Grafana.
    Grafana,
    /// NATS.
    Nats,
    /// PostgreSQL.
    Postgres,
    /// Anything else (no known ports).
    Other,
}

/// What a port speaks, so a URL can be checked against the right listener
/// (an OTLP/gRPC exporter pointed at an OTLP/HTTP port fails at run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Plain HTTP (APIs, UIs, `/metrics`).
    Http,
    /// OTLP over gRPC.
    OtlpGrpc,
    /// OTLP over HTTP.
    OtlpHttp,
    /// Some other gRPC API.
    Grpc,
    /// The NATS client protocol.
    Nats,
    /// The PostgreSQL wire protocol.
    Postgres,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http => "HTTP",
            Protocol::OtlpGrpc => "OTLP/gRPC",
            Protocol::OtlpHttp => "OTLP/HTTP",
            Protocol::Grpc => "gRPC",
            Protocol::Nats => "NATS",
            Protocol::Postgres => "PostgreSQL",
        })
    }
}

/// A port a service listens on, reachable from other containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// The container port.
    pub port: u16,
    /// What it speaks.
    pub protocol: Protocol,
    /// Where this was read (a file and key, a flag, or the image's default).
    pub source: String,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.port, self.protocol, self.source)
    }
}

fn read_text(path: &Path) -> Result<String, ComposeError> {
    std::fs::read_to_string(path).map_err(|source| ComposeError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a YAML file with anchors, aliases and merge keys (`<<`) resolved.
pub fn read_yaml(path: &Path) -> Result<Value, ComposeError> {
    parse_yaml(path, &read_text(path)?)
}

fn parse_yaml(path: &Path, text: &str) -> Result<Value, ComposeError> {
    let yaml_error = |e: serde_yaml_ng::Error| ComposeError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut value: Value = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
    value.apply_merge().map_err(yaml_error)?;
    Ok(value)
}

/// A scalar as the string Compose would see (numbers and booleans too).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A `string | [string]` field (command, entrypoint, healthcheck.test).
/// The string form is split on whitespace, which is what Compose does for
/// the simple commands these checks read.
fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Joins `relative` onto `base` and removes `.` and `..` without touching
/// the file system (the path may not exist: that is what is checked).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl Stack {
    /// Reads `compose` (a compose file). Fails only when the file cannot be
    /// read as YAML or has no `services:`; everything else is left to the
    /// checks, so that one run reports every problem.
    pub fn load(compose: &Path) -> Result<Stack, ComposeError> {
        let doc = read_yaml(compose)?;
        let dir = compose.parent().map(Path::to_path_buf).unwrap_or_default();
        let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
            return Err(ComposeError::Yaml {
                path: compose.to_path_buf(),
                message: "no `services:` mapping".into(),
            });
        };
        let mut stack = Stack {
            path: compose.to_path_buf(),
            dir: dir.clone(),
            services: BTreeMap::new(),
            named_volumes: doc
                .get("volumes")
                .and_then(Value::as_mapping)
                .map(|m| m.keys().filter_map(scalar).collect())
                .unwrap_or_default(),
            secret_files: doc
                .get("secrets")
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| {
                            let file = v.get("file").and_then(Value::as_str)?;
                            Some((scalar(k)?, normalize(&dir.join(file))))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        for (name, body) in services {
            let Some(name) = scalar(name) else { continue };
            let service = Service::parse(&name, body, &dir);
            stack.services.insert(name, service);
        }
        Ok(stack)
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// The services of `kind`.
    pub fn services_of(&self, kind: &Kind) -> impl Iterator<Item = &Service> {
        let kind = kind.clone();
        self.services.values().filter(move |s| s.kind() == kind)
    }

    /// The engine services (`deltran engine <kind>`), by engine kind.
    pub fn engines(&self) -> BTreeMap<String, &Service> {
        self.services
            .values()
            .filter_map(|s| match s.kind() {
                Kind::Engine(kind) => Some((kind, s)),
                _ => None,
            })
            .collect()
    }

    /// Where `container_path` of `service` comes from on the host: the
    /// bind mount with the longest target that contains it. `None` when no
    /// bind mount covers it (the image's own file, or a volume).
    pub fn host_path(&self, service: &Service, container_path: &str) -> Option<PathBuf> {
        let wanted = normalize(Path::new(container_path));
        let mut best: Option<(usize, PathBuf)> = None;
        for mount in &service.mounts {
            let Mount::Bind { host, target, .. } = mount else {
                continue;
            };
            let target = normalize(Path::new(target));
            if let Ok(rest) = wanted.strip_prefix(&target) {
                let depth = target.components().count();
                if best.as_ref().is_none_or(|(d, _)| depth > *d) {
                    best = Some((depth, host.join(rest)));
                }
            }
        }
        best.map(|(_, p)| normalize(&p))
    }

    /// The ports `service` listens on for other containers, read from the
    /// configuration that decides each (problems reading it are findings).
    pub fn listeners(&self, service: &Service, findings: &mut Vec<Finding>) -> Vec<Listener> {
        let mut out = Vec::new();
        let mut add = |port: u16, protocol: Protocol, source: String| {
            out.push(Listener {
                port,
                protocol,
                source,
            })
        };
        match service.kind() {
            Kind::Engine(_) => match service.environment.get("DELTRAN_PORT") {
                Some(port) => match port.parse() {
                    Ok(port) => add(port, Protocol::Http, "DELTRAN_PORT".into()),
                    Err(_) => findings.push(finding(
                        &self.path,
                        format!(
                            "service {}: DELTRAN_PORT={port:?} is not a port number",
                            service.name
                        ),
                    )),
                },
                None => findings.push(finding(
                    &self.path,
                    format!(
                        "service {}: set DELTRAN_PORT, so the engine's port is stated where its peers' URLs are",
                        service.name
                    ),
                )),
            },
            Kind::Collector => {
                if let Some(config) = self.collector_config(service, findings) {
                    let files = flags(&service.args(), "config").join(" + ");
                    for mut listener in collector_listeners(&config, service) {
                        listener.source = format!("{files}: {}", listener.source);
                        out.push(listener);
                    }
                }
            }
            Kind::Tempo => {
                if let Some((path, config)) = self.config_file(service, "config.file", findings) {
                    let file = path.display().to_string();
                    let http = config
                        .get("server")
                        .and_then(|s| s.get("http_listen_port"))
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok());
                    add(
                        http.unwrap_or(3200),
                        Protocol::Http,
                        format!("{file} server.http_listen_port"),
                    );
                    let grpc = config
                        .get("server")
                        .and_then(|s| s.get("grpc_listen_port"))
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok());
                    add(
                        grpc.unwrap_or(9095),
                        Protocol::Grpc,
                        format!("{file} server.grpc_listen_port"),
                    );
                    let protocols = config
                        .get("distributor")
                        .and_then(|d| d.get("receivers"))
                        .and_then(|r| r.get("otlp"))
                        .and_then(|o| o.get("protocols"));
                    for (key, protocol, default) in [
                        ("grpc", Protocol::OtlpGrpc, "localhost:4317"),
                        ("http", Protocol::OtlpHttp, "localhost:4318"),
                    ] {
                        let Some(p) = protocols.and_then(|p| p.get(key)) else {
                            continue;
                        };
                        let endpoint = p.get("endpoint").and_then(Value::as_str).unwrap_or(default);
                        if let Some(port) = reachable_port(endpoint) {
                            add(
                                port,
                                protocol,
                                format!("{file} distributor.receivers.otlp.protocols.{key}.endpoint"),
                            );
                        }
                    }
                }
            }
            Kind::Loki => {
                if let Some((path, config)) = self.config_file(service, "config.file", findings) {
                    let file = path.display().to_string();
                    let server = config.get("server");
                    let http = server
                        .and_then(|s| s.get("http_listen_port"))
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok());
                    add(
                        http.unwrap_or(3100),
                        Protocol::Http,
                        format!("{file} server.http_listen_port"),
                    );
                    let grpc = server
                        .and_then(|s| s.get("grpc_listen_port"))
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok());
                    add(
                        grpc.unwrap_or(9095),
                        Protocol::Grpc,
                        format!("{file} server.grpc_listen_port"),
                    );
                }
            }
            Kind::Prometheus | Kind::Alertmanager => {
                let default = if service.kind() == Kind::Prometheus {
                    9090
                } else {
                    9093
                };
                match flag(&service.args(), "web.listen-address") {
                    Some(address) => match reachable_port(&address) {
                        Some(port) => add(port, Protocol::Http, "--web.listen-address".into()),
                        None => findings.push(finding(
                            &self.path,
                            format!(
                                "service {}: --web.listen-address={address} is not reachable from other containers; use 0.0.0.0:<port>",
                                service.name
                            ),
                        )),
                    },
                    None => add(default, Protocol::Http, "the image's default".into()),
                }
            }
            Kind::Grafana => {
                let port = service
                    .environment
                    .get("GF_SERVER_HTTP_PORT")
                    .and_then(|p| p.parse().ok());
                match port {
                    Some(port) => add(port, Protocol::Http, "GF_SERVER_HTTP_PORT".into()),
                    None => add(3000, Protocol::Http, "Grafana's default".into()),
                }
            }
            Kind::Nats => {
                let args = service.args();
                let port = flag(&args, "port")
                    .or_else(|| flag(&args, "p"))
                    .and_then(|p| p.parse().ok());
                add(port.unwrap_or(4222), Protocol::Nats, "--port".into());
                if let Some(port) = flag(&args, "http_port")
                    .or_else(|| flag(&args, "m"))
                    .and_then(|p| p.parse().ok())
                {
                    add(port, Protocol::Http, "--http_port".into());
                }
            }
            Kind::Postgres => {
                let port = service
                    .environment
                    .get("PGPORT")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(5432);
                add(port, Protocol::Postgres, "PostgreSQL's default".into());
            }
            Kind::Other => {}
        }
        out
    }

    /// The configuration file a service is started with (`-<flag>=<path>`,
    /// Go's flag syntax), read through its bind mount.
    fn config_file(
        &self,
        service: &Service,
        name: &str,
        findings: &mut Vec<Finding>,
    ) -> Option<(PathBuf, Value)> {
        let Some(container) = flag(&service.args(), name) else {
            findings.push(finding(
                &self.path,
                format!(
                    "service {}: pass -{name}=<path> and mount the file, so its ports can be checked",
                    service.name
                ),
            ));
            return None;
        };
        let Some(host) = self.host_path(service, &container) else {
            findings.push(finding(
                &self.path,
                format!(
                    "service {}: -{name}={container} is not inside any bind mount; mount the file from this repository",
                    service.name
                ),
            ));
            return None;
        };
        match read_yaml(&host) {
            Ok(value) => Some((host, value)),
            Err(e) => {
                findings.push(finding(&host, e.to_string()));
                None
            }
        }
    }

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

    /// Follows `url` (written in `file` as `what`) to a service of this
    /// stack and a port it listens on that speaks `protocol`; each mismatch
    /// is a finding naming `file`.
    fn resolve(
        &self,
        file: &Path,
        what: &str,
        url: &str,
        protocol: &[Protocol],
        findings: &mut Vec<Finding>,
    ) -> Option<(Endpoint, &Service)> {
        let endpoint = match Endpoint::parse(url) {
            Ok(e) => e,
            Err(why) => {
                findings.push(finding(file, format!("{what} = {url:?}: {why}")));
                return None;
            }
        };
        let Some(service) = self.service(&endpoint.host) else {
            findings.push(finding(
                file,
                format!(
                    "{what} = {url:?} names host {:?}, which is no service of {} (services: {}); name the service",
                    endpoint.host,
                    self.path.display(),
                    self.services.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
            return None;
        };
        let mut scratch = Vec::new();
        let listeners = self.listeners(service, &mut scratch);
        if service.kind() == Kind::Other {
            return Some((endpoint, service));
        }
        let on_port: Vec<&Listener> = listeners
            .iter()
            .filter(|l| l.port == endpoint.port)
            .collect();
        if on_port.is_empty() {
            let wanted: Vec<String> = listeners
                .iter()
                .filter(|l| protocol.contains(&l.protocol))
                .map(ToString::to_string)
                .collect();
            findings.push(finding(
                file,
                format!(
                    "{what} = {url:?}: service {} does not listen on port {} (it listens on: {}){}",
                    service.name,
                    endpoint.port,
                    listeners
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                    if wanted.is_empty() {
                        String::new()
                    } else {
                        format!("; use {}", wanted.join(" or "))
                    }
                ),
            ));
            return None;
        }
        if !on_port.iter().any(|l| protocol.contains(&l.protocol)) {
            let wanted: Vec<String> = listeners
                .iter()
                .filter(|l| protocol.contains(&l.protocol))
                .map(|l| l.port.to_string())
                .collect();
            findings.push(finding(
                file,
                format!(
                    "{what} = {url:?}: port {} of {} is {}, but this needs {}{}",
                    endpoint.port,
                    service.name,
                    on_port[0],
                    protocol
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" or "),
                    if wanted.is_empty() {
                        String::new()
                    } else {
                        format!(" (port {})", wanted.join(" or "))
                    }
                ),
            ));
            return None;
        }
        Some((endpoint, service))
    }
}

impl Service {
    fn parse(name: &str, body: &Value, dir: &Path) -> Service {
        let environment = match body.get("environment") {
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((scalar(k)?, scalar(v).unwrap_or_default())))
                .collect(),
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|item| match item.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (item.to_string(), String::new()),
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let build = body.get("build").map(|b| {
            let (context, dockerfile) = match b {
                Value::String(context) => (context.clone(), "Dockerfile".to_string()),
                other => (
                    other
                        .get("context")
                        .and_then(Value::as_str)
                        .unwrap_or(".")
                        .to_string(),
                    other
                        .get("dockerfile")
                        .and_then(Value::as_str)
                        .unwrap_or("Dockerfile")
                        .to_string(),
                ),
            };
            let context = normalize(&dir.join(context));
            Build {
                dockerfile: normalize(&context.join(dockerfile)),
                context,
            }
        });
        let ports = body
            .get("ports")
            .and_then(Value::as_sequence)
            .map(|items| items.iter().map(PortMapping::parse).collect())
            .unwrap_or_default();
        let mounts = body
            .get("volumes")
            .and_then(Value::as_sequence)
            .map(|items| items.iter().filter_map(|v| Mount::parse(v, dir)).collect())
            .unwrap_or_default();
        let secrets = body
            .get("secrets")
            .and_then(Value::as_sequence)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| match item {
                        Value::String(s) => Some((s.clone(), format!("/run/secrets/{s}"))),
                        other => {
                            let source = other.get("source").and_then(Value::as_str)?;
                            let target = other
                                .get("target")
                                .and_then(Value::as_str)
                                .unwrap_or(source);
                            let target = if target.starts_with('/') {
                                target.to_string()
                            } else {
                                format!("/run/secrets/{target}")
                            };
                            Some((source.to_string(), target))
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Service {
            name: name.to_string(),
            image: body.get("image").and_then(scalar),
            build,
            entrypoint: string_list(body.get("entrypoint")),
            command: string_list(body.get("command")),
            environment,
            ports,
            mounts,
            secrets,
            healthcheck: string_list(body.get("healthcheck").and_then(|h| h.get("test"))),
        }
    }

    /// What the service is, from its command (engines) or its image.
    pub fn kind(&self) -> Kind {
        if self.command.first().map(String::as_str) == Some("engine")
            && let Some(kind) = self.command.get(1)
        {
            return Kind::Engine(kind.clone());
        }
        let Some(image) = &self.image else {
            return Kind::Other;
        };
        let repository = ImageRef::parse(image).repository;
        let last = repository.rsplit('/').next().unwrap_or_default();
        match (repository.as_str(), last) {
            (
                _,
                "opentelemetry-collector-contrib"
                | "opentelemetry-collector"
                | "opentelemetry-collector-k8s"
                | "otelcol-contrib"
                | "otelcol",
            ) => Kind::Collector,
            (_, "prometheus") => Kind::Prometheus,
            (_, "alertmanager") => Kind::Alertmanager,
            ("grafana/tempo" | "tempo", _) => Kind::Tempo,
            ("grafana/loki" | "loki", _) => Kind::Loki,
            ("grafana/grafana" | "grafana/grafana-oss" | "grafana/grafana-enterprise", _) => {
                Kind::Grafana
            }
            (_, "nats") => Kind::Nats,
            (_, "postgres") => Kind::Postgres,
            _ => Kind::Other,
        }
    }

    /// Entrypoint and command together: the flags the process receives.
    pub fn args(&self) -> Vec<String> {
        self.entrypoint
            .iter()
            .chain(&self.command)
            .cloned()
            .collect()
    }
}

impl PortMapping {
    fn parse(value: &Value) -> PortMapping {
        match value {
            Value::Mapping(_) => PortMapping {
                spec: serde_yaml_ng::to_string(value)
                    .unwrap_or_default()
                    .trim()
                    .replace('\n', ", "),
                host_ip: value.get("host_ip").and_then(scalar),
                published: value.get("published").and_then(scalar),
                target: value
                    .get("target")
                    .and_then(scalar)
                    .and_then(|t| t.parse().ok()),
            },
            other => {
                let spec = scalar(other).unwrap_or_default();
                let without_proto = spec.split('/').next().unwrap_or_default();
                let mut parts: Vec<&str> = without_proto.rsplitn(3, ':').collect();
                parts.reverse();
                let (host_ip, published, target) = match parts.as_slice() {
                    [ip, published, target] => (Some(ip.to_string()), Some(published), target),
                    [published, target] => (None, Some(published), target),
                    [target] => (None, None, target),
                    _ => (None, None, &""),
                };
                PortMapping {
                    host_ip: host_ip.map(|ip| ip.trim_matches(['[', ']']).to_string()),
                    published: published.map(|p| p.to_string()),
                    target: target.parse().ok(),
                    spec,
                }
            }
        }
    }
}

impl Mount {
    fn parse(value: &Value, dir: &Path) -> Option<Mount> {
        let is_host_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.starts_with('~');
        match value {
            Value::String(spec) => {
                let parts: Vec<&str> = spec.split(':').collect();
                match parts.as_slice() {
                    [target] => Some(Mount::Volume {
                        name: String::new(),
                        target: target.to_string(),
                    }),
                    [source, target, rest @ ..] => {
                        if is_host_path(source) {
                            Some(Mount::Bind {
                                source: source.to_string(),
                                host: normalize(&dir.join(source)),
                                target: target.to_string(),
                                read_only: rest
                                    .first()
                                    .is_some_and(|m| m.split(',').any(|o| o == "ro")),
                            })
                        } else {
                            Some(Mount::Volume {
                                name: source.to_string(),
                                target: target.to_string(),
                            })
                        }
                    }
                    [] => None,
                }
            }
            other => {
                let target = other.get("target").and_then(Value::as_str)?.to_string();
                let source = other
                    .get("source")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                match other.get("type").and_then(Value::as_str) {
                    Some("bind") => Some(Mount::Bind {
                        host: normalize(&dir.join(&source)),
                        source,
                        target,
                        read_only: other
                            .get("read_only")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    }),
                    Some("volume") => Some(Mount::Volume {
                        name: source,
                        target,
                    }),
                    _ => None,
                }
            }
        }
    }
}

// ----------------------------------------------------------- small parsers

/// An image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Without registry host, tag or digest (`grafana/loki`).
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if any.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits `image` into its parts.
    pub fn parse(image: &str) -> ImageRef {
        let (name, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (image, None),
        };
        let (name, tag) = match name.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
            _ => (name, None),
        };
        let mut parts: Vec<&str> = name.split('/').collect();
        if parts.len() > 1
            && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
        {
            parts.remove(0);
        }
        ImageRef {
            repository: parts.join("/"),
            tag,
            digest,
        }
    }

    /// Why this reference is not pinned to one version, if it is not: no
    /// tag means `latest`, and `latest` moves.
    pub fn unpinned(&self) -> Option<&'static str> {
        if self.digest.is_some() {
            return None;
        }
        match self.tag.as_deref() {
            None => Some("has no tag, so it means `latest`"),
            Some("latest") => Some("is tagged `latest`, which moves"),
            Some(t) if t.contains('$') => Some("takes its tag from a variable"),
            Some(_) => None,
        }
    }
}

/// A URL or `host:port` as the checks need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `http`, `nats`, … (`None` for a bare `host:port`).
    pub scheme: Option<String>,
    /// The user name in the URL, if any.
    pub user: Option<String>,
    /// The password in the URL as written, if any.
    pub password: Option<String>,
    /// The host.
    pub host: String,
    /// The port (stated or the scheme's default).
    pub port: u16,
    /// The path (`""` when none).
    pub path: String,
}

static INTERPOLATION: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"\$\{[^}]*\}"));

impl Endpoint {
    /// Parses `text`; compose `${…}` interpolations are allowed in the user
    /// information (passwords), not in the host or port, which must be
    /// literal to be checked.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let masked = match &*INTERPOLATION {
            Ok(re) => re.replace_all(text, "\u{1}").into_owned(),
            Err(e) => return Err(e.to_string()),
        };
        let originals: Vec<&str> = match &*INTERPOLATION {
            Ok(re) => re.find_iter(text).map(|m| m.as_str()).collect(),
            Err(_) => Vec::new(),
        };
        let (scheme, rest) = match masked.split_once("://") {
            Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
            None => (None, masked.as_str()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hostport.contains('\u{1}') {
            return Err("the host or port comes from a variable; write them literally".into());
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("{p:?} is not a port number"))?,
                ),
            ),
            None => (hostport, None),
        };
        let default_port = match scheme.as_deref() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            Some("nats") => Some(4222),
            Some("postgres" | "postgresql") => Some(5432),
            _ => None,
        };
        let Some(port) = port.or(default_port) else {
            return Err("no port; write host:port".into());
        };
        let mut next = originals.into_iter();
        let mut unmask = |s: &str| {
            let mut out = String::new();
            for c in s.chars() {
                if c == '\u{1}' {
                    out.push_str(next.next().unwrap_or_default());
                } else {
                    out.push(c);
                }
            }
            out
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, password)) => (Some(unmask(user)), Some(unmask(password))),
                None => (Some(unmask(u)), None),
            },
            None => (None, None),
        };
        Ok(Endpoint {
            scheme,
            user,
            password,
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }
}

/// Every value of `--name=value`, `-name=value`, `--name value` in `args`
/// (Go's flag package accepts one or two dashes).
fn flags(args: &[String], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        if let Some(value) = stripped
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('='))
        {
            out.push(value.to_string());
        } else if stripped == name
            && let Some(value) = iter.peek()
            && !value.starts_with('-')
        {
            out.push((*value).clone());
            iter.next();
        }
    }
    out
}

fn flag(args: &[String], name: &str) -> Option<String> {
    flags(args, name).pop()
}

/// Whether `flag` (without dashes) is given, bare or `=true`.
fn has_flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| {
        let a = a.trim_start_matches('-');
        a == name || a == format!("{name}=true")
    })
}

/// The port of a listen address other containers can reach (`0.0.0.0:p`,
/// `:p`, `[::]:p`); `None` for loopback or an unparsable address.
fn reachable_port(address: &str) -> Option<u16> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    matches!(host, "" | "0.0.0.0" | "[::]" | "::").then_some(port)
}

/// The collector's listeners from its merged configuration: OTLP
/// receivers, the health check and its own metrics, where bound to an
/// address other containers reach (`${env:…}` resolved from the service's
/// environment). pprof and zpages on loopback are deliberately not listed.
fn collector_listeners(config: &Value, service: &Service) -> Vec<Listener> {
    let resolve = |s: &str| substitute_env(s, &service.environment);
    let mut out = Vec::new();
    if let Some(receivers) = config.get("receivers").and_then(Value::as_mapping) {
        for (name, receiver) in receivers {
            let Some(name) = name.as_str() else { continue };
            if name != "otlp" && !name.starts_with("otlp/") {
                continue;
            }
            for (key, protocol) in [("grpc", Protocol::OtlpGrpc), ("http", Protocol::OtlpHttp)] {
                let Some(p) = receiver.get("protocols").and_then(|p| p.get(key)) else {
                    continue;
                };
                let endpoint = p
                    .get("endpoint")
                    .and_then(Value::as_str)
                    .map(resolve)
                    .unwrap_or_else(|| {
                        if key == "grpc" {
                            "localhost:4317".into()
                        } else {
                            "localhost:4318".into()
                        }
                    });
                if let Some(port) = reachable_port(&endpoint) {
                    out.push(Listener {
                        port,
                        protocol,
                        source: format!("receivers.{name}.protocols.{key}.endpoint"),
                    });
                }
            }
        }
    }
    if let Some(endpoint) = config
        .get("extensions")
        .and_then(|e| e.get("health_check"))
        .and_then(|h| h.get("endpoint"))
        .and_then(Value::as_str)
        && let Some(port) = reachable_port(&resolve(endpoint))
    {
        out.push(Listener {
            port,
            protocol: Protocol::Http,
            source: "extensions.health_check.endpoint".into(),
        });
    }
    let readers = config
        .get("service")
        .and_then(|s| s.get("telemetry"))
        .and_then(|t| t.get("metrics"))
        .and_then(|m| m.get("readers"))
        .and_then(Value::as_sequence);
    for reader in readers.into_iter().flatten() {
        let Some(prometheus) = reader
            .get("pull")
            .and_then(|p| p.get("exporter"))
            .and_then(|e| e.get("prometheus"))
        else {
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
            out.push(Listener {
                port,
                protocol: Protocol::Http,
                source: "service.telemetry.metrics.readers[].pull.exporter.prometheus".into(),
            });
        }
    }
    out
}

static ENV_REFERENCE: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}"));

/// One `${env:NAME}` (or `${NAME}`) a collector configuration reads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvReference {
    /// The variable.
    pub name: String,
    /// Whether it has a `:-default` (then it need not be set).
    pub has_default: bool,
}

/// Every environment variable `value` (a collector configuration) reads,
/// from its string values (comments are not configuration). `$${…}` is
/// the collector's escape for a literal `${…}` and is not a reference.
pub fn env_references(value: &Value) -> BTreeSet<EnvReference> {
    let mut out = BTreeSet::new();
    let Ok(re) = &*ENV_REFERENCE else {
        return out;
    };
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                for m in re.captures_iter(s) {
                    let Some(whole) = m.get(0) else { continue };
                    if s[..whole.start()].ends_with('$') {
                        continue;
                    }
                    out.insert(EnvReference {
                        name: m[1].to_string(),
                        has_default: m.get(2).is_some(),
                    });
                }
            }
            Value::Sequence(items) => stack.extend(items),
            Value::Mapping(m) => stack.extend(m.values()),
            Value::Tagged(t) => stack.push(&t.value),
            _ => {}
        }
    }
    out
}

/// `text` with every `${env:NAME}` / `${NAME}` replaced from `env` (the
/// default after `:-` when unset); unknown names are left as written.
fn substitute_env(text: &str, env: &BTreeMap<String, String>) -> String {
    let Ok(re) = &*ENV_REFERENCE else {
        return text.to_string();
    };
    re.replace_all(text, |c: &regex::Captures<'_>| {
        match (env.get(&c[1]), c.get(2)) {
            (Some(v), _) => v.clone(),
            (None, Some(default)) => default.as_str().trim_start_matches(":-").to_string(),
            (None, None) => c[0].to_string(),
        }
    })
    .into_owned()
}

static REQUIRED_VARIABLE: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):?\?[^}]*\}$"));

/// Checks that a password in `env` is not written into the file: either
/// `var` is exactly a required variable (`${NAME:?message}`, which makes
/// Compose refuse to start without it), or `var__FILE`/`var_FILE` names a
/// file mounted from a secret. Returns the variable name used, if any.
fn required_password(
    stack: &Stack,
    service: &Service,
    var: &str,
    file_vars: &[String],
    fallback: &str,
    findings: &mut Vec<Finding>,
) -> Option<String> {
    let file = &stack.path;
    match service.environment.get(var) {
        Some(value) => {
            let captures = match &*REQUIRED_VARIABLE {
                Ok(re) => re.captures(value),
                Err(_) => None,
            };
            match captures {
                Some(c) => Some(c[1].to_string()),
                None => {
                    let why = if value.starts_with("${") && value.contains('-') {
                        "has a default, which becomes everyone's password"
                    } else if value.starts_with("${") {
                        "is an optional variable, so it may be empty"
                    } else {
                        "is written into the file"
                    };
                    findings.push(finding(
                        file,
                        format!(
                            "service {}: {var} {why}; write {var}: ${{NAME:?set NAME}} so Compose refuses to start until the user sets it",
                            service.name
                        ),
                    ));
                    None
                }
            }
        }
        None => {
            let file_var = file_vars
                .iter()
                .find_map(|v| service.environment.get(v).map(|path| (v, path)));
            match file_var {
                Some((v, path)) => {
                    let mounted = service.secrets.values().any(|t| t == path)
                        || stack.host_path(service, path).is_some();
                    if !mounted {
                        findings.push(finding(
                            file,
                            format!(
                                "service {}: {v}={path} is neither a secret nor a bind mount of this service; mount the password file there",
                                service.name
                            ),
                        ));
                    }
                    None
                }
                None => {
                    findings.push(finding(
                        file,
                        format!(
                            "service {}: no {var} (nor {}), so it falls back to {fallback}; set {var}: ${{NAME:?set NAME}}",
                            service.name,
                            file_vars.join(" / ")
                        ),
                    ));
                    None
                }
            }
        }
    }
}

// ------------------------------------------------------------------ checks

/// One of the checks below.
pub type Check = fn(&Stack) -> Result<(), ComposeError>;

/// Runs every check below and reports all their findings together.
pub fn check_all(stack: &Stack) -> Result<(), ComposeError> {
    let checks: [Check; 11] = [
        check_mounts,
        check_images_pinned,
        check_dockerfiles,
        check_published_ports,
        check_collector,
        check_engines,
        check_collector_exporters,
        check_grafana,
        check_postgres,
        check_prometheus_targets,
        check_healthchecks,
    ];
    let mut findings = Vec::new();
    for check in checks {
        match check(stack) {
            Ok(()) => {}
            Err(ComposeError::Findings(f)) => findings.extend(f),
            Err(other) => findings.push(finding(&stack.path, other.to_string())),
        }
    }
    finish(findings)
}

/// Every bind-mounted host path exists (Compose would otherwise create an
/// empty directory there and the service would start without its
/// configuration), and is mounted read-only (a container must not edit
/// the repository); every named volume is declared at the top level.
pub fn check_mounts(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services.values() {
        for mount in &service.mounts {
            match mount {
                Mount::Bind {
                    source,
                    host,
                    target,
                    read_only,
                } => {
                    if !host.exists() {
                        findings.push(finding(
                            &stack.path,
                            format!(
                                "service {}: bind mount {source} (-> {target}) is {}, which does not exist; paths are relative to the compose file",
                                service.name,
                                host.display()
                            ),
                        ));
                    }
                    if !read_only {
                        findings.push(finding(
                            &stack.path,
                            format!(
                                "service {}: bind mount {source} is writable; append :ro",
                                service.name
                            ),
                        ));
                    }
                }
                Mount::Volume { name, target } => {
                    if !name.is_empty() && !stack.named_volumes.contains(name) {
                        findings.push(finding(
                            &stack.path,
                            format!(
                                "service {}: volume {name} (-> {target}) is not declared under the top-level volumes:",
                                service.name
                            ),
                        ));
                    }
                }
            }
        }
    }
    for (name, file) in &stack.secret_files {
        if !file.exists() {
            findings.push(finding(
                &stack.path,
                format!(
                    "secret {name}: file {} does not exist (Compose refuses to start); document how to create it",
                    file.display()
                ),
            ));
        }
    }
    finish(findings)
}

/// Every image names one version (a tag other than `latest`, or a
/// digest), so the stack that passed these checks is the stack that runs.
pub fn check_images_pinned(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services.values() {
        match &service.image {
            Some(image) => {
                if let Some(why) = ImageRef::parse(image).unpinned() {
                    findings.push(finding(
                        &stack.path,
                        format!(
                            "service {}: image {image} {why}; pin a version (image:1.2.3 or image@sha256:…)",
                            service.name
                        ),
                    ));
                }
            }
            None => findings.push(finding(
                &stack.path,
                format!(
                    "service {}: no image:; name the image with a version (for a built image too, e.g. deltran-fleet:0.1.0)",
                    service.name
                ),
            )),
        }
    }
    finish(findings)
}

/// One instruction of a Dockerfile, continuation lines joined.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Instruction {
    keyword: String,
    rest: String,
}

fn dockerfile_instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            rest: rest.trim().to_string(),
        });
        current.clear();
    }
    out
}

/// The Dockerfile of every built service: multi-stage, every base image
/// pinned, the final stage running as a non-root user with the binary the
/// build produces as its entrypoint, Cargo's caches in cache mounts, and a
/// `.dockerignore` keeping `target/` and `.git` out of the build context.
pub fn check_dockerfiles(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    let mut seen = BTreeSet::new();
    for service in stack.services.values() {
        let Some(build) = &service.build else {
            continue;
        };
        if !seen.insert(build.dockerfile.clone()) {
            continue;
        }
        if !build.dockerfile.is_file() {
            findings.push(finding(
                &stack.path,
                format!(
                    "service {}: build.dockerfile is {}, which does not exist (it is relative to build.context)",
                    service.name,
                    build.dockerfile.display()
                ),
            ));
            continue;
        }
        let text = read_text(&build.dockerfile)?;
        findings.extend(dockerfile_findings(&build.dockerfile, &text));
        let ignore = build.context.join(".dockerignore");
        match std::fs::read_to_string(&ignore) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().map(str::trim).collect();
                for (what, accepted) in [
                    (
                        "target",
                        &["target", "/target", "target/", "**/target", "**/target/"][..],
                    ),
                    (".git", &[".git", "/.git", ".git/"][..]),
                ] {
                    if !lines.iter().any(|l| accepted.contains(l)) {
                        findings.push(finding(
                            &ignore,
                            format!(
                                "add `{}` so the build context leaves {what} out",
                                accepted[0]
                            ),
                        ));
                    }
                }
            }
            Err(_) => findings.push(finding(
                &ignore,
                "missing: add one excluding target/ and .git from the build context",
            )),
        }
    }
    finish(findings)
}

/// The findings for one Dockerfile's text (see [`check_dockerfiles`]).
pub fn dockerfile_findings(path: &Path, text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let instructions = dockerfile_instructions(text);
    let mut stages: Vec<String> = Vec::new();
    let mut final_stage_start = 0;
    for (i, ins) in instructions.iter().enumerate() {
        if ins.keyword != "FROM" {
            continue;
        }
        final_stage_start = i;
        let words: Vec<&str> = ins
            .rest
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let Some(image) = words.first() else {
            findings.push(finding(path, "a FROM without an image"));
            continue;
        };
        // An earlier stage's name is not an image to pin.
        let earlier_stage = stages.iter().any(|s| s == image);
        if let [_, as_kw, name] = words.as_slice()
            && as_kw.eq_ignore_ascii_case("as")
        {
            stages.push(name.to_string());
        }
        if *image == "scratch" || earlier_stage {
            continue;
        }
        if let Some(why) = ImageRef::parse(image).unpinned() {
            findings.push(finding(
                path,
                format!("FROM {image} {why}; pin a version (image:1.2.3 or image@sha256:…)"),
            ));
        }
    }
    let from_count = instructions.iter().filter(|i| i.keyword == "FROM").count();
    if from_count < 2 {
        findings.push(finding(
            path,
            "single stage: build in one stage and copy only the binary into a small runtime stage",
        ));
    }
    let final_stage = &instructions[final_stage_start.min(instructions.len())..];
    if let Some(from) = final_stage.first()
        && (from.rest.contains("rust:") || from.rest.contains("cargo"))
    {
        findings.push(finding(
            path,
            format!("the runtime stage is FROM {}: the Rust toolchain does not belong in the image; use a small base (distroless, debian-slim)", from.rest),
        ));
    }
    match final_stage.iter().rev().find(|i| i.keyword == "USER") {
        Some(user) => {
            let name = user.rest.split(':').next().unwrap_or_default();
            if name == "root" || name == "0" {
                findings.push(finding(
                    path,
                    format!("the runtime stage runs as USER {}; use a non-root user (e.g. 65532:65532)", user.rest),
                ));
            }
        }
        None => findings.push(finding(
            path,
            "the runtime stage has no USER, so it runs as root; add USER 65532:65532 (or the base's non-root user)",
        )),
    }
    let built = instructions
        .iter()
        .filter(|i| i.keyword == "RUN" && i.rest.contains("cargo build"))
        .find_map(|i| {
            let words: Vec<&str> = i.rest.split_whitespace().collect();
            words
                .windows(2)
                .find(|w| w[0] == "--bin")
                .map(|w| w[1].to_string())
        });
    for run in instructions
        .iter()
        .filter(|i| i.keyword == "RUN" && i.rest.contains("cargo build"))
    {
        if !run.rest.contains("--mount=type=cache") {
            findings.push(finding(
                path,
                "`cargo build` runs without cache mounts; add --mount=type=cache for the registry and target/",
            ));
        }
    }
    match final_stage.iter().rev().find(|i| i.keyword == "ENTRYPOINT") {
        Some(entrypoint) => {
            let first = serde_json::from_str::<Vec<String>>(&entrypoint.rest)
                .ok()
                .and_then(|v| v.into_iter().next());
            match (first, &built) {
                (None, _) => findings.push(finding(
                    path,
                    format!(
                        "ENTRYPOINT {} is not the exec (JSON) form; without a shell in the image only the exec form runs",
                        entrypoint.rest
                    ),
                )),
                (Some(first), Some(bin)) if Path::new(&first).file_name().and_then(|f| f.to_str()) != Some(bin) => {
                    findings.push(finding(
                        path,
                        format!("ENTRYPOINT runs {first}, but the build produces `{bin}`; start that binary"),
                    ));
                }
                _ => {}
            }
        }
        None => findings.push(finding(path, "the runtime stage has no ENTRYPOINT")),
    }
    findings
}

/// The files a Dockerfile's final stage adds (COPY/ADD destinations), so
/// a health check can be checked to run something the image has.
fn final_stage_files(text: &str) -> Vec<String> {
    let instructions = dockerfile_instructions(text);
    let start = instructions
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .unwrap_or(0);
    instructions[start..]
        .iter()
        .filter(|i| i.keyword == "COPY" || i.keyword == "ADD")
        .filter_map(|i| i.rest.split_whitespace().last().map(str::to_string))
        .collect()
}

/// Every published port is bound to 127.0.0.1 (a laptop's stack must not
/// be reachable from the network: Grafana, Prometheus and the OTLP
/// receivers have no TLS here), and publishes a port the service listens on.
pub fn check_published_ports(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services.values() {
        if service.ports.is_empty() {
            continue;
        }
        let listeners = stack.listeners(service, &mut findings);
        for port in &service.ports {
            if port.host_ip.as_deref() != Some("127.0.0.1") {
                findings.push(finding(
                    &stack.path,
                    format!(
                        "service {}: port {:?} is published on every address; write 127.0.0.1:<host port>:<container port>",
                        service.name, port.spec
                    ),
                ));
            }
            match port.target {
                Some(target) => {
                    if service.kind() != Kind::Other && !listeners.iter().any(|l| l.port == target)
                    {
                        findings.push(finding(
                            &stack.path,
                            format!(
                                "service {}: port {:?} publishes container port {target}, which it does not listen on (it listens on: {})",
                                service.name,
                                port.spec,
                                listeners.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                            ),
                        ));
                    }
                }
                None => findings.push(finding(
                    &stack.path,
                    format!(
                        "service {}: port {:?} has no single container port",
                        service.name, port.spec
                    ),
                )),
            }
        }
    }
    finish(findings)
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

/// What every engine needs to find the rest of the stack: listening on
/// every interface; `OTEL_EXPORTER_OTLP_ENDPOINT` at the collector's OTLP
/// receiver for the protocol it uses; a `DELTRAN_<ENGINE>_URL` for each
/// other engine naming that engine's service and port (the default is
/// 127.0.0.1, the engine's own container); NATS; the database URL, with
/// the user, database and password variable PostgreSQL is started with.
pub fn check_engines(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    let file = &stack.path;
    let engines = stack.engines();
    if engines.is_empty() {
        findings.push(finding(
            file,
            "no engine service (command: [engine, <kind>])",
        ));
    }
    for (kind, service) in &engines {
        let env = &service.environment;
        let name = &service.name;
        if env.get("DELTRAN_HOST").map(String::as_str) != Some("0.0.0.0") {
            findings.push(finding(
                file,
                format!("service {name}: set DELTRAN_HOST: 0.0.0.0 (engines listen on 127.0.0.1 by default, unreachable from other containers)"),
            ));
        }
        // OTLP.
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
                if let Some((_, target)) = stack.resolve(file, &what, url, &[protocol], &mut findings)
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
        // Peers.
        for (peer_kind, peer) in &engines {
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
            match env.get(&var) {
                None => findings.push(finding(
                    file,
                    format!("service {name}: no {var}, so it calls 127.0.0.1 (its own container) for {peer_kind}; set {var}: http://{}:{port}", peer.name),
                )),
                Some(url) => {
                    let what = format!("service {name}: {var}");
                    if let Some((_, target)) = stack.resolve(file, &what, url, &[Protocol::Http], &mut findings)
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
        // NATS.
        match env.get("DELTRAN_NATS_URL") {
            Some(url) => {
                stack.resolve(
                    file,
                    &format!("service {name}: DELTRAN_NATS_URL"),
                    url,
                    &[Protocol::Nats],
                    &mut findings,
                );
            }
            None => findings.push(finding(
                file,
                format!("service {name}: no DELTRAN_NATS_URL, so it looks for NATS on 127.0.0.1; set it to the NATS service"),
            )),
        }
        // Database.
        if let Some(url) = env.get("DELTRAN_DATABASE_URL") {
            let what = format!("service {name}: DELTRAN_DATABASE_URL");
            if let Some((endpoint, postgres)) =
                stack.resolve(file, &what, url, &[Protocol::Postgres], &mut findings)
            {
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
                let used = endpoint
                    .password
                    .as_deref()
                    .and_then(|p| match &*REQUIRED_VARIABLE {
                        Ok(re) => re.captures(p).map(|c| c[1].to_string()),
                        Err(_) => None,
                    });
                let expected =
                    penv.get("POSTGRES_PASSWORD")
                        .and_then(|p| match &*REQUIRED_VARIABLE {
                            Ok(re) => re.captures(p).map(|c| c[1].to_string()),
                            Err(_) => None,
                        });
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
        }
    }
    finish(findings)
}

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
            let protocols: &[Protocol] = match kind {
                "otlp" => &[Protocol::OtlpGrpc],
                "otlphttp" => &[Protocol::OtlpHttp, Protocol::Http],
                "prometheusremotewrite" => &[Protocol::Http],
                _ => continue,
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
            match (kind, target.kind()) {
                ("otlphttp", Kind::Prometheus) => {
                    if endpoint.path != "/api/v1/otlp" {
                        findings.push(finding(file, format!("{what} = {url:?}: Prometheus' OTLP receiver is at /api/v1/otlp (the exporter appends /v1/metrics)")));
                    }
                    if !has_flag(&target.args(), "web.enable-otlp-receiver") {
                        findings.push(finding(file, format!("service {}: add --web.enable-otlp-receiver, or Prometheus refuses the collector's {name}", target.name)));
                    }
                }
                ("prometheusremotewrite", Kind::Prometheus)
                    if !has_flag(&target.args(), "web.enable-remote-write-receiver") =>
                {
                    findings.push(finding(file, format!("service {}: add --web.enable-remote-write-receiver for the collector's {name}", target.name)));
                }
                ("otlphttp", Kind::Loki) => {
                    if endpoint.path != "/otlp" {
                        findings.push(finding(file, format!("{what} = {url:?}: Loki's OTLP endpoint is /otlp (the exporter appends /v1/logs)")));
                    }
                    let mut scratch = Vec::new();
                    if let Some((path, loki)) =
                        stack.config_file(target, "config.file", &mut scratch)
                    {
                        let allowed = loki
                            .get("limits_config")
                            .and_then(|l| l.get("allow_structured_metadata"))
                            .and_then(Value::as_bool);
                        if allowed == Some(false) {
                            findings.push(finding(&path, "limits_config.allow_structured_metadata is false: Loki refuses OTLP logs with attributes; set it to true"));
                        }
                    }
                }
                ("otlphttp", Kind::Grafana | Kind::Alertmanager) => findings.push(finding(
                    file,
                    format!("{what} = {url:?}: {} does not receive OTLP", target.name),
                )),
                _ => {}
            }
        }
    }
    finish(findings)
}

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
            &["GF_SECURITY_ADMIN_PASSWORD__FILE".to_string()],
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
        // Dashboard providers: their path must be a mounted directory with dashboards.
        for provider_file in yaml_files(&host.join("dashboards")) {
            let Ok(doc) = read_yaml(&provider_file) else {
                findings.push(finding(&provider_file, "not valid YAML"));
                continue;
            };
            let providers = doc.get("providers").and_then(Value::as_sequence);
            for provider in providers.into_iter().flatten() {
                let Some(path) = provider
                    .get("options")
                    .and_then(|o| o.get("path"))
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                let dashboards = stack.host_path(service, path);
                let count = dashboards
                    .as_ref()
                    .and_then(|d| std::fs::read_dir(d).ok())
                    .map(|entries| {
                        entries
                            .filter_map(Result::ok)
                            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                            .count()
                    })
                    .unwrap_or(0);
                if count == 0 {
                    findings.push(finding(
                        file,
                        format!(
                            "service {}: the dashboard provider in {} loads {path}, where no dashboard (*.json) is mounted; mount deploy/grafana/dashboards at {path}",
                            service.name,
                            provider_file.display()
                        ),
                    ));
                }
            }
        }
        // Datasources.
        for datasource_file in yaml_files(&host.join("datasources")) {
            let Ok(doc) = read_yaml(&datasource_file) else {
                findings.push(finding(&datasource_file, "not valid YAML"));
                continue;
            };
            let datasources = doc.get("datasources").and_then(Value::as_sequence);
            for datasource in datasources.into_iter().flatten() {
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
                    &mut findings,
                );
            }
        }
    }
    finish(findings)
}

/// PostgreSQL's password is one the user sets, never written in the file.
pub fn check_postgres(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services_of(&Kind::Postgres) {
        required_password(
            stack,
            service,
            "POSTGRES_PASSWORD",
            &["POSTGRES_PASSWORD_FILE".to_string()],
            "no password at all (the image refuses to start, or trusts everyone)",
            &mut findings,
        );
    }
    finish(findings)
}

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

/// Prometheus scrapes and alerts what the stack runs: every target in the
/// file_sd files its mounted configuration reads (compose mounts its own
/// over `targets/`) names a service and a port it listens on; an engine
/// that pushes its metrics over OTLP is not also scraped (every series
/// would be stored twice and every sum doubled), and a scraped engine
/// serves `/metrics`.
pub fn check_prometheus_targets(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services_of(&Kind::Prometheus) {
        let config_path = flag(&service.args(), "config.file")
            .unwrap_or_else(|| "/etc/prometheus/prometheus.yml".into());
        let Some(host_config) = stack.host_path(service, &config_path) else {
            findings.push(finding(
                &stack.path,
                format!("service {}: --config.file={config_path} is not inside any bind mount; mount deploy/prometheus", service.name),
            ));
            continue;
        };
        let config = match read_yaml(&host_config) {
            Ok(c) => c,
            Err(e) => {
                findings.push(finding(&host_config, e.to_string()));
                continue;
            }
        };
        let config_dir = Path::new(&config_path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut sd_blocks: Vec<(String, &Value)> = Vec::new();
        for job in config
            .get("scrape_configs")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let name = job.get("job_name").and_then(Value::as_str).unwrap_or("?");
            sd_blocks.push((format!("job {name}"), job));
        }
        for am in config
            .get("alerting")
            .and_then(|a| a.get("alertmanagers"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            sd_blocks.push(("alerting.alertmanagers".into(), am));
        }
        for (what, block) in sd_blocks {
            let mut targets: Vec<(PathBuf, String)> = Vec::new();
            for sd in block
                .get("file_sd_configs")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                for pattern in sd
                    .get("files")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let container = config_dir.join(pattern);
                    let container = container.to_string_lossy();
                    let Some(host) = stack.host_path(service, &container) else {
                        findings.push(finding(
                            &host_config,
                            format!(
                                "{what}: target file {pattern} ({container} in {}) is not mounted",
                                service.name
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
                                service.name,
                                host.display()
                            ),
                        ));
                    }
                    for file in files {
                        match read_yaml(&file) {
                            Ok(groups) => {
                                for group in groups.as_sequence().into_iter().flatten() {
                                    for target in group
                                        .get("targets")
                                        .and_then(Value::as_sequence)
                                        .into_iter()
                                        .flatten()
                                        .filter_map(Value::as_str)
                                    {
                                        targets.push((file.clone(), target.to_string()));
                                    }
                                }
                            }
                            Err(e) => findings.push(finding(&file, e.to_string())),
                        }
                    }
                }
            }
            for static_config in block
                .get("static_configs")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                for target in static_config
                    .get("targets")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    targets.push((host_config.clone(), target.to_string()));
                }
            }
            for (file, target) in targets {
                let Some((_, scraped)) = stack.resolve(
                    &file,
                    &format!("{what} (Prometheus service {}): target", service.name),
                    &format!("http://{target}"),
                    &[Protocol::Http],
                    &mut findings,
                ) else {
                    continue;
                };
                if let Kind::Engine(_) = scraped.kind() {
                    let exporters = scraped
                        .environment
                        .get("OTEL_METRICS_EXPORTER")
                        .cloned()
                        .unwrap_or_else(|| "otlp".into());
                    let list: Vec<&str> = exporters.split(',').map(str::trim).collect();
                    if list.contains(&"otlp") {
                        findings.push(finding(
                            &file,
                            format!(
                                "target {target}: {} pushes its metrics over OTLP (OTEL_METRICS_EXPORTER={exporters}) and would be scraped too, storing every series twice; drop the target or set OTEL_METRICS_EXPORTER=prometheus in {}",
                                scraped.name,
                                stack.path.display()
                            ),
                        ));
                    }
                    if !list.contains(&"prometheus") {
                        findings.push(finding(
                            &file,
                            format!(
                                "target {target}: {} does not serve /metrics (OTEL_METRICS_EXPORTER={exporters} has no prometheus)",
                                scraped.name
                            ),
                        ));
                    }
                }
            }
        }
    }
    finish(findings)
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

/// Health checks can run: exec form (the fleet image has no shell), a
/// program the image has (for the fleet image: a file its Dockerfile's
/// final stage adds), and an URL on the container's own loopback at a
/// port the service listens on.
pub fn check_healthchecks(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    let file = &stack.path;
    for service in stack.services.values() {
        let Some((form, rest)) = service.healthcheck.split_first() else {
            continue;
        };
        let name = &service.name;
        if form == "NONE" {
            continue;
        }
        if let Some(build) = &service.build {
            if form != "CMD" {
                findings.push(finding(
                    file,
                    format!("service {name}: healthcheck {form} needs a shell, which the fleet image does not have; use [CMD, <program>, …]"),
                ));
            } else if let Some(program) = rest.first()
                && let Ok(text) = std::fs::read_to_string(&build.dockerfile)
            {
                let files = final_stage_files(&text);
                if !files.iter().any(|f| f == program) {
                    findings.push(finding(
                        file,
                        format!(
                            "service {name}: healthcheck runs {program}, which {} does not put in the image (it adds: {}); use one of those, by absolute path",
                            build.dockerfile.display(),
                            files.join(", ")
                        ),
                    ));
                }
            }
        }
        let listeners = stack.listeners(service, &mut Vec::new());
        for arg in rest {
            if !(arg.starts_with("http://") || arg.starts_with("https://")) {
                continue;
            }
            match Endpoint::parse(arg) {
                Ok(endpoint) => {
                    if !matches!(endpoint.host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
                        findings.push(finding(
                            file,
                            format!("service {name}: healthcheck URL {arg} leaves the container; probe 127.0.0.1"),
                        ));
                    }
                    if service.kind() != Kind::Other
                        && !listeners.iter().any(|l| l.port == endpoint.port)
                    {
                        findings.push(finding(
                            file,
                            format!(
                                "service {name}: healthcheck URL {arg} is not a port it listens on ({})",
                                listeners.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                            ),
                        ));
                    }
                }
                Err(why) => findings.push(finding(
                    file,
                    format!("service {name}: healthcheck URL {arg}: {why}"),
                )),
            }
        }
    }
    finish(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let r = ImageRef::parse("gcr.io/distroless/cc-debian12:nonroot");
        assert_eq!(r.repository, "distroless/cc-debian12");
        assert_eq!(r.tag.as_deref(), Some("nonroot"));
        assert!(ImageRef::parse("grafana/grafana").unpinned().is_some());
        assert!(
            ImageRef::parse("grafana/grafana:latest")
                .unpinned()
                .is_some()
        );
        assert!(ImageRef::parse("localhost:5000/x").unpinned().is_some());
        assert!(ImageRef::parse("localhost:5000/x:1").unpinned().is_none());
        assert!(ImageRef::parse("x@sha256:00").unpinned().is_none());
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse(
            "postgres://deltran:${POSTGRES_PASSWORD:?set it in deploy/compose/.env}@postgres:5432/deltran",
        )
        .unwrap();
        assert_eq!(e.host, "postgres");
        assert_eq!(e.port, 5432);
        assert_eq!(e.user.as_deref(), Some("deltran"));
        assert_eq!(
            e.password.as_deref(),
            Some("${POSTGRES_PASSWORD:?set it in deploy/compose/.env}")
        );
        assert_eq!(e.path, "/deltran");
        let e = Endpoint::parse("tempo:4317").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.scheme), ("tempo", 4317, None));
        assert!(Endpoint::parse("http://${HOST}:80").is_err());
        assert!(Endpoint::parse("tempo").is_err());
    }

    #[test]
    fn ports_and_mounts() {
        let p = PortMapping::parse(&Value::String("127.0.0.1:3000:3001".into()));
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.target, Some(3001));
        let p = PortMapping::parse(&Value::String("3000:3000".into()));
        assert_eq!(p.host_ip, None);
        let m = Mount::parse(&Value::String("../x:/etc/x:ro".into()), Path::new("/a/b")).unwrap();
        assert_eq!(
            m,
            Mount::Bind {
                source: "../x".into(),
                host: PathBuf::from("/a/x"),
                target: "/etc/x".into(),
                read_only: true
            }
        );
    }

    #[test]
    fn flags_in_both_spellings() {
        let args: Vec<String> = ["-config.file=/a", "--web.listen-address", "0.0.0.0:1"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag(&args, "config.file").as_deref(), Some("/a"));
        assert_eq!(
            flag(&args, "web.listen-address").as_deref(),
            Some("0.0.0.0:1")
        );
    }

    #[test]
    fn env_references_skip_escapes_and_comments() {
        let v: Value = serde_yaml_ng::from_str(
            "# ${env:IN_COMMENT}\na: ${env:A}\nb: '$${env:ESCAPED}'\nc: ${env:C:-x}\n",
        )
        .unwrap();
        let refs = env_references(&v);
        let names: Vec<(&str, bool)> = refs
            .iter()
            .map(|r| (r.name.as_str(), r.has_default))
            .collect();
        assert_eq!(names, [("A", false), ("C", true)]);
    }
}
