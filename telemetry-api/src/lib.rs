//! The primitives both `telemetry` (which owns the OpenTelemetry SDK) and
//! `services-glue` (instrumentation) need, in one place: the `http::HeaderMap`
//! propagation carriers, [`inject`]/[`extract`] with an explicit propagator,
//! and the seconds histogram buckets.
//!
//! It depends on the OpenTelemetry API only, so instrumentation can share
//! these without ever depending on the SDK, and the two crates cannot drift
//! apart (a carrier that reads only the first `tracestate` line, buckets in
//! the wrong unit). Both re-export these items at their usual paths
//! (`telemetry::propagation::HeaderExtractor`, `telemetry::SECONDS_BUCKETS`,
//! `services_glue::propagation::HeaderExtractor`,
//! `services_glue::semconv::SECONDS_BUCKETS`, ...).
//!
//! ```
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//!
//! let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
//! let mut incoming = http::HeaderMap::new();
//! incoming.insert(
//!     "traceparent",
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
//! );
//! let cx = telemetry_api::extract(&propagator, &incoming);
//! assert!(cx.span().span_context().is_remote());
//!
//! let mut outgoing = http::HeaderMap::new();
//! telemetry_api::inject(&propagator, &cx, &mut outgoing);
//! assert_eq!(outgoing["traceparent"], incoming["traceparent"]);
//! ```

mod buckets;
mod headers;

pub use crate::buckets::SECONDS_BUCKETS;
pub use crate::headers::{HeaderExtractor, HeaderInjector, all_lines, extract, inject};
