//! How the compose checks report: a [`ComposeError`] when a file cannot be
//! read or validated at all, otherwise one [`Finding`] per problem, so one
//! run lists everything to fix rather than stopping at the first.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a compose check failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not YAML (or not the shape its reader expects).
    #[error("{path} is not valid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The validator could not be run at all (not installed, not executable).
    #[error("could not run `{command}`: {message}")]
    Tool {
        /// The command line.
        command: String,
        /// Why, and how to install it.
        message: String,
    },
    /// The compose file does not follow the compose specification.
    #[error("{path} does not follow the compose specification (`{command}`):\n{output}")]
    Schema {
        /// The compose file.
        path: PathBuf,
        /// The validator's command line.
        command: String,
        /// What the validator said.
        output: String,
    },
    /// The files disagree with each other; one line per problem.
    #[error("{}", joined(.0, "\n"))]
    Findings(Vec<Finding>),
}

/// One problem: the file to change and what to change in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The file that has to change.
    pub file: PathBuf,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

/// A finding on `file`.
pub(super) fn finding(file: &Path, message: impl Into<String>) -> Finding {
    Finding {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// A check's result: `Ok` when it found nothing.
pub(super) fn finish(findings: Vec<Finding>) -> Result<(), ComposeError> {
    if findings.is_empty() {
        Ok(())
    } else {
        Err(ComposeError::Findings(findings))
    }
}

/// `items` displayed and joined with `separator`, for messages that list
/// what would have been right.
pub(super) fn joined<T: fmt::Display>(
    items: impl IntoIterator<Item = T>,
    separator: &str,
) -> String {
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(separator)
}
