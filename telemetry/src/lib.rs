//! One line of telemetry per service.
//!
//! ```no_run
//! let _guard = telemetry::init!("token-engine");
//! tracing::info!("traces, metrics and logs now go to the OTLP collector");
//! ```
//!
//! `telemetry` owns the OpenTelemetry SDK: it reads the standard `OTEL_*`
//! environment, builds the resource, the three signal pipelines (OTLP over
//! gRPC or HTTP/protobuf, console, and a Prometheus pull endpoint), installs
//! a `tracing` subscriber that feeds them, and returns a guard that flushes
//! everything, within a deadline, when dropped.
//!
//! - [`init`] / [`init!`]: install or panic with a message naming what to fix.
//! - [`try_init`] / [`try_init!`]: install or return an [`InitError`].
//! - [`Telemetry::builder`]: everything the environment does not cover;
//!   `build()` without installing anything global, for tests.
//!
//! The OpenTelemetry API and `tracing` are re-exported so services never meet
//! version skew: use `telemetry::opentelemetry` and `telemetry::tracing`.

mod batch;
pub mod config;
mod env;
mod error;
mod health;
mod metrics;
mod metrics_push;
mod otlp;
mod processors;
pub mod prometheus;
pub mod propagation;
pub mod redact;
mod resource;
mod shutdown;
pub mod stdout;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::config::{
    BatchConfig, Compression, Config, ConfigError, ConfigErrors, ExporterKind, LimitsConfig,
    LogFormat, OtlpConfig, PropagatorKind, Protocol, SamplerConfig, Signal,
};
pub use crate::env::{EnvSource, ProcessEnv};
pub use crate::error::InitError;
pub use crate::health::{ExportState, SignalStatus, TelemetryHealth};
pub use crate::metrics::SECONDS_BUCKETS;
pub use crate::prometheus::PrometheusHandle;
pub use crate::resource::{DEFAULT_ENVIRONMENT, DEFAULT_NAMESPACE, ServiceIdentity};
pub use crate::shutdown::ShutdownError;
pub use crate::telemetry::{BaseSubscriber, BoxedLayer, Telemetry, TelemetryBuilder};

/// The OpenTelemetry API this crate is built with.
pub use opentelemetry;
/// The `tracing` this crate is built with.
pub use tracing;
/// `tracing-opentelemetry`, for `OpenTelemetrySpanExt` (remote parents, links).
pub use tracing_opentelemetry;

/// Installs telemetry for `service_name` from the environment and returns
/// the guard.
///
/// # Panics
/// When the configuration is invalid or a subscriber is already installed,
/// with a message naming what to change. Use [`try_init`] to handle it.
///
/// The function cannot see the calling crate's version; prefer
/// [`init!`], which records it as `service.version`. Without it the version
/// comes from `OTEL_RESOURCE_ATTRIBUTES` (`service.version=...`) or is `0.0.0`.
#[track_caller]
pub fn init(service_name: &str) -> Telemetry {
    match try_init(service_name) {
        Ok(t) => t,
        Err(e) => panic!("telemetry::init({service_name:?}) failed: {e}"),
    }
}

/// Installs telemetry for `service_name`, or says why it cannot.
pub fn try_init(service_name: &str) -> Result<Telemetry, InitError> {
    Telemetry::builder(service_name).install()
}

/// [`init`] with `service.version` taken from the calling crate's
/// `CARGO_PKG_VERSION`.
#[macro_export]
macro_rules! init {
    ($name:expr) => {
        match $crate::try_init!($name) {
            Ok(t) => t,
            Err(e) => panic!("telemetry::init!({:?}) failed: {}", $name, e),
        }
    };
}

/// [`try_init`] with `service.version` taken from the calling crate's
/// `CARGO_PKG_VERSION`.
#[macro_export]
macro_rules! try_init {
    ($name:expr) => {
        $crate::Telemetry::builder($name)
            .with_version(env!("CARGO_PKG_VERSION"))
            .install()
    };
}
