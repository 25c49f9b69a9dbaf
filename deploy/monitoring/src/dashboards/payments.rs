//! Payments: the business through the fleet, intake to ledger.

use super::{SCOPE, and, quantile, rate, scope_variables};
use crate::grafana::{Dashboard, Panel, Row, Target};

fn intake() -> Row {
    Row::new("Intake (gateway)")
        .panel(
            Panel::timeseries(
                "Payments by outcome",
                "Payments per second the gateway answered, by outcome: accepted, held (watch list), rejected (sanctions or risk), invalid (bad request) and failed (an engine on the path failed).",
                "ops",
            )
            .min(0.0)
            .target(Target::new(
                format!("sum by (outcome) ({})", rate("deltran_payments_total", SCOPE)),
                "{{outcome}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Acceptance ratio",
                "Accepted payments as a share of well-formed ones over 5 minutes (namespace:deltran_payments_acceptance:ratio_rate5m, the series the PaymentAcceptanceRatioLow alert watches; it fires below 90%).",
                "percentunit",
            )
            .range(0.0, 1.0)
            .thresholds(&[(0.0, "red"), (0.9, "green")])
            .target(Target::new(
                format!("namespace:deltran_payments_acceptance:ratio_rate5m{{{SCOPE}}}"),
                "accepted share",
            )),
        )
        .panel(
            Panel::timeseries(
                "Accepted value/s by currency",
                "Sum of accepted payment amounts per second, by currency (deltran.payment.amount).",
                "short",
            )
            .min(0.0)
            .target(Target::new(
                format!("sum by (currency) ({})", rate("deltran_payment_amount_sum", SCOPE)),
                "{{currency}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Payment amount p50 / p95",
                "Median and 95th percentile of accepted payment amounts, by currency.",
                "short",
            )
            .min(0.0)
            .target(Target::new(
                quantile(0.5, "deltran_payment_amount", SCOPE, "currency"),
                "p50 {{currency}}",
            ))
            .target(Target::new(
                quantile(0.95, "deltran_payment_amount", SCOPE, "currency"),
                "p95 {{currency}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Completed payments by status",
                "Payments that reached a final state per second (settled, failed), as the gateway learns it from settlement-engine.",
                "ops",
            )
            .min(0.0)
            .target(Target::new(
                format!("sum by (status) ({})", rate("deltran_payments_completed_total", SCOPE)),
                "{{status}}",
            )),
        )
        .panel(
            Panel::stat(
                "Status-stream clients",
                "WebSocket clients following payment statuses on the gateway.",
                "short",
            )
            .target(Target::new(
                format!("sum(deltran_gateway_websocket_connections{{{SCOPE}}})"),
                "clients",
            )),
        )
}

fn screening() -> Row {
    Row::new("Screening and risk")
        .panel(
            Panel::timeseries(
                "Compliance screenings by decision",
                "Screenings per second: clear, hold (watch list) and reject (sanctions).",
                "ops",
            )
            .min(0.0)
            .target(Target::new(
                format!(
                    "sum by (decision) ({})",
                    rate("deltran_compliance_screenings_total", SCOPE)
                ),
                "{{decision}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Risk assessments by decision",
                "Risk assessments per second: approve or decline.",
                "ops",
            )
            .min(0.0)
            .target(Target::new(
                format!("sum by (decision) ({})", rate("deltran_risk_assessments_total", SCOPE)),
                "{{decision}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Risk score p50 / p95",
                "Distribution of risk scores (0 safe, 1 risky).",
                "none",
            )
            .decimals(2)
            .range(0.0, 1.0)
            .target(Target::new(quantile(0.5, "deltran_risk_score", SCOPE, ""), "p50"))
            .target(Target::new(quantile(0.95, "deltran_risk_score", SCOPE, ""), "p95")),
        )
        .panel(
            Panel::timeseries(
                "Limit breaches/s",
                "Payments over a risk limit per second, by limit type; sustained breaches trip the circuit breaker.",
                "ops",
            )
            .min(0.0)
            .no_value("No limit breached in this period")
            .target(Target::new(
                format!(
                    "sum by (limit_type) ({})",
                    rate("deltran_risk_limit_breaches_total", SCOPE)
                ),
                "{{limit_type}}",
            )),
        )
        .panel(
            Panel::state_timeline(
                "Circuit breaker",
                "OPEN while risk-engine's circuit breaker refuses payments (deltran.risk.circuit_breaker.open); the RiskCircuitBreakerOpen alert pages after a minute.",
            )
            .mapping("0", "closed", "green")
            .mapping("1", "OPEN", "red")
            .thresholds(&[(1.0, "red")])
            .target(Target::new(
                format!("max(deltran_risk_circuit_breaker_open{{{SCOPE}}})"),
                "breaker",
            )),
        )
        .panel(
            Panel::timeseries(
                "Breaker trips",
                "Times the circuit breaker tripped, per minute.",
                "short",
            )
            .min(0.0)
            .no_value("The breaker has not tripped in this period")
            .target(Target::new(
                format!(
                    "sum({}) * 60",
                    rate("deltran_risk_circuit_breaker_trips_total", SCOPE)
                ),
                "trips/min",
            )),
        )
}

fn clearing() -> Row {
    Row::new("Clearing, liquidity and settlement")
        .panel(
            Panel::timeseries(
                "Clearing windows per minute",
                "Clearing windows closed with obligations in them, per minute (deltran.clearing.windows).",
                "short",
            )
            .min(0.0)
            .target(Target::new(
                format!("sum({}) * 60", rate("deltran_clearing_windows_total", SCOPE)),
                "windows/min",
            )),
        )
        .panel(
            Panel::stat(
                "Last window closed",
                "Seconds since the clearing loop last closed a window (empty or not). The ClearingWindowsStalled alert fires when this passes 10 window lengths (at least a minute).",
                "s",
            )
            .thresholds(&[(60.0, "red")])
            .target(Target::new(
                format!(
                    "time() - max(deltran_clearing_window_closed_timestamp_seconds{{{SCOPE}}})"
                ),
                "age",
            )),
        )
        .panel(
            Panel::timeseries(
                "Netting ratio",
                "Share of gross value removed by netting in the last window (1 − net/gross).",
                "percentunit",
            )
            .range(0.0, 1.0)
            .target(Target::new(
                format!("max(deltran_clearing_netting_ratio{{{SCOPE}}})"),
                "netting",
            )),
        )
        .panel(
            Panel::timeseries(
                "Obligations netted/s by currency",
                "Obligations taken into clearing windows per second.",
                "ops",
            )
            .min(0.0)
            .target(Target::new(
                format!(
                    "sum by (currency) ({})",
                    rate("deltran_clearing_obligations_total", SCOPE)
                ),
                "{{currency}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Gross value per window p50",
                "Median gross value cleared per window.",
                "short",
            )
            .min(0.0)
            .target(Target::new(
                quantile(0.5, "deltran_clearing_window_gross", SCOPE, ""),
                "p50",
            )),
        )
        .panel(
            Panel::timeseries(
                "Net positions by routing outcome",
                "Net positions per second, routed by liquidity-router or settled on the default corridor (unrouted).",
                "ops",
            )
            .min(0.0)
            .target(Target::new(
                format!(
                    "sum by (outcome) ({})",
                    rate("deltran_clearing_net_positions_total", SCOPE)
                ),
                "{{outcome}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Liquidity routes by corridor and source",
                "Net positions routed per second by corridor and liquidity source.",
                "ops",
            )
            .min(0.0)
            .target(Target::new(
                format!(
                    "sum by (corridor, source) ({})",
                    rate("deltran_liquidity_routes_total", SCOPE)
                ),
                "{{corridor}} / {{source}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Routed value (USD/s) by corridor",
                "USD value of routed net positions per second.",
                "currencyUSD",
            )
            .min(0.0)
            .target(Target::new(
                format!(
                    "sum by (corridor) ({})",
                    rate("deltran_liquidity_routed_usd_sum", SCOPE)
                ),
                "{{corridor}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Settled payments by outcome",
                "Payments written to the ledger (settled) or not (failed) per second (namespace:deltran_settlement_payments:rate5m). SettlementFailing fires above 1% failed.",
                "ops",
            )
            .min(0.0)
            .target(Target::new(
                format!("sum by (outcome) (namespace:deltran_settlement_payments:rate5m{{{SCOPE}}})"),
                "{{outcome}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Acceptance to settlement p50 / p95 / p99",
                "End-to-end time from the gateway accepting a payment to its settlement in the ledger (namespace:deltran_settlement_latency_seconds:quantile5m). SettlementSlow fires when p95 passes 10 s.",
                "s",
            )
            .min(0.0)
            .target(Target::new(
                format!(
                    r#"namespace:deltran_settlement_latency_seconds:quantile5m{{{}}}"#,
                    and(SCOPE, r#"quantile="0.5""#)
                ),
                "p50",
            ))
            .target(Target::new(
                format!(
                    r#"namespace:deltran_settlement_latency_seconds:quantile5m{{{}}}"#,
                    and(SCOPE, r#"quantile="0.95""#)
                ),
                "p95",
            ))
            .target(Target::new(
                format!(
                    r#"namespace:deltran_settlement_latency_seconds:quantile5m{{{}}}"#,
                    and(SCOPE, r#"quantile="0.99""#)
                ),
                "p99",
            )),
        )
        .panel(
            Panel::timeseries(
                "Net value settled/s by currency",
                "Net amounts moved in the ledger per second.",
                "short",
            )
            .min(0.0)
            .target(Target::new(
                format!(
                    "sum by (currency) ({})",
                    rate("deltran_settlement_net_amount_sum", SCOPE)
                ),
                "{{currency}}",
            )),
        )
}

fn tokens() -> Row {
    Row::new("Tokens")
        .panel(
            Panel::timeseries(
                "Token supply",
                "Tokens in circulation by currency (minted, not yet burned).",
                "short",
            )
            .min(0.0)
            .target(Target::new(
                format!("sum by (currency) (tokens_active{{{SCOPE}}})"),
                "{{currency}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Minted, transferred, burned per second",
                "Token operations per second; burned by reason (settled, failed).",
                "ops",
            )
            .min(0.0)
            .target(Target::new(
                format!("sum({})", rate("tokens_minted_total", SCOPE)),
                "minted",
            ))
            .target(Target::new(
                format!("sum({})", rate("tokens_transferred_total", SCOPE)),
                "transferred",
            ))
            .target(Target::new(
                format!("sum by (reason) ({})", rate("tokens_burned_total", SCOPE)),
                "burned {{reason}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Token value p95",
                "95th percentile value of minted tokens, by currency.",
                "short",
            )
            .min(0.0)
            .target(Target::new(
                quantile(0.95, "tokens_value", SCOPE, "currency"),
                "p95 {{currency}}",
            )),
        )
}

fn service_level() -> Row {
    let slo = |name: &str| format!(r#"{SCOPE}, slo="{name}""#);
    let availability = "gateway-payments-availability";
    let latency = "gateway-payments-latency";
    Row::new("Service level (deploy/slo/gateway-payments.yaml)")
        .panel(
            Panel::stat(
                "Availability, 30 days",
                "Share of POST /payments answered without a 5xx over the SLO window; objective 99.9%.",
                "percentunit",
            )
            .decimals(3)
            .width(6)
            .thresholds(&[(0.0, "red"), (0.999, "green")])
            .target(Target::new(
                format!("1 - slo:sli_error:ratio_rate30d{{{}}}", slo(availability)),
                "availability",
            )),
        )
        .panel(
            Panel::stat(
                "Under 500 ms, 30 days",
                "Share of POST /payments answered within 500 ms over the SLO window; objective 99%.",
                "percentunit",
            )
            .decimals(2)
            .width(6)
            .thresholds(&[(0.0, "red"), (0.99, "green")])
            .target(Target::new(
                format!("1 - slo:sli_error:ratio_rate30d{{{}}}", slo(latency)),
                "within 500 ms",
            )),
        )
        .panel(
            Panel::stat(
                "Error budget left",
                "Share of each SLO's 30-day error budget not yet spent; below 0 the objective is missed.",
                "percentunit",
            )
            .width(6)
            .thresholds(&[(0.0, "red"), (0.25, "orange"), (0.5, "green")])
            .target(Target::new(
                format!(r#"slo:error_budget_remaining:ratio{{{SCOPE}, slo=~"gateway-payments-.*"}}"#),
                "{{slo}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Burn rate (1 h)",
                "How fast each SLO spends its budget: 1 spends it exactly in 30 days; the page alerts fire at 14.4 (1 h and 5 min) and 6 (6 h and 30 min).",
                "short",
            )
            .width(6)
            .min(0.0)
            .thresholds(&[(6.0, "orange"), (14.4, "red")])
            .target(Target::new(
                format!(
                    r#"slo:sli_error:ratio_rate1h{{{SCOPE}, slo=~"gateway-payments-.*"}} / on (slo) group_left () slo:error_budget:ratio"#
                ),
                "{{slo}}",
            )),
        )
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    scope_variables(Dashboard::new(
        "deltran-payments",
        "DelTran / Payments",
        "Are payments flowing and settling? Intake outcomes and amounts, screening and risk (breaker state), clearing windows and netting, liquidity routes, settlement outcomes and end-to-end latency, token supply, and the gateway's service level objectives.",
    ))
    .row(intake())
    .row(screening())
    .row(clearing())
    .row(tokens())
    .row(service_level())
}
