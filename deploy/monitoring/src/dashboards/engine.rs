//! Engine drill-down: everything one engine's instrumentation exports, one
//! engine at a time.

use super::{
    ENGINE_UID, SCOPE_SERVICE, and, cache_hit_rate, nats_published_by_subject, quantile, rate,
    rate_or_zero, ratio_or_zero, scope_variables, service_series,
};
use crate::grafana::{Dashboard, Panel, Row, Target, Variable};

const HTTP: &str = "http_server_request_duration_seconds";
const HTTP_COUNT: &str = "http_server_request_duration_seconds_count";
const CLIENT: &str = "http_client_request_duration_seconds";
const CLIENT_COUNT: &str = "http_client_request_duration_seconds_count";
const DB: &str = "db_client_operation_duration_seconds";
const DB_COUNT: &str = "db_client_operation_duration_seconds_count";

fn requests() -> Row {
    Row::new("Requests served (RED)")
        .panel(
            Panel::timeseries(
                "Request rate by route",
                "Requests per second by method and route template (http.route); raw paths never become labels.",
                "reqps",
            )
            .min(0.0)
            .target(Target::new(
                format!(
                    "sum by (http_request_method, http_route) ({})",
                    rate(HTTP_COUNT, SCOPE_SERVICE)
                ),
                "{{http_request_method}} {{http_route}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Server error ratio (5xx)",
                "Share of requests answered with a 5xx. The EngineHighErrorRatio alert fires above 5% over 5 minutes.",
                "percentunit",
            )
            .range(0.0, 1.0)
            .thresholds(&[(0.05, "red")])
            .target(Target::new(
                ratio_or_zero(
                    HTTP_COUNT,
                    &and(SCOPE_SERVICE, r#"http_response_status_code=~"5..""#),
                    SCOPE_SERVICE,
                    "service_name",
                ),
                "5xx share",
            )),
        )
        .panel(
            Panel::timeseries(
                "Latency p50 / p95 / p99",
                "Server request duration percentiles over every route (seconds). The EngineHighLatency alert watches p95.",
                "s",
            )
            .min(0.0)
            .target(Target::new(quantile(0.5, HTTP, SCOPE_SERVICE, ""), "p50"))
            .target(Target::new(quantile(0.95, HTTP, SCOPE_SERVICE, ""), "p95"))
            .target(Target::new(quantile(0.99, HTTP, SCOPE_SERVICE, ""), "p99")),
        )
        .panel(
            Panel::timeseries(
                "p95 by route",
                "95th percentile request duration per route: which endpoint is slow.",
                "s",
            )
            .min(0.0)
            .target(Target::new(
                quantile(0.95, HTTP, SCOPE_SERVICE, "http_request_method, http_route"),
                "{{http_request_method}} {{http_route}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Requests by status code",
                "Requests per second by HTTP status code.",
                "reqps",
            )
            .min(0.0)
            .target(Target::new(
                format!(
                    "sum by (http_response_status_code) ({})",
                    rate(HTTP_COUNT, SCOPE_SERVICE)
                ),
                "{{http_response_status_code}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "In-flight requests",
                "Requests being served right now (http.server.active_requests).",
                "short",
            )
            .min(0.0)
            .target(Target::new(
                format!("sum(http_server_active_requests{{{SCOPE_SERVICE}}})"),
                "in flight",
            )),
        )
}

fn peers() -> Row {
    let no_calls = "This engine calls no other engine over HTTP";
    Row::new("Calls to other engines (HTTP client)")
        .panel(
            Panel::timeseries(
                "Calls per peer",
                "Outgoing HTTP calls per second by peer address and port (http.client.request.duration).",
                "reqps",
            )
            .min(0.0)
            .no_value(no_calls)
            .target(Target::new(
                format!(
                    "sum by (server_address, server_port) ({})",
                    rate(CLIENT_COUNT, SCOPE_SERVICE)
                ),
                "{{server_address}}:{{server_port}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Failed calls per peer",
                "Outgoing calls per second that failed (4xx/5xx answers, or connect/timeout errors), by peer; 0 while none fail.",
                "reqps",
            )
            .min(0.0)
            .no_value(no_calls)
            .target(Target::new(
                rate_or_zero(
                    CLIENT_COUNT,
                    &and(SCOPE_SERVICE, r#"error_type!="""#),
                    SCOPE_SERVICE,
                    "server_address, server_port",
                ),
                "{{server_address}}:{{server_port}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Peer latency p95",
                "95th percentile duration of outgoing calls by peer, as this engine waits for it.",
                "s",
            )
            .min(0.0)
            .no_value(no_calls)
            .target(Target::new(
                quantile(0.95, CLIENT, SCOPE_SERVICE, "server_address, server_port"),
                "{{server_address}}:{{server_port}}",
            )),
        )
}

fn messaging() -> Row {
    Row::new("NATS")
        .panel(
            Panel::timeseries(
                "Published/s by subject",
                "Messages published per second by subject template (messaging.client.sent.messages), failures by error.type.",
                "msg/s",
            )
            .min(0.0)
            .no_value("This engine publishes nothing")
            .target(nats_published_by_subject()),
        )
        .panel(
            Panel::timeseries(
                "Consumed/s by subject",
                "Messages received per second by subject (messaging.client.consumed.messages).",
                "msg/s",
            )
            .min(0.0)
            .no_value("This engine consumes nothing")
            .target(Target::new(
                format!(
                    "sum by (messaging_destination_name) ({})",
                    rate("messaging_client_consumed_messages_total", SCOPE_SERVICE)
                ),
                "{{messaging_destination_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Processing time p95 by subject",
                "95th percentile time to process a received message (messaging.process.duration).",
                "s",
            )
            .min(0.0)
            .no_value("This engine consumes nothing")
            .target(Target::new(
                quantile(
                    0.95,
                    "messaging_process_duration_seconds",
                    SCOPE_SERVICE,
                    "messaging_destination_name",
                ),
                "{{messaging_destination_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Publish latency p95",
                "95th percentile time to hand a message to NATS (messaging.client.operation.duration).",
                "s",
            )
            .min(0.0)
            .no_value("This engine publishes nothing")
            .target(Target::new(
                quantile(
                    0.95,
                    "messaging_client_operation_duration_seconds",
                    SCOPE_SERVICE,
                    "messaging_destination_name",
                ),
                "{{messaging_destination_name}}",
            )),
        )
}

fn database() -> Row {
    let no_db = "This engine has no database";
    Row::new("Database")
        .panel(
            Panel::timeseries(
                "Operations/s",
                "Database operations per second by operation and table (db.client.operation.duration).",
                "ops",
            )
            .min(0.0)
            .no_value(no_db)
            .target(Target::new(
                format!(
                    "sum by (db_operation_name, db_collection_name) ({})",
                    rate(DB_COUNT, SCOPE_SERVICE)
                ),
                "{{db_operation_name}} {{db_collection_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Operation p95",
                "95th percentile database operation duration by operation and table.",
                "s",
            )
            .min(0.0)
            .no_value(no_db)
            .target(Target::new(
                quantile(0.95, DB, SCOPE_SERVICE, "db_operation_name, db_collection_name"),
                "{{db_operation_name}} {{db_collection_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Failed operations/s",
                "Database operations per second that failed, by error.type (unique_violation, row_not_found, …); 0 while none fail.",
                "ops",
            )
            .min(0.0)
            .no_value(no_db)
            .target(Target::new(
                rate_or_zero(
                    DB_COUNT,
                    &and(SCOPE_SERVICE, r#"error_type!="""#),
                    SCOPE_SERVICE,
                    "db_operation_name",
                ),
                "{{db_operation_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Pool connections",
                "Connections in the pool by state (db.client.connections.usage: used, idle).",
                "short",
            )
            .min(0.0)
            .no_value(no_db)
            .target(Target::new(
                format!("sum by (pool_name, state) (db_client_connections_usage{{{SCOPE_SERVICE}}})"),
                "{{pool_name}} {{state}}",
            )),
        )
}

fn cache() -> Row {
    let no_cache = "This engine uses no cache";
    Row::new("Cache")
        .panel(
            Panel::timeseries(
                "Hit rate",
                "Share of lookups that found the entry, per cache.",
                "percentunit",
            )
            .range(0.0, 1.0)
            .no_value(no_cache)
            .target(cache_hit_rate()),
        )
        .panel(
            Panel::timeseries(
                "Lookups/s by result",
                "Cache lookups per second, hits and misses.",
                "ops",
            )
            .min(0.0)
            .no_value(no_cache)
            .target(Target::new(
                format!(
                    "sum by (cache_name, cache_result) ({})",
                    rate("cache_lookups_total", SCOPE_SERVICE)
                ),
                "{{cache_name}} {{cache_result}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Lookup p95",
                "95th percentile time per cache lookup (cache.lookup.duration).",
                "s",
            )
            .min(0.0)
            .no_value(no_cache)
            .target(Target::new(
                quantile(
                    0.95,
                    "cache_lookup_duration_seconds",
                    SCOPE_SERVICE,
                    "cache_name",
                ),
                "{{cache_name}}",
            )),
        )
}

fn process() -> Row {
    Row::new("Process")
        .panel(
            Panel::stat(
                "Uptime",
                "Time since the engine process started (process.uptime); a reset means a restart.",
                "s",
            )
            .width(6)
            .target(Target::new(
                format!("min(process_uptime_seconds{{{SCOPE_SERVICE}}})"),
                "uptime",
            )),
        )
        .panel(
            Panel::stat(
                "Instances",
                "Running instances reporting (one per service.instance.id).",
                "short",
            )
            .width(6)
            .target(Target::new(
                format!("count(process_uptime_seconds{{{SCOPE_SERVICE}}})"),
                "instances",
            )),
        )
        .panel(
            Panel::table(
                "Build",
                "Version each running instance reports (service.build.info).",
                "none",
            )
            .width(12)
            .target(
                Target::new(
                    format!("count by (service_name, service_version) (service_build_info{{{SCOPE_SERVICE}}})"),
                    "",
                )
                .instant(),
            ),
        )
}

fn spans() -> Row {
    let needs_collector = "Needs the collector's span_metrics connector; no exemplars without it";
    Row::new("Spans (collector span metrics, with trace exemplars)")
        .panel(
            Panel::timeseries(
                "Span duration p95 by span name",
                "95th percentile span duration computed by the collector's span_metrics connector from every span (before sampling). Exemplar dots link to the trace that was that slow.",
                "s",
            )
            .width(12)
            .min(0.0)
            .no_value(needs_collector)
            .target(
                Target::new(
                    r#"histogram_quantile(0.95, sum by (span_name, le) (rate(traces_span_metrics_duration_seconds_bucket{deployment_environment_name=~"$env", service_namespace=~"$namespace", service_name=~"$service"}[$__rate_interval])))"#,
                    "{{span_name}}",
                )
                .with_exemplars(),
            ),
        )
        .panel(
            Panel::timeseries(
                "Error spans/s by span name",
                "Spans per second that ended with status ERROR, from the span_metrics connector.",
                "ops",
            )
            .width(12)
            .min(0.0)
            .no_value(needs_collector)
            .target(Target::new(
                r#"sum by (span_name) (rate(traces_span_metrics_calls_total{deployment_environment_name=~"$env", service_namespace=~"$namespace", service_name=~"$service", status_code="STATUS_CODE_ERROR"}[$__rate_interval]))"#,
                "{{span_name}}",
            )),
        )
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    scope_variables(Dashboard::new(
        ENGINE_UID,
        "DelTran / Engine drill-down",
        "What is one engine doing? Its requests (rate, errors, latency by route), its calls to other engines, NATS traffic, database and pool, cache, process and build, and span latency with trace exemplars.",
    ))
    .variable(Variable::single("service", "Engine", service_series(), "service_name"))
    .row(requests())
    .row(peers())
    .row(messaging())
    .row(database())
    .row(cache())
    .row(process())
    .row(spans())
}
