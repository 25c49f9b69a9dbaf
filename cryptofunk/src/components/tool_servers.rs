//! The four MCP tool servers: market-data (the deterministic market), technical
//! indicators, the risk analyzer and the paper-trading order executor.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rmcp::model::JsonObject;
use serde_json::{Value, json};
use services_glue::db::DbTelemetry;

use super::{ComponentError, Host, always};
use crate::catalogue::Component;
use crate::indicators;
use crate::market::{Crash, Market, SYMBOLS};
use crate::portfolio::{Book, Side, Snapshot};
use crate::risk::{self, Limits};
use crate::tools::{ToolClients, ToolError, ToolFuture, Tools, arg, arg_or, schema};

/// Most values a series argument may hold.
const MAX_SERIES: usize = 1_000;

/// Ticks of history the market has when it starts, so every indicator has
/// enough candles from the first round.
const HISTORY: u64 = 120;

/// Serves the component's tools until stopped.
pub async fn serve(host: Host<'_>) -> Result<(), ComponentError> {
    let meter = host.t.meter();
    let mut clients = None;
    let tools: Arc<dyn Tools> = match host.component {
        Component::MarketData => Arc::new(MarketTools::new(&host)),
        Component::TechnicalIndicators => Arc::new(IndicatorTools),
        Component::RiskAnalyzer => {
            let m = RiskInstruments::new(&meter);
            // Every series from the start, so rates read 0 rather than nothing.
            for limit in ["position_size", "exposure", "drawdown"] {
                m.breaches.add(0, [limit]);
            }
            Arc::new(RiskTools {
                m,
                limits: Limits::default(),
            })
        }
        _ => {
            let executor = ExecutorTools::open(&host).await?;
            clients = Some(Arc::clone(&executor.market));
            Arc::new(executor)
        }
    };
    let mcp = crate::tools::router(host.component.name(), tools, host.mcp.clone());
    let served = host.serve(axum::Router::new(), Some(mcp), always()).await;
    if let Some(clients) = clients {
        clients.close().await;
    }
    served
}

fn symbol_index(symbol: &str) -> Result<usize, ToolError> {
    Market::symbol_index(symbol)
        .ok_or_else(|| ToolError::Invalid(format!("unknown symbol; one of {}", SYMBOLS.join(", "))))
}

fn series(args: &JsonObject, key: &str) -> Result<Vec<f64>, ToolError> {
    let values: Vec<f64> = arg(args, key)?;
    if values.len() > MAX_SERIES {
        return Err(ToolError::Invalid(format!(
            "{key}: at most {MAX_SERIES} values"
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(ToolError::Invalid(format!("{key}: finite numbers only")));
    }
    Ok(values)
}

// --- market-data -----------------------------------------------------------------

struct MarketTools {
    market: Mutex<Market>,
    started: Instant,
    tick_ms: u128,
}

impl MarketTools {
    fn new(host: &Host<'_>) -> MarketTools {
        let tick_ms = host.env.tick.as_millis().max(1);
        let crash = host
            .env
            .crash_at
            .map(|at| Crash::severe(HISTORY + (at.as_millis() / tick_ms) as u64));
        MarketTools {
            market: Mutex::new(Market::new(host.env.seed, crash)),
            started: Instant::now(),
            tick_ms,
        }
    }

    fn tick(&self) -> u64 {
        HISTORY + (self.started.elapsed().as_millis() / self.tick_ms) as u64
    }

    fn with<T>(&self, f: impl FnOnce(&mut Market, u64) -> T) -> Result<T, ToolError> {
        let tick = self.tick();
        let mut market = self
            .market
            .lock()
            .map_err(|_| ToolError::Failed("market state unavailable".into()))?;
        Ok(f(&mut market, tick))
    }
}

impl Tools for MarketTools {
    fn list(&self) -> Vec<(&'static str, &'static str, Value)> {
        let symbol = schema(&[("symbol", "string")]);
        vec![
            ("get_price", "Last price of a symbol", symbol.clone()),
            ("get_prices", "Last price of every symbol", schema(&[])),
            (
                "get_candles",
                "The last `count` candles of a symbol",
                schema(&[("symbol", "string"), ("count", "integer")]),
            ),
            (
                "get_order_book",
                "Bid and ask depth of a symbol",
                symbol.clone(),
            ),
            (
                "get_sentiment",
                "News sentiment of a symbol, -1 to 1",
                symbol.clone(),
            ),
            (
                "get_venue_prices",
                "The symbol's price on two venues",
                symbol,
            ),
        ]
    }

    fn call<'a>(&'a self, tool: &'a str, args: JsonObject) -> ToolFuture<'a> {
        Box::pin(async move {
            match tool {
                "get_prices" => self.with(|m, t| {
                    let prices: serde_json::Map<String, Value> = SYMBOLS
                        .iter()
                        .enumerate()
                        .map(|(i, s)| ((*s).to_string(), json!(m.price(i, t))))
                        .collect();
                    json!({ "tick": t, "prices": prices })
                }),
                _ => {
                    let symbol: String = arg(&args, "symbol")?;
                    let i = symbol_index(&symbol)?;
                    match tool {
                        "get_price" => self.with(|m, t| json!({ "symbol": symbol, "tick": t, "price": m.price(i, t) })),
                        "get_candles" => {
                            let count: usize = arg_or(&args, "count", 50)?;
                            if count == 0 || count > MAX_SERIES {
                                return Err(ToolError::Invalid(format!("count: 1 to {MAX_SERIES}")));
                            }
                            self.with(|m, t| json!({ "symbol": symbol, "candles": m.candles(i, t, count) }))
                        }
                        "get_order_book" => self.with(|m, t| {
                            let (bids, asks) = m.order_book(i, t);
                            json!({ "symbol": symbol, "bids": bids, "asks": asks, "imbalance": (bids - asks) / (bids + asks) })
                        }),
                        "get_sentiment" => self.with(|m, t| json!({ "symbol": symbol, "score": m.sentiment(i, t) })),
                        "get_venue_prices" => self.with(|m, t| {
                            json!({ "symbol": symbol, "primary": m.price(i, t), "secondary": m.venue_price(i, t) })
                        }),
                        _ => Err(ToolError::Invalid(format!("no tool {tool}"))),
                    }
                }
            }
        })
    }
}

// --- technical-indicators ---------------------------------------------------------

struct IndicatorTools;

impl Tools for IndicatorTools {
    fn list(&self) -> Vec<(&'static str, &'static str, Value)> {
        let closes = schema(&[("closes", "array")]);
        vec![
            (
                "rsi",
                "Relative strength index (Wilder), 0-100",
                closes.clone(),
            ),
            (
                "macd",
                "MACD (12, 26, 9): line, signal, histogram",
                closes.clone(),
            ),
            ("bollinger", "Bollinger bands (20, 2)", closes.clone()),
            (
                "ema",
                "Exponential moving average",
                schema(&[("closes", "array"), ("period", "integer")]),
            ),
            (
                "adx",
                "Average directional index (14)",
                schema(&[("highs", "array"), ("lows", "array"), ("closes", "array")]),
            ),
        ]
    }

    fn call<'a>(&'a self, tool: &'a str, args: JsonObject) -> ToolFuture<'a> {
        Box::pin(async move {
            let closes = series(&args, "closes")?;
            let too_few =
                || ToolError::Failed(format!("too few closes for {tool} ({})", closes.len()));
            match tool {
                "rsi" => {
                    let period: usize = arg_or(&args, "period", 14)?;
                    Ok(json!({ "rsi": indicators::rsi(&closes, period).ok_or_else(too_few)? }))
                }
                "macd" => {
                    let (line, signal, histogram) =
                        indicators::macd(&closes).ok_or_else(too_few)?;
                    Ok(json!({ "line": line, "signal": signal, "histogram": histogram }))
                }
                "bollinger" => {
                    let period: usize = arg_or(&args, "period", 20)?;
                    let k: f64 = arg_or(&args, "k", 2.0)?;
                    let (lower, middle, upper) =
                        indicators::bollinger(&closes, period, k).ok_or_else(too_few)?;
                    Ok(json!({ "lower": lower, "middle": middle, "upper": upper }))
                }
                "ema" => {
                    let period: usize = arg(&args, "period")?;
                    Ok(json!({ "ema": indicators::ema(&closes, period).ok_or_else(too_few)? }))
                }
                "adx" => {
                    let (highs, lows) = (series(&args, "highs")?, series(&args, "lows")?);
                    let period: usize = arg_or(&args, "period", 14)?;
                    Ok(
                        json!({ "adx": indicators::adx(&highs, &lows, &closes, period).ok_or_else(too_few)? }),
                    )
                }
                _ => Err(ToolError::Invalid(format!("no tool {tool}"))),
            }
        })
    }
}

// --- risk-analyzer ------------------------------------------------------------------

services_glue::instruments! {
    /// risk-analyzer's instruments.
    pub struct RiskInstruments {
        /// Limits broken by checked orders.
        breaches: counter("cryptofunk.risk.limit.breaches", "{breach}",
            "Limits broken by checked orders, by limit type (position_size, exposure, drawdown)", ["limit.type"]),
        /// The last value at risk computed.
        value_at_risk: gauge("cryptofunk.risk.value_at_risk", "{USD}",
            "One-period historical value at risk (95 %) of the last portfolio assessed, USD", []),
    }
}

struct RiskTools {
    m: RiskInstruments,
    limits: Limits,
}

impl Tools for RiskTools {
    fn list(&self) -> Vec<(&'static str, &'static str, Value)> {
        vec![
            (
                "value_at_risk",
                "Historical value at risk of a position",
                schema(&[("returns", "array"), ("value", "number")]),
            ),
            (
                "check_limits",
                "The limits a buy would break",
                schema(&[
                    ("order_value", "number"),
                    ("portfolio_value", "number"),
                    ("invested", "number"),
                    ("drawdown", "number"),
                ]),
            ),
            (
                "kelly",
                "Kelly fraction for a win rate and payoff",
                schema(&[("win_rate", "number"), ("payoff", "number")]),
            ),
        ]
    }

    fn call<'a>(&'a self, tool: &'a str, args: JsonObject) -> ToolFuture<'a> {
        Box::pin(async move {
            let number = |key: &str| -> Result<f64, ToolError> {
                let v: f64 = arg(&args, key)?;
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(ToolError::Invalid(format!("{key}: a finite number")))
                }
            };
            match tool {
                "value_at_risk" => {
                    let returns = series(&args, "returns")?;
                    let value = number("value")?;
                    let confidence: f64 = arg_or(&args, "confidence", 0.95)?;
                    if !(0.5..1.0).contains(&confidence) {
                        return Err(ToolError::Invalid("confidence: between 0.5 and 1".into()));
                    }
                    let var = risk::value_at_risk(&returns, value, confidence);
                    self.m.value_at_risk.record(var, []);
                    Ok(json!({ "value_at_risk": var, "confidence": confidence }))
                }
                "check_limits" => {
                    let found = risk::breaches(
                        &self.limits,
                        number("order_value")?,
                        number("portfolio_value")?,
                        number("invested")?,
                        number("drawdown")?,
                    );
                    for b in &found {
                        self.m.breaches.add(1, [*b]);
                    }
                    Ok(json!({ "allowed": found.is_empty(), "breaches": found }))
                }
                "kelly" => {
                    Ok(json!({ "fraction": risk::kelly(number("win_rate")?, number("payoff")?) }))
                }
                _ => Err(ToolError::Invalid(format!("no tool {tool}"))),
            }
        })
    }
}

// --- order-executor -----------------------------------------------------------------

services_glue::instruments! {
    /// order-executor's instruments (paper trading).
    pub struct ExecutorInstruments {
        /// Orders by outcome.
        trades: counter("cryptofunk.trades", "{trade}",
            "Orders by symbol, side, status (filled, rejected, cancelled) and mode (paper)",
            ["symbol", "side", "status", "mode"]),
        /// Value of filled trades.
        trade_value: histogram("cryptofunk.trade.value", "{USD}", "Value of filled trades, USD", ["symbol", "side"],
            [100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 25000.0, 50000.0]),
        /// Positions held.
        positions_open: gauge("cryptofunk.positions.open", "{position}", "Positions held", []),
        /// Cash plus positions.
        portfolio_value: gauge("cryptofunk.portfolio.value", "{USD}", "Portfolio value (cash plus positions at last prices), USD", []),
        /// Profit and loss since the start.
        pnl: gauge("cryptofunk.pnl", "{USD}", "Total profit and loss since the start, realised and unrealised, USD", []),
        /// Winning share of closing trades.
        win_rate: gauge("cryptofunk.win_rate", "1", "Share of closing trades that made money", []),
        /// Sharpe ratio.
        sharpe: gauge("cryptofunk.sharpe_ratio", "{ratio}", "Sharpe ratio of per-round portfolio returns (annualised by √365)", []),
        /// Drawdown from the peak.
        drawdown: gauge("cryptofunk.drawdown", "1", "Fall of the portfolio value from its peak, 0-1", []),
        /// The breaker.
        breaker: gauge("cryptofunk.risk.circuit_breaker.tripped", "{breaker}",
            "1 while the circuit breaker refuses every order (drawdown past 15 %), else 0", []),
    }
}

const CREATE_TRADES: &str = "CREATE TABLE IF NOT EXISTS cryptofunk_trades (id BIGINT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, quantity DOUBLE PRECISION NOT NULL, price DOUBLE PRECISION NOT NULL, realised DOUBLE PRECISION NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())";
const INSERT_TRADE: &str = "INSERT INTO cryptofunk_trades (id, symbol, side, quantity, price, realised) VALUES ($1, $2, $3, $4, $5, $6)";

struct ExecutorTools {
    m: ExecutorInstruments,
    book: Mutex<Book>,
    market: Arc<ToolClients>,
    ledger: Option<(sqlx::PgPool, DbTelemetry)>,
}

impl ExecutorTools {
    async fn open(host: &Host<'_>) -> Result<ExecutorTools, ComponentError> {
        let meter = host.t.meter();
        let ledger = match &host.env.database_url {
            Some(url) => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect(url)
                    .await?;
                let db = DbTelemetry::new(&meter, "postgresql");
                db.run(CREATE_TRADES, sqlx::query(CREATE_TRADES).execute(&pool))
                    .await?;
                db.observe_pool(&meter, "ledger", pool.clone());
                Some((pool, db))
            }
            None => None,
        };
        let m = ExecutorInstruments::new(&meter);
        // Every series from the start, so rates read 0 rather than nothing.
        for symbol in SYMBOLS {
            for side in [Side::Buy, Side::Sell] {
                for status in ["filled", "rejected", "cancelled"] {
                    m.trades.add(0, [symbol, side.as_str(), status, "paper"]);
                }
            }
        }
        let tools = ExecutorTools {
            m,
            book: Mutex::new(Book::new(100_000.0)),
            market: host.tool_clients(),
            ledger,
        };
        if let Ok(snapshot) = tools.snapshot() {
            tools.record(&snapshot);
        }
        Ok(tools)
    }

    fn snapshot(&self) -> Result<Snapshot, ToolError> {
        Ok(self.lock()?.snapshot())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Book>, ToolError> {
        self.book
            .lock()
            .map_err(|_| ToolError::Failed("order book unavailable".into()))
    }

    fn record(&self, s: &Snapshot) {
        let m = &self.m;
        m.positions_open.record(s.positions_open as f64, []);
        m.portfolio_value.record(s.value, []);
        m.pnl.record(s.pnl, []);
        m.win_rate.record(s.win_rate, []);
        m.sharpe.record(s.sharpe, []);
        m.drawdown.record(s.drawdown, []);
        m.breaker
            .record(if s.breaker_tripped { 1.0 } else { 0.0 }, []);
    }

    /// Current prices from market-data, marked into the book.
    async fn mark_all(&self) -> Result<(), ToolError> {
        let prices = self
            .market
            .call(Component::MarketData, "get_prices", json!({}))
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let mut book = self.lock()?;
        if let Some(map) = prices["prices"].as_object() {
            for (symbol, price) in map {
                if let Some(p) = price.as_f64() {
                    book.mark(symbol, p);
                }
            }
        }
        Ok(())
    }

    async fn keep(&self, trade: &crate::portfolio::Trade) {
        if let Some((pool, db)) = &self.ledger {
            let q = sqlx::query(INSERT_TRADE)
                .bind(trade.id as i64)
                .bind(&trade.symbol)
                .bind(trade.side.as_str())
                .bind(trade.quantity)
                .bind(trade.price)
                .bind(trade.realised);
            if let Err(e) = db.run(INSERT_TRADE, q.execute(pool)).await {
                tracing::warn!(error = %e, "trade not written to the ledger");
            }
        }
    }

    fn count(&self, symbol: &str, side: Side, status: &'static str) {
        self.m
            .trades
            .add(1, [symbol, side.as_str(), status, "paper"]);
    }
}

fn side(args: &JsonObject) -> Result<Side, ToolError> {
    match arg::<String>(args, "side")?.as_str() {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        _ => Err(ToolError::Invalid("side: buy or sell".into())),
    }
}

impl Tools for ExecutorTools {
    fn list(&self) -> Vec<(&'static str, &'static str, Value)> {
        vec![
            (
                "place_market_order",
                "Buy or sell `value_usd` of a symbol at the market",
                schema(&[
                    ("symbol", "string"),
                    ("side", "string"),
                    ("value_usd", "number"),
                ]),
            ),
            (
                "place_limit_order",
                "A resting order filled when the price crosses `limit_price`",
                schema(&[
                    ("symbol", "string"),
                    ("side", "string"),
                    ("value_usd", "number"),
                    ("limit_price", "number"),
                ]),
            ),
            (
                "cancel_order",
                "Cancels a resting order",
                schema(&[("order_id", "integer")]),
            ),
            (
                "get_portfolio",
                "Cash, positions, P&L, drawdown, breaker",
                schema(&[]),
            ),
            (
                "list_trades",
                "The most recent trades",
                schema(&[("limit", "integer")]),
            ),
        ]
    }

    fn call<'a>(&'a self, tool: &'a str, args: JsonObject) -> ToolFuture<'a> {
        Box::pin(async move {
            match tool {
                "get_portfolio" => {
                    self.mark_all().await?;
                    let s = self.snapshot()?;
                    self.record(&s);
                    Ok(serde_json::to_value(&s).unwrap_or_default())
                }
                "list_trades" => {
                    let limit: usize = arg_or(&args, "limit", 20)?;
                    Ok(json!({ "trades": self.lock()?.trades(limit.min(500)) }))
                }
                "cancel_order" => {
                    let id: u64 = arg(&args, "order_id")?;
                    let cancelled = self.lock()?.cancel(id);
                    if let Some((symbol, side)) = &cancelled {
                        self.count(symbol, *side, "cancelled");
                    }
                    Ok(json!({ "cancelled": cancelled.is_some() }))
                }
                "place_market_order" | "place_limit_order" => {
                    let symbol: String = arg(&args, "symbol")?;
                    symbol_index(&symbol)?;
                    let side = side(&args)?;
                    let value: f64 = arg(&args, "value_usd")?;
                    if !(value.is_finite() && value > 0.0) {
                        return Err(ToolError::Invalid("value_usd: a positive number".into()));
                    }
                    self.mark_all().await?;
                    let outcome = if tool == "place_market_order" {
                        self.lock()?.market_order(&symbol, side, value).map(Some)
                    } else {
                        let limit: f64 = arg(&args, "limit_price")?;
                        self.lock()?
                            .limit_order(&symbol, side, value, limit)
                            .map(|_| None)
                    };
                    let s = self.snapshot()?;
                    self.record(&s);
                    match outcome {
                        Ok(Some(trade)) => {
                            self.count(&symbol, side, "filled");
                            self.m
                                .trade_value
                                .record(trade.value(), [symbol.as_str(), side.as_str()]);
                            self.keep(&trade).await;
                            tracing::info!(trade.id = trade.id, symbol = %symbol, side = side.as_str(), value = trade.value(), "filled");
                            Ok(json!({ "status": "filled", "trade": trade, "portfolio": s }))
                        }
                        Ok(None) => Ok(json!({ "status": "resting", "portfolio": s })),
                        Err(refusal) => {
                            self.count(&symbol, side, "rejected");
                            tracing::info!(symbol = %symbol, side = side.as_str(), reason = refusal.as_str(), "order refused");
                            Ok(
                                json!({ "status": "rejected", "reason": refusal.as_str(), "portfolio": s }),
                            )
                        }
                    }
                }
                _ => Err(ToolError::Invalid(format!("no tool {tool}"))),
            }
        })
    }
}
