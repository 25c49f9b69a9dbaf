//! The OpenTelemetry Collector Builder manifest (`builder-config.yaml`): a
//! slim collector holds only the modules it lists, so every component a
//! configuration names must be there, at the pinned release, and nothing
//! else should be.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml_ng::Value;

use super::{CollectorError, read_yaml};

/// The otelcol-contrib release every module is pinned to.
pub const PINNED_RELEASE: &str = "0.136.0";
/// The stable core modules (confmap providers) of that release.
pub const PINNED_STABLE: &str = "1.42.0";

/// The kinds of component a collector configuration names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `receivers:`
    Receiver,
    /// `processors:`
    Processor,
    /// `exporters:`
    Exporter,
    /// `connectors:`
    Connector,
    /// `extensions:`
    Extension,
}

impl Kind {
    /// The configuration section (and manifest list) of this kind.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Connector => "connectors",
            Kind::Extension => "extensions",
        }
    }

    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Receiver,
        Kind::Processor,
        Kind::Exporter,
        Kind::Connector,
        Kind::Extension,
    ];
}

/// The Go module that provides component type `ty` of `kind` (the type is
/// the part of a component id before `/`), for the components this
/// repository uses or is likely to add. `None`: not known here — add it.
pub fn module_of(kind: Kind, ty: &str) -> Option<&'static str> {
    Some(match (kind, ty) {
        (Kind::Receiver, "otlp") => "go.opentelemetry.io/collector/receiver/otlpreceiver",
        (Kind::Processor, "memory_limiter") => {
            "go.opentelemetry.io/collector/processor/memorylimiterprocessor"
        }
        (Kind::Processor, "batch") => "go.opentelemetry.io/collector/processor/batchprocessor",
        (Kind::Processor, "resourcedetection") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourcedetectionprocessor"
        }
        (Kind::Processor, "k8sattributes") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/processor/k8sattributesprocessor"
        }
        (Kind::Processor, "redaction") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/processor/redactionprocessor"
        }
        (Kind::Processor, "transform") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor"
        }
        (Kind::Processor, "tail_sampling") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/processor/tailsamplingprocessor"
        }
        (Kind::Processor, "resource") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor"
        }
        (Kind::Processor, "filter") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/processor/filterprocessor"
        }
        (Kind::Exporter, "debug") => "go.opentelemetry.io/collector/exporter/debugexporter",
        (Kind::Exporter, "otlp") => "go.opentelemetry.io/collector/exporter/otlpexporter",
        (Kind::Exporter, "otlphttp") => "go.opentelemetry.io/collector/exporter/otlphttpexporter",
        (Kind::Exporter, "loadbalancing") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/loadbalancingexporter"
        }
        (Kind::Exporter, "prometheus") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter"
        }
        (Kind::Exporter, "prometheusremotewrite") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
        }
        (Kind::Connector, "spanmetrics") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/connector/spanmetricsconnector"
        }
        (Kind::Connector, "servicegraph") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/connector/servicegraphconnector"
        }
        (Kind::Extension, "zpages") => "go.opentelemetry.io/collector/extension/zpagesextension",
        (Kind::Extension, "health_check") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
        }
        (Kind::Extension, "pprof") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
        }
        (Kind::Extension, "bearertokenauth") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
        }
        (Kind::Extension, "file_storage") => {
            "github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
        }
        _ => return None,
    })
}

/// One `gomod:` line of the manifest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Module {
    /// The manifest list it is in (`receivers`, …, `providers`).
    pub section: String,
    /// The Go module path.
    pub path: String,
    /// Its version, without the leading `v`.
    pub version: String,
}

/// The manifest: its declared distribution version and its modules.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// `dist.version`.
    pub dist_version: Option<String>,
    /// Every `gomod:` entry.
    pub modules: Vec<Module>,
}

impl Manifest {
    /// Reads `builder-config.yaml`.
    pub fn read(path: &Path) -> Result<Manifest, CollectorError> {
        let doc = read_yaml(path)?;
        Ok(Manifest::from_value(&doc))
    }

    /// The manifest in a parsed document.
    pub fn from_value(doc: &Value) -> Manifest {
        let dist_version = doc["dist"]["version"].as_str().map(str::to_string);
        let mut modules = Vec::new();
        for section in Kind::ALL.iter().map(|k| k.section()).chain(["providers"]) {
            for entry in doc[section].as_sequence().into_iter().flatten() {
                let Some(gomod) = entry["gomod"].as_str() else {
                    continue;
                };
                let mut parts = gomod.split_whitespace();
                let path = parts.next().unwrap_or_default().to_string();
                let version = parts
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('v')
                    .to_string();
                modules.push(Module {
                    section: section.to_string(),
                    path,
                    version,
                });
            }
        }
        Manifest {
            dist_version,
            modules,
        }
    }

    /// Problems with the manifest alone: versions off the pinned release,
    /// missing confmap providers the configs need (`env`, `file`).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.dist_version.as_deref() != Some(PINNED_RELEASE) {
            out.push(format!(
                "builder-config.yaml: dist.version is {:?}; set it to {PINNED_RELEASE}",
                self.dist_version
            ));
        }
        for m in &self.modules {
            let stable = m.path.starts_with("go.opentelemetry.io/collector/confmap/");
            let want = if stable {
                PINNED_STABLE
            } else {
                PINNED_RELEASE
            };
            if m.version != want {
                out.push(format!(
                    "builder-config.yaml: {} is at v{}; pin it to v{want}",
                    m.path, m.version
                ));
            }
        }
        for provider in ["envprovider", "fileprovider"] {
            if !self
                .modules
                .iter()
                .any(|m| m.section == "providers" && m.path.ends_with(provider))
            {
                out.push(format!(
                    "builder-config.yaml: providers lacks the confmap {provider} (the configs use ${{env:…}} and --config=<file>)"
                ));
            }
        }
        out
    }

    /// The component modules (every list but `providers`).
    pub fn component_modules(&self) -> BTreeSet<(String, String)> {
        self.modules
            .iter()
            .filter(|m| m.section != "providers")
            .map(|m| (m.section.clone(), m.path.clone()))
            .collect()
    }
}
