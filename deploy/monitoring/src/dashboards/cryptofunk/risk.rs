//! CryptoFunk / Risk: how far is the portfolio below its peak, is the
//! circuit breaker refusing orders, what is at risk, which limits break?

use super::super::{SCOPE_SERVICE, and, rate_or_zero};
use super::{per_minute, variables};
use crate::grafana::{Dashboard, Panel, Row, Target};

const NO_PORTFOLIO: &str = "The selected services keep no portfolio (order-executor does)";
const NO_ANALYZER: &str = "The selected services assess no risk (risk-analyzer does)";

fn breaker() -> Row {
    Row::new("Drawdown and circuit breaker")
        .panel(
            Panel::stat(
                "Drawdown now",
                "How far the portfolio's value is below its peak (cryptofunk.drawdown). At 15% the circuit breaker trips and CryptoFunkDrawdownHigh pages after a minute.",
                "percentunit",
            )
            .width(6)
            .thresholds(&[(0.1, "orange"), (0.15, "red")])
            .no_value(NO_PORTFOLIO)
            .target(Target::new(
                format!("max(cryptofunk_drawdown_ratio{{{SCOPE_SERVICE}}})"),
                "drawdown",
            )),
        )
        .panel(
            Panel::stat(
                "Circuit breaker",
                "TRIPPED while order-executor refuses every order because the drawdown passed 15% (cryptofunk.risk.circuit_breaker.tripped); CryptoFunkCircuitBreakerTripped pages after a minute.",
                "none",
            )
            .width(6)
            .mapping("0", "CLOSED", "green")
            .mapping("1", "TRIPPED", "red")
            .thresholds(&[(1.0, "red")])
            .no_value(NO_PORTFOLIO)
            .target(Target::new(
                format!("max(cryptofunk_risk_circuit_breaker_tripped{{{SCOPE_SERVICE}}})"),
                "breaker",
            )),
        )
        .panel(
            Panel::stat(
                "Value at risk (95%, 1 day)",
                "The loss the portfolio should not exceed on 19 days out of 20, as risk-analyzer estimates it now (cryptofunk.risk.value_at_risk, USD).",
                "currencyUSD",
            )
            .width(6)
            .no_value(NO_ANALYZER)
            .target(Target::new(
                format!("max(cryptofunk_risk_value_at_risk{{{SCOPE_SERVICE}}})"),
                "VaR",
            )),
        )
        .panel(
            Panel::stat(
                "Refused rounds/min",
                "Decision rounds per minute the orchestrator ended with `refused` (the breaker or a risk limit said no); 0 while none are refused.",
                "opm",
            )
            .width(6)
            .thresholds(&[(0.000_001, "orange")])
            .no_value("The selected services run no rounds (the orchestrator does)")
            .target(Target::new(
                format!(
                    "60 * ({})",
                    rate_or_zero(
                        "cryptofunk_rounds_total",
                        &and(SCOPE_SERVICE, r#"decision="refused""#),
                        SCOPE_SERVICE,
                        "",
                    )
                ),
                "refused",
            )),
        )
        .panel(
            Panel::timeseries(
                "Drawdown from peak",
                "The portfolio's drawdown over time, with the 15% threshold (the breaker trips above it; CryptoFunkDrawdownHigh fires after a minute above it).",
                "percentunit",
            )
            .width(12)
            .min(0.0)
            .thresholds(&[(0.15, "red")])
            .threshold_lines()
            .no_value(NO_PORTFOLIO)
            .target(Target::new(
                format!(
                    "max by (service_name) (cryptofunk_drawdown_ratio{{{SCOPE_SERVICE}}})"
                ),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::state_timeline(
                "Circuit breaker state",
                "When the breaker tripped and when it closed again.",
            )
            .width(12)
            .mapping("0", "CLOSED", "green")
            .mapping("1", "TRIPPED", "red")
            .thresholds(&[(1.0, "red")])
            .no_value(NO_PORTFOLIO)
            .target(Target::new(
                format!(
                    "max by (service_name) (cryptofunk_risk_circuit_breaker_tripped{{{SCOPE_SERVICE}}})"
                ),
                "{{service_name}}",
            )),
        )
}

fn limits() -> Row {
    Row::new("Risk analyzer")
        .panel(
            Panel::timeseries(
                "Value at risk",
                "95% one-day value at risk over time (USD): a rising line is a riskier portfolio, before any limit breaks.",
                "currencyUSD",
            )
            .min(0.0)
            .no_value(NO_ANALYZER)
            .target(Target::new(
                format!(
                    "max by (service_name) (cryptofunk_risk_value_at_risk{{{SCOPE_SERVICE}}})"
                ),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Limit breaches/min by type",
                "Orders risk-analyzer found over a limit, per minute, by limit: position size, exposure or drawdown (cryptofunk.risk.limit_breaches).",
                "opm",
            )
            .min(0.0)
            .no_value("No limit breach from the selected services (risk-analyzer counts them)")
            .target(Target::new(
                per_minute(
                    "cryptofunk_risk_limit_breaches_total",
                    SCOPE_SERVICE,
                    "limit_type",
                ),
                "{{limit_type}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Rejected trades/min by symbol",
                "Trades order-executor rejected per minute (risk limits, breaker tripped), by symbol.",
                "opm",
            )
            .min(0.0)
            .no_value("No rejected trade from the selected services (order-executor executes them)")
            .target(Target::new(
                per_minute(
                    "cryptofunk_trades_total",
                    &and(SCOPE_SERVICE, r#"status="rejected""#),
                    "symbol",
                ),
                "{{symbol}}",
            )),
        )
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    variables(Dashboard::new(
        "cryptofunk-risk",
        "CryptoFunk / Risk",
        "Is the trading fleet inside its risk limits? Drawdown against the 15% threshold, the circuit breaker, value at risk, refused rounds, limit breaches by type and rejected trades.",
    ))
    .row(breaker())
    .row(limits())
}
