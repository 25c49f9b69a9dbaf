//! Instrumentation for every hop of a service: HTTP servers and clients,
//! gRPC, NATS, databases, caches, JSON-RPC, LLM calls, and business
//! instruments declared once.
//!
//! Built on the OpenTelemetry API and `tracing` only: the SDK lives in
//! `telemetry`, which installs the providers and the W3C propagator these
//! integrations use through the OpenTelemetry globals. One cargo feature per
//! integration, none on by default.

#[cfg(any(feature = "axum", feature = "actix"))]
pub mod http;
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
