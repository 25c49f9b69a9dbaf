//! Secrets the README's `## Secrets` table lists as created by the
//! operator: the repository never contains them, so a Secret a workload
//! references must be listed there (with the namespace and key), or an
//! operator will not know to create it and the pod never starts.

use serde_json::Value;

use super::K8sError;
use super::Manifest;
use super::mounts::MountedFile;

/// A Secret the manifests reference but the repository never contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalSecret {
    /// Its name.
    pub name: String,
    /// The namespaces it must exist in.
    pub namespaces: Vec<String>,
    /// The keys it must hold.
    pub keys: Vec<String>,
}

/// Reads the table under the README heading that starts with
/// `## Secrets`: first column the name, second the namespaces, third the
/// keys (backticks and commas as written for humans). A Secret referenced
/// but missing there is one an operator will not know to create.
pub fn external_secrets(readme: &str) -> Result<Vec<ExternalSecret>, K8sError> {
    let mut in_section = false;
    let mut out = Vec::new();
    let cells = |cell: &str| -> Vec<String> {
        cell.split(',')
            .map(|c| c.trim().trim_matches('`').trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    for line in readme.lines() {
        if line.starts_with("## ") {
            in_section = line.starts_with("## Secrets");
            continue;
        }
        if !in_section || !line.trim_start().starts_with('|') {
            continue;
        }
        let columns: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if columns.len() < 3 {
            continue;
        }
        let name = columns[0].trim().trim_matches('`').trim();
        // The header row and the |---| separator.
        if name.is_empty() || name.starts_with('-') || name.eq_ignore_ascii_case("secret") {
            continue;
        }
        out.push(ExternalSecret {
            name: name.to_string(),
            namespaces: cells(columns[1]),
            keys: cells(columns[2]),
        });
    }
    if out.is_empty() {
        return Err(K8sError::Readme(
            "deploy/k8s/README.md has no table under a `## Secrets` heading (columns: Secret, namespaces, keys): operators would not know which Secrets to create".into(),
        ));
    }
    Ok(out)
}

/// The Secret `name` the README lists for `namespace`.
pub(super) fn external_secret<'a>(
    secrets: &'a [ExternalSecret],
    namespace: &str,
    name: &str,
) -> Option<&'a ExternalSecret> {
    secrets
        .iter()
        .find(|s| s.name == name && s.namespaces.iter().any(|n| n == namespace))
}

/// Why the Secret key behind `file` will not exist: neither rendered nor
/// listed in the README with that key (`None` for other files).
pub(super) fn secret_file_problem(
    secrets: &[ExternalSecret],
    m: &Manifest,
    namespace: &str,
    file: &MountedFile,
) -> Option<String> {
    let MountedFile::Secret { name, key } = file else {
        return None;
    };
    if let Some(secret) = m.get("Secret", Some(namespace), name) {
        let has = secret
            .pointer("/data")
            .or_else(|| secret.pointer("/stringData"))
            .and_then(Value::as_object)
            .is_some_and(|d| d.contains_key(key));
        return (!has).then(|| format!("rendered Secret {namespace}/{name} has no key {key}"));
    }
    match external_secret(secrets, namespace, name) {
        None => Some(format!(
            "Secret {namespace}/{name} is not listed under `## Secrets` in deploy/k8s/README.md"
        )),
        Some(found) if !found.keys.iter().any(|k| k == key) => Some(format!(
            "the README lists Secret {namespace}/{name} without key {key}"
        )),
        Some(_) => None,
    }
}
