//! The span exporter's wire, per the OTLP specification: every protocol with
//! every compression it may use, headers and `User-Agent` on every request,
//! each batch sent once when the collector accepts it and again, intact,
//! when the collector refused it for a while.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Captured, otlp_env};
use telemetry::Telemetry;
use telemetry::testing::{OtlpReceiver, RequestOutcome, Signal};

/// Emits `n` spans numbered by `seq`, exports them and returns the telemetry.
fn send(receiver: &OtlpReceiver, protocol: &str, compression: Option<&str>, n: i64) -> Telemetry {
    let mut env = otlp_env(receiver, protocol);
    env.insert("OTEL_METRICS_EXPORTER".into(), "none".into());
    env.insert("OTEL_LOGS_EXPORTER".into(), "none".into());
    env.insert(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS".into(),
        "x-tenant=payments,authorization=Bearer%20s3cret".into(),
    );
    if let Some(c) = compression {
        env.insert("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION".into(), c.into());
    }
    let t = Telemetry::builder("wire-engine")
        .with_env(env)
        .with_stdout_writer(Captured::default())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        for seq in 0..n {
            let _s = tracing::info_span!("wire-span", seq, card = "4111 1111 1111 1111").entered();
        }
    });
    t
}

fn seqs(receiver: &OtlpReceiver, n: usize) -> Vec<i64> {
    let spans = receiver.wait_for_spans(Duration::from_secs(10), |s| s.len() >= n);
    let mut seqs: Vec<i64> = spans
        .iter()
        .filter(|s| s.name == "wire-span")
        .filter_map(|s| s.attributes.i64("seq"))
        .collect();
    seqs.sort_unstable();
    seqs
}

#[test]
fn every_protocol_and_compression_delivers_each_span_once_with_its_headers() {
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        for compression in [None, Some("gzip"), Some("zstd")] {
            let case = format!("{protocol} {compression:?}");
            let receiver = OtlpReceiver::start().unwrap();
            let t = send(&receiver, protocol, compression, 300);
            t.shutdown().unwrap();
            assert_eq!(seqs(&receiver, 300), (0..300).collect::<Vec<_>>(), "{case}");
            let spans = receiver.spans();
            // Masked on the way out, whatever the wire.
            let card = spans[0].attributes.str("card").unwrap().to_string();
            assert!(!card.contains("4111 1111 1111 1111"), "{case}: {card}");
            assert_eq!(spans[0].resource.str("service.name"), Some("wire-engine"));
            let requests = receiver.requests();
            assert!(!requests.is_empty(), "{case}");
            for r in &requests {
                assert_eq!(r.signal, Signal::Traces, "{case}");
                assert_eq!(r.header("x-tenant"), Some("payments"), "{case}: {r:?}");
                assert_eq!(r.header("authorization"), Some("Bearer s3cret"), "{case}");
                let agent = r.header("user-agent").unwrap_or_default();
                assert!(
                    agent.starts_with("OTel-OTLP-Exporter-Rust-telemetry/"),
                    "{case}: {agent}"
                );
                let (encoding, content_type) = if protocol == "grpc" {
                    (r.header("grpc-encoding"), r.header("content-type"))
                } else {
                    (r.header("content-encoding"), r.header("content-type"))
                };
                assert_eq!(encoding, compression, "{case}: {r:?}");
                let expected_type = match protocol {
                    "grpc" => "application/grpc",
                    "http/json" => "application/json",
                    _ => "application/x-protobuf",
                };
                assert_eq!(content_type, Some(expected_type), "{case}: {r:?}");
            }
            let items: usize = requests.iter().map(|r| r.items).sum();
            assert_eq!(items, 300, "{case}: each span sent once");
            let traces = t.health().signal(telemetry::Signal::Traces).unwrap();
            assert_eq!((traces.exported, traces.failed), (300, 0), "{case}");
            receiver.shutdown();
        }
    }
}

/// A refused batch is sent again, the same spans, until the collector takes
/// it; none is lost or doubled.
#[test]
fn a_batch_refused_for_a_while_arrives_whole_once_accepted() {
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        let receiver = OtlpReceiver::start().unwrap();
        receiver.set_failing(true);
        let t = send(&receiver, protocol, Some("gzip"), 50);
        // Two refused attempts at least, then the collector recovers.
        let refused = receiver.wait_for_requests(Duration::from_secs(10), |r| r.len() >= 2);
        assert!(refused.len() >= 2, "{protocol}: {refused:?}");
        assert!(receiver.spans().is_empty(), "{protocol}");
        receiver.set_failing(false);
        assert_eq!(
            seqs(&receiver, 50),
            (0..50).collect::<Vec<_>>(),
            "{protocol}"
        );
        // Each attempt carried the whole batch.
        for r in receiver.requests() {
            assert_eq!(r.items, 50, "{protocol}: {r:?}");
        }
        t.shutdown().unwrap();
        let traces = t.health().signal(telemetry::Signal::Traces).unwrap();
        assert_eq!(
            (
                traces.emitted,
                traces.exported,
                traces.failed,
                traces.dropped
            ),
            (50, 50, 0, 0),
            "{protocol}"
        );
        receiver.shutdown();
    }
}

/// A throttling collector (HTTP 429 with `Retry-After`, gRPC
/// RESOURCE_EXHAUSTED with `RetryInfo`) is left alone for the delay it
/// asked for, then gets the same batch, whole.
#[test]
fn a_throttling_collector_gets_the_batch_again_after_the_delay_it_asked_for() {
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        let receiver = OtlpReceiver::start().unwrap();
        receiver.set_throttling(Some(1));
        let t = send(&receiver, protocol, None, 20);
        let first = receiver.wait_for_requests(Duration::from_secs(10), |r| !r.is_empty());
        let throttled_at = std::time::Instant::now();
        assert!(
            matches!(
                first[0].outcome,
                RequestOutcome::Throttled {
                    retry_after_secs: 1
                }
            ),
            "{protocol}: {first:?}"
        );
        let again = receiver.wait_for_requests(Duration::from_secs(10), |r| r.len() >= 2);
        let waited = throttled_at.elapsed();
        assert!(again.len() >= 2, "{protocol}: retried: {again:?}");
        // Without the collector's delay the queue retries after 250 ms ±20 %.
        assert!(
            waited >= Duration::from_millis(900),
            "{protocol}: retried after {waited:?}"
        );
        receiver.set_throttling(None);
        assert_eq!(
            seqs(&receiver, 20),
            (0..20).collect::<Vec<_>>(),
            "{protocol}"
        );
        t.shutdown().unwrap();
        let traces = t.health().signal(telemetry::Signal::Traces).unwrap();
        assert_eq!((traces.exported, traces.failed), (20, 0), "{protocol}");
        receiver.shutdown();
    }
}

/// A collector that answers every export with 200 and a body larger than
/// any OTLP response (5 MiB), counting the requests it gets.
/// It stops listening when dropped; a connection's thread ends when the
/// exporter closes it.
struct Babbler {
    endpoint: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Babbler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Babbler {
    fn start() -> Babbler {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let counted = counted.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut length = 0usize;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        counted.fetch_add(1, Ordering::SeqCst);
                        let huge = vec![b'x'; 5 * 1024 * 1024];
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n\
                             content-length: {}\r\n\r\n",
                            huge.len()
                        );
                        if stream.write_all(head.as_bytes()).is_err()
                            || stream.write_all(&huge).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Babbler {
            endpoint,
            requests,
            stop,
        }
    }
}

/// Exports five spans to `endpoint` over `protocol`, and checks that they
/// fail once: no export, five failed, `requests()` still 1 after long
/// enough for several retries (the first comes after 250 ms ±20 %), and an
/// error that names the oversized answer.
fn five_spans_fail_once(endpoint: &str, protocol: &str, requests: impl Fn() -> usize) {
    let t = Telemetry::builder("babble-engine")
        .with_env(common::env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ]))
        .with_stdout_writer(Captured::default())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        for seq in 0..5 {
            let _s = tracing::info_span!("babble-span", seq).entered();
        }
    });
    let health = t.health();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while health.signal(telemetry::Signal::Traces).unwrap().failed < 5
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let traces = health.signal(telemetry::Signal::Traces).unwrap();
    assert_eq!(
        (traces.exported, traces.failed),
        (0, 5),
        "{protocol}: {traces:?}"
    );
    assert_eq!(requests(), 1, "{protocol}");
    match &traces.state {
        telemetry::ExportState::Failing { last_error, .. } => {
            assert!(
                last_error.contains("larger than the client accepts"),
                "{protocol}: {last_error}"
            );
        }
        other => panic!("{protocol}: traces should be failing: {other:?}"),
    }
    drop(t);
}

/// A collector's oversized answer is bounded (the client reads at most
/// 4 MiB of it) and the batch is accounted as failed once, not resent
/// forever as if the network had failed.
#[test]
fn an_oversized_answer_fails_the_batch_once() {
    use std::sync::atomic::Ordering;
    let babbler = Babbler::start();
    five_spans_fail_once(&babbler.endpoint, "http/protobuf", || {
        babbler.requests.load(Ordering::SeqCst)
    });
}

/// The same over gRPC: tonic refuses an answer over 4 MiB with OUT_OF_RANGE,
/// a code that is retryable when a collector sends it, but here the
/// collector answered and the batch is failed once.
#[test]
fn an_oversized_grpc_answer_fails_the_batch_once() {
    let receiver = OtlpReceiver::start().unwrap();
    receiver.set_answer_padding(Some(5 << 20));
    five_spans_fail_once(&receiver.grpc_endpoint(), "grpc", || {
        receiver.requests().len()
    });
    assert_eq!(
        receiver.requests()[0].outcome,
        RequestOutcome::AcceptedPadded {
            padding_bytes: 5 << 20
        }
    );
}

/// Spans a collector rejects in an export it otherwise accepts (an OTLP
/// partial success) are lost: counted as failed, not as exported, and not
/// sent again; the others count as exported. The same over every protocol,
/// JSON answers carrying the count as a string, as protobuf's JSON mapping
/// writes 64-bit integers. A collector claiming more rejections than the
/// batch held loses the batch, no more.
#[test]
fn spans_rejected_in_a_partial_success_count_as_failed_and_are_not_sent_again() {
    for (protocol, rejected, lost) in [
        ("grpc", 2, 2),
        ("http/protobuf", 2, 2),
        ("http/json", 2, 2),
        ("grpc", 1000, 5),
        ("http/json", 1000, 5),
    ] {
        let case = format!("{protocol}, {rejected} rejected");
        let receiver = OtlpReceiver::start().unwrap();
        receiver.set_partial_rejection(Some(rejected));
        let t = send(&receiver, protocol, None, 5);
        let health = t.health();
        t.shutdown().unwrap();
        let traces = health.signal(telemetry::Signal::Traces).unwrap();
        let counts = (traces.exported, traces.failed, traces.dropped);
        assert_eq!(counts, (5 - lost, lost, 0), "{case}: {traces:?}");
        // Reachable and answering: the exporter is not failing.
        assert!(
            matches!(traces.state, telemetry::ExportState::Ok),
            "{case}: {:?}",
            traces.state
        );
        let requests: Vec<_> = receiver
            .requests()
            .into_iter()
            .filter(|r| r.signal == Signal::Traces)
            .collect();
        assert_eq!(requests.len(), 1, "{case}: {requests:?}");
        assert_eq!(
            requests[0].outcome,
            RequestOutcome::AcceptedPartially { rejected },
            "{case}"
        );
    }
}
