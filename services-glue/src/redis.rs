//! Redis through `deadpool-redis`: a CLIENT span per command (`GET`, `SET`)
//! and `db.client.operation.duration` (s) with `db.system.name=redis` and
//! `db.operation.name`; keys and values are never recorded. The pool's
//! used and idle connections are `db.client.connections.usage`, the gauge
//! SQL pools report too (the original set-up's "Redis connections active").
//!
//! ```no_run
//! # async fn demo(pool: deadpool_redis::Pool) -> Result<(), Box<dyn std::error::Error>> {
//! use services_glue::redis::RedisTelemetry;
//! let meter = opentelemetry::global::meter("api-server");
//! let redis = RedisTelemetry::new(&meter);
//! redis.observe_pool(&meter, "cache", pool.clone());
//! let mut conn = pool.get().await?;
//! let cached: Option<String> = redis
//!     .run("GET", deadpool_redis::redis::cmd("GET").arg("portfolio").query_async(&mut conn))
//!     .await?;
//! # let _ = cached; Ok(()) }
//! ```

use std::future::Future;

use deadpool_redis::redis::RedisError;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tracing::Instrument;
use tracing::field::Empty;

use crate::outcome::{Duration, OutcomeGuard};

/// Redis instruments; cheap to clone.
#[derive(Clone, Debug)]
pub struct RedisTelemetry {
    duration: Histogram<f64>,
}

impl RedisTelemetry {
    /// The duration histogram (`db.client.operation.duration`, shared with
    /// SQL clients) on `meter`.
    pub fn new(meter: &Meter) -> Self {
        RedisTelemetry {
            duration: crate::pool::operation_duration(meter),
        }
    }

    /// Runs `command` (the future of the named command, e.g. `GET`) in a
    /// CLIENT span and records its duration and outcome.
    pub async fn run<T>(
        &self,
        command: &'static str,
        query: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        let span = tracing::info_span!(
            "redis",
            otel.name = command,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = "redis",
            db.operation.name = command,
            error.type = Empty,
        );
        let mut outcome = OutcomeGuard::new(
            span.clone(),
            Duration {
                histogram: self.duration.clone(),
                attrs: vec![
                    KeyValue::new("db.system.name", "redis"),
                    KeyValue::new("db.operation.name", command),
                ],
            },
        );
        let result = query.instrument(span).await;
        outcome.finish_result(&result, error_type);
        result
    }

    /// The pool's used and idle connections, as
    /// [`POOL_CONNECTIONS`](crate::pool::POOL_CONNECTIONS).
    pub fn observe_pool(&self, meter: &Meter, pool_name: &'static str, pool: deadpool_redis::Pool) {
        crate::pool::observe(meter, pool_name, move || {
            let status = pool.status();
            let idle = i64::try_from(status.available).unwrap_or(i64::MAX);
            let size = i64::try_from(status.size).unwrap_or(i64::MAX);
            (size.saturating_sub(idle), idle)
        });
    }
}

/// A bounded `error.type`.
fn error_type(e: &RedisError) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connection_refusal() {
        "connection_refused"
    } else if e.is_connection_dropped() {
        "connection_dropped"
    } else if e.is_io_error() {
        "io"
    } else if e.code().is_some() {
        "server_error"
    } else {
        "_OTHER"
    }
}
