//! The seven analysis agents. Each answers a round's request on NATS: it
//! calls its MCP tools, asks the LLM, and replies with a signal (buy, sell
//! or hold) and a confidence, all inside the round's trace.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use services_glue::nats::NatsTelemetry;

use super::llm::{LlmClient, conviction};
use super::{ComponentError, Host};
use crate::catalogue::{ANALYSIS_SUBJECT, AgentKind, Component};
use crate::risk;
use crate::tools::{CallError, ToolClients};

services_glue::instruments! {
    /// What every agent records.
    pub struct AgentInstruments {
        /// Signals by agent and type.
        signals: counter("cryptofunk.agent.signals", "{signal}",
            "Signals produced, by agent and signal type (buy, sell, hold)", ["agent", "signal.type"]),
        /// Time to analyse one request.
        analysis: histogram("cryptofunk.agent.analysis.duration", "s",
            "Duration of one analysis (tool calls and the LLM call included)", ["agent"], []),
        /// How sure the agent was.
        confidence: histogram("cryptofunk.agent.signal.confidence", "1",
            "Confidence of produced signals, 0-1", ["agent"],
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        /// Healthy or not.
        healthy: gauge("cryptofunk.agent.healthy", "{agent}",
            "1 while the agent's analyses succeed, 0 after three failures in a row", ["agent"]),
    }
}

/// Failures in a row after which an agent reports itself unhealthy.
pub const UNHEALTHY_AFTER: u32 = 3;

/// A round's question to the agents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalysisRequest {
    /// Round number.
    pub round: u64,
    /// What to analyse.
    pub symbol: String,
}

/// An agent's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentSignal {
    /// Which agent (`agent` label).
    pub agent: String,
    /// Round number.
    pub round: u64,
    /// `buy`, `sell` or `hold`; `hold` when the analysis failed.
    pub signal: String,
    /// 0–1.
    pub confidence: f64,
    /// Why the analysis failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why one analysis failed.
#[derive(Debug, thiserror::Error)]
enum AnalysisError {
    #[error(transparent)]
    Tool(#[from] CallError),
    #[error(transparent)]
    Llm(#[from] super::llm::LlmError),
    #[error("unexpected tool answer: {0}")]
    Shape(&'static str),
}

struct Agent {
    kind: AgentKind,
    m: AgentInstruments,
    tools: Arc<ToolClients>,
    llm: LlmClient,
    failures: AtomicU32,
}

/// Runs the agent until stopped.
pub async fn serve(host: Host<'_>) -> Result<(), ComponentError> {
    let Some(kind) = host.component.agent() else {
        return Ok(());
    };
    let meter = host.t.meter();
    let client = host.nats().await?;
    let nats = NatsTelemetry::new(&meter);
    let agent = Arc::new(Agent {
        kind,
        m: AgentInstruments::new(&meter),
        tools: host.tool_clients(),
        llm: LlmClient::new(host.env.peer(Component::LlmGateway), &meter),
        failures: AtomicU32::new(0),
    });
    agent.m.healthy.record(1.0, [kind.label()]);
    for signal in ["buy", "sell", "hold"] {
        agent.m.signals.add(0, [kind.label(), signal]);
    }
    let consumer = {
        let (client, nats, agent) = (client.clone(), nats.clone(), Arc::clone(&agent));
        tokio::spawn(async move {
            nats.consumer(&client, ANALYSIS_SUBJECT)
                .queue_group(kind.label())
                .run(deltran_fleet::shutdown::shutdown_signal(), |message| {
                    let (client, nats, agent) = (client.clone(), nats.clone(), Arc::clone(&agent));
                    async move { agent.answer(&client, &nats, message).await }
                })
                .await
        })
    };
    let ready = deltran_fleet::hosting::nats_ready(&client);
    let served = host.serve(axum::Router::new(), None, Arc::new(ready)).await;
    consumer.abort();
    agent.tools.close().await;
    served
}

impl Agent {
    async fn answer(
        &self,
        client: &async_nats::Client,
        nats: &NatsTelemetry,
        message: async_nats::Message,
    ) -> Result<(), String> {
        let request: AnalysisRequest = serde_json::from_slice(&message.payload)
            .map_err(|e| format!("undecodable request: {e}"))?;
        let label = self.kind.label();
        let started = Instant::now();
        let answer = match self.analyse(&request.symbol).await {
            Ok((signal, confidence)) => {
                self.failures.store(0, Ordering::Relaxed);
                self.m.healthy.record(1.0, [label]);
                self.m.signals.add(1, [label, signal]);
                self.m.confidence.record(confidence, [label]);
                tracing::info!(agent = label, symbol = %request.symbol, signal, confidence, "signal");
                AgentSignal {
                    agent: label.into(),
                    round: request.round,
                    signal: signal.into(),
                    confidence,
                    error: None,
                }
            }
            Err(e) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= UNHEALTHY_AFTER {
                    self.m.healthy.record(0.0, [label]);
                }
                tracing::warn!(agent = label, error = %e, failures, "analysis failed");
                AgentSignal {
                    agent: label.into(),
                    round: request.round,
                    signal: "hold".into(),
                    confidence: 0.0,
                    error: Some(e.to_string()),
                }
            }
        };
        self.m
            .analysis
            .record(started.elapsed().as_secs_f64(), [label]);
        if let Some(reply) = &message.reply {
            let payload = serde_json::to_vec(&answer).map_err(|e| e.to_string())?;
            nats.publish(client, reply.as_str(), payload.into())
                .await
                .map_err(|e| format!("reply not sent: {e}"))?;
        }
        Ok(())
    }

    async fn market(&self, tool: &str, symbol: &str, extra: Value) -> Result<Value, CallError> {
        let mut args = json!({ "symbol": symbol });
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        self.tools.call(Component::MarketData, tool, args).await
    }

    async fn indicator(&self, tool: &str, args: Value) -> Result<Value, CallError> {
        self.tools
            .call(Component::TechnicalIndicators, tool, args)
            .await
    }

    /// The signal and its confidence.
    async fn analyse(&self, symbol: &str) -> Result<(&'static str, f64), AnalysisError> {
        let (signal, strength, summary) = self.rule(symbol).await?;
        let answer = self
            .llm
            .chat(
                &format!(
                    "You are the {} analyst of a crypto trading desk.",
                    self.kind.label()
                ),
                &format!("{symbol}: {summary}. Proposed signal: {signal}. State your conviction."),
            )
            .await?;
        let confidence = (strength * conviction(&answer).unwrap_or(0.8)).clamp(0.05, 1.0);
        Ok((signal, confidence))
    }

    /// The agent's own rule: signal, strength (0–1) and what it saw.
    async fn rule(&self, symbol: &str) -> Result<(&'static str, f64, String), AnalysisError> {
        let candles = |n: usize| self.market("get_candles", symbol, json!({ "count": n }));
        let closes_of = |v: &Value| -> Vec<f64> {
            v["candles"]
                .as_array()
                .map(|c| c.iter().filter_map(|c| c["close"].as_f64()).collect())
                .unwrap_or_default()
        };
        let field = |v: &Value, k: &'static str| v[k].as_f64().ok_or(AnalysisError::Shape(k));
        Ok(match self.kind {
            AgentKind::Technical => {
                let c = candles(60).await?;
                let closes = closes_of(&c);
                let rsi = field(
                    &self.indicator("rsi", json!({ "closes": closes })).await?,
                    "rsi",
                )?;
                let hist = field(
                    &self.indicator("macd", json!({ "closes": closes })).await?,
                    "histogram",
                )?;
                let signal = if hist > 0.0 && rsi < 70.0 {
                    "buy"
                } else if hist < 0.0 && rsi > 30.0 {
                    "sell"
                } else {
                    "hold"
                };
                (
                    signal,
                    (hist.abs() / closes.last().copied().unwrap_or(1.0) * 500.0).clamp(0.2, 1.0),
                    format!("RSI {rsi:.1}, MACD histogram {hist:.4}"),
                )
            }
            AgentKind::Orderbook => {
                let imbalance = field(
                    &self.market("get_order_book", symbol, json!({})).await?,
                    "imbalance",
                )?;
                let signal = if imbalance > 0.1 {
                    "buy"
                } else if imbalance < -0.1 {
                    "sell"
                } else {
                    "hold"
                };
                (
                    signal,
                    imbalance.abs().clamp(0.2, 1.0),
                    format!("book imbalance {imbalance:.3}"),
                )
            }
            AgentKind::Sentiment => {
                let score = field(
                    &self.market("get_sentiment", symbol, json!({})).await?,
                    "score",
                )?;
                let signal = if score > 0.2 {
                    "buy"
                } else if score < -0.2 {
                    "sell"
                } else {
                    "hold"
                };
                (
                    signal,
                    score.abs().clamp(0.2, 1.0),
                    format!("sentiment {score:.2}"),
                )
            }
            AgentKind::Trend => {
                let c = candles(60).await?;
                let closes = closes_of(&c);
                let of = |k: &str| -> Vec<f64> {
                    c["candles"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x[k].as_f64()).collect())
                        .unwrap_or_default()
                };
                let fast = field(
                    &self
                        .indicator("ema", json!({ "closes": closes, "period": 10 }))
                        .await?,
                    "ema",
                )?;
                let slow = field(
                    &self
                        .indicator("ema", json!({ "closes": closes, "period": 30 }))
                        .await?,
                    "ema",
                )?;
                let adx = field(
                    &self
                        .indicator(
                            "adx",
                            json!({ "highs": of("high"), "lows": of("low"), "closes": closes }),
                        )
                        .await?,
                    "adx",
                )?;
                let signal = if adx < 20.0 {
                    "hold"
                } else if fast > slow {
                    "buy"
                } else {
                    "sell"
                };
                (
                    signal,
                    (adx / 50.0).clamp(0.2, 1.0),
                    format!("EMA10 {fast:.2} vs EMA30 {slow:.2}, ADX {adx:.1}"),
                )
            }
            AgentKind::Reversion => {
                let c = candles(30).await?;
                let closes = closes_of(&c);
                let last = closes.last().copied().unwrap_or_default();
                let b = self
                    .indicator("bollinger", json!({ "closes": closes }))
                    .await?;
                let (lower, upper) = (field(&b, "lower")?, field(&b, "upper")?);
                let signal = if last < lower {
                    "buy"
                } else if last > upper {
                    "sell"
                } else {
                    "hold"
                };
                (
                    signal,
                    0.6,
                    format!("close {last:.2} in band {lower:.2}..{upper:.2}"),
                )
            }
            AgentKind::Arbitrage => {
                let v = self.market("get_venue_prices", symbol, json!({})).await?;
                let (primary, secondary) = (field(&v, "primary")?, field(&v, "secondary")?);
                let spread = (secondary - primary) / primary;
                let signal = if spread > 0.001 {
                    "buy"
                } else if spread < -0.001 {
                    "sell"
                } else {
                    "hold"
                };
                (
                    signal,
                    (spread.abs() * 300.0).clamp(0.2, 1.0),
                    format!("venue spread {:.3} %", spread * 100.0),
                )
            }
            AgentKind::Risk => {
                let c = candles(60).await?;
                let returns = risk::returns(&closes_of(&c));
                let var = field(
                    &self
                        .tools
                        .call(
                            Component::RiskAnalyzer,
                            "value_at_risk",
                            json!({ "returns": returns, "value": 100_000.0 }),
                        )
                        .await?,
                    "value_at_risk",
                )?;
                let wins: Vec<f64> = returns.iter().copied().filter(|r| *r > 0.0).collect();
                let losses: Vec<f64> = returns.iter().copied().filter(|r| *r < 0.0).collect();
                let mean = |v: &[f64]| {
                    if v.is_empty() {
                        0.0
                    } else {
                        v.iter().sum::<f64>() / v.len() as f64
                    }
                };
                let win_rate = if returns.is_empty() {
                    0.0
                } else {
                    wins.len() as f64 / returns.len() as f64
                };
                let payoff = if losses.is_empty() {
                    1.0
                } else {
                    mean(&wins) / mean(&losses).abs().max(1e-9)
                };
                let fraction = field(
                    &self
                        .tools
                        .call(
                            Component::RiskAnalyzer,
                            "kelly",
                            json!({ "win_rate": win_rate, "payoff": payoff }),
                        )
                        .await?,
                    "fraction",
                )?;
                let signal = if var > 3_000.0 {
                    "sell"
                } else if fraction > 0.05 {
                    "buy"
                } else {
                    "hold"
                };
                (
                    signal,
                    0.5,
                    format!("VaR {var:.0} USD on 100k, Kelly {fraction:.2}"),
                )
            }
        })
    }
}
