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
/// A target is theirs when it is one of these or starts with one followed
/// by `:` or `-`.
#[cfg(test)]
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

/// True when `target` belongs to the exporters' own machinery (one of
/// `EXPORTER_TARGETS`, or under one). Asked for every span and event, so
/// it matches the target's first path segment once instead of comparing
/// prefixes one by one.
pub(crate) fn is_exporter_target(target: &str) -> bool {
    match first_segment(target) {
        "h2"
        | "hyper"
        | "hyper_util"
        | "tonic"
        | "tower"
        | "rustls"
        | "opentelemetry"
        | "opentelemetry_sdk"
        | "opentelemetry_otlp"
        | "opentelemetry_http"
        | "opentelemetry_prometheus" => true,
        "telemetry" => target
            .strip_prefix("telemetry::")
            .is_some_and(|rest| matches!(first_segment(rest), "export" | "prometheus")),
        _ => false,
    }
}

/// `target` up to its first `:` or `-`.
fn first_segment(target: &str) -> &str {
    // Bytes, not chars: both separators are ASCII, so the cut is on a char
    // boundary, and a byte scan is a few instructions per byte.
    target
        .bytes()
        .position(|b| b == b':' || b == b'-')
        .map_or(target, |end| &target[..end])
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
        assert!(!is_exporter_target("telemetry:export"));
        assert!(!is_exporter_target("telemetry-export"));
        assert!(is_exporter_target("telemetry::export-x"));
        assert!(is_exporter_target("tonic-build"));
    }

    /// The definition: one of the targets, or one followed by `:` or `-`.
    fn by_definition(target: &str) -> bool {
        EXPORTER_TARGETS.iter().any(|t| {
            target == *t
                || (target.starts_with(t)
                    && matches!(target.as_bytes().get(t.len()), Some(b':') | Some(b'-')))
        })
    }

    #[test]
    fn the_segment_match_is_the_definition() {
        let mut targets = vec![String::new()];
        let tails = [
            "",
            ":",
            "::",
            "-",
            "::x",
            "-x",
            "x",
            "_x",
            "::export",
            "::prometheus",
        ];
        let heads = EXPORTER_TARGETS.iter().copied().chain([
            "telemetry",
            "h",
            "hyper_",
            "opentelemetry_",
            "telemetry::",
            "app",
        ]);
        for head in heads {
            for tail in tails {
                targets.push(format!("{head}{tail}"));
                for tail2 in tails {
                    targets.push(format!("{head}{tail}{tail2}"));
                }
            }
        }
        for target in &targets {
            assert_eq!(
                is_exporter_target(target),
                by_definition(target),
                "{target:?}"
            );
        }
    }
}
