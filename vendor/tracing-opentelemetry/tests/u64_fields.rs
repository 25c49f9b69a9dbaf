//! `u64` fields become integer attributes where they fit `i64` (a local
//! addition to 0.34.0, which recorded every `u64` as text).
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::sync::{Arc, Mutex};
use tracing_opentelemetry::layer;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default, Debug)]
struct TestExporter(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for TestExporter {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().append(&mut batch);
        Ok(())
    }
}

#[test]
fn u64_fields_are_integers_where_they_fit() {
    let exporter = TestExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "s",
            small = 7u64,
            huge = u64::MAX,
            later = tracing::field::Empty
        );
        span.record("later", 9u64);
        span.in_scope(|| tracing::info!(count = 3u64, "event"));
    });
    provider.force_flush().unwrap();
    let spans = exporter.0.lock().unwrap();
    let attr = |key: &str| {
        spans[0]
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(attr("small"), Some(Value::I64(7)));
    assert_eq!(attr("later"), Some(Value::I64(9)));
    assert_eq!(attr("huge"), Some(Value::from(u64::MAX.to_string())));
    let event = &spans[0].events.events[0];
    let count = event
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "count");
    assert_eq!(count.map(|kv| kv.value.clone()), Some(Value::I64(3)));
}
