//! The Kubernetes manifests of `deploy/k8s`, checked offline.
//!
//! No cluster runs where these checks run, so each overlay is rendered the
//! way `kubectl apply -k` renders it (`kubectl kustomize`), validated against
//! the API schemas of one Kubernetes version (`kubernetes-validate --strict`,
//! which rejects unknown fields the API server would silently drop), and then
//! checked for what no schema knows: that the collector files in the
//! ConfigMaps are the files in `otel-collector/`, that every reference
//! (ConfigMap, key, Secret, ServiceAccount, `${env:…}`, `$(VAR)`) resolves,
//! that the NetworkPolicies let exactly the intended traffic through, that
//! probes hit declared ports, and that prod sends nothing in clear text.
//!
//! Every problem names the object and what to change, because whoever reads
//! it has a YAML file open, not this code.
//!
//! The rendered [`Manifest`] and its [`Workload`]s are the model; each
//! `check_*` function is one concern, in its own module.

mod budgets;
mod collector_config;
mod collector_files;
mod collectors;
mod engines;
mod env;
mod error;
mod gateway;
mod json;
mod manifest;
mod mounts;
mod network_policy;
mod pod_security;
mod prod_export;
mod rbac;
mod references;
mod render;
mod schema;
mod secrets;
mod services;
mod traffic;
mod workload;

use std::path::{Path, PathBuf};

pub use budgets::{SINGLE_REPLICA_ENGINES, check_disruption_budgets};
pub use collector_config::collector_env_refs;
pub use collector_files::check_collector_files;
pub use collectors::{
    COLLECTOR_HEALTH_PORT, COLLECTOR_METRICS_PORT, COLLECTOR_QUEUE_DIR, OTLP_PORTS,
    check_collectors, collector_image,
};
pub use engines::{ENGINE_IMAGE, METRICS_PORT_OFFSET, check_engines, engines};
pub use env::{EnvValue, container_env};
pub use error::K8sError;
pub use gateway::check_gateway_routing;
pub use json::object_id;
pub use manifest::Manifest;
pub use mounts::{MountedFile, mounted_file};
pub use network_policy::{PodRef, ingress_allowed};
pub use pod_security::check_pod_security;
pub use prod_export::{check_collectors_export_securely, check_engines_export_securely};
pub use rbac::K8SATTRIBUTES_PERMISSIONS;
pub use references::check_references;
pub use render::render;
pub use schema::{KUBERNETES_VERSION, validate_schema};
pub use secrets::{ExternalSecret, external_secrets};
pub use traffic::{PROMETHEUS_LABEL, PROMETHEUS_NAMESPACE, check_network_policies};
pub use workload::Workload;

/// The overlays under `deploy/k8s/overlays`.
pub const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "prod"];

/// `deploy/k8s` under the repository root.
pub fn k8s_dir(repo_root: &Path) -> PathBuf {
    repo_root.join("deploy").join("k8s")
}

/// `deploy/k8s/overlays/<environment>`.
pub fn overlay_dir(repo_root: &Path, environment: &str) -> PathBuf {
    k8s_dir(repo_root).join("overlays").join(environment)
}
