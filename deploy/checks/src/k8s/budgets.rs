//! Replicas and PodDisruptionBudgets: enough pods that a drain leaves one
//! serving, budgets that let a drain through at all (one that allows no
//! disruption hangs every node upgrade), and exactly one pod for engines
//! whose state lives in memory.

use serde_json::Value;

use super::error::Problems;
use super::json::{object_id, str_at};
use super::services::{selected_workloads, selector_matches_labels};
use super::workload::Workload;
use super::{K8sError, Manifest};

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
        let ns = str_at(pdb, "/metadata/namespace").unwrap_or("default");
        if selected_workloads(m, ns, pdb.pointer("/spec/selector/matchLabels")).is_empty() {
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
        let Some(pdb) = budget_of(&pdbs, &w) else {
            problems.push(format!(
                "{}: no PodDisruptionBudget selects its pods",
                w.id()
            ));
            continue;
        };
        match allowed_down(pdb, replicas) {
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

/// The first budget in `w`'s namespace that selects its pods.
fn budget_of<'a>(pdbs: &[&'a Value], w: &Workload<'_>) -> Option<&'a Value> {
    pdbs.iter().copied().find(|p| {
        str_at(p, "/metadata/namespace") == Some(w.namespace.as_str())
            && selector_matches_labels(
                p.pointer("/spec/selector/matchLabels")
                    .unwrap_or(&Value::Null),
                &w.pod_labels,
            )
    })
}

/// How many of `replicas` pods `pdb` lets a drain take down at once
/// (`None` unless exactly one of maxUnavailable / minAvailable is set).
fn allowed_down(pdb: &Value, replicas: u64) -> Option<u64> {
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
    match (
        pdb.pointer("/spec/maxUnavailable"),
        pdb.pointer("/spec/minAvailable"),
    ) {
        (Some(max), None) => int_or_percent(max),
        (None, Some(min)) => int_or_percent(min).map(|min| replicas.saturating_sub(min)),
        _ => None,
    }
}
