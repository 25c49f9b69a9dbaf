//! NATS instrumentation against a real nats-server (Debian package) on
//! loopback: one trace from producer to consumer, request/reply, JetStream,
//! bounded subjects, and the consumer loop (spans, errors, queue groups,
//! re-subscribing, stopping).
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use services_glue::nats::{MAX_SUBJECTS, NatsTelemetry};
use telemetry::Telemetry;
use telemetry::testing::{
    InMemory, MetricData, ReceivedLog, ReceivedMetric, ReceivedSpan, SpanKind, SpanStatus,
    find_metric,
};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

fn run<F: std::future::Future<Output = ()>>(
    sink: &InMemory,
    f: impl FnOnce(NatsTelemetry, String) -> F,
) {
    run_with(sink, async |nats, server| f(nats, server.url()).await);
}

/// Like [`run`], with the server at hand for its monitoring endpoint.
fn run_with(sink: &InMemory, f: impl AsyncFnOnce(NatsTelemetry, &testkit::Nats)) {
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
    tracing::dispatcher::with_default(t.dispatch(), || rt.block_on(f(nats, &server)));
    t.shutdown().unwrap();
}

fn span<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name}: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

#[test]
fn scatter_gather_replies_join_the_requests_trace() {
    let sink = InMemory::new();
    run(&sink, |nats, url| async move {
        let client = async_nats::connect(url).await.unwrap();
        // Two responders, each answering the request's reply subject.
        let mut responders = Vec::new();
        for name in ["left", "right"] {
            let mut sub = client.subscribe("analysis.requests").await.unwrap();
            let (client, nats) = (client.clone(), nats.clone());
            responders.push(tokio::spawn(async move {
                let msg = sub.next().await.unwrap();
                let processing = nats.process(&msg);
                let reply = msg.reply.clone().unwrap();
                nats.publish(&client, &reply, name.into())
                    .instrument(processing.span().clone())
                    .await
                    .unwrap();
                processing.finish(Ok::<(), String>(()));
            }));
        }
        let inbox = client.new_inbox();
        let mut answers = client.subscribe(inbox.clone()).await.unwrap();
        client.flush().await.unwrap();
        async {
            nats.publish_with_reply(&client, "analysis.requests", &inbox, "{}".into())
                .await
                .unwrap();
            for _ in 0..2 {
                let msg = tokio::time::timeout(Duration::from_secs(5), answers.next())
                    .await
                    .unwrap()
                    .unwrap();
                let processing = nats.process(&msg);
                processing.finish(Ok::<(), String>(()));
            }
        }
        .instrument(tracing::info_span!("round"))
        .await;
        for r in responders {
            r.await.unwrap();
        }
    });
    let spans = sink.spans();
    let round = span(&spans, "round");
    let request = span(&spans, "publish analysis.requests");
    assert_eq!(
        request.parent_span_id.as_deref(),
        Some(round.span_id.as_str())
    );
    let handled: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.name == "process analysis.requests")
        .collect();
    assert_eq!(handled.len(), 2);
    for h in &handled {
        assert_eq!(h.parent_span_id.as_deref(), Some(request.span_id.as_str()));
        // Each answer, processed by the caller, is the child of its
        // responder's reply.
        let reply = spans
            .iter()
            .find(|s| {
                s.kind == SpanKind::Producer
                    && s.parent_span_id.as_deref() == Some(h.span_id.as_str())
            })
            .expect("a reply under each responder");
        let answer = spans
            .iter()
            .find(|s| {
                s.kind == SpanKind::Consumer
                    && s.parent_span_id.as_deref() == Some(reply.span_id.as_str())
            })
            .expect("the caller's processing of each reply");
        assert_eq!(answer.trace_id, round.trace_id);
    }
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
    assert_eq!(publish.kind, SpanKind::Producer);
    assert_eq!(process.kind, SpanKind::Consumer);
    assert_eq!(
        publish.parent_span_id.as_deref(),
        Some(accept.span_id.as_str())
    );
    assert_eq!(
        process.parent_span_id.as_deref(),
        Some(publish.span_id.as_str()),
        "consumer is the producer's child"
    );
    assert_eq!(process.trace_id, accept.trace_id);
    assert_eq!(process.parent_is_remote(), Some(true));
    assert_eq!(attr(process, "messaging.system").as_deref(), Some("nats"));
    assert_eq!(
        attr(process, "messaging.destination.name").as_deref(),
        Some("payments.*.created")
    );
    let logs = sink.logs();
    let netting = find_log(&logs, "netting");
    assert_eq!(
        netting.span_id.as_deref(),
        Some(process.span_id.as_str()),
        "{netting:?}"
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
    assert_eq!(
        served.parent_span_id.as_deref(),
        Some(send.span_id.as_str())
    );
    let js_pub = span(&spans, "publish obligations.bilateral");
    let js_proc = span(&spans, "process obligations.bilateral");
    assert_eq!(
        js_proc.parent_span_id.as_deref(),
        Some(js_pub.span_id.as_str())
    );
    assert_eq!(js_proc.trace_id, js_pub.trace_id);
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
    let metrics = sink.metrics();
    let sent_messages = u64_counter(&metrics, "messaging.client.sent.messages");
    let mut subjects = HashSet::new();
    let mut sent = 0u64;
    for p in sent_messages.number_points() {
        sent += as_count(p.value);
        if let Some(subject) = p.attributes.get("messaging.destination.name") {
            subjects.insert(common::text(subject));
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
    assert_eq!(combined.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(combined.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    let trace_state: opentelemetry::trace::TraceState = combined
        .trace_state
        .parse()
        .unwrap_or_else(|e| panic!("tracestate {:?}: {e}", combined.trace_state));
    assert_eq!(
        trace_state.get("rojo"),
        Some("1"),
        "{:?}",
        combined.trace_state
    );
    let duplicated = span(&spans, "process ledger.duplicated");
    assert_eq!(duplicated.parent_span_id, None, "a new trace has no parent");
    assert_ne!(duplicated.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
}

/// Longest wait for anything below; every wait polls against it.
const WAIT: Duration = Duration::from_secs(15);

/// Polls `probe` until it holds, failing the test after [`WAIT`].
async fn until(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server's subscriptions on `subject`: queue group and messages
/// delivered to each, from the monitoring endpoint.
async fn subscriptions(server: &testkit::Nats, subject: &str) -> Vec<(Option<String>, u64)> {
    let url = format!("{}/subsz?subs=1&limit=4096", server.monitor_url());
    let subject = subject.to_string();
    tokio::task::spawn_blocking(move || {
        let subsz = testkit::http_get_json(&url).unwrap();
        subsz["subscriptions_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["subject"].as_str() == Some(subject.as_str()))
            .map(|s| {
                (
                    s["qgroup"].as_str().map(str::to_string),
                    s["msgs"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    })
    .await
    .unwrap()
}

/// A stop signal for [`services_glue::nats::Consumer::run`].
fn stop_signal() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    (stop, async move {
        let _ = stopped.await;
    })
}

/// Waits (bounded) for a consumer task to end after its stop signal.
async fn stopped(task: tokio::task::JoinHandle<Result<(), async_nats::SubscribeError>>) {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the consumer ends once stopped")
        .unwrap()
        .unwrap();
}

/// A span attribute as text, whatever its type (strings bare, numbers and
/// booleans as written), as OpenTelemetry's `Value` displays it.
fn attr(s: &ReceivedSpan, k: &str) -> Option<String> {
    s.attributes.get(k).map(common::text)
}

/// Whether a log record's body mentions `text`.
fn body_mentions(log: &ReceivedLog, text: &str) -> bool {
    log.body.as_deref().is_some_and(|b| b.contains(text))
}

/// The first log record whose body mentions `text`.
fn find_log<'a>(logs: &'a [ReceivedLog], text: &str) -> &'a ReceivedLog {
    logs.iter()
        .find(|l| body_mentions(l, text))
        .unwrap_or_else(|| panic!("no log {text}: {logs:?}"))
}

/// The span id of the first log record mentioning `text`; it must have one.
fn log_span_id(sink: &InMemory, text: &str) -> String {
    let logs = sink.logs();
    let log = find_log(&logs, text);
    log.span_id
        .clone()
        .unwrap_or_else(|| panic!("log {text} outside a span: {log:?}"))
}

/// The latest export of the `u64` counter `name`: a monotonic sum whose
/// points are integers.
fn u64_counter<'a>(metrics: &'a [ReceivedMetric], name: &str) -> &'a ReceivedMetric {
    let m = find_metric(metrics, name).unwrap_or_else(|| panic!("no metric {name}"));
    assert!(
        matches!(
            m.data,
            MetricData::Sum {
                monotonic: true,
                ..
            }
        ),
        "{name} is a counter: {m:?}"
    );
    assert!(
        m.number_points().iter().all(|p| p.is_int),
        "{name} counts in integers: {m:?}"
    );
    m
}

/// A counter point's value as the integer it was sent as.
fn as_count(value: f64) -> u64 {
    assert!(value >= 0.0 && value.fract() == 0.0, "a count, not {value}");
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let count = value as u64;
    count
}

#[test]
fn a_consumer_runs_the_handler_in_a_child_consumer_span() {
    let sink = InMemory::new();
    run_with(&sink, async |nats, server| {
        let client = async_nats::connect(server.url()).await.unwrap();
        let (handled, mut handled_rx) = mpsc::channel::<()>(8);
        let (stop, signal) = stop_signal();
        let consumer = nats.consumer(&client, "payments.*.settled").run(
            signal,
            move |_message: async_nats::Message| {
                // Before the handler's first await, then after one.
                tracing::info!("applying");
                let handled = handled.clone();
                async move {
                    tokio::task::yield_now().await;
                    tracing::info!("applied");
                    handled.send(()).await.map_err(|_| "test gone")
                }
            },
        );
        let task = tokio::spawn(consumer);
        until("the subscription", async || {
            subscriptions(server, "payments.*.settled").await.len() == 1
        })
        .await;
        nats.publish(&client, "payments.4711.settled", "{}".into())
            .instrument(tracing::info_span!("settle_payment"))
            .await
            .unwrap();
        tokio::time::timeout(WAIT, handled_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let _ = stop.send(());
        stopped(task).await;
    });
    let spans = sink.spans();
    let settle = span(&spans, "settle_payment");
    let publish = span(&spans, "publish payments.*.settled");
    let process = span(&spans, "process payments.*.settled");
    assert_eq!(process.kind, SpanKind::Consumer);
    assert_eq!(
        process.parent_span_id.as_deref(),
        Some(publish.span_id.as_str())
    );
    assert_eq!(process.trace_id, settle.trace_id);
    assert_eq!(process.parent_is_remote(), Some(true));
    assert_eq!(process.status, SpanStatus::Unset);
    assert_eq!(attr(process, "messaging.system").as_deref(), Some("nats"));
    assert_eq!(
        attr(process, "messaging.operation.type").as_deref(),
        Some("process")
    );
    let id = &process.span_id;
    assert_eq!(&log_span_id(&sink, "applying"), id, "synchronous part");
    assert_eq!(&log_span_id(&sink, "applied"), id, "after an await");
}

#[test]
fn a_handler_error_marks_the_span_and_metrics_and_the_loop_goes_on() {
    let sink = InMemory::new();
    run_with(&sink, async |nats, server| {
        let client = async_nats::connect(server.url()).await.unwrap();
        let (handled, mut handled_rx) = mpsc::channel::<()>(8);
        let (stop, signal) = stop_signal();
        let consumer =
            nats.consumer(&client, "jobs.>")
                .run(signal, move |message: async_nats::Message| {
                    let handled = handled.clone();
                    async move {
                        let _ = handled.send(()).await;
                        if message.subject.as_str() == "jobs.bad" {
                            Err("ledger refused")
                        } else {
                            Ok(())
                        }
                    }
                });
        let task = tokio::spawn(consumer);
        until("the subscription", async || {
            subscriptions(server, "jobs.>").await.len() == 1
        })
        .await;
        for subject in ["jobs.bad", "jobs.good"] {
            nats.publish(&client, subject, "{}".into()).await.unwrap();
        }
        for _ in 0..2 {
            tokio::time::timeout(WAIT, handled_rx.recv())
                .await
                .unwrap()
                .unwrap();
        }
        let _ = stop.send(());
        stopped(task).await;
    });
    let spans = sink.spans();
    let bad = span(&spans, "process jobs.bad");
    let good = span(&spans, "process jobs.good");
    assert!(
        matches!(bad.status, SpanStatus::Error(_)),
        "{:?}",
        bad.status
    );
    assert_eq!(attr(bad, "error.type").as_deref(), Some("process_failed"));
    assert_eq!(
        good.status,
        SpanStatus::Unset,
        "the next message is processed"
    );
    assert_eq!(attr(good, "error.type"), None);
    assert_eq!(log_span_id(&sink, "message not processed"), bad.span_id);

    // messaging.process.duration by subject and error.type, and every
    // delivery counted in messaging.client.consumed.messages.
    let metrics = sink.metrics();
    let process_duration =
        find_metric(&metrics, "messaging.process.duration").expect("no messaging.process.duration");
    assert!(
        matches!(process_duration.data, MetricData::Histogram { .. }),
        "messaging.process.duration is a histogram: {process_duration:?}"
    );
    let mut durations = BTreeMap::new();
    for p in process_duration.histogram_points() {
        let get = |k: &str| p.attributes.get(k).map(common::text);
        durations.insert(
            (
                get("messaging.destination.name").unwrap(),
                get("error.type"),
            ),
            p.count,
        );
    }
    let consumed: u64 = u64_counter(&metrics, "messaging.client.consumed.messages")
        .number_points()
        .iter()
        .map(|p| as_count(p.value))
        .sum();
    assert_eq!(
        durations,
        BTreeMap::from([
            (("jobs.bad".into(), Some("process_failed".into())), 1),
            (("jobs.good".into(), None), 1),
        ])
    );
    assert_eq!(consumed, 2);
}

#[test]
fn a_queue_group_delivers_each_message_to_one_consumer() {
    const MESSAGES: usize = 40;
    let sink = InMemory::new();
    run_with(&sink, async |nats, server| {
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        let (handled, mut handled_rx) = mpsc::channel::<(usize, String)>(2 * MESSAGES);
        for member in 0..2 {
            let client = async_nats::connect(server.url()).await.unwrap();
            let handled = handled.clone();
            let (stop, signal) = stop_signal();
            let consumer = nats
                .consumer(&client, "settlement.instructions")
                .queue_group("settlement-engine")
                .run(signal, move |message: async_nats::Message| {
                    let handled = handled.clone();
                    let payload = String::from_utf8_lossy(&message.payload).into_owned();
                    async move { handled.send((member, payload)).await.map_err(|_| "gone") }
                });
            stops.push(stop);
            tasks.push(tokio::spawn(consumer));
        }
        until("both members subscribed", async || {
            let subs = subscriptions(server, "settlement.instructions").await;
            subs.len() == 2
                && subs
                    .iter()
                    .all(|(group, _)| group.as_deref() == Some("settlement-engine"))
        })
        .await;
        let publisher = async_nats::connect(server.url()).await.unwrap();
        for i in 0..MESSAGES {
            nats.publish(&publisher, "settlement.instructions", i.to_string().into())
                .await
                .unwrap();
        }
        publisher.flush().await.unwrap();
        let mut seen = HashSet::new();
        let mut members = HashSet::new();
        while seen.len() < MESSAGES {
            let (member, payload) = tokio::time::timeout(WAIT, handled_rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert!(seen.insert(payload.clone()), "{payload} handled twice");
            members.insert(member);
        }
        // Every publish was routed before its message could be handled, so
        // the server's delivery counts are final: one delivery each.
        let subs = subscriptions(server, "settlement.instructions").await;
        let delivered: u64 = subs.iter().map(|(_, msgs)| msgs).sum();
        assert_eq!(delivered, MESSAGES as u64, "{subs:?}");
        assert_eq!(members.len(), 2, "both members took a share: {subs:?}");
        for stop in stops {
            let _ = stop.send(());
        }
        for task in tasks {
            stopped(task).await;
        }
    });
}

#[test]
fn a_stopped_consumer_ends_and_unsubscribes() {
    let sink = InMemory::new();
    run_with(&sink, async |nats, server| {
        let client = async_nats::connect(server.url()).await.unwrap();
        let (stop, signal) = stop_signal();
        let consumer = nats
            .consumer(&client, "risk.scores")
            .queue_group("risk-engine")
            .run(signal, |_message: async_nats::Message| async {
                Ok::<(), String>(())
            });
        let task = tokio::spawn(consumer);
        until("the subscription", async || {
            subscriptions(server, "risk.scores").await.len() == 1
        })
        .await;
        let _ = stop.send(());
        stopped(task).await;
        until("the server to drop the subscription", async || {
            subscriptions(server, "risk.scores").await.is_empty()
        })
        .await;
        assert_eq!(
            client.connection_state(),
            async_nats::connection::State::Connected,
            "the client is the caller's and stays open"
        );
    });
}

/// A subscription ends when its client is drained; subscribing again
/// then fails until stopped. Each failure is logged once, after a delay
/// that doubles up to the cap, and the stop signal ends the back-off.
#[test]
fn an_ended_subscription_is_retried_with_growing_delays_until_stopped() {
    const INITIAL: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_millis(200);
    let retry_logs = |sink: &InMemory| -> Vec<SystemTime> {
        sink.logs()
            .iter()
            .filter(|l| {
                body_mentions(l, "subscription ended") || body_mentions(l, "subscribe failed")
            })
            // 0 is "no timestamp" on the wire.
            .filter(|l| l.time_unix_nanos != 0)
            .map(|l| SystemTime::UNIX_EPOCH + Duration::from_nanos(l.time_unix_nanos))
            .collect()
    };
    let sink = InMemory::new();
    run_with(&sink, async |nats, server| {
        let client = async_nats::connect(server.url()).await.unwrap();
        let (handled, mut handled_rx) = mpsc::channel::<()>(8);
        let (stop, signal) = stop_signal();
        let consumer = nats
            .consumer(&client, "liquidity.routes")
            .backoff(INITIAL, MAX)
            .run(signal, move |_message: async_nats::Message| {
                let handled = handled.clone();
                async move { handled.send(()).await.map_err(|_| "gone") }
            });
        let task = tokio::spawn(consumer);
        until("the subscription", async || {
            subscriptions(server, "liquidity.routes").await.len() == 1
        })
        .await;
        nats.publish(&client, "liquidity.routes", "{}".into())
            .await
            .unwrap();
        tokio::time::timeout(WAIT, handled_rx.recv())
            .await
            .unwrap()
            .unwrap();
        client.drain().await.unwrap();
        until("five retries logged", async || retry_logs(&sink).len() >= 5).await;
        assert!(!task.is_finished(), "the loop keeps trying");
        let _ = stop.send(());
        stopped(task).await;
    });
    let times = retry_logs(&sink);
    for (i, pair) in times.windows(2).enumerate() {
        let gap = pair[1].duration_since(pair[0]).unwrap_or_default();
        let delay = INITIAL.saturating_mul(1 << i.min(8)).min(MAX);
        assert!(
            gap + Duration::from_millis(2) >= delay,
            "retry {i} after {gap:?}, expected at least {delay:?}: {times:?}"
        );
    }
}

#[test]
fn a_subject_that_can_never_be_subscribed_is_an_error_at_once() {
    let sink = InMemory::new();
    run_with(&sink, async |nats, server| {
        let client = async_nats::connect(server.url()).await.unwrap();
        for consumer in [
            nats.consumer(&client, "two words"),
            nats.consumer(&client, "jobs").queue_group("bad group"),
        ] {
            let ended = tokio::time::timeout(
                WAIT,
                consumer.run(
                    std::future::pending(),
                    |_message: async_nats::Message| async { Ok::<(), String>(()) },
                ),
            )
            .await
            .expect("no retrying a name the client refuses");
            let kind = ended.unwrap_err().kind();
            assert!(
                matches!(
                    kind,
                    async_nats::SubscribeErrorKind::InvalidSubject
                        | async_nats::SubscribeErrorKind::InvalidQueueName
                ),
                "{kind:?}"
            );
        }
    });
}
