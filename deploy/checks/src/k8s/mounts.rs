//! Files inside mounted volumes: a path a container reads (a config file, a
//! certificate, a data directory) resolved through its volumeMounts to the
//! ConfigMap key, Secret key or emptyDir behind it — what the kubelet
//! will, or will not, put there.

use serde_json::Value;

use super::Manifest;
use super::json::{array_at, str_at};
use super::workload::Workload;

/// What a file path inside a container resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountedFile {
    /// A key of a rendered ConfigMap, with its content.
    ConfigMap {
        /// ConfigMap name.
        name: String,
        /// Key.
        key: String,
        /// Content.
        content: String,
    },
    /// A key of a Secret.
    Secret {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// Inside an emptyDir.
    EmptyDir,
}

/// Resolves an absolute path in a container to the volume key behind it,
/// or says why it cannot (not under a mount, no such key).
pub fn mounted_file(
    m: &Manifest,
    w: &Workload<'_>,
    container: &Value,
    path: &str,
) -> Result<MountedFile, String> {
    let mount = array_at(container, "/volumeMounts")
        .iter()
        .filter_map(|vm| {
            let dir = str_at(vm, "/mountPath")?.trim_end_matches('/');
            let rest = path.strip_prefix(dir)?.strip_prefix('/')?;
            Some((vm, dir.len(), rest))
        })
        .max_by_key(|(_, len, _)| *len);
    let Some((vm, _, rest)) = mount else {
        return Err(format!("{path} is under no volumeMount"));
    };
    if str_at(vm, "/subPath").is_some() {
        return Err(format!(
            "{path} is under a subPath mount, which never sees ConfigMap/Secret updates; mount the volume as a directory"
        ));
    }
    let vname = str_at(vm, "/name").unwrap_or("?");
    let Some(volume) = w.volume(vname) else {
        return Err(format!("volumeMount {vname} names no volume"));
    };
    let key_for = |items: &[Value]| -> Option<String> {
        if items.is_empty() {
            Some(rest.to_string())
        } else {
            items
                .iter()
                .find(|i| str_at(i, "/path") == Some(rest))
                .and_then(|i| str_at(i, "/key"))
                .map(str::to_string)
        }
    };
    if let Some(cm) = str_at(volume, "/configMap/name") {
        let Some(key) = key_for(array_at(volume, "/configMap/items")) else {
            return Err(format!(
                "{path}: volume {vname} (ConfigMap {cm}) projects no item with path {rest}"
            ));
        };
        let content = m
            .config_map_data(&w.namespace, cm)
            .and_then(|d| d.get(&key))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                format!(
                    "{path}: ConfigMap {}/{cm} (volume {vname}) has no key {key}",
                    w.namespace
                )
            })?;
        return Ok(MountedFile::ConfigMap {
            name: cm.to_string(),
            key,
            content: content.to_string(),
        });
    }
    if let Some(secret) = str_at(volume, "/secret/secretName") {
        let Some(key) = key_for(array_at(volume, "/secret/items")) else {
            return Err(format!(
                "{path}: volume {vname} (Secret {secret}) projects no item with path {rest}"
            ));
        };
        return Ok(MountedFile::Secret {
            name: secret.to_string(),
            key,
        });
    }
    if volume.get("emptyDir").is_some() {
        return Ok(MountedFile::EmptyDir);
    }
    Err(format!(
        "{path}: volume {vname} is neither a ConfigMap, a Secret nor an emptyDir"
    ))
}
