//! Real rotel collector: receives OTLP and forwards traces, metrics and logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use testkit::{OtlpProtocol, Rotel, free_port, http_post, pid_alive, tcp_connectable};

// --- minimal protobuf encoding of OTLP export requests -------------------------------

fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn ld(field: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint((field << 3) | 2, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

fn fixed64(field: u64, bits: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint((field << 3) | 1, &mut out);
    out.extend_from_slice(&bits.to_le_bytes());
    out
}

/// resource_* (1) { scope_* (2) { item (2) } }
fn wrap(item: &[u8]) -> Vec<u8> {
    ld(1, &ld(2, &ld(2, item)))
}

fn traces_request() -> Vec<u8> {
    traces_request_named(b"testkit-span")
}

fn traces_request_named(name: &[u8]) -> Vec<u8> {
    let span = [
        ld(1, &[1; 16]),
        ld(2, &[2; 8]),
        ld(5, name),
        fixed64(7, 1),
        fixed64(8, 2),
    ]
    .concat();
    wrap(&span)
}

fn metrics_request() -> Vec<u8> {
    // Metric { name (1), gauge (5) { NumberDataPoint (1) { time (3), as_double (4) } } }
    let dp = [fixed64(3, 1), fixed64(4, 1.5f64.to_bits())].concat();
    wrap(&[ld(1, b"testkit_gauge"), ld(5, &ld(1, &dp))].concat())
}

fn logs_request() -> Vec<u8> {
    // LogRecord { time (1), body (5) AnyValue { string_value (1) } }
    wrap(&[fixed64(1, 1), ld(5, &ld(1, b"testkit-log-line"))].concat())
}

// --- a std-only OTLP/HTTP sink ---------------------------------------------------------

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

fn serve_conn(stream: TcpStream, received: Received) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let (mut len, mut gzip) = (0usize, false);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "content-encoding" => gzip = v.trim().eq_ignore_ascii_case("gzip"),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if gzip {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .unwrap();
            body = plain;
        }
        received.lock().unwrap().push((path, body));
        let resp =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn start_sink() -> (u16, Received) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Received = Arc::default();
    let r = received.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let r = r.clone();
            thread::spawn(move || serve_conn(stream, r));
        }
    });
    (port, received)
}

/// rotel forwarding OTLP/HTTP to the sink on `sink_port`, batching for 50 ms.
fn http_rotel_to(sink_port: u16) -> Rotel {
    Rotel::builder(&format!("http://127.0.0.1:{sink_port}"))
        .protocol(OtlpProtocol::Http)
        .batch_timeout("50ms")
        .start()
        .unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn rotel_forwards_traces_metrics_and_logs_over_otlp_http() {
    let (sink_port, received) = start_sink();
    let rotel = http_rotel_to(sink_port);
    let pid = rotel.pid();

    let sent = [
        ("/v1/traces", traces_request(), &b"testkit-span"[..]),
        ("/v1/metrics", metrics_request(), &b"testkit_gauge"[..]),
        ("/v1/logs", logs_request(), &b"testkit-log-line"[..]),
    ];
    for (path, body, _) in &sent {
        let url = format!("{}{path}", rotel.http_endpoint());
        let (status, resp) = http_post(&url, "application/x-protobuf", body).unwrap();
        assert_eq!(status, 200, "{path}: {resp}");
    }

    testkit::wait_until(
        "rotel to forward all signals",
        Duration::from_secs(20),
        || {
            let got = received.lock().unwrap();
            Ok(sent.iter().all(|(path, _, marker)| {
                got.iter()
                    .any(|(p, body)| p == path && contains(body, marker))
            }))
        },
    )
    .unwrap_or_else(|e| {
        let got: Vec<_> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(p, b)| format!("{p} ({} bytes)", b.len()))
            .collect();
        panic!("{e}; received {got:?}; rotel log:\n{}", rotel.log_tail(20))
    });

    drop(rotel);
    assert!(!pid_alive(pid), "rotel {pid} alive after drop");
}

#[test]
fn rotel_grpc_export_starts_listens_and_accepts_empty_post() {
    // Nothing listens on the export endpoint; rotel must still accept data.
    let dead = free_port().unwrap();
    let rotel = Rotel::start(&format!("127.0.0.1:{dead}")).unwrap();
    let pid = rotel.pid();
    assert_eq!(rotel.export_endpoint(), format!("http://127.0.0.1:{dead}"));
    assert!(tcp_connectable(rotel.grpc_addr()));
    assert!(rotel.grpc_endpoint().starts_with("http://127.0.0.1:"));
    let (status, body) = http_post(
        &format!("{}/v1/traces", rotel.http_endpoint()),
        "application/x-protobuf",
        b"",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    rotel.stop().unwrap();
    assert!(!pid_alive(pid));
}

/// Posts a one-span trace named `name` to rotel and waits for the sink to get it.
fn forward_one_span(rotel: &Rotel, received: &Received, name: &[u8]) {
    let url = format!("{}/v1/traces", rotel.http_endpoint());
    let (status, resp) =
        http_post(&url, "application/x-protobuf", &traces_request_named(name)).unwrap();
    assert_eq!(status, 200, "{resp}");
    testkit::wait_until("rotel to forward the span", Duration::from_secs(20), || {
        Ok(received
            .lock()
            .unwrap()
            .iter()
            .any(|(p, body)| p == "/v1/traces" && contains(body, name)))
    })
    .unwrap_or_else(|e| panic!("{e}; rotel log:\n{}", rotel.log_tail(20)));
}

#[test]
fn rotel_killed_comes_back_on_the_same_ports_and_forwards_again() {
    let (sink_port, received) = start_sink();
    let rotel = http_rotel_to(sink_port);
    let (pid, grpc, http) = (rotel.pid(), rotel.grpc_addr(), rotel.http_addr());
    forward_one_span(&rotel, &received, b"before-the-kill");

    let again = rotel.kill().unwrap();
    assert!(!pid_alive(pid), "rotel {pid} alive after SIGKILL");
    assert!(
        !tcp_connectable(grpc),
        "{grpc} still accepts after the kill"
    );
    assert!(
        !tcp_connectable(http),
        "{http} still accepts after the kill"
    );

    let rotel = again.start().unwrap();
    assert_ne!(rotel.pid(), pid);
    assert_eq!((rotel.grpc_addr(), rotel.http_addr()), (grpc, http));
    assert_eq!(
        rotel.export_endpoint(),
        format!("http://127.0.0.1:{sink_port}")
    );
    forward_one_span(&rotel, &received, b"after-the-restart");
    let pid = rotel.pid();
    drop(rotel);
    assert!(!pid_alive(pid), "rotel {pid} alive after drop");
}
