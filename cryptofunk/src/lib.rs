//! CryptoFunk: an agent trading desk as a second demo system on the same
//! `telemetry` and `services-glue` as DelTran. Every component is its own
//! process (`cryptofunk component <name>`), started by the launcher
//! (`cryptofunk`).
//!
//! One trading decision, one trace:
//!
//! ```text
//! orchestrator ─ trading round
//!   ├─ MCP tools/call get_portfolio ─► order-executor ─ MCP get_prices ─► market-data
//!   ├─ NATS publish cryptofunk.analysis.requests ─► 7 agents (process)
//!   │     ├─ MCP tools/call get_candles, rsi, macd, … ─► market-data, technical-indicators, risk-analyzer
//!   │     ├─ chat cryptofunk-sim-1 ─ HTTP POST ─► llm-gateway
//!   │     └─ NATS publish (reply) ─► orchestrator (process)
//!   ├─ MCP tools/call check_limits ─► risk-analyzer
//!   └─ MCP tools/call place_market_order ─► order-executor ─ MCP get_prices ─► market-data
//! ```

pub mod catalogue;
pub mod components;
pub mod env;
pub mod indicators;
pub mod launcher;
pub mod market;
pub mod portfolio;
pub mod risk;
pub mod tools;
