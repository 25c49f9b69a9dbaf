//! CryptoFunk / System: is every component up, healthy and serving? HTTP and
//! MCP server RED, NATS, the order executor's database pool and the API
//! server's cache.

use super::super::{SCOPE_SERVICE, and, cache_hit_rate, quantile, rate, rate_or_zero};
use super::variables;
use crate::grafana::{Dashboard, Panel, Row, Target};

const HTTP: &str = "http_server_request_duration_seconds";
const HTTP_COUNT: &str = "http_server_request_duration_seconds_count";
const MCP: &str = "mcp_server_operation_duration_seconds";
const MCP_COUNT: &str = "mcp_server_operation_duration_seconds_count";

fn components() -> Row {
    Row::new("Components")
        .panel(
            Panel::state_timeline(
                "Component up",
                "UP while the component reported in the last 2 minutes (service_name:up, from its process.uptime series: the same on the pull and the push path). CryptoFunkComponentDown (scrape failing) and CryptoFunkComponentNotReporting fire on the same facts after 2 minutes.",
            )
            .width(12)
            .mapping("0", "DOWN", "red")
            .mapping("1", "UP", "green")
            .thresholds(&[(0.0, "red"), (1.0, "green")])
            .target(Target::new(
                format!("service_name:up{{{SCOPE_SERVICE}}}"),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::state_timeline(
                "Component healthy",
                "HEALTHY while the component's /ready checks pass (cryptofunk.component.healthy: its NATS, database, tool servers or LLM, whatever it needs); FAILING while one does not.",
            )
            .width(12)
            .mapping("0", "FAILING", "red")
            .mapping("1", "HEALTHY", "green")
            .thresholds(&[(0.0, "red"), (1.0, "green")])
            .target(Target::new(
                format!(
                    "min by (service_name) (cryptofunk_component_healthy{{{SCOPE_SERVICE}}})"
                ),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::stat(
                "Uptime",
                "Time since each component's process started (process.uptime); a reset means a restart.",
                "s",
            )
            .width(24)
            .height(5)
            .target(Target::new(
                format!("min by (service_name) (process_uptime_seconds{{{SCOPE_SERVICE}}})"),
                "{{service_name}}",
            )),
        )
}

fn http() -> Row {
    let no_http = "The selected components serve no HTTP";
    Row::new("HTTP server")
        .panel(
            Panel::timeseries(
                "HTTP requests/s",
                "HTTP requests served per second by each component (every route, every status), from http.server.request.duration.",
                "reqps",
            )
            .min(0.0)
            .no_value(no_http)
            .target(Target::new(
                format!("sum by (service_name) ({})", rate(HTTP_COUNT, SCOPE_SERVICE)),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "HTTP 5xx/s",
                "Server errors (HTTP 5xx) answered per second by each component; 0 for a component without any. 4xx are the caller's mistakes and are not counted.",
                "reqps",
            )
            .min(0.0)
            .no_value(no_http)
            .target(Target::new(
                rate_or_zero(
                    HTTP_COUNT,
                    &and(SCOPE_SERVICE, r#"http_response_status_code=~"5..""#),
                    SCOPE_SERVICE,
                    "service_name",
                ),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "HTTP latency p95",
                "95th percentile of HTTP server request duration per component over every route (seconds).",
                "s",
            )
            .min(0.0)
            .no_value(no_http)
            .target(Target::new(
                quantile(0.95, HTTP, SCOPE_SERVICE, "service_name"),
                "{{service_name}}",
            )),
        )
}

fn mcp() -> Row {
    let no_mcp = "The selected components serve no MCP (market-data, technical-indicators, risk-analyzer and order-executor do)";
    Row::new("MCP tool servers")
        .panel(
            Panel::timeseries(
                "MCP operations/s by method",
                "JSON-RPC operations served per second by each tool server, by method (tools/call, tools/list, initialize), from mcp.server.operation.duration.",
                "ops",
            )
            .min(0.0)
            .no_value(no_mcp)
            .target(Target::new(
                format!(
                    "sum by (service_name, mcp_method_name) ({})",
                    rate(MCP_COUNT, SCOPE_SERVICE)
                ),
                "{{service_name}} {{mcp_method_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Failed MCP operations/s",
                "Operations per second each tool server answered with an error (error.type set); 0 for a server without any.",
                "ops",
            )
            .min(0.0)
            .no_value(no_mcp)
            .target(Target::new(
                rate_or_zero(
                    MCP_COUNT,
                    &and(SCOPE_SERVICE, r#"error_type!="""#),
                    SCOPE_SERVICE,
                    "service_name",
                ),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Tool call p95 by tool",
                "95th percentile time each tool server takes to run a tool call (mcp.method.name tools/call), by tool (gen_ai.tool.name).",
                "s",
            )
            .min(0.0)
            .no_value(no_mcp)
            .target(Target::new(
                quantile(
                    0.95,
                    MCP,
                    &and(SCOPE_SERVICE, r#"mcp_method_name="tools/call""#),
                    "service_name, gen_ai_tool_name",
                ),
                "{{service_name}} {{gen_ai_tool_name}}",
            )),
        )
}

fn errors() -> Row {
    let http = format!("service_name:http_server_errors:rate5m{{{SCOPE_SERVICE}}}");
    let mcp = format!("service_name:mcp_server_errors:rate5m{{{SCOPE_SERVICE}}}");
    Row::new("Errors as the alert sees them").panel(
        Panel::timeseries(
            "Server errors/s (HTTP 5xx + failed MCP)",
            "HTTP 5xx plus failed MCP operations per second and component over 5 minutes: exactly what CryptoFunkHighErrorRate watches (it fires above the 0.1/s line for 5 minutes).",
            "reqps",
        )
        .width(24)
        .min(0.0)
        .thresholds(&[(0.1, "red")])
        .threshold_lines()
        .no_value("The selected components serve neither HTTP nor MCP")
        .target(Target::new(
            format!("({http} + {mcp}) or {http} or {mcp}"),
            "{{service_name}}",
        )),
    )
}

fn messaging() -> Row {
    let no_nats = "The selected components use no NATS (the orchestrator and the agents do)";
    Row::new("NATS")
        .panel(
            Panel::timeseries(
                "Published/s by subject",
                "Messages published per second by component and subject (messaging.client.sent.messages).",
                "msg/s",
            )
            .width(12)
            .min(0.0)
            .no_value(no_nats)
            .target(Target::new(
                format!(
                    "sum by (service_name, messaging_destination_name) ({})",
                    rate("messaging_client_sent_messages_total", SCOPE_SERVICE)
                ),
                "{{service_name}} → {{messaging_destination_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Received/s by subject",
                "Messages received per second by component and subject (messaging.client.consumed.messages).",
                "msg/s",
            )
            .width(12)
            .min(0.0)
            .no_value(no_nats)
            .target(Target::new(
                format!(
                    "sum by (service_name, messaging_destination_name) ({})",
                    rate("messaging_client_consumed_messages_total", SCOPE_SERVICE)
                ),
                "{{service_name}} ← {{messaging_destination_name}}",
            )),
        )
}

fn storage() -> Row {
    Row::new("Database and cache")
        .panel(
            Panel::timeseries(
                "Database connections",
                "Connections in order-executor's PostgreSQL pool by state (db.client.connections.usage: used, idle).",
                "short",
            )
            .width(12)
            .min(0.0)
            .no_value("No database pool in the selected components (order-executor has one when given a PostgreSQL URL)")
            .target(Target::new(
                format!(
                    "sum by (pool_name, state) (db_client_connections_usage{{{SCOPE_SERVICE}}})"
                ),
                "{{pool_name}} {{state}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Cache hit ratio",
                "Share of api-server's cache lookups that found the entry, per cache (cache.lookups by cache.result).",
                "percentunit",
            )
            .width(12)
            .range(0.0, 1.0)
            .no_value("The selected components use no cache (api-server does)")
            .target(cache_hit_rate()),
        )
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    variables(Dashboard::new(
        "cryptofunk-system",
        "CryptoFunk / System",
        "Is the trading fleet up and serving? Every component's liveness, readiness and uptime; HTTP and MCP tool-server rates, errors and p95; the errors CryptoFunkHighErrorRate watches; NATS traffic; order-executor's database pool and api-server's cache.",
    ))
    .row(components())
    .row(http())
    .row(mcp())
    .row(errors())
    .row(messaging())
    .row(storage())
}
