//! Pod security and resources: what the restricted Pod Security Standard
//! enforces (non-root, read-only root filesystem, no privilege escalation,
//! every capability dropped, RuntimeDefault seccomp) and the requests and
//! limits a scheduler needs, so the namespaces can enforce the standard.

use serde_json::Value;

use super::error::Problems;
use super::json::{array_at, str_at};
use super::{K8sError, Manifest};

/// A boolean of the container's securityContext, or else the pod's.
fn effective_bool(container: &Value, pod: &Value, field: &str) -> Option<bool> {
    container
        .pointer(&format!("/securityContext/{field}"))
        .or_else(|| pod.pointer(&format!("/securityContext/{field}")))
        .and_then(Value::as_bool)
}

/// Every container runs as non-root with a read-only root filesystem, no
/// privilege escalation, every capability dropped, the RuntimeDefault
/// seccomp profile, and CPU and memory requests and limits: what the
/// restricted Pod Security Standard enforces (and a scheduler needs), so
/// the namespaces can enforce it.
pub fn check_pod_security(m: &Manifest) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    for w in m.workloads() {
        for c in w.containers() {
            let at = w.container_id(c);
            if effective_bool(c, w.pod, "runAsNonRoot") != Some(true) {
                problems.push(format!(
                    "{at}: set securityContext.runAsNonRoot: true (pod or container)"
                ));
            }
            let uid = c
                .pointer("/securityContext/runAsUser")
                .or_else(|| w.pod.pointer("/securityContext/runAsUser"))
                .and_then(Value::as_u64);
            if uid == Some(0) {
                problems.push(format!(
                    "{at}: runAsUser is 0 (root); use the image's non-root uid"
                ));
            }
            if c.pointer("/securityContext/readOnlyRootFilesystem")
                .and_then(Value::as_bool)
                != Some(true)
            {
                problems.push(format!(
                    "{at}: set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where it writes"
                ));
            }
            if c.pointer("/securityContext/allowPrivilegeEscalation")
                .and_then(Value::as_bool)
                != Some(false)
            {
                problems.push(format!(
                    "{at}: set securityContext.allowPrivilegeEscalation: false"
                ));
            }
            let drops_all = array_at(c, "/securityContext/capabilities/drop")
                .iter()
                .any(|d| d.as_str() == Some("ALL"));
            if !drops_all {
                problems.push(format!(
                    "{at}: set securityContext.capabilities.drop: [ALL]"
                ));
            }
            if !array_at(c, "/securityContext/capabilities/add").is_empty() {
                problems.push(format!("{at}: remove securityContext.capabilities.add"));
            }
            let seccomp = str_at(c, "/securityContext/seccompProfile/type")
                .or_else(|| str_at(w.pod, "/securityContext/seccompProfile/type"));
            if seccomp != Some("RuntimeDefault") {
                problems.push(format!(
                    "{at}: set securityContext.seccompProfile.type: RuntimeDefault (pod or container)"
                ));
            }
            for kind in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    if c.pointer(&format!("/resources/{kind}/{resource}"))
                        .is_none()
                    {
                        problems.push(format!("{at}: set resources.{kind}.{resource}"));
                    }
                }
            }
        }
        for flag in ["hostNetwork", "hostPID", "hostIPC"] {
            if w.pod.get(flag).and_then(Value::as_bool) == Some(true) {
                problems.push(format!("{}: remove {flag}: true", w.id()));
            }
        }
        for v in array_at(w.pod, "/volumes") {
            if v.get("hostPath").is_some() {
                problems.push(format!(
                    "{}: volume {} is a hostPath; use an emptyDir",
                    w.id(),
                    str_at(v, "/name").unwrap_or("?")
                ));
            }
        }
    }
    problems.finish("pod security and resources")
}
