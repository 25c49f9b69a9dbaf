//! Deployments, DaemonSets and StatefulSets with their pod templates: what
//! the checks walk. A workload knows its containers, volumes, ports and
//! replicas, and whether it is an engine or a collector, so each check
//! reads as what it requires rather than as JSON pointers.

use std::collections::BTreeMap;

use serde_json::Value;

use super::json::{array_at, str_at};

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
        array_at(self.pod, "/initContainers")
            .iter()
            .chain(array_at(self.pod, "/containers"))
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

    /// `Kind namespace/name container <name>`, as problems name a container.
    pub(super) fn container_id(&self, container: &Value) -> String {
        format!("{} container {}", self.id(), container_name(container))
    }

    /// The pod volume `name`.
    pub(super) fn volume(&self, name: &str) -> Option<&Value> {
        array_at(self.pod, "/volumes")
            .iter()
            .find(|v| str_at(v, "/name") == Some(name))
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
            .flat_map(|c| array_at(c, "/ports"))
            .filter_map(|p| {
                let number = p.pointer("/containerPort")?.as_u64()?;
                Some((
                    str_at(p, "/name").map(str::to_string),
                    u16::try_from(number).ok()?,
                ))
            })
            .collect()
    }

    /// The port a probe or Service names, as a number or by the name of a
    /// container port.
    pub(super) fn port_of(&self, port: &Value) -> Option<u16> {
        match port {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(name) => self
                .ports()
                .into_iter()
                .find(|(n, _)| n.as_deref() == Some(name))
                .map(|(_, number)| number),
            _ => None,
        }
    }
}

/// True when `c` runs an OpenTelemetry Collector image.
pub(super) fn is_collector_container(c: &Value) -> bool {
    str_at(c, "/image").is_some_and(|i| i.starts_with("otel/opentelemetry-collector"))
}

/// A container's name (`?` when it has none).
pub(super) fn container_name(c: &Value) -> &str {
    str_at(c, "/name").unwrap_or("?")
}
