//! `RUST_LOG` decides which spans and events are kept, whichever layers the
//! configuration leaves out (stdout JSON, text or none, traces, propagation
//! and logs on or off). `tracing` disables every callsite above the
//! subscriber's level hint before any layer is asked, so a hint combined
//! wrongly from the layers (an absent `Option` layer answers `OFF`)
//! silences the service whatever `RUST_LOG` says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Captured, env};
use telemetry::Telemetry;
use tracing::level_filters::LevelFilter;

/// Every combination of the settings that add or leave out a layer, at
/// every level: a span at each level is kept exactly when `RUST_LOG` keeps
/// its level.
#[test]
fn rust_log_keeps_its_levels_for_every_layer_combination() {
    let levels = [
        ("trace", LevelFilter::TRACE),
        ("warn", LevelFilter::WARN),
        ("info", LevelFilter::INFO),
        ("error", LevelFilter::ERROR),
        ("debug", LevelFilter::DEBUG),
    ];
    let mut checked = 0;
    for format in ["json", "text", "none"] {
        for traces in ["console", "none"] {
            for propagators in ["tracecontext", "none"] {
                for logs in ["console", "none"] {
                    for (rust_log, expected) in levels {
                        let case = format!(
                            "format={format} traces={traces} propagators={propagators} \
                             logs={logs} RUST_LOG={rust_log}"
                        );
                        let t = Telemetry::builder("hint-engine")
                            .with_env(env(&[
                                ("TELEMETRY_LOG_FORMAT", format),
                                ("OTEL_TRACES_EXPORTER", traces),
                                ("OTEL_PROPAGATORS", propagators),
                                ("OTEL_LOGS_EXPORTER", logs),
                                ("OTEL_METRICS_EXPORTER", "none"),
                                ("RUST_LOG", rust_log),
                            ]))
                            .with_stdout_writer(Captured::default())
                            .build()
                            .unwrap();
                        tracing::dispatcher::with_default(t.dispatch(), || {
                            for (_, level) in levels {
                                let span = match level {
                                    LevelFilter::ERROR => tracing::error_span!("kept"),
                                    LevelFilter::WARN => tracing::warn_span!("kept"),
                                    LevelFilter::INFO => tracing::info_span!("kept"),
                                    LevelFilter::DEBUG => tracing::debug_span!("kept"),
                                    _ => tracing::trace_span!("kept"),
                                };
                                assert_eq!(
                                    !span.is_disabled(),
                                    level <= expected,
                                    "{case}: a span at {level}"
                                );
                            }
                        });
                        t.shutdown().unwrap();
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 2 * 2 * 2 * levels.len());
}
