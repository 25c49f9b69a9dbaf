//! Instrumentation for every hop of a service: HTTP servers and clients,
//! gRPC, NATS, databases, caches, JSON-RPC, LLM calls, and business
//! instruments declared once.
//!
//! Built on the OpenTelemetry API and `tracing` only: the SDK lives in
//! `telemetry`, which installs the providers and the W3C propagator. Each
//! integration takes its meter and (optionally) its propagator from its
//! config, so nothing here depends on the globals being set. One cargo
//! feature per integration, none on by default.
//!
//! The shared core, used by every integration:
//! - `layer` (with `axum` or `grpc`): one tower tracing layer, parameterised
//!   by a protocol's route extractor, classifier and propagation;
//! - [`classify`]: which statuses are errors, per protocol and side;
//! - `outcome` (internal): one guard that records how work ended (span
//!   status, `error.type`, duration), including when it is dropped;
//! - [`body`]: the response body wrapper that ends spans and durations at
//!   the end of the body, not at the headers;
//! - [`propagation`]: the propagator and header carriers;
//! - [`semconv`]: values the conventions fix (buckets, methods).

#[cfg(any(feature = "axum", feature = "grpc"))]
pub mod body;
pub mod classify;
#[cfg(any(feature = "axum", feature = "actix"))]
pub mod http;
#[cfg(any(feature = "axum", feature = "grpc"))]
pub mod layer;
#[cfg(any(
    feature = "axum",
    feature = "actix",
    feature = "reqwest",
    feature = "nats",
    feature = "jsonrpc",
    feature = "llm",
    feature = "mcp",
    feature = "grpc",
    feature = "sqlx",
    feature = "redis"
))]
mod outcome;
pub mod propagation;
pub mod semconv;

#[cfg(feature = "reqwest")]
pub mod reqwest;

#[cfg(feature = "axum")]
pub mod axum;

#[cfg(feature = "actix")]
pub mod actix;

pub mod cardinality;
pub mod instruments;

#[cfg(feature = "nats")]
pub mod nats;

#[doc(hidden)]
pub mod __private {
    pub use opentelemetry::metrics::Meter;
}

#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "sqlx")]
pub mod db;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "health")]
pub mod health;
#[cfg(feature = "jsonrpc")]
pub mod jsonrpc;
#[cfg(feature = "llm")]
pub mod llm;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(any(feature = "sqlx", feature = "redis"))]
pub mod pool;
#[cfg(feature = "redis")]
pub mod redis;
