//! liquidity-router (8083, axum): picks a corridor and a liquidity source
//! for each net position; FX rates come through a measured cache.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use services_glue::cache::InstrumentedCache;
use services_glue::health::Readiness;
use telemetry::Telemetry;

use super::{EngineError, Valid};
use crate::domain::{Route, RouteRequest};
use crate::env::EngineEnv;
use crate::faults::Faults;
use crate::ttl_cache::TtlCache;

services_glue::instruments! {
    /// liquidity-router's business instruments.
    pub struct LiquidityInstruments {
        /// Routes chosen, by corridor and source.
        routes: counter("deltran.liquidity.routes", "{route}", "Net positions routed, by corridor and liquidity source",
            ["corridor", "source"]),
        /// Routed value in USD.
        routed_usd: histogram("deltran.liquidity.routed.usd", "{USD}", "Value of routed net positions in USD", ["corridor"],
            [1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0]),
    }
}

/// FX rates remembered (one per cleared currency; room to spare).
const FX_CACHE_ENTRIES: std::num::NonZeroUsize = std::num::NonZeroUsize::MIN.saturating_add(63);

struct Liquidity {
    m: LiquidityInstruments,
    faults: Faults,
    fx: InstrumentedCache<TtlCache<String, f64>>,
}

impl Liquidity {
    /// USD per unit of `currency`; a miss asks the (simulated) rate provider.
    async fn fx_rate_usd(&self, currency: &str) -> f64 {
        if let Some(rate) = self.fx.get(&currency.to_string()) {
            return rate;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let base = match currency {
            "EUR" => 1.08,
            "GBP" => 1.27,
            "AED" => 0.272,
            _ => 1.0,
        };
        let rate = base * (1.0 + (fastrand::f64() - 0.5) * 0.002);
        self.fx.insert(currency.to_string(), rate);
        rate
    }
}

async fn route(State(l): State<Arc<Liquidity>>, Valid(request): Valid<RouteRequest>) -> Response {
    if l.faults.apply().await.is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected fault\n").into_response();
    }
    let fx_rate_usd = l.fx_rate_usd(&request.currency).await;
    let usd = request.amount * fx_rate_usd;
    let corridor = match (request.currency.as_str(), usd) {
        (_, v) if v < 50_000.0 => "instant",
        ("EUR", _) => "sepa",
        (_, v) if v > 1_000_000.0 => "rtgs",
        _ => "swift",
    };
    let source = if usd > 500_000.0 {
        "credit_line"
    } else {
        "nostro"
    };
    l.m.routes.add(1, [corridor, source]);
    l.m.routed_usd.record(usd, [corridor]);
    Json(Route {
        corridor: corridor.into(),
        source: source.into(),
        fx_rate_usd,
    })
    .into_response()
}

/// Runs liquidity-router until SIGINT/SIGTERM.
pub fn main(env: EngineEnv) -> Result<(), EngineError> {
    let t = telemetry::builder!("liquidity-router").try_init()?;
    super::block_on(serve(&t, &env))
}

async fn serve(t: &Telemetry, env: &EngineEnv) -> Result<(), EngineError> {
    let meter = t.meter();
    let l = Arc::new(Liquidity {
        m: LiquidityInstruments::new(&meter),
        faults: super::faults(env),
        fx: InstrumentedCache::new(
            TtlCache::new(Duration::from_secs(5), FX_CACHE_ENTRIES),
            "fx_rates",
            &meter,
        ),
    });
    let app = Router::new().route("/routes", post(route)).with_state(l);
    super::serve_axum(t, env, app, Readiness::new()).await
}
