//! What every database client shares (sqlx, Redis): the operation
//! duration histogram and the connection-pool gauge
//! `db.client.connections.usage` by `state` (`used`, `idle`) and
//! `pool.name`.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};

/// `db.client.operation.duration` (s), the semantic conventions' buckets.
pub(crate) fn operation_duration(meter: &Meter) -> Histogram<f64> {
    meter
        .f64_histogram("db.client.operation.duration")
        .with_unit("s")
        .with_description("Duration of database client operations")
        .with_boundaries(crate::semconv::SECONDS_BUCKETS.to_vec())
        .build()
}

/// The pool gauge's instrument name (Prometheus: `db_client_connections_usage`).
pub const POOL_CONNECTIONS: &str = "db.client.connections.usage";

/// Registers the gauge for the pool `pool_name`; `read` answers (used,
/// idle) at each collection and must not block.
pub(crate) fn observe(
    meter: &Meter,
    pool_name: &'static str,
    read: impl Fn() -> (i64, i64) + Send + Sync + 'static,
) {
    let used = [
        KeyValue::new("pool.name", pool_name),
        KeyValue::new("state", "used"),
    ];
    let idle = [
        KeyValue::new("pool.name", pool_name),
        KeyValue::new("state", "idle"),
    ];
    meter
        .i64_observable_up_down_counter(POOL_CONNECTIONS)
        .with_unit("{connection}")
        .with_description("Connections in the pool by state")
        .with_callback(move |o| {
            let (used_n, idle_n) = read();
            o.observe(used_n, &used);
            o.observe(idle_n, &idle);
        })
        .build();
}
