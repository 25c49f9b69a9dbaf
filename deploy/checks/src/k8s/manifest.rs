//! One rendered overlay as a list of objects, and the lookups every check
//! makes in it: by kind and name, generated ConfigMaps without their hash
//! suffix (so a content change never breaks a check), workloads with their
//! pod templates, and namespace labels as NetworkPolicies see them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::K8sError;
use super::json::{labels_of, str_at};
use super::workload::Workload;

/// The objects of one rendered overlay.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Every document, in order.
    pub objects: Vec<Value>,
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
            .filter(move |o| str_at(o, "/kind") == Some(kind))
    }

    /// One object by kind, namespace (`None` for cluster-scoped) and name.
    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&Value> {
        self.of_kind(kind).find(|o| {
            str_at(o, "/metadata/name") == Some(name)
                && str_at(o, "/metadata/namespace") == namespace
        })
    }

    /// The first object of `kind` whose name is `name`, for a test to mutate.
    pub fn find_mut(&mut self, kind: &str, name: &str) -> Option<&mut Value> {
        self.objects
            .iter_mut()
            .find(|o| str_at(o, "/kind") == Some(kind) && str_at(o, "/metadata/name") == Some(name))
    }

    /// The first ConfigMap whose name, without kustomize's hash suffix, is
    /// `base_name`.
    pub fn config_map_generated(&self, base_name: &str) -> Option<&Value> {
        self.of_kind("ConfigMap")
            .find(|o| str_at(o, "/metadata/name").is_some_and(|n| strip_hash(n) == base_name))
    }

    /// Every Deployment, DaemonSet and StatefulSet with its pod template.
    pub fn workloads(&self) -> Vec<Workload<'_>> {
        self.objects
            .iter()
            .filter(|o| {
                matches!(
                    str_at(o, "/kind"),
                    Some("Deployment" | "DaemonSet" | "StatefulSet")
                )
            })
            .filter_map(|o| {
                let pod = o.pointer("/spec/template/spec")?;
                Some(Workload {
                    kind: str_at(o, "/kind").unwrap_or_default().to_string(),
                    name: str_at(o, "/metadata/name").unwrap_or_default().to_string(),
                    namespace: str_at(o, "/metadata/namespace")
                        .unwrap_or("default")
                        .to_string(),
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

    /// The `data:` of ConfigMap `namespace/name`, if it is rendered.
    pub(super) fn config_map_data(
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
