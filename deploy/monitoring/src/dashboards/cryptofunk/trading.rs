//! CryptoFunk / Trading: how is the paper portfolio doing? Its value, P&L,
//! positions, win rate and Sharpe ratio; trades by status, side and symbol
//! and their value; the orchestrator's rounds.

use super::super::{SCOPE_SERVICE, and, quantile, ratio_or_zero};
use super::{per_minute, variables};
use crate::grafana::{Dashboard, Panel, Row, Target};

/// What the portfolio panels say when order-executor is not selected.
const NO_PORTFOLIO: &str = "The selected services keep no portfolio (order-executor does)";
const TRADES: &str = "cryptofunk_trades_total";
const TRADE_VALUE: &str = "cryptofunk_trade_value";

/// `max(<gauge>{scope})`: the executor's gauge (one per environment).
fn gauge(metric: &str) -> String {
    format!("max({metric}{{{SCOPE_SERVICE}}})")
}

fn portfolio() -> Row {
    Row::new("Portfolio")
        .panel(
            Panel::stat(
                "Portfolio value",
                "What the paper portfolio is worth now, cash and positions at market price (cryptofunk.portfolio.value, USD).",
                "currencyUSD",
            )
            .width(6)
            .no_value(NO_PORTFOLIO)
            .target(Target::new(gauge("cryptofunk_portfolio_value"), "value")),
        )
        .panel(
            Panel::stat(
                "P&L",
                "Profit and loss since the start, realised and unrealised (cryptofunk.pnl, USD).",
                "currencyUSD",
            )
            .width(6)
            .no_value(NO_PORTFOLIO)
            .target(Target::new(gauge("cryptofunk_pnl"), "P&L")),
        )
        .panel(
            Panel::stat(
                "Open positions",
                "Positions the portfolio holds now (cryptofunk.positions.open).",
                "short",
            )
            .width(4)
            .no_value(NO_PORTFOLIO)
            .target(Target::new(gauge("cryptofunk_positions_open"), "open")),
        )
        .panel(
            Panel::stat(
                "Win rate",
                "Share of closed trades that made money (cryptofunk.win_rate).",
                "percentunit",
            )
            .width(4)
            .range(0.0, 1.0)
            .thresholds(&[(0.0, "red"), (0.5, "green")])
            .no_value(NO_PORTFOLIO)
            .target(Target::new(gauge("cryptofunk_win_rate_ratio"), "win rate")),
        )
        .panel(
            Panel::stat(
                "Sharpe ratio",
                "Return per unit of volatility of the portfolio's returns (cryptofunk.sharpe_ratio); above 1 is good, below 0 loses money.",
                "none",
            )
            .width(4)
            .decimals(2)
            .thresholds(&[(0.0, "red"), (1.0, "green")])
            .no_value(NO_PORTFOLIO)
            .target(Target::new(gauge("cryptofunk_sharpe_ratio"), "Sharpe")),
        )
        .panel(
            Panel::timeseries(
                "Portfolio value over time",
                "The portfolio's value over time (USD). A fall of more than 15% from its peak trips the risk circuit breaker (see CryptoFunk / Risk).",
                "currencyUSD",
            )
            .width(12)
            .no_value(NO_PORTFOLIO)
            .target(Target::new(gauge("cryptofunk_portfolio_value"), "value")),
        )
        .panel(
            Panel::timeseries(
                "P&L over time",
                "Profit and loss over time (USD), realised and unrealised.",
                "currencyUSD",
            )
            .width(12)
            .no_value(NO_PORTFOLIO)
            .target(Target::new(gauge("cryptofunk_pnl"), "P&L")),
        )
}

fn trades() -> Row {
    let no_trades = "The selected services execute no trades (order-executor does)";
    let by = |label: &str, what: &str| {
        Panel::timeseries(
            &format!("Trades/min by {label}"),
            &format!("Paper trades per minute by {what} (cryptofunk.trades)."),
            "opm",
        )
        .min(0.0)
        .no_value(no_trades)
        .target(Target::new(
            per_minute(TRADES, SCOPE_SERVICE, label),
            format!("{{{{{label}}}}}"),
        ))
    };
    Row::new("Trades")
        .panel(by("status", "outcome: filled, rejected (risk limits, breaker) or cancelled"))
        .panel(by("side", "side: buy or sell"))
        .panel(by("symbol", "symbol (BTC-USD, ETH-USD, SOL-USD)"))
        .panel(
            Panel::timeseries(
                "Trade value p50 / p95 by symbol",
                "Median and 95th percentile value of one trade by symbol (cryptofunk.trade.value, USD).",
                "currencyUSD",
            )
            .min(0.0)
            .no_value(no_trades)
            .target(Target::new(
                quantile(0.5, TRADE_VALUE, SCOPE_SERVICE, "symbol"),
                "{{symbol}} p50",
            ))
            .target(Target::new(
                quantile(0.95, TRADE_VALUE, SCOPE_SERVICE, "symbol"),
                "{{symbol}} p95",
            )),
        )
        .panel(
            Panel::timeseries(
                "Traded value/min by symbol and side",
                "USD traded per minute, by symbol and side (the sum of cryptofunk.trade.value).",
                "currencyUSD",
            )
            .min(0.0)
            .no_value(no_trades)
            .target(Target::new(
                per_minute(
                    &format!("{TRADE_VALUE}_sum"),
                    SCOPE_SERVICE,
                    "symbol, side",
                ),
                "{{symbol}} {{side}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Trades not filled",
                "Share of trades rejected or cancelled, by symbol; 0 while every trade fills.",
                "percentunit",
            )
            .range(0.0, 1.0)
            .no_value(no_trades)
            .target(Target::new(
                ratio_or_zero(
                    TRADES,
                    &and(SCOPE_SERVICE, r#"status!="filled""#),
                    SCOPE_SERVICE,
                    "symbol",
                ),
                "{{symbol}}",
            )),
        )
}

fn rounds() -> Row {
    let no_rounds = "The selected services run no rounds (the orchestrator does)";
    Row::new("Decision rounds (orchestrator)")
        .panel(
            Panel::timeseries(
                "Rounds/min by decision",
                "The orchestrator's decision rounds per minute by outcome: buy, sell, hold, or refused (the breaker or a risk limit said no) (cryptofunk.rounds).",
                "opm",
            )
            .width(12)
            .min(0.0)
            .no_value(no_rounds)
            .target(Target::new(
                per_minute("cryptofunk_rounds_total", SCOPE_SERVICE, "decision"),
                "{{decision}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Round duration p50 / p95",
                "Time from collecting the agents' signals to the decision (cryptofunk.round.duration).",
                "s",
            )
            .width(12)
            .min(0.0)
            .no_value(no_rounds)
            .target(Target::new(
                quantile(0.5, "cryptofunk_round_duration_seconds", SCOPE_SERVICE, ""),
                "p50",
            ))
            .target(Target::new(
                quantile(0.95, "cryptofunk_round_duration_seconds", SCOPE_SERVICE, ""),
                "p95",
            )),
        )
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    variables(Dashboard::new(
        "cryptofunk-trading",
        "CryptoFunk / Trading",
        "How is the paper portfolio doing? Value, P&L, open positions, win rate and Sharpe ratio; trades by status, side and symbol, their value and the share not filled; the orchestrator's decision rounds.",
    ))
    .row(portfolio())
    .row(trades())
    .row(rounds())
}
