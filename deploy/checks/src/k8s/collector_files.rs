//! The collector files inside the generated ConfigMaps, byte for byte: the
//! files the collector lint checked must be the files the cluster runs,
//! and a file added to `otel-collector/<env>/` but not to its
//! configMapGenerator would otherwise never reach a collector.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::Problems;
use super::json::object_id;
use super::{K8sError, Manifest};

/// The ConfigMap `otel-collector-base` holds `otel-collector/base.yaml` and
/// `otel-collector-env` holds every `*.yaml` of `otel-collector/<env>/`,
/// byte for byte, and nothing else: the files the collector lint checked
/// are the files the cluster runs, and a file added to the directory but not
/// to its generator is caught.
pub fn check_collector_files(
    m: &Manifest,
    repo_root: &Path,
    environment: &str,
) -> Result<(), K8sError> {
    let dir = repo_root.join("otel-collector");
    let mut problems = Problems::default();
    for (cm_name, source_dir) in [
        ("otel-collector-base", dir.clone()),
        ("otel-collector-env", dir.join(environment)),
    ] {
        let Some(cm) = m.config_map_generated(cm_name) else {
            problems.push(format!(
                "no ConfigMap {cm_name}-<hash> rendered: include {} (its configMapGenerator) in the overlay",
                source_dir.display()
            ));
            continue;
        };
        let data = cm
            .pointer("/data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut expected = BTreeSet::new();
        for (file, path) in generated_files(&source_dir)? {
            let text = std::fs::read_to_string(&path).map_err(read_error(&path))?;
            match data.get(&file).and_then(Value::as_str) {
                None => problems.push(format!(
                    "{}: no key {file}; add {file} to the configMapGenerator in {}",
                    object_id(cm),
                    source_dir.join("kustomization.yaml").display()
                )),
                Some(rendered) if rendered != text => problems.push(format!(
                    "{}: key {file} differs from {} (first difference at byte {}); generate the ConfigMap from the file, never copy it",
                    object_id(cm),
                    path.display(),
                    first_difference(rendered, &text)
                )),
                Some(_) => {}
            }
            expected.insert(file);
        }
        for key in data.keys() {
            if !expected.contains(key) {
                problems.push(format!(
                    "{}: key {key} has no file in {}; remove it from the generator",
                    object_id(cm),
                    source_dir.display()
                ));
            }
        }
    }
    problems.finish(&format!("collector files in the {environment} ConfigMaps"))
}

/// The files of `dir` its configMapGenerator must hold (name, path): the
/// YAML files, except kustomize's own and the collector builder manifest.
fn generated_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, K8sError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error(dir))? {
        let path = entry.map_err(read_error(dir))?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        if !path.is_file()
            || !(file.ends_with(".yaml") || file.ends_with(".yml"))
            || file == "kustomization.yaml"
            || file == "builder-config.yaml"
        {
            continue;
        }
        out.push((file.to_string(), path.clone()));
    }
    Ok(out)
}

/// The error for a failed read of `path`.
fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> K8sError {
    let path = path.to_path_buf();
    move |source| K8sError::Read { path, source }
}

/// The byte offset where `a` and `b` first differ (the shorter length when
/// one is a prefix of the other).
fn first_difference(a: &str, b: &str) -> usize {
    a.bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}
