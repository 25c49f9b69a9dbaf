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
//! Four ways to start, on [`TelemetryBuilder`] (from [`builder!`], which
//! records the calling crate's version, or [`Telemetry::builder`]):
//!
//! - [`init`](TelemetryBuilder::init) — install process-wide or panic with a
//!   message naming what to fix; [`init!`] is `builder!(name).init()`.
//! - [`try_init`](TelemetryBuilder::try_init) — the same, returning an
//!   [`InitError`].
//! - [`set_default`](TelemetryBuilder::set_default) — the current thread's
//!   default until the guard drops; nothing global changes (tests).
//! - [`build`](TelemetryBuilder::build) — nothing installed: use
//!   [`Telemetry::dispatch`], or [`Telemetry::layer`] in a registry of your own.
//!
//! The OpenTelemetry API and `tracing` are re-exported so services never meet
//! version skew: use `telemetry::opentelemetry` and `telemetry::tracing`.

mod batch;
mod builder;
pub mod config;
mod console;
mod env;
mod error;
mod exporters;
mod feedback;
mod guard;
mod health;
mod layers;
mod log_filter;
mod metrics;
mod metrics_push;
mod otlp;
mod otlp_export;
mod otlp_logs;
mod otlp_metrics;
mod otlp_spans;
mod pipeline;
mod processors;
pub mod prometheus;
pub mod propagation;
mod recorded_spans;
pub mod redact;
mod resource;
mod sampling;
mod shutdown;
mod span_protobuf;
pub mod stdout;
#[cfg(test)]
mod test_support;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::builder::{BaseSubscriber, BoxedLayer, TelemetryBuilder};
pub use crate::config::{
    BatchConfig, Compression, Config, ConfigError, ConfigErrors, LimitsConfig, LogExporterKind,
    LogFormat, MetricExporterKind, OtlpConfig, PropagatorKind, Protocol, SamplerConfig, Signal,
    SpanExporterKind,
};
pub use crate::env::{EnvSource, ProcessEnv};
pub use crate::error::InitError;
pub use crate::guard::{ScopedTelemetry, Telemetry};
pub use crate::health::{ExportState, SignalStatus, TelemetryHealth};
pub use crate::log_filter::LogFilter;
pub use crate::metrics::SECONDS_BUCKETS;
pub use crate::prometheus::PrometheusHandle;
pub use crate::resource::{
    DEFAULT_ENVIRONMENT, DEFAULT_NAMESPACE, KUBERNETES_VARIABLES, ServiceIdentity,
};
pub use crate::shutdown::ShutdownError;

/// The OpenTelemetry API this crate is built with.
pub use opentelemetry;
/// The `tracing` this crate is built with.
pub use tracing;
/// `tracing-opentelemetry`, for `OpenTelemetrySpanExt` (remote parents, links).
pub use tracing_opentelemetry;

/// A [`TelemetryBuilder`] for `service_name` with `service.version` taken
/// from the calling crate's `CARGO_PKG_VERSION`.
///
/// ```
/// let telemetry = telemetry::builder!("doc-engine")
///     .with_env([("OTEL_SDK_DISABLED", "true")])
///     .build()?;
/// assert_eq!(telemetry.service().version, env!("CARGO_PKG_VERSION"));
/// # Ok::<(), telemetry::InitError>(())
/// ```
#[macro_export]
macro_rules! builder {
    ($name:expr) => {
        $crate::Telemetry::builder($name).with_version(env!("CARGO_PKG_VERSION"))
    };
}

/// Starts telemetry for `service_name` from the environment, process-wide,
/// with the calling crate's version: `builder!(service_name).init()`.
///
/// # Panics
/// When the configuration is invalid or a global subscriber is already
/// installed, with a message naming what to change; use
/// `builder!(name).try_init()` to handle it.
#[macro_export]
macro_rules! init {
    ($name:expr) => {
        $crate::builder!($name).init()
    };
}
