//! clearing-engine (8085, axum for health): consumes obligations from NATS,
//! nets them per bank pair and currency in clearing windows, routes each net
//! position through liquidity-router and publishes it for settlement.
//!
//! Tracing: each obligation's `process` span is in its payment's trace; the
//! window is a trace of its own (`clear window`) linked to every obligation
//! it nets, and each member's trace context travels on in the instruction.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use services_glue::health::Readiness;
use services_glue::nats::NatsTelemetry;
use services_glue::reqwest::TracedClient;
use telemetry::Telemetry;
use tracing::Instrument;

use super::{EngineError, EngineKind, post_json};
use crate::domain::{Member, Obligation, Route, RouteRequest, SettlementInstruction, subjects};
use crate::env::EngineEnv;

services_glue::instruments! {
    /// clearing-engine's business instruments.
    pub struct ClearingInstruments {
        /// Windows closed.
        windows: counter("deltran.clearing.windows", "{window}", "Clearing windows closed with obligations in them", []),
        /// Obligations netted.
        obligations: counter("deltran.clearing.obligations", "{obligation}", "Obligations netted", ["currency"]),
        /// Net positions produced.
        net_positions: counter("deltran.clearing.net_positions", "{position}",
            "Net positions produced, by routing outcome (routed, unrouted)", ["outcome"]),
        /// Netting ratio of the last window.
        netting_ratio: gauge("deltran.clearing.netting", "1",
            "Share of gross value removed by netting in the last window (1 - net/gross)", []),
        /// Gross value per window.
        gross: histogram("deltran.clearing.window.gross", "{amount}", "Gross value cleared per window", [],
            [1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0, 100_000_000.0]),
        /// When the clearing loop last closed a window, empty or not: its age
        /// against the window length tells a stalled loop from a quiet one.
        closed_at: gauge("deltran.clearing.window.closed_timestamp", "s",
            "Unix time at which the last clearing window closed, with or without obligations", []),
        /// The configured window length.
        length: gauge("deltran.clearing.window.length", "s", "Configured clearing window length", []),
    }
}

/// An obligation waiting for its window, with its `process` span's context.
struct Pending {
    obligation: Obligation,
    carrier: std::collections::HashMap<String, String>,
}

struct Clearing {
    m: ClearingInstruments,
    window: Mutex<Vec<Pending>>,
    http: TracedClient,
    liquidity: String,
    nats: async_nats::Client,
    nats_telemetry: NatsTelemetry,
}

/// Most obligations one window holds; beyond it the obligation is refused
/// (and its payment fails to settle) rather than memory following the input.
pub const MAX_WINDOW_OBLIGATIONS: usize = 100_000;

fn on_obligation(c: &Clearing, obligation: Obligation) -> Result<(), String> {
    // The current span is this message's CONSUMER span (a child of the publish).
    let carrier = services_glue::propagation::carrier_of(&tracing::Span::current());
    tracing::debug!(payment.id = %obligation.payment_id, "obligation queued for the window");
    let mut window = c
        .window
        .lock()
        .map_err(|_| "window lock poisoned".to_string())?;
    if window.len() >= MAX_WINDOW_OBLIGATIONS {
        return Err(format!(
            "clearing window full ({MAX_WINDOW_OBLIGATIONS} obligations)"
        ));
    }
    window.push(Pending {
        obligation,
        carrier,
    });
    Ok(())
}

/// One bank pair's position in one currency: positive means `a` owes `b`.
#[derive(Default)]
struct Position {
    net: f64,
    members: Vec<Member>,
}

async fn close_window(c: &Clearing) {
    let pending = match c.window.lock() {
        Ok(mut w) => std::mem::take(&mut *w),
        Err(_) => return,
    };
    c.m.closed_at
        .record(crate::domain::now_ms() as f64 / 1000.0, []);
    if pending.is_empty() {
        return;
    }
    let window_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        parent: None,
        "clear window",
        deltran.window.id = %window_id,
        deltran.window.obligations = pending.len() as i64,
    );
    for p in &pending {
        services_glue::propagation::link_to_carrier(&span, &p.carrier);
    }
    net_and_publish(c, window_id, pending)
        .instrument(span)
        .await;
}

async fn net_and_publish(c: &Clearing, window_id: String, pending: Vec<Pending>) {
    let mut gross = 0.0;
    let mut positions: BTreeMap<(String, String, String), Position> = BTreeMap::new();
    for p in pending {
        let o = p.obligation;
        gross += o.amount;
        c.m.obligations.add(1, [o.currency.as_str()]);
        let (a, b, sign) = if o.from_bank < o.to_bank {
            (o.from_bank.clone(), o.to_bank.clone(), 1.0)
        } else {
            (o.to_bank.clone(), o.from_bank.clone(), -1.0)
        };
        let position = positions.entry((a, b, o.currency.clone())).or_default();
        position.net += sign * o.amount;
        position.members.push(Member {
            payment_id: o.payment_id,
            accepted_at_ms: o.accepted_at_ms,
            carrier: p.carrier,
        });
    }
    let net_total: f64 = positions.values().map(|p| p.net.abs()).sum();
    let ratio = if gross > 0.0 {
        1.0 - net_total / gross
    } else {
        0.0
    };
    c.m.windows.add(1, []);
    c.m.netting_ratio.record(ratio, []);
    c.m.gross.record(gross, []);
    tracing::info!(window.id = %window_id, positions = positions.len(), gross, netting_ratio = ratio, "window netted");
    for ((a, b, currency), position) in positions {
        let (from_bank, to_bank) = if position.net >= 0.0 { (a, b) } else { (b, a) };
        let request = RouteRequest {
            from_bank: from_bank.clone(),
            to_bank: to_bank.clone(),
            amount: position.net.abs(),
            currency: currency.clone(),
        };
        let route: Route = match post_json(&c.http, format!("{}/routes", c.liquidity), &request)
            .await
        {
            Ok(r) => {
                c.m.net_positions.add(1, ["routed"]);
                r
            }
            Err(e) => {
                // Settle anyway on the default corridor: routing is an optimisation.
                tracing::warn!(error = %e, "liquidity-router unavailable; using the default corridor");
                c.m.net_positions.add(1, ["unrouted"]);
                Route {
                    corridor: "swift".into(),
                    source: "nostro".into(),
                    fx_rate_usd: 1.0,
                }
            }
        };
        let instruction = SettlementInstruction {
            window_id: window_id.clone(),
            from_bank,
            to_bank,
            net_amount: position.net.abs(),
            currency,
            route,
            members: position.members,
        };
        let payload = match serde_json::to_vec(&instruction) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "instruction not encodable");
                continue;
            }
        };
        if let Err(e) = c
            .nats_telemetry
            .publish(&c.nats, subjects::INSTRUCTIONS, payload.into())
            .await
        {
            tracing::error!(error = %e, "settlement instruction not published");
        }
    }
}

/// `GET /windows/current`: what the open window holds.
async fn current_window(
    axum::extract::State(c): axum::extract::State<Arc<Clearing>>,
) -> axum::Json<serde_json::Value> {
    let (count, gross) = c.window.lock().map_or((0, 0.0), |w| {
        (w.len(), w.iter().map(|p| p.obligation.amount).sum::<f64>())
    });
    axum::Json(serde_json::json!({ "obligations": count, "gross": gross }))
}

/// Runs clearing-engine until SIGINT/SIGTERM.
pub fn main(env: EngineEnv) -> Result<(), EngineError> {
    let t = telemetry::builder!("clearing-engine").try_init()?;
    super::block_on(serve(&t, &env))
}

async fn serve(t: &Telemetry, env: &EngineEnv) -> Result<(), EngineError> {
    let meter = t.meter();
    let nats = super::connect_nats(env, "clearing-engine").await?;
    let nats_telemetry = NatsTelemetry::new(&meter);
    let c = Arc::new(Clearing {
        m: ClearingInstruments::new(&meter),
        window: Mutex::new(Vec::new()),
        http: super::http_client(t),
        liquidity: env.peer_url(EngineKind::LiquidityRouter),
        nats: nats.clone(),
        nats_telemetry: nats_telemetry.clone(),
    });
    c.m.length.record(env.clearing_window.as_secs_f64(), []);
    {
        let c = c.clone();
        tokio::spawn(super::consume(
            nats.clone(),
            nats_telemetry,
            super::MessageInstruments::new(&meter),
            subjects::OBLIGATIONS,
            Some("clearing-engine"),
            move |o| std::future::ready(on_obligation(&c, o)),
        ));
    }
    let ticker = {
        let (c, every) = (c.clone(), env.clearing_window);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                close_window(&c).await;
            }
        })
    };
    let readiness = Readiness::new().check("nats", super::nats_ready(&nats));
    let app = Router::new()
        .route("/windows/current", axum::routing::get(current_window))
        .with_state(c.clone());
    let result = super::serve_axum(t, env, app, readiness).await;
    // Net what is still waiting so no accepted payment is stranded.
    ticker.abort();
    close_window(&c).await;
    result
}
