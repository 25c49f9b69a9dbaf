//! References between objects: every ConfigMap, key, Secret,
//! ServiceAccount, role and `$(VAR)` a workload or binding names must
//! resolve. A dangling reference renders and validates fine, and then
//! leaves a pod stuck in `CreateContainerConfigError` on the cluster.

use regex::Regex;
use serde_json::Value;

use super::env::{EnvValue, container_env};
use super::error::Problems;
use super::json::{array_at, object_id, str_at};
use super::rbac::{bindings, role_ref};
use super::secrets::{ExternalSecret, external_secret};
use super::workload::Workload;
use super::{K8sError, Manifest};

/// Every ConfigMap, ConfigMap key, Secret and ServiceAccount a workload
/// names exists — rendered, or (Secrets) listed in the README as created by
/// the operator, in that namespace and with that key — and every `$(VAR)`
/// in an env value names a variable declared earlier in the same container
/// (the kubelet leaves it unexpanded otherwise: a literal `$(TOKEN)` header).
/// A dangling reference is a pod stuck in `CreateContainerConfigError`.
pub fn check_references(m: &Manifest, secrets: &[ExternalSecret]) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    let var_ref = Regex::new(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
        .map_err(|e| K8sError::Readme(format!("internal pattern: {e}")))?;
    for w in m.workloads() {
        let scope = Namespace {
            m,
            secrets,
            ns: &w.namespace,
        };
        scope.check_service_account(&w, &mut problems);
        for v in array_at(w.pod, "/volumes") {
            scope.check_volume(&w, v, &mut problems);
        }
        for c in w.containers() {
            scope.check_container(&w, c, &var_ref, &mut problems);
        }
    }
    check_role_bindings(m, &mut problems);
    problems.finish("references")
}

/// What a workload's references resolve against: its namespace of the
/// rendered manifest, and the Secrets the README lists.
struct Namespace<'a> {
    m: &'a Manifest,
    secrets: &'a [ExternalSecret],
    ns: &'a str,
}

impl Namespace<'_> {
    /// Whether ConfigMap `name` is rendered in this namespace.
    fn config_map_exists(&self, name: &str) -> bool {
        self.m.get("ConfigMap", Some(self.ns), name).is_some()
    }

    /// Secret `name` (and its `key`, if one is named) is rendered or
    /// listed in the README.
    fn check_secret_key(&self, at: &str, name: &str, key: Option<&str>, problems: &mut Problems) {
        let ns = self.ns;
        if self.m.get("Secret", Some(ns), name).is_some() {
            return;
        }
        match external_secret(self.secrets, ns, name) {
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
    }

    /// The pod's ServiceAccount is rendered (`default` always exists).
    fn check_service_account(&self, w: &Workload<'_>, problems: &mut Problems) {
        let ns = self.ns;
        if let Some(sa) = str_at(w.pod, "/serviceAccountName")
            && sa != "default"
            && self.m.get("ServiceAccount", Some(ns), sa).is_none()
        {
            problems.push(format!(
                "{}: ServiceAccount {ns}/{sa} is not rendered; add it or fix serviceAccountName",
                w.id()
            ));
        }
    }

    /// A ConfigMap or Secret volume, and the keys its items project.
    fn check_volume(&self, w: &Workload<'_>, v: &Value, problems: &mut Problems) {
        let ns = self.ns;
        let vname = str_at(v, "/name").unwrap_or("?");
        let at = format!("{} volume {vname}", w.id());
        if let Some(cm) = str_at(v, "/configMap/name") {
            if !self.config_map_exists(cm) {
                problems.push(format!(
                    "{at}: ConfigMap {ns}/{cm} is not rendered; generate it in the overlay or fix the name"
                ));
            } else {
                let data = self.m.config_map_data(ns, cm);
                for item in array_at(v, "/configMap/items") {
                    let key = str_at(item, "/key").unwrap_or("?");
                    if !data.is_some_and(|d| d.contains_key(key)) {
                        problems.push(format!(
                            "{at}: ConfigMap {ns}/{cm} has no key {key}; fix items[].key"
                        ));
                    }
                }
            }
        }
        if let Some(secret) = str_at(v, "/secret/secretName") {
            let items = array_at(v, "/secret/items");
            if items.is_empty() {
                self.check_secret_key(&at, secret, None, problems);
            }
            for item in items {
                self.check_secret_key(&at, secret, str_at(item, "/key"), problems);
            }
        }
    }

    /// A container's `envFrom` and `env`: ConfigMaps and keys, Secrets,
    /// and `$(VAR)` expansions of variables declared before.
    fn check_container(
        &self,
        w: &Workload<'_>,
        c: &Value,
        var_ref: &Regex,
        problems: &mut Problems,
    ) {
        let ns = self.ns;
        let at = w.container_id(c);
        for from in array_at(c, "/envFrom") {
            if let Some(cm) = str_at(from, "/configMapRef/name")
                && !self.config_map_exists(cm)
            {
                problems.push(format!("{at}: envFrom ConfigMap {ns}/{cm} is not rendered"));
            }
            if let Some(secret) = str_at(from, "/secretRef/name") {
                self.check_secret_key(&at, secret, None, problems);
            }
        }
        let env = container_env(self.m, ns, c);
        for (i, (name, value)) in env.iter().enumerate() {
            match value {
                EnvValue::ConfigMap {
                    name: cm,
                    key,
                    value: None,
                } => {
                    if self.config_map_exists(cm) {
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
                    self.check_secret_key(&format!("{at} env {name}"), secret, Some(key), problems);
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

/// Every (Cluster)RoleBinding grants a rendered role to rendered
/// ServiceAccounts.
fn check_role_bindings(m: &Manifest, problems: &mut Problems) {
    for binding in bindings(m) {
        let (role_kind, role_ns, role) = role_ref(binding);
        let role_kind = role_kind.unwrap_or("?");
        let role = role.unwrap_or("?");
        if m.get(role_kind, role_ns, role).is_none() {
            problems.push(format!(
                "{}: roleRef {role_kind} {role} is not rendered",
                object_id(binding)
            ));
        }
        for subject in array_at(binding, "/subjects") {
            if str_at(subject, "/kind") != Some("ServiceAccount") {
                continue;
            }
            let name = str_at(subject, "/name").unwrap_or("?");
            let ns = str_at(subject, "/namespace").unwrap_or("?");
            if m.get("ServiceAccount", Some(ns), name).is_none() {
                problems.push(format!(
                    "{}: subject ServiceAccount {ns}/{name} is not rendered; fix subjects[].namespace/name",
                    object_id(binding)
                ));
            }
        }
    }
}
