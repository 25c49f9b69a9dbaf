//! Start-up errors. Each says what to change.

use std::path::Path;

use crate::config::{ConfigErrors, Signal};

/// The error of a library telemetry calls into, kept as the source.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// One or more environment variables are invalid.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A global tracing subscriber is already installed (`init` called twice,
    /// or another crate installed one first).
    #[error(
        "a global tracing subscriber is already installed; start telemetry once, at the start of main, \
         use .set_default() for a thread-scoped one (tests), or .build() and Telemetry::layer() to put \
         telemetry's layers into the subscriber you install"
    )]
    AlreadyInitialized,
    /// An OTLP exporter could not be built.
    #[error("cannot build the OTLP {signal} exporter: {source}; check OTEL_EXPORTER_OTLP_{upper}_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT and their protocol", upper = signal.upper())]
    Exporter {
        /// Which signal.
        signal: Signal,
        /// The exporter's error.
        source: BoxError,
    },
    /// A header from `OTEL_EXPORTER_OTLP_*HEADERS` is not valid gRPC metadata.
    #[error("header {name:?} in OTEL_EXPORTER_OTLP_{upper}_HEADERS / OTEL_EXPORTER_OTLP_HEADERS is not valid gRPC metadata: use lower-case ASCII names and visible ASCII values", upper = signal.upper())]
    Header {
        /// Which signal.
        signal: Signal,
        /// The header name.
        name: String,
        /// Why gRPC rejected the name or the value.
        source: BoxError,
    },
    /// A TLS file could not be read or parsed.
    #[error("TLS setup for {signal} failed: OTEL_EXPORTER_OTLP_{var} (or OTEL_EXPORTER_OTLP_{upper}_{var}) = {path}: {source}", upper = signal.upper())]
    Tls {
        /// Which signal.
        signal: Signal,
        /// The variable suffix (`CERTIFICATE`, `CLIENT_KEY`, `CLIENT_CERTIFICATE`).
        var: String,
        /// The file.
        path: String,
        /// What went wrong: the TLS library's error, or what the file lacks.
        source: BoxError,
    },
    /// The Prometheus endpoint could not bind its address.
    #[error(
        "cannot serve Prometheus metrics on {address}: {source}; set OTEL_EXPORTER_PROMETHEUS_HOST / OTEL_EXPORTER_PROMETHEUS_PORT to a free address"
    )]
    PrometheusBind {
        /// The address tried.
        address: String,
        /// The bind error.
        source: std::io::Error,
    },
    /// A background thread or runtime could not be started.
    #[error("cannot start telemetry's background thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl InitError {
    pub(crate) fn exporter(signal: Signal, source: impl Into<BoxError>) -> Self {
        InitError::Exporter {
            signal,
            source: source.into(),
        }
    }
    pub(crate) fn header(signal: Signal, name: &str, source: impl Into<BoxError>) -> Self {
        InitError::Header {
            signal,
            name: name.to_string(),
            source: source.into(),
        }
    }
    pub(crate) fn tls(signal: Signal, var: &str, path: &Path, source: impl Into<BoxError>) -> Self {
        InitError::Tls {
            signal,
            var: var.to_string(),
            path: path.display().to_string(),
            source: source.into(),
        }
    }
}
