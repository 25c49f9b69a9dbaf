//! How the Kubernetes checks report: a [`K8sError`] when a tool, file or
//! document cannot be used at all, otherwise one problem line per finding
//! gathered by `Problems`, each naming the object and the fix, because
//! whoever reads it has a YAML file open, not this code.

use std::path::PathBuf;

/// What can go wrong rendering, validating or checking the manifests.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// A tool could not be started at all.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// A tool ran and failed (kustomize refused the overlay, a document did
    /// not validate).
    #[error("`{command}` failed ({status}):\n{output}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (stdout, then stderr).
        output: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Rendered output or a collector file is not the YAML it should be.
    #[error("{what} is not valid YAML: {source}")]
    Yaml {
        /// Which document.
        what: String,
        /// The parser's complaint.
        source: serde_yaml_ng::Error,
    },
    /// A document could not be turned into JSON-like data (non-string keys).
    #[error("{what} cannot be read as a Kubernetes object: {source}")]
    Shape {
        /// Which document.
        what: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The README's list of Secrets to create is missing or malformed.
    #[error("{0}")]
    Readme(String),
    /// A check found problems; each line names the object and the fix.
    #[error("{check}: {} problem(s)\n  - {}", problems.len(), problems.join("\n  - "))]
    Problems {
        /// Which check.
        check: String,
        /// One line per problem.
        problems: Vec<String>,
    },
}

impl K8sError {
    /// The problem lines of a failed check (empty for other errors), so a
    /// test can assert what was found without parsing the message.
    pub fn problems(&self) -> &[String] {
        match self {
            K8sError::Problems { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Collects problem lines and turns them into a result.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<String>);

impl Problems {
    /// Records one problem.
    pub(super) fn push(&mut self, p: impl Into<String>) {
        self.0.push(p.into());
    }

    /// `Ok` when nothing was recorded, else the problems of `check`.
    pub(super) fn finish(self, check: &str) -> Result<(), K8sError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(K8sError::Problems {
                check: check.to_string(),
                problems: self.0,
            })
        }
    }
}
