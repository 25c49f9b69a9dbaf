//! Setup shared by the glue's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod w3c;

use std::future::Future;

use opentelemetry::metrics::Meter;
use telemetry::Telemetry;
use telemetry::testing::InMemory;

/// The W3C propagator, handed to the glue through its configs: these tests
/// never set the global one (it stays a no-op), so propagation that works
/// here works for a service that never installs telemetry globally.
pub fn w3c() -> services_glue::propagation::Propagator {
    services_glue::propagation::Propagator::new(telemetry::propagation::default_propagator())
}

/// Runs `body` on a current-thread runtime under an in-memory telemetry for
/// `service`, then flushes and returns what was exported.
pub fn run_in_telemetry<F, Fut>(service: &str, body: F) -> InMemory
where
    F: FnOnce(Meter) -> Fut,
    Fut: Future<Output = ()>,
{
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
