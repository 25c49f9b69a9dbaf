//! Validation against the Kubernetes API schemas in strict mode: an API
//! server silently drops unknown fields, so a misspelt field is a setting
//! nobody notices is missing; only a strict schema check catches it.

use std::path::Path;

use super::K8sError;
use super::render::run;

/// The Kubernetes version the manifests are validated against: the oldest
/// release they are meant for (every API and field they use is GA there).
pub const KUBERNETES_VERSION: &str = "1.30.0";

/// Validates multi-document YAML against the API schemas of `version` with
/// `kubernetes-validate --strict`: unknown fields fail, as they would be
/// silently dropped by an API server (a misspelt `readOnlyRootFilesystem`
/// is a writable root filesystem nobody notices).
pub fn validate_schema(tool: &Path, yaml: &str, version: &str) -> Result<(), K8sError> {
    run(
        tool,
        &["--strict", "--quiet", "-k", version, "-"],
        Some(yaml.as_bytes()),
    )
    .map(|_| ())
}
