//! The crate's error type.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while starting, talking to or stopping a fixture.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required binary is not installed; `install` says how to get it.
    #[error("`{binary}` not found (looked in: {searched}); install it with: {install}")]
    MissingBinary {
        /// Name of the binary that was looked for.
        binary: String,
        /// Human readable list of the places searched.
        searched: String,
        /// The command that installs it.
        install: String,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A server did not become ready in time.
    #[error("{what} not ready after {timeout:?} (log: {log_path}); last log lines:\n{log_tail}")]
    NotReady {
        /// Which server.
        what: String,
        /// The readiness timeout that expired.
        timeout: Duration,
        /// Path of the server's log file.
        log_path: PathBuf,
        /// Last lines of the server's log.
        log_tail: String,
    },
    /// A server process exited while we were waiting for it to become ready.
    #[error("{what} exited early with {status} (log: {log_path}); last log lines:\n{log_tail}")]
    Exited {
        /// Which server.
        what: String,
        /// Its exit status.
        status: ExitStatus,
        /// Path of the server's log file.
        log_path: PathBuf,
        /// Last lines of the server's log.
        log_tail: String,
    },
    /// A helper command ran but failed (non-zero exit or timeout); `output` is its stdout+stderr.
    #[error("{command} failed ({status}):\n{output}")]
    Command {
        /// The command line that was run.
        command: String,
        /// Exit status, or a description such as "timed out after 30s".
        status: String,
        /// Combined stdout and stderr.
        output: String,
    },
    /// An HTTP exchange failed or returned something unexpected.
    #[error("HTTP {method} {url}: {message}")]
    Http {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// What went wrong (status and body excerpt, or a protocol error).
        message: String,
    },
    /// A condition polled with a deadline never became true.
    #[error("timed out after {timeout:?} waiting for {what}; last observation: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline that expired.
        timeout: Duration,
        /// The last value or error observed.
        last: String,
    },
    /// Invalid input or an unexpected response shape.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Builds an [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Adds context to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    /// Maps an I/O error to [`Error::Io`] with the given context.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
