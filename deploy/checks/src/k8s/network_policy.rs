//! NetworkPolicies evaluated as the cluster's network plugin would: for a
//! pod, a port and a peer, whether any policy selecting the pod lets the
//! peer in. Policies are easy to write and impossible to eyeball, so the
//! intended traffic is checked against this evaluation.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Manifest;
use super::json::{array_at, object_id, str_at};
use super::workload::Workload;

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
    /// The pods of workload `w`.
    pub(super) fn of(w: &Workload<'_>) -> PodRef {
        PodRef {
            what: format!("pods of {}", w.id()),
            namespace: w.namespace.clone(),
            labels: w.pod_labels.clone(),
            ports: w.ports(),
        }
    }

    /// A pod of no rendered workload (`what` in problems), with `labels`.
    pub(super) fn outsider(what: &str, namespace: &str, labels: &[(&str, &str)]) -> PodRef {
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

/// Whether a full label selector (matchLabels and matchExpressions)
/// selects `labels`; an empty one selects everything.
fn label_selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector
        .pointer("/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        })
        .unwrap_or(true);
    let expressions = array_at(selector, "/matchExpressions").iter().all(|e| {
        let key = str_at(e, "/key").unwrap_or_default();
        let values: Vec<&str> = array_at(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let have = labels.get(key).map(String::as_str);
        match str_at(e, "/operator") {
            Some("In") => have.is_some_and(|h| values.contains(&h)),
            Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
            Some("Exists") => have.is_some(),
            Some("DoesNotExist") => have.is_none(),
            _ => false,
        }
    });
    match_labels && expressions
}

/// The NetworkPolicies in `to`'s namespace whose podSelector selects it.
fn policies_selecting<'a>(m: &'a Manifest, to: &'a PodRef) -> impl Iterator<Item = &'a Value> {
    m.of_kind("NetworkPolicy")
        .filter(|p| str_at(p, "/metadata/namespace") == Some(to.namespace.as_str()))
        .filter(|p| {
            p.pointer("/spec/podSelector")
                .is_some_and(|sel| label_selector_matches(sel, &to.labels))
        })
}

/// Whether `from` may open a TCP connection to `to` on `port` under the
/// rendered NetworkPolicies (ingress side; egress is not restricted here).
/// An `ipBlock` peer counts as matching any pod: the conservative answer
/// for checks that something is denied.
pub fn ingress_allowed(m: &Manifest, from: &PodRef, to: &PodRef, port: u16) -> bool {
    let from_ns_labels = m.namespace_labels(&from.namespace);
    let selecting: Vec<&Value> = policies_selecting(m, to)
        .filter(|p| {
            let types = array_at(p, "/spec/policyTypes");
            types.is_empty() || types.iter().any(|t| t.as_str() == Some("Ingress"))
        })
        .collect();
    if selecting.is_empty() {
        return true;
    }
    let port_matches = |p: &Value| -> bool {
        if str_at(p, "/protocol").is_some_and(|proto| proto != "TCP") {
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
        let policy_ns = str_at(p, "/metadata/namespace").unwrap_or_default();
        array_at(p, "/spec/ingress").iter().any(|rule| {
            let froms = array_at(rule, "/from");
            let ports = array_at(rule, "/ports");
            (froms.is_empty() || froms.iter().any(|peer| peer_matches(policy_ns, peer)))
                && (ports.is_empty() || ports.iter().any(port_matches))
        })
    })
}

/// What to change so that traffic to `to` is (or is not) let in: the
/// policies selecting it, or a policy to add.
pub(super) fn allowing_policies(m: &Manifest, to: &PodRef) -> String {
    let names: Vec<String> = policies_selecting(m, to).map(object_id).collect();
    if names.is_empty() {
        format!("no NetworkPolicy selects {}; add one", to.what)
    } else {
        format!("change {}", names.join(", "))
    }
}
