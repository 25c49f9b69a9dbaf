//! No card number or IBAN leaves the process in clear, whichever signal
//! carries it: span attributes, span event names (a `tracing` event's
//! message) and attributes, link attributes, error descriptions, OTLP log
//! bodies and attributes, and the stdout lines in both formats — grouped and
//! ungrouped forms. Trace ids, UUIDs, amounts and millisecond timestamps go
//! through untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Captured, otlp_env};
use telemetry::Telemetry;
use telemetry::testing::{OtlpReceiver, SpanStatus};
use telemetry::tracing_opentelemetry::OpenTelemetrySpanExt;

const IN_CLEAR: &[&str] = &[
    "4111111111111111",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5500 0000 0000 0004",
    "DE89370400440532013000",
    "DE89 3704 0044 0532 0130 00",
    "3704 0044",
];
const UUID: &str = "550e8400-e29b-41d4-a716-446655440000";
const HEX_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn assert_masked(what: &str, text: &str) {
    for clear in IN_CLEAR {
        assert!(
            !text.contains(clear),
            "{what} carries {clear:?} in clear: {text}"
        );
    }
}

/// Emits sensitive values through every place a service can put them.
fn emit() {
    let link = opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from_hex(HEX_ID).unwrap(),
        opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        opentelemetry::trace::TraceFlags::SAMPLED,
        true,
        Default::default(),
    );
    let span = tracing::info_span!(
        "pay",
        card = "4111 1111 1111 1111",
        iban = "DE89 3704 0044 0532 0130 00",
        payment.id = UUID,
        trace.hint = HEX_ID,
    );
    span.add_link_with_attributes(
        link,
        vec![opentelemetry::KeyValue::new(
            "from.card",
            "5500-0000-0000-0004",
        )],
    );
    let _entered = span.enter();
    tracing::info!(
        pan = "4111111111111111",
        iban = "DE89370400440532013000",
        amount = 1_250_000.5,
        accepted_at_ms = 1_764_443_235_123i64,
        payment.id = UUID,
        "paid with 4111-1111-1111-1111 from DE89 3704 0044 0532 0130 00"
    );
    tracing::warn!(reason = ?Some("card 5500 0000 0000 0004 declined"), "declined");
    span.set_status(opentelemetry::trace::Status::error(
        "card 4111111111111111 declined",
    ));
}

#[test]
fn card_numbers_and_ibans_are_masked_in_every_otlp_signal() {
    let receiver = OtlpReceiver::start().unwrap();
    let stdout = Captured::default();
    let t = Telemetry::builder("masking-engine")
        .with_env(otlp_env(&receiver, "grpc"))
        .with_stdout_writer(stdout.clone())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), emit);
    t.shutdown().unwrap();

    let spans = receiver.wait_for_spans(Duration::from_secs(10), |s| {
        s.iter().any(|s| s.name == "pay")
    });
    let span = spans
        .iter()
        .find(|s| s.name == "pay")
        .expect("the span arrives");
    assert_masked("span", &format!("{span:?}"));
    assert_eq!(span.attributes.str("card"), Some("****1111"));
    assert_eq!(span.attributes.str("iban"), Some("DE89****3000"));
    assert_eq!(
        span.attributes.str("payment.id"),
        Some(UUID),
        "UUIDs are left alone"
    );
    assert_eq!(
        span.attributes.str("trace.hint"),
        Some(HEX_ID),
        "hex ids are left alone"
    );
    let event = span
        .events
        .iter()
        .find(|e| e.name.starts_with("paid with"))
        .expect("the event");
    assert_eq!(event.name, "paid with ****1111 from DE89****3000");
    assert_eq!(event.attributes.str("pan"), Some("****1111"));
    assert_eq!(
        event.attributes.i64("accepted_at_ms"),
        Some(1_764_443_235_123)
    );
    assert_eq!(span.links[0].attributes.str("from.card"), Some("****0004"));
    assert_eq!(
        span.status,
        SpanStatus::Error("card ****1111 declined".into())
    );

    let logs = receiver.wait_for_logs(Duration::from_secs(10), |l| l.len() >= 2);
    let paid = logs
        .iter()
        .find(|l| {
            l.body
                .as_deref()
                .is_some_and(|b| b.starts_with("paid with"))
        })
        .expect("the log record");
    assert_masked("log records", &format!("{logs:?}"));
    assert_eq!(
        paid.body.as_deref(),
        Some("paid with ****1111 from DE89****3000")
    );
    assert_eq!(paid.attributes.str("pan"), Some("****1111"));
    assert_eq!(paid.attributes.str("iban"), Some("DE89****3000"));
    assert_eq!(paid.attributes.str("payment.id"), Some(UUID));
    assert_eq!(paid.attributes.f64("amount"), Some(1_250_000.5));
    assert_eq!(
        paid.attributes.i64("accepted_at_ms"),
        Some(1_764_443_235_123)
    );
    assert!(
        paid.trace_id.is_some(),
        "the rebuilt record keeps its trace context"
    );
    assert_eq!(paid.severity_text, "INFO");

    let json = stdout.text();
    assert_masked("stdout JSON", &json);
    assert!(
        json.contains(r#""message":"paid with ****1111 from DE89****3000""#),
        "{json}"
    );
    assert!(
        json.contains(r#""accepted_at_ms":1764443235123"#),
        "numbers stay numbers: {json}"
    );
    assert!(json.contains("****0004 declined"), "{json}");
}

#[test]
fn the_readable_text_format_masks_too() {
    let stdout = Captured::default();
    let t = Telemetry::builder("masking-engine")
        .with_env(common::env(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("TELEMETRY_LOG_FORMAT", "text"),
        ]))
        .with_stdout_writer(stdout.clone())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), emit);
    t.shutdown().unwrap();
    let text = stdout.text();
    assert_masked("stdout text", &text);
    assert!(
        text.contains("paid with ****1111 from DE89****3000"),
        "{text}"
    );
    assert!(text.contains(r#"pan="****1111""#), "{text}");
    assert!(text.contains("accepted_at_ms=1764443235123"), "{text}");
    assert!(text.contains(&format!(r#"payment.id="{UUID}""#)), "{text}");
}
