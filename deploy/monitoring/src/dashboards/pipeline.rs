//! Telemetry pipeline health: is the telemetry itself arriving? The engines'
//! own export counters (telemetry crate) and the collector's.

use super::{SCOPE_SERVICE, per_engine_rate, scope_variables, service_series};
use crate::grafana::{Dashboard, Panel, Row, Target, Variable};

/// One engine signal's queue and export counters.
fn engine_signal(title: &str, signal: &str, unit_name: &str) -> Row {
    let processed = format!("otel_sdk_processor_{signal}_processed_total");
    let exported = format!("otel_sdk_exporter_{signal}_exported_total");
    let size = format!("otel_sdk_processor_{signal}_queue_size");
    let capacity = format!("otel_sdk_processor_{signal}_queue_capacity");
    let no_export = format!("No {unit_name} exported over OTLP by the selected engines");
    Row::new(title)
        .panel(
            Panel::timeseries(
                &format!("{unit_name} queued/s"),
                &format!("{unit_name} handed to the export queue per second, per engine (otel.sdk.processor.{signal}.processed without error.type)."),
                "ops",
            )
            .width(6)
            .min(0.0)
            .no_value(&no_export)
            .target(per_engine_rate(&processed, r#"error_type="""#, "{{service_name}}")),
        )
        .panel(
            Panel::timeseries(
                &format!("{unit_name} dropped/s (queue full)"),
                &format!("{unit_name} dropped because the export queue was full (error.type=queue_full): telemetry lost to protect the engine. TelemetryItemsDropped fires on any."),
                "ops",
            )
            .width(6)
            .min(0.0)
            .thresholds(&[(0.000_001, "red")])
            .no_value(&no_export)
            .target(per_engine_rate(&processed, r#"error_type="queue_full""#, "{{service_name}}")),
        )
        .panel(
            Panel::timeseries(
                &format!("{unit_name} exported / failed per second"),
                &format!("{unit_name} the collector accepted per second, and those lost in failed exports or rejected by the collector (error.type set: export_failed, rejected). TelemetryExportFailures fires on sustained losses."),
                "ops",
            )
            .width(6)
            .min(0.0)
            .no_value(&no_export)
            .target(per_engine_rate(&exported, r#"error_type="""#, "{{service_name}} exported"))
            .target(per_engine_rate(&exported, r#"error_type!="""#, "{{service_name}} failed")),
        )
        .panel(
            Panel::timeseries(
                "Queue fill",
                &format!("Items waiting in the {signal} export queue as a share of its capacity; a full queue drops."),
                "percentunit",
            )
            .width(6)
            .range(0.0, 1.0)
            .thresholds(&[(0.8, "red")])
            .no_value(&no_export)
            .target(Target::new(
                format!(
                    "max by (service_name) ({size}{{{SCOPE_SERVICE}}} / {capacity}{{{SCOPE_SERVICE}}})"
                ),
                "{{service_name}}",
            )),
        )
}

fn engine_metrics() -> Row {
    let exported = "otel_sdk_exporter_metric_data_point_exported_total";
    Row::new("Engines: metrics and exporter health")
        .panel(
            Panel::timeseries(
                "Metric points exported / failed per second",
                "Metric data points pushed over OTLP per second, and those lost in failed exports. (On the pull path Prometheus scrapes /metrics instead and this stays empty.)",
                "ops",
            )
            .width(12)
            .min(0.0)
            .no_value("No metrics pushed over OTLP by the selected engines")
            .target(per_engine_rate(exported, r#"error_type="""#, "{{service_name}} exported"))
            .target(per_engine_rate(exported, r#"error_type!="""#, "{{service_name}} failed")),
        )
        .panel(
            Panel::state_timeline(
                "Exporter health",
                "Per engine and signal: healthy while the last export succeeded (telemetry.exporter.healthy), failing while the collector refuses or cannot be reached. TelemetryExporterUnhealthy fires after 5 minutes failing.",
            )
            .width(12)
            .mapping("0", "failing", "red")
            .mapping("1", "healthy", "green")
            .thresholds(&[(0.0, "red"), (1.0, "green")])
            .target(Target::new(
                format!("min by (service_name, signal) (telemetry_exporter_healthy{{{SCOPE_SERVICE}}})"),
                "{{service_name}} {{signal}}",
            )),
        )
}

/// Collector panels: one query per signal, since the collector names its
/// counters per signal.
fn per_signal(panel: Panel, prefix: &str, by: &str) -> Panel {
    let legend = format!("{{{{{by}}}}}");
    [
        ("spans", "spans"),
        ("metric_points", "metric points"),
        ("log_records", "log records"),
    ]
    .into_iter()
    .fold(panel, |p, (suffix, name)| {
        p.target(Target::new(
            format!("sum by ({by}) (rate({prefix}_{suffix}_total[$__rate_interval]))"),
            format!("{legend} {name}"),
        ))
    })
}

fn collector() -> Row {
    let none = "No collector scraped (job otel-collector)";
    Row::new("Collector")
        .panel(
            Panel::stat(
                "Collector up",
                "Whether Prometheus can scrape each collector's own metrics (job otel-collector). OtelCollectorDown fires after 2 minutes down.",
                "none",
            )
            .width(6)
            .mapping("0", "DOWN", "red")
            .mapping("1", "UP", "green")
            .thresholds(&[(0.0, "red"), (1.0, "green")])
            .no_value(none)
            .target(Target::new(r#"up{job="otel-collector"}"#, "{{instance}}")),
        )
        .panel(
            per_signal(
                Panel::timeseries(
                    "Accepted by receiver",
                    "Items the collector's receivers accepted per second, by receiver and signal.",
                    "ops",
                )
                .width(9)
                .min(0.0)
                .no_value(none),
                "otelcol_receiver_accepted",
                "receiver",
            ),
        )
        .panel(
            per_signal(
                Panel::timeseries(
                    "Refused by receiver",
                    "Items refused per second, mostly by memory_limiter under memory pressure: the engines retry, then drop. OtelCollectorRefusingData fires on sustained refusals.",
                    "ops",
                )
                .width(9)
                .min(0.0)
                .no_value(none),
                "otelcol_receiver_refused",
                "receiver",
            ),
        )
        .panel(
            per_signal(
                Panel::timeseries(
                    "Sent by exporter",
                    "Items the collector's exporters delivered per second, by exporter.",
                    "ops",
                )
                .min(0.0)
                .no_value(none),
                "otelcol_exporter_sent",
                "exporter",
            ),
        )
        .panel(
            per_signal(
                Panel::timeseries(
                    "Send failures by exporter",
                    "Items an exporter failed to deliver after its retries, per second (the backend refused or was unreachable). OtelCollectorExportFailing fires on sustained failures.",
                    "ops",
                )
                .min(0.0)
                .no_value(none),
                "otelcol_exporter_send_failed",
                "exporter",
            ),
        )
        .panel(
            per_signal(
                Panel::timeseries(
                    "Enqueue failures by exporter",
                    "Items dropped because an exporter's sending queue was full, per second: lost before any retry. OtelCollectorEnqueueFailed fires on any.",
                    "ops",
                )
                .min(0.0)
                .no_value(none),
                "otelcol_exporter_enqueue_failed",
                "exporter",
            ),
        )
        .panel(
            Panel::timeseries(
                "Exporter queue fill",
                "Sending queue size as a share of capacity, by exporter and signal. OtelCollectorQueueNearlyFull fires above 80%.",
                "percentunit",
            )
            .width(24)
            .range(0.0, 1.0)
            .thresholds(&[(0.8, "red")])
            .no_value(none)
            .target(Target::new(
                "max by (exporter, data_type) (otelcol_exporter_queue_size / otelcol_exporter_queue_capacity)",
                "{{exporter}} {{data_type}}",
            )),
        )
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    scope_variables(Dashboard::new(
        "deltran-telemetry-pipeline",
        "DelTran / Telemetry pipeline",
        "Is the telemetry arriving? Per engine and signal: items queued, dropped, exported and failed, queue fill and exporter health; then the collector's receivers, exporters and sending queues.",
    ))
    .variable(Variable::multi("service", "Service", service_series(), "service_name"))
    .row(engine_signal("Engines: spans", "span", "Spans"))
    .row(engine_signal("Engines: logs", "log", "Log records"))
    .row(engine_metrics())
    .row(collector())
}
