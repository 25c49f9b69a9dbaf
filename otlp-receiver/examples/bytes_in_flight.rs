//! The receiver's peak memory while many clients upload large bodies at once.
//!
//! `cargo run --release -p otlp-receiver --example bytes_in_flight -- CLIENTS MIB [BUDGET_MIB]`
//!
//! Starts a receiver (the default limits, or a bytes-in-flight budget of
//! BUDGET_MIB; `0` means none), has CLIENTS connections each send all but the
//! last byte of a MIB-MiB body, waits until all have, then sends the last
//! bytes; prints the answers and the process's peak RSS (`VmHWM`).
//!
//! `... --example bytes_in_flight -- bomb SPANS RESOURCE_KIB` sends one export
//! of SPANS empty spans under a resource attribute of RESOURCE_KIB KiB (the
//! model copies the resource onto each span) and prints the answer and the
//! peak RSS.

use std::io::{Read, Write};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use otlp_receiver::{Batch, OtlpServer, RequestInfo, RequestOutcome, ServerConfig, Sink};

struct Discard;

impl Sink for Discard {
    fn receive(&self, _: RequestInfo, _: Option<Batch>) -> RequestOutcome {
        RequestOutcome::Accepted
    }
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// One export of `spans` empty spans under a `resource_kib` KiB attribute.
fn bomb(spans: usize, resource_kib: usize) -> Result<(), String> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message as _;
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "r".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(
                            "x".repeat(resource_kib << 10),
                        )),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); spans],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let server = OtlpServer::start(ServerConfig::default(), Arc::new(Discard))
        .map_err(|e| format!("cannot start the receiver: {e}"))?;
    let before = peak_rss_mib();
    let mut s = std::net::TcpStream::connect(server.http_addr()).map_err(|e| e.to_string())?;
    write!(
        s,
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .and_then(|()| s.write_all(&body))
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    println!(
        "one export of {} KiB ({spans} empty spans, a {resource_kib} KiB resource): answer {:?}; peak RSS {before} MiB before it, {} MiB after",
        body.len() >> 10,
        answer.lines().next().unwrap_or(""),
        peak_rss_mib()
    );
    server.shutdown();
    Ok(())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("bomb") {
        let n = |i: usize| -> Result<usize, String> {
            args.get(i)
                .ok_or("usage: bomb SPANS RESOURCE_KIB")?
                .parse()
                .map_err(|e| format!("argument {i}: {e}; usage: bomb SPANS RESOURCE_KIB"))
        };
        return bomb(n(1)?, n(2)?);
    }
    let number = |i: usize, default: usize| {
        args.get(i).map_or(Ok(default), |a| {
            a.parse::<usize>().map_err(|e| {
                format!(
                    "argument {} ({a}): {e}; usage: CLIENTS MIB [BUDGET_MIB]",
                    i + 1
                )
            })
        })
    };
    let (clients, mib) = (number(0, 128)?, number(1, 15)?);
    let mut config = ServerConfig::default();
    if args.len() > 2 {
        config.max_bytes_in_flight = match number(2, 0)? {
            0 => usize::MAX,
            budget => budget << 20,
        };
    }
    let budget = config.max_bytes_in_flight;
    let server = OtlpServer::start(config, Arc::new(Discard))
        .map_err(|e| format!("cannot start the receiver: {e}"))?;
    let addr = server.http_addr();
    let body = Arc::new(vec![0u8; mib << 20]);
    let all_sent = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (body, all_sent) = (Arc::clone(&body), Arc::clone(&all_sent));
            std::thread::spawn(move || {
                let answer = (|| -> std::io::Result<String> {
                    let mut s = std::net::TcpStream::connect(addr)?;
                    s.set_read_timeout(Some(Duration::from_secs(60)))?;
                    write!(
                        s,
                        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )?;
                    let sent = s.write_all(&body[..body.len() - 1]);
                    all_sent.wait();
                    sent?;
                    s.write_all(&body[body.len() - 1..])?;
                    let mut head = [0u8; 12];
                    s.read_exact(&mut head)?;
                    Ok(String::from_utf8_lossy(&head[9..12]).into_owned())
                })();
                answer.unwrap_or_else(|e| format!("{:?}", e.kind()))
            })
        })
        .collect();
    // The server has read what was sent once every client's write returned.
    all_sent.wait();
    std::thread::sleep(Duration::from_millis(500));
    let held_peak = peak_rss_mib();
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for t in threads {
        *answers.entry(t.join().unwrap_or_default()).or_default() += 1;
    }
    let budget = if budget == usize::MAX {
        "none".to_string()
    } else {
        format!("{} MiB", budget >> 20)
    };
    println!(
        "clients {clients} × {mib} MiB, budget {budget}: peak RSS {} MiB while held, {} MiB at the end; answers {answers:?}",
        held_peak,
        peak_rss_mib()
    );
    server.shutdown();
    Ok(())
}
