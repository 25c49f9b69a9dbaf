//! The compose file as a whole: its services by name, its top-level
//! volumes and secrets, and where a path inside a container comes from on
//! the host, which is how every check follows a service to the files of
//! this repository that configure it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::findings::finding;
use super::flags::flag;
use super::read::{normalize, read_yaml, scalar};
use super::service::{Kind, Mount, Service};
use super::{ComposeError, Finding};

/// A compose file, read as Compose reads it.
#[derive(Clone, Debug)]
pub struct Stack {
    /// The compose file.
    pub path: PathBuf,
    /// Its directory, which relative paths are resolved against.
    pub dir: PathBuf,
    /// The services by name.
    pub services: BTreeMap<String, Service>,
    /// The top-level `volumes:` names.
    pub named_volumes: BTreeSet<String>,
    /// The top-level `secrets:` with a `file:` source, by name (host path).
    pub secret_files: BTreeMap<String, PathBuf>,
}

impl Stack {
    /// Reads `compose` (a compose file). Fails only when the file cannot be
    /// read as YAML or has no `services:`; everything else is left to the
    /// checks, so that one run reports every problem.
    pub fn load(compose: &Path) -> Result<Stack, ComposeError> {
        let doc = read_yaml(compose)?;
        let dir = compose.parent().map(Path::to_path_buf).unwrap_or_default();
        let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
            return Err(ComposeError::Yaml {
                path: compose.to_path_buf(),
                message: "no `services:` mapping".into(),
            });
        };
        let mut stack = Stack {
            path: compose.to_path_buf(),
            dir: dir.clone(),
            services: BTreeMap::new(),
            named_volumes: doc
                .get("volumes")
                .and_then(Value::as_mapping)
                .map(|m| m.keys().filter_map(scalar).collect())
                .unwrap_or_default(),
            secret_files: doc
                .get("secrets")
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| {
                            let file = v.get("file").and_then(Value::as_str)?;
                            Some((scalar(k)?, normalize(&dir.join(file))))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        for (name, body) in services {
            let Some(name) = scalar(name) else { continue };
            let service = Service::parse(&name, body, &dir);
            stack.services.insert(name, service);
        }
        Ok(stack)
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// The services of `kind`.
    pub fn services_of(&self, kind: &Kind) -> impl Iterator<Item = &Service> {
        let kind = kind.clone();
        self.services.values().filter(move |s| s.kind() == kind)
    }

    /// The engine services (`deltran engine <kind>`), by engine kind.
    pub fn engines(&self) -> BTreeMap<String, &Service> {
        self.services
            .values()
            .filter_map(|s| match s.kind() {
                Kind::Engine(kind) => Some((kind, s)),
                _ => None,
            })
            .collect()
    }

    /// Where `container_path` of `service` comes from on the host: the
    /// bind mount with the longest target that contains it. `None` when no
    /// bind mount covers it (the image's own file, or a volume).
    pub fn host_path(&self, service: &Service, container_path: &str) -> Option<PathBuf> {
        let wanted = normalize(Path::new(container_path));
        let mut best: Option<(usize, PathBuf)> = None;
        for mount in &service.mounts {
            let Mount::Bind { host, target, .. } = mount else {
                continue;
            };
            let target = normalize(Path::new(target));
            if let Ok(rest) = wanted.strip_prefix(&target) {
                let depth = target.components().count();
                if best.as_ref().is_none_or(|(d, _)| depth > *d) {
                    best = Some((depth, host.join(rest)));
                }
            }
        }
        best.map(|(_, p)| normalize(&p))
    }

    /// The configuration file a service is started with (`-<flag>=<path>`,
    /// Go's flag syntax), read through its bind mount.
    pub(super) fn config_file(
        &self,
        service: &Service,
        name: &str,
        findings: &mut Vec<Finding>,
    ) -> Option<(PathBuf, Value)> {
        let Some(container) = flag(&service.args(), name) else {
            findings.push(finding(
                &self.path,
                format!(
                    "service {}: pass -{name}=<path> and mount the file, so its ports can be checked",
                    service.name
                ),
            ));
            return None;
        };
        let Some(host) = self.host_path(service, &container) else {
            findings.push(finding(
                &self.path,
                format!(
                    "service {}: -{name}={container} is not inside any bind mount; mount the file from this repository",
                    service.name
                ),
            ));
            return None;
        };
        match read_yaml(&host) {
            Ok(value) => Some((host, value)),
            Err(e) => {
                findings.push(finding(&host, e.to_string()));
                None
            }
        }
    }
}
