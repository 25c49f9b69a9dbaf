//! Setup shared by the glue's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod w3c;

use std::future::Future;

use opentelemetry::metrics::Meter;
use telemetry::Telemetry;
use telemetry::testing::InMemory;

/// Runs `body` on a current-thread runtime under an in-memory telemetry for
/// `service` (W3C propagator set), then flushes and returns what was exported.
pub fn run_in_telemetry<F, Fut>(service: &str, body: F) -> InMemory
where
    F: FnOnce(Meter) -> Fut,
    Fut: Future<Output = ()>,
{
    opentelemetry::global::set_text_map_propagator(telemetry::propagation::default_propagator());
    let sink = InMemory::new();
    let t = Telemetry::builder(service)
        .with_in_memory(&sink)
        .build()
        .unwrap();
    let meter = t.meter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || rt.block_on(body(meter)));
    t.shutdown().unwrap();
    sink
}
