//! RBAC as the API server evaluates it, for the one component that needs
//! it: `k8sattributes` looks pods, namespaces, nodes and ReplicaSets up,
//! and without the permission it silently attaches no Kubernetes
//! attributes. Also the role a binding grants, which references check.

use serde_json::Value;

use super::Manifest;
use super::json::{array_at, str_at};

/// What `k8sattributes` needs (contrib v0.136 README): pods, namespaces and
/// nodes (node metadata), and ReplicaSets to name a pod's Deployment.
pub const K8SATTRIBUTES_PERMISSIONS: [(&str, &str); 4] = [
    ("", "pods"),
    ("", "namespaces"),
    ("", "nodes"),
    ("apps", "replicasets"),
];

/// Every ClusterRoleBinding and RoleBinding.
pub(super) fn bindings(m: &Manifest) -> impl Iterator<Item = &Value> {
    m.of_kind("ClusterRoleBinding")
        .chain(m.of_kind("RoleBinding"))
}

/// The role a binding grants: its kind, namespace (a Role lives in the
/// binding's namespace, a ClusterRole in none) and name.
pub(super) fn role_ref(binding: &Value) -> (Option<&str>, Option<&str>, Option<&str>) {
    let kind = str_at(binding, "/roleRef/kind");
    let namespace = if kind == Some("Role") {
        str_at(binding, "/metadata/namespace")
    } else {
        None
    };
    (kind, namespace, str_at(binding, "/roleRef/name"))
}

/// Whether one rule grants `verb` on `resource` of API `group`.
fn rule_allows(rule: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let has = |field: &str, want: &str| {
        array_at(rule, field)
            .iter()
            .any(|v| v.as_str() == Some(want) || v.as_str() == Some("*"))
    };
    has("/apiGroups", group) && has("/resources", resource) && has("/verbs", verb)
}

/// Whether ServiceAccount `namespace/sa` may `verb` `resource` of API
/// `group` through a rendered binding.
pub(super) fn service_account_can(
    m: &Manifest,
    namespace: &str,
    sa: &str,
    group: &str,
    resource: &str,
    verb: &str,
) -> bool {
    bindings(m)
        .filter(|b| {
            array_at(b, "/subjects").iter().any(|subject| {
                str_at(subject, "/kind") == Some("ServiceAccount")
                    && str_at(subject, "/name") == Some(sa)
                    && str_at(subject, "/namespace") == Some(namespace)
            })
        })
        .filter_map(|b| {
            let (kind, role_ns, name) = role_ref(b);
            m.get(kind?, role_ns, name?)
        })
        .any(|role| {
            array_at(role, "/rules")
                .iter()
                .any(|r| rule_allows(r, group, resource, verb))
        })
}
