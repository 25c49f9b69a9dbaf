//! One service of the compose file as Compose reads it: long and short
//! syntax of `ports:`, `volumes:`, `secrets:` and `environment:` turned
//! into one shape, and what the service is (engine, collector, backend),
//! which decides where its ports are read from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::image::ImageRef;
use super::read::{normalize, scalar, sequence, string_list};

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

impl Service {
    /// Reads the service `name` from its `body`, host paths resolved
    /// against `dir` (the compose file's directory).
    pub(super) fn parse(name: &str, body: &Value, dir: &Path) -> Service {
        Service {
            name: name.to_string(),
            image: body.get("image").and_then(scalar),
            build: body.get("build").map(|build| Build::parse(build, dir)),
            entrypoint: string_list(body.get("entrypoint")),
            command: string_list(body.get("command")),
            environment: parse_environment(body.get("environment")),
            ports: sequence(body, "ports").map(PortMapping::parse).collect(),
            mounts: sequence(body, "volumes")
                .filter_map(|v| Mount::parse(v, dir))
                .collect(),
            secrets: sequence(body, "secrets")
                .filter_map(secret_target)
                .collect(),
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

/// `environment:` as a list (`NAME=value`) or a mapping, values as written.
fn parse_environment(value: Option<&Value>) -> BTreeMap<String, String> {
    match value {
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
    }
}

/// One entry of a service's `secrets:`: the secret's name and the
/// container path it is mounted at (`/run/secrets/<target>` unless
/// absolute).
fn secret_target(item: &Value) -> Option<(String, String)> {
    match item {
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
    }
}

impl Build {
    /// `build:` as a context string or a mapping; the Dockerfile is
    /// relative to the context, the context to the compose file.
    fn parse(value: &Value, dir: &Path) -> Build {
        let (context, dockerfile) = match value {
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
    }
}

impl PortMapping {
    /// A short (`[ip:][published:]target[/proto]`) or long (mapping) entry.
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
    /// A short (`source:target[:mode]`) or long (mapping) entry; `None` for
    /// what is neither a bind mount nor a volume (tmpfs, …).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_mounts() -> Result<(), String> {
        let p = PortMapping::parse(&Value::String("127.0.0.1:3000:3001".into()));
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.target, Some(3001));
        let p = PortMapping::parse(&Value::String("3000:3000".into()));
        assert_eq!(p.host_ip, None);
        let m = Mount::parse(&Value::String("../x:/etc/x:ro".into()), Path::new("/a/b"))
            .ok_or("a bind mount")?;
        assert_eq!(
            m,
            Mount::Bind {
                source: "../x".into(),
                host: PathBuf::from("/a/x"),
                target: "/etc/x".into(),
                read_only: true
            }
        );
        Ok(())
    }
}
