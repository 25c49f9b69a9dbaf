//! Offline checks of the files `otel-collector/` and `deploy/` ship, for
//! the servers that cannot run here (the OpenTelemetry Collector, Docker,
//! Kubernetes): each module loads its files the way the real tool does and
//! reports what that tool (or an operator) would trip over.

pub mod collector;
pub mod compose;
pub mod k8s;

use std::path::PathBuf;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
