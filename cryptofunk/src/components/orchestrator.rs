//! The orchestrator: one trading round per `CRYPTOFUNK_ROUND_MS`, each one
//! trace — the portfolio from the order executor, every agent's signal over
//! NATS, the consensus, the risk check and the order.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use services_glue::nats::NatsTelemetry;
use tracing::Instrument;
use tracing::field::Empty;

use super::agent::{AgentSignal, AnalysisRequest};
use super::{ComponentError, Host};
use crate::catalogue::{ANALYSIS_SUBJECT, AgentKind, Component};
use crate::market::SYMBOLS;
use crate::tools::ToolClients;

services_glue::instruments! {
    /// The orchestrator's instruments.
    pub struct OrchestratorInstruments {
        /// Rounds by decision.
        rounds: counter("cryptofunk.rounds", "{round}",
            "Trading rounds by decision (buy, sell, hold, refused)", ["decision"]),
        /// Time of one round.
        round_duration: histogram("cryptofunk.round.duration", "s",
            "Duration of one trading round, from asking the agents to the order", [], []),
    }
}

/// Consensus score past which the desk trades.
const THRESHOLD: f64 = 0.15;
/// Share of cash one buy uses at full consensus.
const BUY_SHARE: f64 = 0.4;
/// Share of a position one sell closes.
const SELL_SHARE: f64 = 0.5;

/// What a round decided, for `GET /api/rounds/latest`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RoundResult {
    /// Round number.
    pub round: u64,
    /// Symbol.
    pub symbol: String,
    /// Signals received.
    pub signals: Vec<AgentSignal>,
    /// Weighted consensus, -1 (sell) to 1 (buy).
    pub score: f64,
    /// buy, sell, hold or refused.
    pub decision: String,
    /// The order's status, if one was placed.
    pub order: Option<String>,
    /// The round's trace id.
    pub trace_id: Option<String>,
}

struct Orchestrator {
    m: OrchestratorInstruments,
    tools: Arc<ToolClients>,
    client: async_nats::Client,
    nats: NatsTelemetry,
    round: Duration,
    latest: Mutex<Option<RoundResult>>,
}

/// Runs rounds until stopped.
pub async fn serve(host: Host<'_>) -> Result<(), ComponentError> {
    let meter = host.t.meter();
    let client = host.nats().await?;
    let m = OrchestratorInstruments::new(&meter);
    for decision in ["buy", "sell", "hold", "refused"] {
        m.rounds.add(0, [decision]);
    }
    let o = Arc::new(Orchestrator {
        m,
        tools: host.tool_clients(),
        client: client.clone(),
        nats: NatsTelemetry::new(&meter),
        round: host.env.round,
        latest: Mutex::new(None),
    });
    let rounds = {
        let o = Arc::clone(&o);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(o.round);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 1u64.. {
                every.tick().await;
                let result = o.run_round(n).await;
                if let Ok(mut latest) = o.latest.lock() {
                    *latest = Some(result);
                }
            }
        })
    };
    let app = axum::Router::new()
        .route("/api/rounds/latest", axum::routing::get(latest))
        .with_state(Arc::clone(&o));
    let ready = deltran_fleet::hosting::nats_ready(&client);
    let served = host.serve(app, None, Arc::new(ready)).await;
    rounds.abort();
    o.tools.close().await;
    served
}

async fn latest(State(o): State<Arc<Orchestrator>>) -> Json<Value> {
    let latest = o.latest.lock().ok().and_then(|l| l.clone());
    Json(serde_json::to_value(latest).unwrap_or_default())
}

impl Orchestrator {
    async fn run_round(&self, n: u64) -> RoundResult {
        let symbol = SYMBOLS[(n as usize) % SYMBOLS.len()];
        let span = tracing::info_span!(
            "trading round",
            otel.name = "trading round",
            round.number = n,
            cryptofunk.symbol = symbol,
            cryptofunk.decision = Empty,
        );
        let started = Instant::now();
        let mut result = self.round(n, symbol).instrument(span.clone()).await;
        span.record("cryptofunk.decision", result.decision.as_str());
        result.trace_id = services_glue::propagation::trace_id_of(&span);
        self.m.rounds.add(1, [result.decision.as_str()]);
        self.m
            .round_duration
            .record(started.elapsed().as_secs_f64(), []);
        span.in_scope(|| {
            tracing::info!(round = n, symbol, decision = %result.decision, score = result.score, "round decided");
        });
        result
    }

    async fn round(&self, n: u64, symbol: &str) -> RoundResult {
        let mut result = RoundResult {
            round: n,
            symbol: symbol.to_string(),
            decision: "hold".into(),
            ..Default::default()
        };
        let portfolio = match self
            .tools
            .call(Component::OrderExecutor, "get_portfolio", json!({}))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "no portfolio: the round holds");
                return result;
            }
        };
        result.signals = self.ask_agents(n, symbol).await;
        result.score = consensus(&result.signals);
        let decision = if result.score > THRESHOLD {
            "buy"
        } else if result.score < -THRESHOLD {
            "sell"
        } else {
            "hold"
        };
        result.decision = decision.into();
        let number = |k: &str| portfolio[k].as_f64().unwrap_or_default();
        let strength = (result.score.abs() * 2.0).min(1.0);
        let value = match decision {
            "buy" => number("cash") * BUY_SHARE * strength,
            "sell" => {
                // The executor sells at most what is held.
                number("invested") * SELL_SHARE * strength
            }
            _ => return result,
        };
        if value < 1.0 {
            result.decision = "hold".into();
            return result;
        }
        if decision == "buy" {
            let check = self
                .tools
                .call(
                    Component::RiskAnalyzer,
                    "check_limits",
                    json!({
                        "order_value": value,
                        "portfolio_value": number("value"),
                        "invested": number("invested"),
                        "drawdown": number("drawdown"),
                    }),
                )
                .await;
            match check {
                Ok(c) if c["allowed"] == Value::Bool(true) => {}
                Ok(c) => {
                    tracing::info!(breaches = %c["breaches"], "risk limits refuse the buy");
                    result.decision = "refused".into();
                    return result;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "risk analyzer unavailable: no buy");
                    result.decision = "refused".into();
                    return result;
                }
            }
        }
        let order = self
            .tools
            .call(
                Component::OrderExecutor,
                "place_market_order",
                json!({ "symbol": symbol, "side": decision, "value_usd": value }),
            )
            .await;
        result.order = Some(match order {
            Ok(o) => o["status"].as_str().unwrap_or("unknown").to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "order not placed");
                "failed".into()
            }
        });
        result
    }

    /// Every agent's signal, within the round's time.
    async fn ask_agents(&self, n: u64, symbol: &str) -> Vec<AgentSignal> {
        let inbox = self.client.new_inbox();
        let Ok(mut answers) = self.client.subscribe(inbox.clone()).await else {
            tracing::warn!("cannot subscribe to the agents' answers");
            return Vec::new();
        };
        let request = AnalysisRequest {
            round: n,
            symbol: symbol.to_string(),
        };
        let payload = serde_json::to_vec(&request).unwrap_or_default();
        if let Err(e) = self
            .nats
            .publish_with_reply(&self.client, ANALYSIS_SUBJECT, &inbox, payload.into())
            .await
        {
            tracing::warn!(error = %e, "analysis request not sent");
            return Vec::new();
        }
        let deadline =
            tokio::time::Instant::now() + self.round.mul_f64(0.8).max(Duration::from_millis(500));
        let mut signals = Vec::new();
        while signals.len() < AgentKind::ALL.len() {
            let next = tokio::time::timeout_at(deadline, answers.next()).await;
            let Ok(Some(message)) = next else { break };
            let processing = self.nats.process(&message);
            match serde_json::from_slice::<AgentSignal>(&message.payload) {
                Ok(signal) if signal.round == n => {
                    signals.push(signal);
                    processing.finish(Ok::<(), String>(()));
                }
                Ok(_) => processing.finish(Err("an earlier round's answer")),
                Err(e) => processing.finish(Err(e.to_string())),
            }
        }
        let _ = answers.unsubscribe().await;
        if signals.len() < AgentKind::ALL.len() {
            tracing::warn!(answered = signals.len(), "not every agent answered in time");
        }
        signals
    }
}

/// Confidence-weighted vote over every agent (missing ones count as
/// holds): -1 all sell, 1 all buy.
pub fn consensus(signals: &[AgentSignal]) -> f64 {
    let sum: f64 = signals
        .iter()
        .map(|s| match s.signal.as_str() {
            "buy" => s.confidence,
            "sell" => -s.confidence,
            _ => 0.0,
        })
        .sum();
    sum / AgentKind::ALL.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(s: &str, c: f64) -> AgentSignal {
        AgentSignal {
            agent: "a".into(),
            round: 1,
            signal: s.into(),
            confidence: c,
            error: None,
        }
    }

    #[test]
    fn consensus_weighs_by_confidence_and_missing_agents_hold() {
        assert_eq!(consensus(&[]), 0.0);
        let all_buy: Vec<_> = (0..7).map(|_| signal("buy", 1.0)).collect();
        assert_eq!(consensus(&all_buy), 1.0);
        let mixed = [signal("buy", 0.7), signal("sell", 0.7), signal("hold", 1.0)];
        assert_eq!(consensus(&mixed), 0.0);
        assert!((consensus(&[signal("sell", 0.7)]) + 0.1).abs() < 1e-12);
    }
}
