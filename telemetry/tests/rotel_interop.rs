//! Interop with a collector nobody here wrote: telemetry → rotel (PyPI
//! `rotel`, a Rust OTLP collector) → the in-process OTLP receiver. If our
//! OTLP encoding, paths, content types or gRPC framing were off, rotel would
//! reject or mangle the data; the receiver sees only what rotel re-encoded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use opentelemetry::KeyValue;
use telemetry::Telemetry;
use telemetry::testing::{MetricData, OtlpReceiver, SpanKind, Transport, find_metric, find_span};
use testkit::{OtlpProtocol, Rotel};

const WAIT: Duration = Duration::from_secs(20);

fn emit(t: &Telemetry) {
    let meter = t.meter();
    let minted = meter.u64_counter("tokens.minted").build();
    let latency = meter.f64_histogram("mint.duration").with_unit("s").build();
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!("mint_batch", batch.size = 3, otel.kind = "server").in_scope(|| {
            tracing::info_span!("sign_token", key = "k-7").in_scope(|| {
                tracing::info!(token = "t-1", "token signed");
            });
            tracing::error!(reason = "quota", "batch partially rejected");
        });
    });
    minted.add(3, &[KeyValue::new("chain", "main")]);
    latency.record(0.12, &[KeyValue::new("chain", "main")]);
}

/// telemetry exports with `protocol` to rotel's matching receiver; rotel
/// exports to the receiver with `rotel_export`.
fn through_rotel(service: &str, protocol: &str, rotel_export: OtlpProtocol) {
    let json = protocol == "http/json";
    let receiver = OtlpReceiver::start().unwrap();
    let (export_to, transport) = match rotel_export {
        OtlpProtocol::Grpc => (receiver.grpc_endpoint(), Transport::Grpc),
        OtlpProtocol::Http => (receiver.http_endpoint(), Transport::Http),
    };
    let rotel = Rotel::builder(&export_to)
        .protocol(rotel_export)
        .start()
        .expect("start rotel (pip install rotel)");

    let mut env = common::env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ("TELEMETRY_LOG_FORMAT", "json"),
    ]);
    let endpoint = if protocol == "grpc" {
        rotel.grpc_endpoint()
    } else {
        rotel.http_endpoint()
    };
    env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint);
    let t = Telemetry::builder(service)
        .with_version("0.9.1")
        .with_namespace("deltran")
        .with_env(env)
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    emit(&t);
    t.shutdown().unwrap();
    // Every item reached rotel (rotel answered OK to every export).
    let health = t.health();
    for s in health.signals() {
        assert_eq!(s.failed, 0, "{s:?}");
        assert_eq!(s.dropped, 0, "{s:?}");
    }
    assert!(health.is_healthy(), "{health:?}");

    let diag = || format!("rotel log:\n{}", rotel.log_tail(30));

    // Traces: both spans, parentage and identity survive the hop.
    let spans = receiver.wait_for_spans(WAIT, |s| {
        find_span(s, "mint_batch").is_some() && find_span(s, "sign_token").is_some()
    });
    let root = find_span(&spans, "mint_batch").unwrap_or_else(|| panic!("root span; {}", diag()));
    let child = find_span(&spans, "sign_token").expect("child span");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(child.parent_span_id.as_deref(), Some(root.span_id.as_str()));
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(root.trace_id.len(), 32);
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.attributes.i64("batch.size"), Some(3));
    assert_eq!(child.attributes.str("key"), Some("k-7"));
    for s in [root, child] {
        assert_eq!(s.resource.str("service.name"), Some(service));
        assert_eq!(s.resource.str("service.version"), Some("0.9.1"));
        assert_eq!(s.resource.str("service.namespace"), Some("deltran"));
        assert_eq!(s.scope_name, service);
    }

    // Logs: bodies, severities and trace context survive the hop.
    let logs = receiver.wait_for_logs(WAIT, |l| l.len() >= 2);
    let signed = logs
        .iter()
        .find(|l| l.body.as_deref() == Some("token signed"))
        .unwrap_or_else(|| panic!("log 'token signed' in {logs:?}; {}", diag()));
    assert_eq!(signed.trace_id.as_deref(), Some(root.trace_id.as_str()));
    assert_eq!(signed.span_id.as_deref(), Some(child.span_id.as_str()));
    assert_eq!(signed.attributes.str("token"), Some("t-1"));
    assert_eq!(signed.severity_text, "INFO");
    assert!(signed.time_unix_nanos > 0);
    let rejected = logs
        .iter()
        .find(|l| l.body.as_deref() == Some("batch partially rejected"))
        .expect("error log");
    assert_eq!(rejected.trace_id.as_deref(), Some(root.trace_id.as_str()));
    assert_eq!(rejected.span_id.as_deref(), Some(root.span_id.as_str()));
    assert_eq!(rejected.severity_text, "ERROR");
    assert_eq!(signed.resource.str("service.name"), Some(service));

    // Metrics: the counter's final value and the seconds histogram.
    let metrics = receiver.wait_for_metrics(WAIT, |m| {
        find_metric(m, "tokens.minted").is_some() && find_metric(m, "mint.duration").is_some()
    });
    let minted = find_metric(&metrics, "tokens.minted")
        .unwrap_or_else(|| panic!("counter in {metrics:?}; {}", diag()));
    assert_eq!(minted.resource.str("service.name"), Some(service));
    match &minted.data {
        MetricData::Sum {
            monotonic, points, ..
        } => {
            assert!(*monotonic);
            // OTLP/JSON writes 64-bit integers as decimal strings ("asInt":
            // "3", "count": "1"), as the specification says; rotel reads
            // only the number form and passes such points on without their
            // integers. Our receiver reads both (otlp-receiver's JSON test,
            // and telemetry's http/json round trip checks the values).
            if !json {
                assert_eq!(points[0].value, 3.0);
            }
            assert_eq!(points[0].attributes.str("chain"), Some("main"));
        }
        other => panic!("expected a sum, got {other:?}"),
    }
    let latency = find_metric(&metrics, "mint.duration").unwrap();
    if !json {
        let h = &latency.histogram_points()[0];
        assert_eq!(h.count, 1);
        assert_eq!(h.bounds, telemetry::SECONDS_BUCKETS);
    }

    // Everything the receiver got came from rotel: over rotel's export
    // protocol, gzip-compressed (telemetry itself sends uncompressed here).
    let requests = receiver.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.transport, transport, "{r:?}");
        let enc = r.header("grpc-encoding").or(r.header("content-encoding"));
        assert_eq!(enc, Some("gzip"), "{r:?}");
    }
    rotel.stop().unwrap();
    receiver.shutdown();
}

#[test]
fn grpc_through_rotel() {
    through_rotel("rotel-grpc-engine", "grpc", OtlpProtocol::Grpc);
}

#[test]
fn http_protobuf_through_rotel() {
    through_rotel("rotel-http-engine", "http/protobuf", OtlpProtocol::Grpc);
}

/// A real collector accepts what `http/json` sends (OTLP/JSON, hex ids).
#[test]
fn http_json_through_rotel() {
    through_rotel("rotel-json-engine", "http/json", OtlpProtocol::Grpc);
}
