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

/// Crates whose events and spans never reach the OTLP pipelines: the
/// HTTP/2, gRPC and TLS stacks the exporters themselves run on, and the
/// OpenTelemetry SDK's internal logs. A target is theirs when its first
/// path segment (up to `:` or `-`) is one of these.
const EXPORTER_CRATES: &[&str] = &[
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
];

/// Telemetry's own modules whose events never reach OTLP (its export
/// warnings): `telemetry::<module>` and what is under it.
const TELEMETRY_EXPORT_MODULES: &[&str] = &["export", "prometheus"];

/// True when `target` belongs to the exporters' own machinery. Asked for
/// every span and event, so the target's first path segment is cut once
/// and compared whole (mostly a length check) instead of testing every
/// prefix.
pub(crate) fn is_exporter_target(target: &str) -> bool {
    let crate_name = first_segment(target);
    if crate_name == "telemetry" {
        return target
            .strip_prefix("telemetry::")
            .is_some_and(|rest| TELEMETRY_EXPORT_MODULES.contains(&first_segment(rest)));
    }
    EXPORTER_CRATES.contains(&crate_name)
}

/// True when `target` is telemetry's own or its exporters': the events that
/// say whether telemetry itself works, kept on stdout when the service's
/// own lines are not written there (`TELEMETRY_LOG_FORMAT=none`).
pub(crate) fn is_own_target(target: &str) -> bool {
    first_segment(target) == "telemetry" || is_exporter_target(target)
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

    /// Every exporter target written out as a prefix.
    fn exporter_targets() -> Vec<String> {
        EXPORTER_CRATES
            .iter()
            .map(|c| c.to_string())
            .chain(
                TELEMETRY_EXPORT_MODULES
                    .iter()
                    .map(|m| format!("telemetry::{m}")),
            )
            .collect()
    }

    /// The definition: one of the targets, or one followed by `:` or `-`.
    fn by_definition(target: &str) -> bool {
        exporter_targets().iter().any(|t| {
            target == t
                || (target.starts_with(t.as_str())
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
        let heads = exporter_targets().into_iter().chain(
            [
                "telemetry",
                "h",
                "hyper_",
                "opentelemetry_",
                "telemetry::",
                "app",
            ]
            .map(String::from),
        );
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

    #[test]
    fn own_targets_are_telemetrys_and_its_exporters() {
        for own in [
            "telemetry",
            "telemetry::config",
            "telemetry::export",
            "telemetry-bench",
            "tonic::transport",
            "opentelemetry_sdk",
        ] {
            assert!(is_own_target(own), "{own}");
        }
        for theirs in [
            "token_engine",
            "telemetryx",
            "telemetry_glue::http",
            "services_glue::http",
            "my_telemetry",
            "",
        ] {
            assert!(!is_own_target(theirs), "{theirs}");
        }
    }
}
