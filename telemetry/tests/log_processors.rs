//! Every log exporter gets the whole record, whichever queue processor is
//! first: the provider's last processor takes the record instead of copying
//! it, so the ones before it must still see it intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use opentelemetry::logs::AnyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use telemetry::Telemetry;

/// One exported record: its body and its attributes, as text.
type Kept = (String, Vec<(String, String)>);

/// Keeps each record's body and attributes as text.
#[derive(Debug, Clone, Default)]
struct Keep(Arc<Mutex<Vec<Kept>>>);

impl LogExporter for Keep {
    fn export(
        &self,
        batch: LogBatch<'_>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let mut kept = self.0.lock().unwrap();
        for (record, _) in batch.iter() {
            let body = match record.body() {
                Some(AnyValue::String(s)) => s.to_string(),
                other => format!("{other:?}"),
            };
            let attrs = record
                .attributes_iter()
                .map(|(k, v)| (k.to_string(), format!("{v:?}")))
                .collect();
            kept.push((body, attrs));
        }
        async { Ok(()) }
    }
}

#[test]
fn two_log_exporters_each_get_every_record_whole() {
    let (first, second) = (Keep::default(), Keep::default());
    let telemetry = Telemetry::builder("log-processors")
        .with_env([
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("RUST_LOG", "info"),
        ])
        .with_stdout_writer(std::io::sink)
        .with_log_exporter(first.clone())
        .with_log_exporter(second.clone())
        .set_default()
        .unwrap();
    for i in 0..3u64 {
        tracing::info!(order.id = i, customer.tier = "gold", "order accepted");
    }
    drop(telemetry);
    for (name, keep) in [("first", &first), ("second", &second)] {
        let kept = keep.0.lock().unwrap();
        assert_eq!(kept.len(), 3, "{name}: {kept:?}");
        for (body, attrs) in kept.iter() {
            assert_eq!(body, "order accepted", "{name}");
            assert!(
                attrs
                    .iter()
                    .any(|(k, v)| k == "customer.tier" && v.contains("gold")),
                "{name}: {attrs:?}"
            );
            assert!(
                attrs.iter().any(|(k, _)| k == "order.id"),
                "{name}: {attrs:?}"
            );
        }
    }
}
