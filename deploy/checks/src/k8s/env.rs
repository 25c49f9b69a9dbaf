//! Environment variables as a container sees them: `envFrom` ConfigMaps
//! first, then `env` (which wins on a clash), each value resolved where it
//! is known before the pod runs, so checks can compare a variable with the
//! Service, port or file it must name.

use serde_json::Value;

use super::Manifest;
use super::json::{array_at, str_at};

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
    for from in array_at(container, "/envFrom") {
        if let Some(name) = str_at(from, "/configMapRef/name") {
            let prefix = str_at(from, "/prefix").unwrap_or("");
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
    for e in array_at(container, "/env") {
        let Some(name) = str_at(e, "/name") else {
            continue;
        };
        let value = if let Some(v) = e.get("value") {
            EnvValue::Literal(v.as_str().unwrap_or_default().to_string())
        } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
            let cm = str_at(r, "/name").unwrap_or_default().to_string();
            let key = str_at(r, "/key").unwrap_or_default().to_string();
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
                name: str_at(r, "/name").unwrap_or_default().to_string(),
                key: str_at(r, "/key").unwrap_or_default().to_string(),
            }
        } else if let Some(p) = str_at(e, "/valueFrom/fieldRef/fieldPath") {
            EnvValue::Field(p.to_string())
        } else if let Some(r) = str_at(e, "/valueFrom/resourceFieldRef/resource") {
            EnvValue::Resource(r.to_string())
        } else {
            EnvValue::Literal(String::new())
        };
        out.push((name.to_string(), value));
    }
    out
}

/// The value of `name` as the container sees it (the last declaration wins).
pub(super) fn env_get<'a>(env: &'a [(String, EnvValue)], name: &str) -> Option<&'a EnvValue> {
    env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
}
