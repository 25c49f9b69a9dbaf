//! NATS instrumentation against a real nats-server (Debian package) on
//! loopback: one trace from producer to consumer, request/reply, JetStream,
//! and bounded subjects.
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::trace::SpanData;
use services_glue::nats::{MAX_SUBJECTS, NatsTelemetry};
use telemetry::Telemetry;
use telemetry::testing::InMemory;
use tracing::Instrument;

fn run<F: std::future::Future<Output = ()>>(
    sink: &InMemory,
    f: impl FnOnce(NatsTelemetry, String) -> F,
) {
    let server = testkit::Nats::start().unwrap();
    let t = Telemetry::builder("nats-engine")
        .with_in_memory(sink)
        .build()
        .unwrap();
    // Passed, never set globally: the global propagator stays a no-op.
    let nats = NatsTelemetry::new(&t.meter()).with_propagator(
        services_glue::propagation::Propagator::new(telemetry::propagation::default_propagator()),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || rt.block_on(f(nats, server.url())));
    t.shutdown().unwrap();
}

fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name}: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

#[test]
fn publish_and_process_are_one_trace() {
    let sink = InMemory::new();
    run(&sink, |nats, url| async move {
        let client = async_nats::connect(url).await.unwrap();
        let mut sub = client.subscribe("payments.*.created").await.unwrap();
        client.flush().await.unwrap();
        nats.publish(&client, "payments.4711.created", "{}".into())
            .instrument(tracing::info_span!("accept_payment"))
            .await
            .unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        let processing = nats.process(&msg);
        processing.in_scope(|| tracing::info!("netting"));
        processing.finish(Ok::<(), String>(()));
    });
    let spans = sink.spans();
    let accept = span(&spans, "accept_payment");
    let publish = span(&spans, "publish payments.*.created");
    let process = span(&spans, "process payments.*.created");
    assert_eq!(publish.span_kind, SpanKind::Producer);
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(publish.parent_span_id, accept.span_context.span_id());
    assert_eq!(
        process.parent_span_id,
        publish.span_context.span_id(),
        "consumer is the producer's child"
    );
    assert_eq!(
        process.span_context.trace_id(),
        accept.span_context.trace_id()
    );
    assert!(process.parent_span_is_remote);
    let attr = |s: &SpanData, k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr(process, "messaging.system").as_deref(), Some("nats"));
    assert_eq!(
        attr(process, "messaging.destination.name").as_deref(),
        Some("payments.*.created")
    );
    let logs = sink.logs();
    let netting = logs
        .iter()
        .find(|l| format!("{:?}", l.record.body()).contains("netting"))
        .unwrap();
    assert_eq!(
        netting.record.trace_context().unwrap().span_id,
        process.span_context.span_id()
    );
}

#[test]
fn request_reply_and_jetstream_carry_context() {
    let sink = InMemory::new();
    run(&sink, |nats, url| async move {
        let client = async_nats::connect(url).await.unwrap();
        // Responder.
        let mut sub = client.subscribe("risk.score").await.unwrap();
        client.flush().await.unwrap();
        let responder_client = client.clone();
        let responder_nats = nats.clone();
        let responder = async move {
            let msg = sub.next().await.unwrap();
            let p = responder_nats.process(&msg);
            let reply = msg.reply.clone().unwrap();
            responder_client
                .publish(reply, "42".into())
                .instrument(p.span().clone())
                .await
                .unwrap();
            p.finish(Ok::<(), String>(()));
        };
        let requester = nats.request(&client, "risk.score", "{}".into());
        let (reply, ()) = tokio::join!(requester, responder);
        assert_eq!(&reply.unwrap().payload[..], b"42");

        // JetStream.
        let js = async_nats::jetstream::new(client.clone());
        let stream = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: "OBLIGATIONS".into(),
                subjects: vec!["obligations.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        nats.jetstream_publish(&js, "obligations.bilateral", "{}".into())
            .await
            .unwrap();
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("clearing".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
        let msg = batch.next().await.unwrap().unwrap();
        let p = nats.process(&msg);
        msg.ack().await.unwrap();
        p.finish(Ok::<(), String>(()));
    });
    let spans = sink.spans();
    let send = span(&spans, "send risk.score");
    let served = span(&spans, "process risk.score");
    assert_eq!(served.parent_span_id, send.span_context.span_id());
    let js_pub = span(&spans, "publish obligations.bilateral");
    let js_proc = span(&spans, "process obligations.bilateral");
    assert_eq!(js_proc.parent_span_id, js_pub.span_context.span_id());
    assert_eq!(
        js_proc.span_context.trace_id(),
        js_pub.span_context.trace_id()
    );
}

#[test]
fn ten_thousand_subjects_stay_bounded() {
    let sink = InMemory::new();
    run(&sink, |nats, url| async move {
        let client = async_nats::connect(url).await.unwrap();
        for i in 0..10_000u32 {
            // Half carry ids (templated away), half are distinct words.
            let subject = if i % 2 == 0 {
                format!("payments.{i}.created")
            } else {
                format!("topic.{}", word(i))
            };
            nats.publish(&client, &subject, "x".into()).await.unwrap();
        }
        client.flush().await.unwrap();
    });
    let last = sink.metrics().pop().unwrap();
    let mut subjects = HashSet::new();
    let mut sent = 0u64;
    for scope in last.scope_metrics() {
        for m in scope.metrics() {
            if m.name() == "messaging.client.sent.messages"
                && let AggregatedMetrics::U64(MetricData::Sum(s)) = m.data()
            {
                for p in s.data_points() {
                    sent += p.value();
                    for kv in p.attributes() {
                        if kv.key.as_str() == "messaging.destination.name" {
                            subjects.insert(kv.value.to_string());
                        }
                    }
                }
            }
        }
    }
    assert_eq!(sent, 10_000, "every publish counted");
    assert!(
        subjects.len() <= MAX_SUBJECTS + 1,
        "{} subjects",
        subjects.len()
    );
    assert!(subjects.contains("payments.*.created"));
    assert!(subjects.contains("_OTHER"));
}

/// A distinct letters-only word per number, so the templating cannot help.
fn word(mut i: u32) -> String {
    let mut w = String::new();
    loop {
        w.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return w;
        }
    }
}

/// W3C Trace Context in NATS headers, which may repeat like HTTP ones:
/// repeated `tracestate` values are one list, a repeated `traceparent` is
/// invalid (new trace), and an empty `tracestate` is never published.
#[test]
fn repeated_trace_context_headers_follow_w3c() {
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let sink = InMemory::new();
    run(&sink, |nats, url| async move {
        let client = async_nats::connect(url).await.unwrap();
        let mut sub = client.subscribe("ledger.>").await.unwrap();
        client.flush().await.unwrap();
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .unwrap()
                .unwrap()
        };

        let mut headers = async_nats::HeaderMap::new();
        headers.append("traceparent", PARENT);
        headers.append("tracestate", "rojo=1");
        headers.append("tracestate", "a@vvvvvvvvvvvvvv=2");
        client
            .publish_with_headers("ledger.combined", headers, "{}".into())
            .await
            .unwrap();
        nats.process(&next().await).finish(Ok::<(), String>(()));

        let mut headers = async_nats::HeaderMap::new();
        headers.append("traceparent", PARENT);
        headers.append(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        client
            .publish_with_headers("ledger.duplicated", headers, "{}".into())
            .await
            .unwrap();
        nats.process(&next().await).finish(Ok::<(), String>(()));

        // Published by this service in a new trace: no tracestate header.
        nats.publish(&client, "ledger.fresh", "{}".into())
            .instrument(tracing::info_span!("fresh"))
            .await
            .unwrap();
        let fresh = next().await;
        let headers = fresh.headers.clone().unwrap();
        assert!(headers.get("traceparent").is_some(), "{headers:?}");
        assert!(headers.get("tracestate").is_none(), "{headers:?}");

        // Forwarded from the combined one: one tracestate value, whole.
        let mut incoming = async_nats::HeaderMap::new();
        incoming.append("traceparent", PARENT);
        incoming.append("tracestate", "rojo=1");
        incoming.append("tracestate", "a@vvvvvvvvvvvvvv=2");
        client
            .publish_with_headers("ledger.relay", incoming, "{}".into())
            .await
            .unwrap();
        let relay = nats.process(&next().await);
        nats.publish(&client, "ledger.onward", "{}".into())
            .instrument(relay.span().clone())
            .await
            .unwrap();
        relay.finish(Ok::<(), String>(()));
        let onward = next().await;
        let states: Vec<String> = onward
            .headers
            .unwrap()
            .get_all("tracestate")
            .map(|v| v.as_str().to_string())
            .collect();
        assert_eq!(states, ["rojo=1,a@vvvvvvvvvvvvvv=2"]);
    });
    let spans = sink.spans();
    let combined = span(&spans, "process ledger.combined");
    assert_eq!(
        combined.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(combined.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(combined.span_context.trace_state().get("rojo"), Some("1"));
    let duplicated = span(&spans, "process ledger.duplicated");
    assert_eq!(
        duplicated.parent_span_id,
        opentelemetry::trace::SpanId::INVALID
    );
    assert_ne!(
        duplicated.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}
