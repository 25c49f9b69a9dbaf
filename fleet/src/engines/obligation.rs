//! obligation-engine (8082, axum): records the bilateral obligation each
//! accepted payment creates and publishes it on NATS for clearing.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use services_glue::health::Readiness;
use services_glue::nats::NatsTelemetry;
use telemetry::Telemetry;

use super::{EngineError, Valid};
use crate::domain::{Obligation, subjects};
use crate::env::EngineEnv;
use crate::faults::Faults;

services_glue::instruments! {
    /// obligation-engine's business instruments.
    pub struct ObligationInstruments {
        /// Obligations recorded.
        recorded: counter("deltran.obligations.recorded", "{obligation}",
            "Bilateral obligations recorded, by currency and publish outcome", ["currency", "outcome"]),
        /// Obligation amounts.
        amount: histogram("deltran.obligations.amount", "{amount}", "Amounts of recorded obligations", ["currency"],
            [100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0]),
    }
}

struct Obligations {
    m: ObligationInstruments,
    faults: Faults,
    nats: async_nats::Client,
    nats_telemetry: NatsTelemetry,
}

async fn record(
    State(o): State<Arc<Obligations>>,
    Valid(obligation): Valid<Obligation>,
) -> Response {
    if o.faults.apply().await.is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected fault\n").into_response();
    }
    let payload = match serde_json::to_vec(&obligation) {
        Ok(p) => p,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let published = o
        .nats_telemetry
        .publish(&o.nats, subjects::OBLIGATIONS, payload.into())
        .await;
    let currency = obligation.currency.as_str();
    o.m.amount.record(obligation.amount, [currency]);
    match published {
        Ok(()) => {
            o.m.recorded.add(1, [currency, "published"]);
            tracing::info!(payment.id = %obligation.payment_id, "obligation recorded");
            (StatusCode::CREATED, Json(obligation)).into_response()
        }
        Err(e) => {
            o.m.recorded.add(1, [currency, "publish_failed"]);
            tracing::error!(error = %e, "obligation not published");
            (StatusCode::SERVICE_UNAVAILABLE, "NATS publish failed\n").into_response()
        }
    }
}

/// Runs obligation-engine until SIGINT/SIGTERM.
pub fn main(env: EngineEnv) -> Result<(), EngineError> {
    let t = telemetry::builder!("obligation-engine").try_init()?;
    super::block_on(serve(&t, &env))
}

async fn serve(t: &Telemetry, env: &EngineEnv) -> Result<(), EngineError> {
    let meter = t.meter();
    let nats = super::connect_nats(env, "obligation-engine").await?;
    let readiness = Readiness::new().check("nats", super::nats_ready(&nats));
    let o = Arc::new(Obligations {
        m: ObligationInstruments::new(&meter),
        faults: super::faults(env),
        nats,
        nats_telemetry: NatsTelemetry::new(&meter),
    });
    let app = Router::new()
        .route("/obligations", post(record))
        .with_state(o);
    super::serve_axum(t, env, app, readiness).await
}
