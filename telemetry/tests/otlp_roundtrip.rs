//! Spans, metrics and logs through the real OTLP path (gRPC and
//! HTTP/protobuf) into the in-process receiver that decodes the protobuf.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Captured, otlp_env};
use opentelemetry::KeyValue;
use telemetry::testing::{
    MetricData, OtlpReceiver, ReceivedMetric, SpanKind, find_metric, find_span,
};
use telemetry::{SECONDS_BUCKETS, Telemetry};

fn emit_everything(t: &Telemetry) {
    let meter = t.meter();
    let requests = meter
        .u64_counter("orders.placed")
        .with_unit("{order}")
        .build();
    let latency = meter
        .f64_histogram("orders.duration")
        .with_unit("s")
        .build();
    tracing::dispatcher::with_default(t.dispatch(), || {
        let root = tracing::info_span!("place_order", order.id = 42, otel.kind = "server");
        root.in_scope(|| {
            tracing::info_span!("reserve_funds", account = "acc-1").in_scope(|| {
                tracing::info!(amount = 1250, "funds reserved");
            });
            tracing::warn!("slow downstream");
        });
    });
    requests.add(3, &[KeyValue::new("market", "eu")]);
    latency.record(0.042, &[KeyValue::new("market", "eu")]);
}

fn roundtrip(protocol: &str) {
    let receiver = OtlpReceiver::start().unwrap();
    let mut env = otlp_env(&receiver, protocol);
    env.insert(
        "OTEL_EXPORTER_OTLP_HEADERS".into(),
        "x-tenant=payments,authorization=Bearer%20s3cret".into(),
    );
    env.insert("OTEL_EXPORTER_OTLP_COMPRESSION".into(), "gzip".into());
    let stdout = Captured::default();
    let t = Telemetry::builder("order-engine")
        .with_version("2.1.0")
        .with_namespace("deltran")
        .with_env(env)
        .with_stdout_writer(stdout.clone())
        .build()
        .unwrap();
    emit_everything(&t);
    t.shutdown().unwrap();

    // Traces: parent/child, attributes, kind, resource.
    let spans = receiver.wait_for_spans(Duration::from_secs(5), |s| s.len() >= 2);
    let root = find_span(&spans, "place_order").expect("root span");
    let child = find_span(&spans, "reserve_funds").expect("child span");
    assert_eq!(child.parent_span_id.as_deref(), Some(root.span_id.as_str()));
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(root.parent_span_id, None);
    // The body encoding is the one the protocol names.
    let content_type = match protocol {
        "http/json" => Some("application/json"),
        "http/protobuf" => Some("application/x-protobuf"),
        _ => None,
    };
    if let Some(expected) = content_type {
        for r in receiver.requests() {
            assert_eq!(r.header("content-type"), Some(expected), "{r:?}");
        }
    }
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.attributes.i64("order.id"), Some(42));
    assert_eq!(child.attributes.str("account"), Some("acc-1"));
    assert_eq!(root.scope_name, "order-engine");
    assert_eq!(root.scope_version.as_deref(), Some("2.1.0"));
    let r = &root.resource;
    assert_eq!(r.str("service.name"), Some("order-engine"));
    assert_eq!(r.str("service.version"), Some("2.1.0"));
    assert_eq!(r.str("service.namespace"), Some("deltran"));
    assert_eq!(r.str("deployment.environment.name"), Some("test-env"));
    assert!(uuid_like(r.str("service.instance.id").unwrap()));
    assert!(r.contains_key("host.name") && r.contains_key("process.pid"));

    // Metrics: names, units, second-scale boundaries, attributes, resource.
    let metrics = receiver.wait_for_metrics(Duration::from_secs(5), |m| {
        find_metric(m, "orders.duration").is_some()
    });
    let placed = find_metric(&metrics, "orders.placed").expect("counter exported");
    assert_eq!(placed.unit, "{order}");
    match &placed.data {
        MetricData::Sum {
            monotonic,
            cumulative,
            points,
        } => {
            assert!(*monotonic && *cumulative);
            assert_eq!(points[0].value, 3.0);
            assert_eq!(points[0].attributes.str("market"), Some("eu"));
        }
        other => panic!("expected a sum, got {other:?}"),
    }
    let duration = find_metric(&metrics, "orders.duration").unwrap();
    assert_eq!(duration.unit, "s");
    let h = &duration.histogram_points()[0];
    assert_eq!(
        h.bounds,
        SECONDS_BUCKETS.to_vec(),
        "seconds buckets, not the SDK's ms defaults"
    );
    assert_eq!(h.count, 1);
    assert_eq!(duration.resource.str("service.name"), Some("order-engine"));

    // Logs: trace context, real timestamps, severity, body.
    let logs = receiver.wait_for_logs(Duration::from_secs(5), |l| l.len() >= 2);
    let reserved = logs
        .iter()
        .find(|l| l.body.as_deref() == Some("funds reserved"))
        .expect("log");
    assert_eq!(reserved.trace_id.as_deref(), Some(child.trace_id.as_str()));
    assert_eq!(reserved.span_id.as_deref(), Some(child.span_id.as_str()));
    assert_eq!(reserved.attributes.i64("amount"), Some(1250));
    assert_eq!(reserved.severity_text, "INFO");
    assert!(
        reserved.time_unix_nanos > 0,
        "bridged logs must carry an event timestamp"
    );
    let slow = logs
        .iter()
        .find(|l| l.body.as_deref() == Some("slow downstream"))
        .unwrap();
    assert_eq!(slow.span_id.as_deref(), Some(root.span_id.as_str()));

    // Headers and compression reached the collector on every request.
    let requests = receiver.requests();
    assert!(!requests.is_empty());
    for req in &requests {
        assert_eq!(req.header("x-tenant"), Some("payments"), "{req:?}");
        assert_eq!(req.header("authorization"), Some("Bearer s3cret"));
        let enc = req
            .header("grpc-encoding")
            .or(req.header("content-encoding"));
        assert_eq!(enc, Some("gzip"), "{req:?}");
    }

    // Stdout JSON lines carry the same trace id.
    let line = stdout
        .lines()
        .into_iter()
        .find(|l| l.contains("funds reserved"))
        .expect("stdout line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["trace_id"], child.trace_id.as_str());
    assert_eq!(v["span_id"], child.span_id.as_str());
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["fields"]["amount"], 1250);

    // Nothing lost: every ended span and every log was exported.
    let traces = t.health().signal(telemetry::Signal::Traces).unwrap();
    assert_eq!(traces.emitted, 2);
    assert_eq!(traces.exported, 2);
    assert_eq!(traces.dropped, 0);
    receiver.shutdown();
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn grpc_roundtrip() {
    roundtrip("grpc");
}

#[test]
fn http_protobuf_roundtrip() {
    roundtrip("http/protobuf");
}

#[test]
fn http_json_roundtrip() {
    roundtrip("http/json");
}

/// Exports five spans and five log records to `receiver`, shuts down, and
/// returns the metrics exported, once they include the exported-items
/// counters, and the sum of the points of `otel.sdk.exporter.<item>.exported`
/// with `error.type` = `error` (`None`: without).
fn five_of_each_and_self_metrics(
    receiver: &OtlpReceiver,
) -> (Vec<ReceivedMetric>, impl Fn(&str, Option<&str>) -> f64) {
    let t = Telemetry::builder("self-observer")
        .with_env(otlp_env(receiver, "grpc"))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        for _ in 0..5 {
            tracing::info_span!("unit").in_scope(|| {});
            tracing::info!("unit done");
        }
    });
    t.shutdown().unwrap();
    let metrics = receiver.wait_for_metrics(Duration::from_secs(5), |m| {
        find_metric(m, "otel.sdk.exporter.span.exported").is_some()
            && find_metric(m, "otel.sdk.exporter.log.exported").is_some()
    });
    let found = metrics.clone();
    let by_error = move |item: &str, error: Option<&str>| -> f64 {
        let name = format!("otel.sdk.exporter.{item}.exported");
        find_metric(&found, &name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .number_points()
            .iter()
            .filter(|p| p.attributes.str("error.type") == error)
            .map(|p| p.value)
            .sum()
    };
    (metrics, by_error)
}

#[test]
fn self_metrics_use_semantic_convention_names() {
    let receiver = OtlpReceiver::start().unwrap();
    let (metrics, by_error) = five_of_each_and_self_metrics(&receiver);
    assert_eq!(by_error("span", None), 5.0);
    assert_eq!(by_error("log", None), 5.0);
    for name in [
        "otel.sdk.processor.span.processed",
        "otel.sdk.processor.span.queue.size",
        "otel.sdk.processor.span.queue.capacity",
        "otel.sdk.processor.log.processed",
        "otel.sdk.exporter.log.exported",
        "telemetry.exporter.healthy",
    ] {
        assert!(find_metric(&metrics, name).is_some(), "{name} missing");
    }
    let cap = find_metric(&metrics, "otel.sdk.processor.span.queue.capacity").unwrap();
    assert_eq!(cap.number_points()[0].value, 2048.0);
}

/// Spans and log records a collector rejects in a partial success count as
/// failed exports with `error.type=rejected`, as the semantic conventions
/// ask, apart from batches lost whole (`export_failed`).
#[test]
fn rejected_items_are_counted_with_their_own_error_type() {
    let receiver = OtlpReceiver::start().unwrap();
    receiver.set_partial_rejection(Some(2));
    let (_, by_error) = five_of_each_and_self_metrics(&receiver);
    for item in ["span", "log"] {
        assert_eq!(by_error(item, None), 3.0, "{item}");
        assert_eq!(by_error(item, Some("rejected")), 2.0, "{item}");
        assert_eq!(by_error(item, Some("export_failed")), 0.0, "{item}");
    }
}
