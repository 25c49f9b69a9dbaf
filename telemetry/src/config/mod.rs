//! Configuration from the standard `OTEL_*` environment.
//!
//! Every variable of the OpenTelemetry SDK environment specification that
//! applies to traces, metrics and logs is parsed here, including those the
//! Rust SDK never reads itself. Parsing collects *all* problems so one start-up
//! reports every bad variable at once, each naming the variable, the value and
//! what is accepted.
//!
//! - `types`: [`Config`] and the choices it holds (exporters, sampler,
//!   propagators, signals).
//! - `parse`: the readers every variable goes through, and [`Config::from_env`].
//! - `otlp`: endpoints, protocol, headers, compression, timeouts and TLS
//!   files per signal.
//! - `limits`: batch queues and attribute limits.
//! - `log`: `RUST_LOG` and the stdout format.
//! - `errors`: [`ConfigError`] and [`ConfigErrors`].
//! - `file`: `OTEL_CONFIG_FILE`, the declarative configuration file,
//!   translated into the same variables.
//! - `views`: metric views, which only the file can declare.

mod errors;
mod file;
mod limits;
mod log;
mod otlp;
mod parse;
mod types;
mod views;

pub use errors::{ConfigError, ConfigErrors};
pub use limits::{BatchConfig, LimitsConfig};
pub use log::LogFormat;
pub(crate) use log::filter_from;
pub use otlp::{Compression, OtlpConfig, Protocol};
pub use types::{
    Config, HistogramAggregation, LogExporterKind, MetricExporterKind, PropagatorKind,
    SamplerConfig, Signal, SpanExporterKind, TemporalityPreference,
};
pub use views::{MAX_CARDINALITY_LIMIT, ViewConfig, ViewSelector, ViewStream};
