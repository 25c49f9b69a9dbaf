//! Services Overview: the original DelTran dashboard's ten panels, over the
//! series the engines really export.

use super::{
    ENGINE_UID, SCOPE, SCOPE_SERVICE, and, cache_hit_rate, nats_published_by_subject, quantile,
    rate, rate_or_zero, scope_variables, service_series,
};
use crate::grafana::{Dashboard, Panel, Row, Target, Variable};

const HTTP_COUNT: &str = "http_server_request_duration_seconds_count";

fn drill_down_link() -> String {
    format!(
        "/d/{ENGINE_UID}/?var-datasource=${{datasource}}&var-env=${{env}}&var-namespace=${{namespace}}&var-service=${{__field.labels.service_name}}&${{__url_time_range}}"
    )
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    let link = drill_down_link();
    let per_service = Row::new("Services")
        .panel(
            Panel::timeseries(
                "Transaction throughput",
                "HTTP requests served per second by each engine (every route, every status), from http.server.request.duration. Click a series to open that engine's drill-down.",
                "reqps",
            )
            .min(0.0)
            .link("Open ${__field.labels.service_name}", &link)
            .target(Target::new(
                format!("sum by (service_name) ({})", rate(HTTP_COUNT, SCOPE_SERVICE)),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::stat(
                "Service health",
                "UP while the engine reported in the last 2 minutes (service_name:up, from its process.uptime series: the same on the pull and the push path). DOWN for an engine that stopped reporting; the EngineDown and EngineNotReporting alerts fire on the same facts.",
                "none",
            )
            .mapping("0", "DOWN", "red")
            .mapping("1", "UP", "green")
            .thresholds(&[(0.0, "red"), (1.0, "green")])
            .target(Target::new(
                format!("service_name:up{{{SCOPE_SERVICE}}}"),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Request latency p95",
                "95th percentile of server request duration per engine over every route (seconds). A rising line in one engine and its callers points at that engine.",
                "s",
            )
            .min(0.0)
            .link("Open ${__field.labels.service_name}", &link)
            .target(Target::new(
                quantile(0.95, "http_server_request_duration_seconds", SCOPE_SERVICE, "service_name"),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Error rate (5xx/s)",
                "Server errors (HTTP 5xx) answered per second by each engine; 0 for an engine without any. 4xx are the caller's mistakes and are not counted.",
                "reqps",
            )
            .min(0.0)
            .link("Open ${__field.labels.service_name}", &link)
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
                "Database query duration p95",
                "95th percentile of database operation duration (db.client.operation.duration) per engine that uses a database.",
                "s",
            )
            .min(0.0)
            .no_value("No database calls from the selected services")
            .target(Target::new(
                quantile(0.95, "db_client_operation_duration_seconds", SCOPE_SERVICE, "service_name"),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "NATS messages published/s",
                "Messages published per second by subject (messaging.client.sent.messages), failed publishes included with their error.type.",
                "msg/s",
            )
            .min(0.0)
            .no_value("The selected services publish nothing on NATS")
            .target(nats_published_by_subject()),
        )
        .panel(
            Panel::timeseries(
                "Cache hit rate",
                "Share of cache lookups that found the entry, per cache (cache.lookups by cache.result).",
                "percentunit",
            )
            .range(0.0, 1.0)
            .no_value("The selected services use no cache")
            .target(cache_hit_rate()),
        );
    let business = Row::new("Payments")
        .panel(
            Panel::stat(
                "Transaction success rate",
                "Accepted payments as a share of every well-formed payment the gateway received (invalid requests excluded; rejected, held and failed ones count against it). The PaymentAcceptanceRatioLow alert watches the 5-minute value of the same ratio.",
                "percentunit",
            )
            .range(0.0, 1.0)
            .thresholds(&[(0.0, "red"), (0.9, "orange"), (0.97, "green")])
            .target(Target::new(
                format!(
                    "sum({}) / sum({})",
                    rate("deltran_payments_total", &and(SCOPE, r#"outcome="accepted""#)),
                    rate("deltran_payments_total", &and(SCOPE, r#"outcome!="invalid""#))
                ),
                "accepted",
            )),
        )
        .panel(
            Panel::stat(
                "Active tokens",
                "Payment tokens minted and not yet burned across the fleet (tokens.active): payments in flight between acceptance and settlement.",
                "short",
            )
            .target(Target::new(format!("sum(tokens_active{{{SCOPE}}})"), "active")),
        )
        .panel(
            Panel::stat(
                "WebSocket connections",
                "Clients connected to the gateway's payment status stream (deltran.gateway.websocket.connections).",
                "short",
            )
            .target(Target::new(
                format!("sum(deltran_gateway_websocket_connections{{{SCOPE}}})"),
                "connections",
            )),
        );
    scope_variables(Dashboard::new(
        "deltran-services-overview",
        "DelTran / Services Overview",
        "Is the fleet healthy? Throughput, health, latency and errors per engine, the business success rate, tokens in flight, status-stream clients, database, NATS and cache at a glance. Pick an engine to drill down.",
    ))
    .variable(Variable::multi("service", "Service", service_series(), "service_name"))
    .row(per_service)
    .row(business)
}
