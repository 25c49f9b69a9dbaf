//! The ten quantities of the original DelTran "Services Overview"
//! dashboard, as PromQL over the series the fleet exports (pull or push:
//! both paths carry `service_name` and `service_namespace`). The fleet's
//! Prometheus test evaluates every one against a real Prometheus.

/// One dashboard panel.
#[derive(Clone, Copy, Debug)]
pub struct Panel {
    /// The seed dashboard's panel title.
    pub title: &'static str,
    /// The query (`[1m]`/`[5m]` windows; dashboards use `$__rate_interval`).
    pub promql: &'static str,
}

/// The "Services Overview" panels, in the seed dashboard's order.
pub const SERVICES_OVERVIEW: [Panel; 10] = [
    Panel {
        title: "Transaction throughput (requests/s by service)",
        promql: r#"sum by (service_name) (rate(http_server_request_duration_seconds_count{service_namespace="deltran"}[1m]))"#,
    },
    Panel {
        title: "Service health (up/down)",
        promql: r#"up{job="deltran"}"#,
    },
    Panel {
        title: "Request latency p95 (s)",
        promql: r#"histogram_quantile(0.95, sum by (service_name, le) (rate(http_server_request_duration_seconds_bucket{service_namespace="deltran"}[1m])))"#,
    },
    Panel {
        title: "Error rate (5xx/s)",
        promql: r#"sum by (service_name) (rate(http_server_request_duration_seconds_count{service_namespace="deltran",http_response_status_code=~"5.."}[1m])) or sum by (service_name) (rate(http_server_request_duration_seconds_count{service_namespace="deltran"}[1m])) * 0"#,
    },
    Panel {
        title: "Active tokens",
        promql: r#"sum(tokens_active{service_namespace="deltran"})"#,
    },
    Panel {
        title: "WebSocket connections (gateway)",
        promql: r#"sum(deltran_gateway_websocket_connections{service_namespace="deltran"})"#,
    },
    Panel {
        title: "Transaction success rate",
        promql: r#"sum(rate(deltran_payments_total{service_namespace="deltran",outcome="accepted"}[5m])) / sum(rate(deltran_payments_total{service_namespace="deltran"}[5m]))"#,
    },
    Panel {
        title: "Database query duration p95 (s)",
        promql: r#"histogram_quantile(0.95, sum by (le) (rate(db_client_operation_duration_seconds_bucket{service_namespace="deltran"}[5m])))"#,
    },
    Panel {
        title: "NATS messages published/s",
        promql: r#"sum by (messaging_destination_name) (rate(messaging_client_sent_messages_total{service_namespace="deltran"}[1m]))"#,
    },
    Panel {
        title: "Cache hit rate",
        promql: r#"sum by (cache_name) (rate(cache_lookups_total{service_namespace="deltran",cache_result="hit"}[5m])) / sum by (cache_name) (rate(cache_lookups_total{service_namespace="deltran"}[5m]))"#,
    },
];
