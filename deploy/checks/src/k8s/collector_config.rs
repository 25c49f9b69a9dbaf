//! A collector container's configuration as the collector will load it:
//! the `--config` files resolved through the container's volume mounts to
//! ConfigMap keys and parsed, and what in them the other checks follow
//! (`${env:…}` references, file paths, components by type).

use std::collections::BTreeSet;

use serde_json::Value;

use super::error::Problems;
use super::json::array_at;
use super::mounts::{MountedFile, mounted_file};
use super::workload::Workload;
use super::{K8sError, Manifest};

/// A YAML document (`what` names it in errors) as JSON-like data.
fn parse_yaml(what: &str, text: &str) -> Result<Value, K8sError> {
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|source| K8sError::Yaml {
            what: what.to_string(),
            source,
        })?;
    serde_json::to_value(v).map_err(|source| K8sError::Shape {
        what: what.to_string(),
        source,
    })
}

/// Every string value of a YAML tree with the key it sits under.
pub(super) fn string_values<'a>(v: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    match v {
        Value::String(text) => out.push((key, text)),
        Value::Array(items) => items.iter().for_each(|i| string_values(i, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| string_values(v, k, out)),
        _ => {}
    }
}

/// `${env:NAME}` references without a `:-default`, as the collector expands
/// them in values (comments are not values; `$${…}` is an escape).
pub fn collector_env_refs(config: &Value) -> BTreeSet<String> {
    let mut all = Vec::new();
    string_values(config, "", &mut all);
    all.into_iter()
        .flat_map(|(_, text)| crate::collector::env_references(text))
        .filter(|r| !r.has_default)
        .map(|r| r.name)
        .collect()
}

/// The `--config` files of a collector container, resolved through its
/// volume mounts to ConfigMap keys, and parsed.
pub(super) fn collector_configs(
    m: &Manifest,
    w: &Workload<'_>,
    c: &Value,
    problems: &mut Problems,
) -> Result<Vec<(String, Value)>, K8sError> {
    let at = w.container_id(c);
    let args: Vec<&str> = array_at(c, "/args")
        .iter()
        .chain(array_at(c, "/command"))
        .filter_map(Value::as_str)
        .collect();
    let mut paths = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(p) = arg.strip_prefix("--config=") {
            paths.push(p.to_string());
        } else if *arg == "--config"
            && let Some(p) = iter.next()
        {
            paths.push((*p).to_string());
        }
    }
    if paths.is_empty() {
        problems.push(format!(
            "{at}: no --config argument; the collector would run its image's default config"
        ));
    }
    let mut out = Vec::new();
    for p in paths {
        if !p.starts_with('/') {
            problems.push(format!("{at}: --config={p} is not a file path (a provider URI is not checked here); mount the file from a ConfigMap"));
            continue;
        }
        match mounted_file(m, w, c, &p) {
            Ok(MountedFile::ConfigMap { content, .. }) => {
                out.push((p.clone(), parse_yaml(&format!("{at} {p}"), &content)?));
            }
            Ok(_) => problems.push(format!(
                "{at}: --config={p} is not in a ConfigMap volume; mount otel-collector-base / otel-collector-env there"
            )),
            Err(e) => problems.push(format!("{at}: --config: {e}")),
        }
    }
    Ok(out)
}

/// The components under `pointer` (`/exporters`, …) of type `prefix`:
/// named `prefix` or `prefix/<name>`.
pub(super) fn map_keys_with_prefix<'a>(
    v: &'a Value,
    pointer: &str,
    prefix: &str,
) -> Vec<(&'a str, &'a Value)> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() == prefix || k.starts_with(&format!("{prefix}/")))
                .map(|(k, v)| (k.as_str(), v))
                .collect()
        })
        .unwrap_or_default()
}
