//! What the exporters' own machinery logs and traces never reaches OTLP:
//! exporting it would export again, a feedback loop.
//!
//! The check is done where each signal decides anyway, not by a per-layer
//! filter: a `tracing_subscriber` per-layer filter looks every span up again
//! on each enter, exit and close, for every span of the application. Here:
//! - spans: the early sampler drops exporter spans at creation (and with
//!   them everything created under them, see `sampling`);
//! - span events: the early sampler keeps them off recorded spans;
//! - log records: the log processor answers `event_enabled` with `false`,
//!   which the `tracing` bridge asks before it builds a record.

/// Targets whose events and spans never reach the OTLP pipelines: the
/// HTTP/2, gRPC and TLS stacks the exporters themselves run on, the
/// OpenTelemetry SDK's internal logs, and telemetry's own export warnings.
const EXPORTER_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "rustls",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
    "opentelemetry_prometheus",
    "telemetry::export",
    "telemetry::prometheus",
];

/// True when `target` belongs to the exporters' own machinery.
pub(crate) fn is_exporter_target(target: &str) -> bool {
    EXPORTER_TARGETS.iter().any(|t| {
        target == *t
            || (target.starts_with(t)
                && matches!(target.as_bytes().get(t.len()), Some(b':') | Some(b'-')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_targets_match_whole_path_segments() {
        assert!(is_exporter_target("h2"));
        assert!(is_exporter_target("h2::codec"));
        assert!(is_exporter_target("hyper_util::client::legacy"));
        assert!(is_exporter_target("opentelemetry_sdk"));
        assert!(is_exporter_target("telemetry::export"));
        assert!(!is_exporter_target("h2o_engine"));
        assert!(!is_exporter_target("token_engine::mint"));
        assert!(!is_exporter_target("telemetry"));
        assert!(!is_exporter_target("towers"));
    }
}
