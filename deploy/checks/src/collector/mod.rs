//! The collector configurations of `otel-collector/`, loaded the way the
//! collector loads them (`--config base.yaml --config <overlay>`: maps
//! merge key by key, lists and scalars of the later file replace), then
//! linted ([`lint`]), checked against the builder manifest ([`builder`]),
//! and their redaction patterns applied ([`redaction`]).
//!
//! ```
//! use deploy_checks::collector::{Deployment, load};
//! let merged = load(Deployment::ALL[0]).unwrap();
//! assert!(merged["service"]["pipelines"]["traces"].is_mapping());
//! ```

pub mod builder;
pub mod lint;
pub mod redaction;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde_yaml_ng::{Mapping, Value};

/// A collector configuration problem, naming the file or key and what to change.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not YAML the collector would accept.
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_yaml_ng::Error,
    },
    /// A file's top level is not a mapping.
    #[error(
        "{path}: the top level must be a mapping of receivers, processors, exporters, connectors, extensions and service"
    )]
    NotAMapping {
        /// The file.
        path: PathBuf,
    },
}

/// The environments the collector is configured for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// One collector on a laptop (compose) or a dev cluster.
    Dev,
    /// Kubernetes, agent and gateway tiers, plain OTLP inside the cluster.
    Staging,
    /// Kubernetes, agent and gateway tiers, mTLS and tokens, disk queues.
    Prod,
}

/// What a collector does in its environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The single dev collector: everything, no sampling.
    Single,
    /// Per node: enrich, redact, count spans, route traces by trace id.
    Agent,
    /// Behind a headless Service: tail sampling on whole traces.
    Gateway,
}

/// One collector as it is started: an environment and a role, hence its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// Its environment.
    pub environment: Environment,
    /// Its role there.
    pub role: Role,
}

impl Deployment {
    /// Every collector the repository configures.
    pub const ALL: [Deployment; 5] = [
        Deployment::new(Environment::Dev, Role::Single),
        Deployment::new(Environment::Staging, Role::Agent),
        Deployment::new(Environment::Staging, Role::Gateway),
        Deployment::new(Environment::Prod, Role::Agent),
        Deployment::new(Environment::Prod, Role::Gateway),
    ];

    const fn new(environment: Environment, role: Role) -> Deployment {
        Deployment { environment, role }
    }

    /// The overlay loaded after `base.yaml`, relative to `otel-collector/`.
    pub fn overlay(self) -> &'static str {
        match (self.environment, self.role) {
            (Environment::Dev, _) => "dev/collector.yaml",
            (Environment::Staging, Role::Gateway) => "staging/gateway.yaml",
            (Environment::Staging, _) => "staging/agent.yaml",
            (Environment::Prod, Role::Gateway) => "prod/gateway.yaml",
            (Environment::Prod, _) => "prod/agent.yaml",
        }
    }

    /// The files in `--config` order, relative to `otel-collector/`.
    pub fn files(self) -> [&'static str; 2] {
        ["base.yaml", self.overlay()]
    }

    /// Runs in Kubernetes (so `k8sattributes` can ask the API server).
    pub fn in_kubernetes(self) -> bool {
        self.environment != Environment::Dev
    }
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env = match self.environment {
            Environment::Dev => "dev",
            Environment::Staging => "staging",
            Environment::Prod => "prod",
        };
        match self.role {
            Role::Single => write!(f, "{env}"),
            Role::Agent => write!(f, "{env} agent"),
            Role::Gateway => write!(f, "{env} gateway"),
        }
    }
}

/// `otel-collector/` in this repository.
pub fn config_dir() -> PathBuf {
    crate::repo_root().join("otel-collector")
}

/// Reads one YAML file (anchors and aliases resolved, as the collector does).
pub fn read_yaml(path: &Path) -> Result<Value, CollectorError> {
    let text = std::fs::read_to_string(path).map_err(|source| CollectorError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut value: Value =
        serde_yaml_ng::from_str(&text).map_err(|source| CollectorError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
    value.apply_merge().map_err(|source| CollectorError::Yaml {
        path: path.to_path_buf(),
        source,
    })?;
    if !value.is_mapping() {
        return Err(CollectorError::NotAMapping {
            path: path.to_path_buf(),
        });
    }
    Ok(value)
}

/// Merges `overlay` into `base` as the collector's confmap does for
/// several `--config` files: mappings merge key by key, recursively; any
/// other value (lists included) replaces what was there.
///
/// ```
/// use deploy_checks::collector::merge;
/// let mut base: serde_yaml_ng::Value = serde_yaml_ng::from_str("a: {x: 1, l: [1, 2]}").unwrap();
/// let overlay = serde_yaml_ng::from_str("a: {y: 2, l: [3]}").unwrap();
/// merge(&mut base, overlay);
/// assert_eq!(base, serde_yaml_ng::from_str::<serde_yaml_ng::Value>("a: {x: 1, y: 2, l: [3]}").unwrap());
/// ```
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Mapping(base), Value::Mapping(overlay)) => merge_mappings(base, overlay),
        (base, overlay) => *base = overlay,
    }
}

fn merge_mappings(base: &mut Mapping, overlay: Mapping) {
    for (key, value) in overlay {
        match base.get_mut(&key) {
            Some(existing) => merge(existing, value),
            None => {
                base.insert(key, value);
            }
        }
    }
}

/// The merged configuration of `deployment`, from the repository's files.
pub fn load(deployment: Deployment) -> Result<Value, CollectorError> {
    load_from(&config_dir(), deployment)
}

/// The merged configuration of `deployment` from the files under `dir`.
pub fn load_from(dir: &Path, deployment: Deployment) -> Result<Value, CollectorError> {
    let mut merged = Value::Mapping(Mapping::new());
    for file in deployment.files() {
        merge(&mut merged, read_yaml(&dir.join(file))?);
    }
    Ok(merged)
}

/// `${env:NAME}` or `${NAME}`, with an optional `:-default`.
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

/// Every `${env:NAME}` or `${NAME}` (with or without a `:-default`) in
/// `text`, in order. `$${…}` is the collector's escape for a literal
/// `${…}` and is not a reference. The one reading of references that the
/// lint, the compose and the Kubernetes checks share.
///
/// ```
/// use deploy_checks::collector::env_references;
/// let names: Vec<(String, bool)> = env_references("${env:A}:4317 ${env:B:-x} $${env:C}")
///     .into_iter()
///     .map(|r| (r.name, r.has_default))
///     .collect();
/// assert_eq!(names, [("A".to_string(), false), ("B".to_string(), true)]);
/// ```
pub fn env_references(text: &str) -> Vec<EnvReference> {
    let Ok(re) = &*ENV_REFERENCE else {
        return Vec::new();
    };
    re.captures_iter(text)
        .filter(|m| {
            m.get(0)
                .is_some_and(|whole| !text[..whole.start()].ends_with('$'))
        })
        .map(|m| EnvReference {
            name: m[1].to_string(),
            has_default: m.get(2).is_some(),
        })
        .collect()
}

/// `text` with every `${env:NAME}` / `${NAME}` replaced from `env` (the
/// default after `:-` when unset); unknown names are left as written, as
/// the collector expands them.
pub fn substitute_env(text: &str, env: &BTreeMap<String, String>) -> String {
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

/// A key path in a configuration, for messages (`exporters.otlp/tempo.tls`).
pub(crate) fn key_path(parts: &[&str]) -> String {
    parts.join(".")
}
