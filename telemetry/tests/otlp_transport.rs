//! The span and log exporters' wire, per the OTLP specification: every
//! protocol with every compression it may use, headers and `User-Agent` on
//! every request, each batch sent once when the collector accepts it and
//! again, intact, when the collector refused it for a while; what a
//! collector rejects counted as lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Captured, otlp_env};
use telemetry::Telemetry;
use telemetry::testing::{Attributes, OtlpReceiver, RequestOutcome, Signal, find_metric};

/// The two signals sent as encoded batches.
const SIGNALS: [telemetry::Signal; 2] = [telemetry::Signal::Traces, telemetry::Signal::Logs];

/// The signal's name in `OTEL_EXPORTER_OTLP_<NAME>_*` and `OTEL_<NAME>_EXPORTER`.
fn var(signal: telemetry::Signal) -> &'static str {
    match signal {
        telemetry::Signal::Logs => "LOGS",
        _ => "TRACES",
    }
}

/// The receiver's name for `signal`.
fn received(signal: telemetry::Signal) -> Signal {
    match signal {
        telemetry::Signal::Logs => Signal::Logs,
        _ => Signal::Traces,
    }
}

/// Emits `n` items of `signal` (spans, or log events) numbered by `seq`,
/// exports them and returns the telemetry.
fn send(
    receiver: &OtlpReceiver,
    signal: telemetry::Signal,
    protocol: &str,
    compression: Option<&str>,
    n: i64,
) -> Telemetry {
    let mut env = otlp_env(receiver, protocol);
    env.insert("OTEL_METRICS_EXPORTER".into(), "none".into());
    for other in SIGNALS.into_iter().filter(|s| *s != signal) {
        env.insert(format!("OTEL_{}_EXPORTER", var(other)), "none".into());
    }
    let name = var(signal);
    env.insert(
        format!("OTEL_EXPORTER_OTLP_{name}_HEADERS"),
        "x-tenant=payments,authorization=Bearer%20s3cret".into(),
    );
    if let Some(c) = compression {
        env.insert(format!("OTEL_EXPORTER_OTLP_{name}_COMPRESSION"), c.into());
    }
    let t = Telemetry::builder("wire-engine")
        .with_env(env)
        .with_stdout_writer(Captured::default())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        for seq in 0..n {
            if signal == telemetry::Signal::Logs {
                tracing::info!(seq, card = "4111 1111 1111 1111", "wire-log");
            } else {
                let _s =
                    tracing::info_span!("wire-span", seq, card = "4111 1111 1111 1111").entered();
            }
        }
    });
    t
}

/// The `seq` of every item of `signal` received, sorted, once `n` arrived
/// (or 10 s passed); and the `card` attribute of the first.
fn seqs(receiver: &OtlpReceiver, signal: telemetry::Signal, n: usize) -> (Vec<i64>, String) {
    let wait = Duration::from_secs(10);
    let ours: Vec<Attributes> = if signal == telemetry::Signal::Logs {
        let logs = receiver.wait_for_logs(wait, |l| l.len() >= n);
        logs.into_iter()
            .filter(|l| l.body.as_deref() == Some("wire-log"))
            .map(|l| l.attributes)
            .collect()
    } else {
        let spans = receiver.wait_for_spans(wait, |s| s.len() >= n);
        spans
            .into_iter()
            .filter(|s| s.name == "wire-span")
            .map(|s| s.attributes)
            .collect()
    };
    let card = ours
        .first()
        .and_then(|a| a.str("card"))
        .unwrap_or_default()
        .to_string();
    let mut seqs: Vec<i64> = ours.iter().filter_map(|a| a.i64("seq")).collect();
    seqs.sort_unstable();
    (seqs, card)
}

/// Every item `0..n` of `signal` arrived, each once.
fn assert_all_arrived(receiver: &OtlpReceiver, signal: telemetry::Signal, n: usize, case: &str) {
    assert_eq!(
        seqs(receiver, signal, n).0,
        (0..n as i64).collect::<Vec<_>>(),
        "{case}"
    );
}

/// `signal`'s counts in the telemetry's health.
fn status(t: &Telemetry, signal: telemetry::Signal) -> telemetry::SignalStatus {
    t.health().signal(signal).unwrap()
}

/// `r` carries the configured headers, telemetry's `User-Agent`, and the
/// content type and encoding of `protocol` and `compression`.
fn assert_wire(
    r: &telemetry::testing::ReceivedRequest,
    protocol: &str,
    compression: Option<&str>,
    case: &str,
) {
    assert_eq!(r.header("x-tenant"), Some("payments"), "{case}: {r:?}");
    assert_eq!(r.header("authorization"), Some("Bearer s3cret"), "{case}");
    let agent = r.header("user-agent").unwrap_or_default();
    assert!(
        agent.starts_with("OTel-OTLP-Exporter-Rust-telemetry/"),
        "{case}: {agent}"
    );
    let encoding = if protocol == "grpc" {
        r.header("grpc-encoding")
    } else {
        r.header("content-encoding")
    };
    assert_eq!(encoding, compression, "{case}: {r:?}");
    let expected_type = match protocol {
        "grpc" => "application/grpc",
        "http/json" => "application/json",
        _ => "application/x-protobuf",
    };
    assert_eq!(
        r.header("content-type"),
        Some(expected_type),
        "{case}: {r:?}"
    );
}

#[test]
fn every_protocol_and_compression_delivers_each_item_once_with_its_headers() {
    for signal in SIGNALS {
        for protocol in ["grpc", "http/protobuf", "http/json"] {
            for compression in [None, Some("gzip"), Some("zstd")] {
                let case = format!("{signal:?} {protocol} {compression:?}");
                let receiver = OtlpReceiver::start().unwrap();
                let t = send(&receiver, signal, protocol, compression, 300);
                t.shutdown().unwrap();
                let (seqs, card) = seqs(&receiver, signal, 300);
                assert_eq!(seqs, (0..300).collect::<Vec<_>>(), "{case}");
                // Masked on the way out, whatever the wire.
                assert!(card.contains("1111"), "{case}: {card}");
                assert!(!card.contains("4111 1111 1111 1111"), "{case}: {card}");
                let service = if signal == telemetry::Signal::Logs {
                    receiver.logs()[0]
                        .resource
                        .str("service.name")
                        .map(str::to_string)
                } else {
                    receiver.spans()[0]
                        .resource
                        .str("service.name")
                        .map(str::to_string)
                };
                assert_eq!(service.as_deref(), Some("wire-engine"), "{case}");
                let requests = receiver.requests();
                assert!(!requests.is_empty(), "{case}");
                for r in &requests {
                    assert_eq!(r.signal, received(signal), "{case}");
                    assert_wire(r, protocol, compression, &case);
                }
                let items: usize = requests.iter().map(|r| r.items).sum();
                assert_eq!(items, 300, "{case}: each item sent once");
                let counts = status(&t, signal);
                assert_eq!((counts.exported, counts.failed), (300, 0), "{case}");
                receiver.shutdown();
            }
        }
    }
}

/// A refused batch is sent again, the same items, until the collector takes
/// it; none is lost or doubled.
#[test]
fn a_batch_refused_for_a_while_arrives_whole_once_accepted() {
    for signal in SIGNALS {
        for protocol in ["grpc", "http/protobuf", "http/json"] {
            let case = format!("{signal:?} {protocol}");
            let receiver = OtlpReceiver::start().unwrap();
            receiver.set_failing(true);
            let t = send(&receiver, signal, protocol, Some("gzip"), 50);
            // Two refused attempts at least, then the collector recovers.
            let refused = receiver.wait_for_requests(Duration::from_secs(10), |r| r.len() >= 2);
            assert!(refused.len() >= 2, "{case}: {refused:?}");
            assert!(
                receiver.spans().is_empty() && receiver.logs().is_empty(),
                "{case}"
            );
            receiver.set_failing(false);
            assert_all_arrived(&receiver, signal, 50, &case);
            // Each attempt carried the whole batch.
            for r in receiver.requests() {
                assert_eq!(r.items, 50, "{case}: {r:?}");
            }
            t.shutdown().unwrap();
            let c = status(&t, signal);
            assert_eq!(
                (c.emitted, c.exported, c.failed, c.dropped),
                (50, 50, 0, 0),
                "{case}"
            );
            receiver.shutdown();
        }
    }
}

/// A throttling collector (HTTP 429 with `Retry-After`, gRPC
/// RESOURCE_EXHAUSTED with `RetryInfo`) is left alone for the delay it
/// asked for, then gets the same batch, whole.
#[test]
fn a_throttling_collector_gets_the_batch_again_after_the_delay_it_asked_for() {
    let cases = SIGNALS.map(|s| ["grpc", "http/protobuf", "http/json"].map(|p| (s, p)));
    for (signal, protocol) in cases.into_iter().flatten() {
        let case = format!("{signal:?} {protocol}");
        let receiver = OtlpReceiver::start().unwrap();
        receiver.set_throttling(Some(1));
        let t = send(&receiver, signal, protocol, None, 20);
        let first = receiver.wait_for_requests(Duration::from_secs(10), |r| !r.is_empty());
        let throttled_at = std::time::Instant::now();
        assert!(
            matches!(
                first[0].outcome,
                RequestOutcome::Throttled {
                    retry_after_secs: 1
                }
            ),
            "{case}: {first:?}"
        );
        let again = receiver.wait_for_requests(Duration::from_secs(10), |r| r.len() >= 2);
        let waited = throttled_at.elapsed();
        assert!(again.len() >= 2, "{case}: retried: {again:?}");
        // Without the collector's delay the queue retries after 250 ms ±20 %.
        assert!(
            waited >= Duration::from_millis(900),
            "{case}: retried after {waited:?}"
        );
        receiver.set_throttling(None);
        assert_all_arrived(&receiver, signal, 20, &case);
        t.shutdown().unwrap();
        let c = status(&t, signal);
        assert_eq!((c.exported, c.failed), (20, 0), "{case}");
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

/// Exports five items of `signal` to `endpoint` over `protocol`, and checks
/// that they fail once: no export, five failed, `requests()` still 1 after
/// long enough for several retries (the first comes after 250 ms ±20 %),
/// and an error that names the oversized answer.
fn five_items_fail_once(
    signal: telemetry::Signal,
    endpoint: &str,
    protocol: &str,
    requests: impl Fn() -> usize,
) {
    let name = var(signal);
    let others = SIGNALS.into_iter().filter(|s| *s != signal);
    let mut env = common::env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
    ]);
    env.insert(
        format!("OTEL_EXPORTER_OTLP_{name}_ENDPOINT"),
        endpoint.into(),
    );
    for other in others {
        env.insert(format!("OTEL_{}_EXPORTER", var(other)), "none".into());
    }
    let t = Telemetry::builder("babble-engine")
        .with_env(env)
        .with_stdout_writer(Captured::default())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        for seq in 0..5 {
            if signal == telemetry::Signal::Logs {
                tracing::info!(seq, "babble");
            } else {
                let _s = tracing::info_span!("babble-span", seq).entered();
            }
        }
    });
    let case = format!("{signal:?} {protocol}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status(&t, signal).failed < 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let c = status(&t, signal);
    assert_eq!((c.exported, c.failed), (0, 5), "{case}: {c:?}");
    assert_eq!(requests(), 1, "{case}");
    match &c.state {
        telemetry::ExportState::Failing { last_error, .. } => {
            assert!(
                last_error.contains("larger than the client accepts"),
                "{case}: {last_error}"
            );
        }
        other => panic!("{case}: the exporter should be failing: {other:?}"),
    }
    drop(t);
}

/// A collector's oversized answer is bounded (the client reads at most
/// 4 MiB of it) and the batch is accounted as failed once, not resent
/// forever as if the network had failed.
#[test]
fn an_oversized_answer_fails_the_batch_once() {
    use std::sync::atomic::Ordering;
    for signal in SIGNALS {
        let babbler = Babbler::start();
        five_items_fail_once(signal, &babbler.endpoint, "http/protobuf", || {
            babbler.requests.load(Ordering::SeqCst)
        });
    }
}

/// The same over gRPC: tonic refuses an answer over 4 MiB with OUT_OF_RANGE,
/// a code that is retryable when a collector sends it, but here the
/// collector answered and the batch is failed once.
#[test]
fn an_oversized_grpc_answer_fails_the_batch_once() {
    for signal in SIGNALS {
        let receiver = OtlpReceiver::start().unwrap();
        receiver.set_answer_padding(Some(5 << 20));
        five_items_fail_once(signal, &receiver.grpc_endpoint(), "grpc", || {
            receiver.requests().len()
        });
        assert_eq!(
            receiver.requests()[0].outcome,
            RequestOutcome::AcceptedPadded {
                padding_bytes: 5 << 20
            }
        );
    }
}

/// Items a collector rejects in an export it otherwise accepts (an OTLP
/// partial success) are lost: counted as failed, not as exported, and not
/// sent again; the others count as exported. The same over every protocol,
/// JSON answers carrying the count as a string, as protobuf's JSON mapping
/// writes 64-bit integers. A collector claiming more rejections than the
/// batch held loses the batch, no more.
#[test]
fn items_rejected_in_a_partial_success_count_as_failed_and_are_not_sent_again() {
    for signal in SIGNALS {
        for (protocol, rejected, lost) in [
            ("grpc", 2, 2),
            ("http/protobuf", 2, 2),
            ("http/json", 2, 2),
            ("grpc", 1000, 5),
            ("http/json", 1000, 5),
        ] {
            let case = format!("{signal:?} {protocol}, {rejected} rejected");
            let receiver = OtlpReceiver::start().unwrap();
            receiver.set_partial_rejection(Some(rejected));
            let t = send(&receiver, signal, protocol, None, 5);
            t.shutdown().unwrap();
            let c = status(&t, signal);
            let counts = (c.exported, c.failed, c.dropped);
            assert_eq!(counts, (5 - lost, lost, 0), "{case}: {c:?}");
            // Reachable and answering: the exporter is not failing.
            assert!(
                matches!(c.state, telemetry::ExportState::Ok),
                "{case}: {:?}",
                c.state
            );
            let requests: Vec<_> = receiver
                .requests()
                .into_iter()
                .filter(|r| r.signal == received(signal))
                .collect();
            assert_eq!(requests.len(), 1, "{case}: {requests:?}");
            assert_eq!(
                requests[0].outcome,
                RequestOutcome::AcceptedPartially { rejected },
                "{case}"
            );
        }
    }
}

/// Counts 7 `wire.orders` through a telemetry exporting only metrics, over
/// `protocol`, and shuts it down (the last collection is exported then).
fn send_metrics(receiver: &OtlpReceiver, protocol: &str, compression: Option<&str>) -> Telemetry {
    let mut env = otlp_env(receiver, protocol);
    for signal in SIGNALS {
        env.insert(format!("OTEL_{}_EXPORTER", var(signal)), "none".into());
    }
    env.insert(
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS".into(),
        "x-tenant=payments,authorization=Bearer%20s3cret".into(),
    );
    if let Some(c) = compression {
        env.insert("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION".into(), c.into());
    }
    let t = Telemetry::builder("wire-engine")
        .with_env(env)
        .with_stdout_writer(Captured::default())
        .build()
        .unwrap();
    t.meter().u64_counter("wire.orders").build().add(7, &[]);
    t.shutdown().unwrap();
    t
}

/// Metrics go over the same transport: every protocol and compression,
/// with the configured headers, `User-Agent` and content type.
#[test]
fn every_protocol_and_compression_delivers_metrics_with_their_headers() {
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        for compression in [None, Some("gzip"), Some("zstd")] {
            let case = format!("{protocol} {compression:?}");
            let receiver = OtlpReceiver::start().unwrap();
            let t = send_metrics(&receiver, protocol, compression);
            let metrics = receiver.wait_for_metrics(Duration::from_secs(10), |m| {
                find_metric(m, "wire.orders").is_some()
            });
            let orders = find_metric(&metrics, "wire.orders").expect("counter exported");
            assert_eq!(orders.number_points()[0].value, 7.0, "{case}");
            let requests = receiver.requests();
            assert!(!requests.is_empty(), "{case}");
            for r in &requests {
                assert_eq!(r.signal, Signal::Metrics, "{case}");
                assert_wire(r, protocol, compression, &case);
            }
            let c = status(&t, telemetry::Signal::Metrics);
            assert!(c.exported > 0, "{case}: {c:?}");
            assert_eq!((c.failed, c.dropped), (0, 0), "{case}: {c:?}");
            receiver.shutdown();
        }
    }
}

/// Data points a collector rejects in an export it otherwise accepts count
/// as failed, not as exported; the exporter stays healthy.
#[test]
fn metric_data_points_rejected_in_a_partial_success_count_as_failed() {
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        let receiver = OtlpReceiver::start().unwrap();
        receiver.set_partial_rejection(Some(2));
        let t = send_metrics(&receiver, protocol, None);
        let requests: Vec<_> = receiver
            .requests()
            .into_iter()
            .filter(|r| r.signal == Signal::Metrics)
            .collect();
        assert!(!requests.is_empty(), "{protocol}");
        for r in &requests {
            assert!(r.items >= 2, "{protocol}: {r:?}");
            assert_eq!(
                r.outcome,
                RequestOutcome::AcceptedPartially { rejected: 2 },
                "{protocol}"
            );
        }
        let c = status(&t, telemetry::Signal::Metrics);
        assert_eq!(c.failed, 2 * requests.len() as u64, "{protocol}: {c:?}");
        assert_eq!(c.exported + c.failed, c.emitted, "{protocol}: {c:?}");
        assert!(
            matches!(c.state, telemetry::ExportState::Ok),
            "{protocol}: {:?}",
            c.state
        );
        receiver.shutdown();
    }
}
