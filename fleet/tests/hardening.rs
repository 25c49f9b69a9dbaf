//! The fleet probed as an attacker would, on loopback, at every entry point
//! — not only the gateway: card numbers and IBANs never leave an engine in
//! clear (answers, log files, OTLP spans and logs, /metrics), oversized
//! bodies get 413, invalid input is refused by every engine, 10,000 unique
//! large inputs leave memory and series flat, and nobody without the run's
//! token can use the bus — while a holder of the token still cannot get a
//! forged instruction into the ledger. Half-sent requests cannot hold an
//! engine's connections or file descriptors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Launcher, payment, post_payment};
use telemetry::testing::OtlpReceiver;

const CARD: &str = "4111111111111111";
const CARD_GROUPED: &str = "4111 1111 1111 1111";
const IBAN: &str = "DE89370400440532013000";
const IBAN_GROUPED: &str = "DE89 3704 0044 0532 0130 00";

fn assert_no_clear(what: &str, text: &str) {
    for clear in [CARD, CARD_GROUPED, IBAN, IBAN_GROUPED] {
        assert!(!text.contains(clear), "{what} carries {clear:?} in clear");
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn post(url: &str, body: &[u8]) -> (u16, String) {
    testkit::http_post(url, "application/json", body).unwrap()
}

fn series(port: u16) -> usize {
    let (_, text) = testkit::http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

/// Runs `n` requests from 8 threads; `make(i)` gives URL and body.
fn flood(n: usize, make: impl Fn(usize) -> (String, Vec<u8>) + Sync) -> BTreeMap<u16, usize> {
    let codes = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for t in 0..8 {
            let (codes, make) = (&codes, &make);
            s.spawn(move || {
                for i in (t..n).step_by(8) {
                    let (url, body) = make(i);
                    let (code, _) = post(&url, &body);
                    *codes.lock().unwrap().entry(code).or_insert(0) += 1;
                }
            });
        }
    });
    codes.into_inner().unwrap()
}

#[test]
fn hostile_input_is_refused_masked_and_bounded_at_every_engine() {
    let receiver = OtlpReceiver::start().unwrap();
    let launcher = Launcher::start(
        &["--rate", "0"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())],
    );
    let port = |name: &str| launcher.fleet.engine(name).unwrap().port;
    let pid = |name: &str| launcher.fleet.engine(name).unwrap().pid;
    let url = |name: &str, path: &str| format!("http://127.0.0.1:{}{path}", port(name));
    let gateway = launcher.fleet.gateway_url.clone();

    // Payment data where it does not belong: refused, never echoed.
    let mut p = payment(
        "DEUTDEFF",
        "BNPAFRPP",
        10.0,
        "Acme Manufacturing",
        "Globex Retail",
    );
    p["currency"] = CARD.into();
    let (code, view) = post_payment(&gateway, &p);
    assert_eq!(code, 422, "{view}");
    let reason = view["reason"].as_str().unwrap();
    assert!(reason.contains("****1111"), "{reason}");
    p["currency"] = "EUR".into();
    p["from_bank"] = IBAN_GROUPED.into();
    let (code, view) = post_payment(&gateway, &p);
    assert_eq!(code, 422, "{view}");
    p["from_bank"] = "DEUTDEFF".into();
    p["amount"] = CARD.into();
    let (code, view) = post_payment(&gateway, &p);
    assert_eq!(code, 422, "a JSON type error quotes nothing: {view}");
    // In a field that may hold text, the name goes through (and is masked
    // wherever it is logged or traced).
    let mut named = payment(
        "DEUTDEFF",
        "BNPAFRPP",
        10.0,
        "Acme Manufacturing",
        "Globex Retail",
    );
    named["debtor"] = format!("card {CARD_GROUPED} acct {IBAN}").into();
    let (code, view) = post_payment(&gateway, &named);
    assert_eq!(code, 202, "{view}");

    // Oversized bodies: 413 at every engine that takes one.
    let huge = vec![b'x'; 10 * 1024 * 1024];
    for (engine, path) in [
        ("gateway", "/payments"),
        ("compliance-engine", "/screenings"),
        ("risk-engine", "/assessments"),
        ("token-engine", "/transfers"),
        ("obligation-engine", "/obligations"),
        ("liquidity-router", "/routes"),
    ] {
        let (code, body) = post(&url(engine, path), &huge);
        assert_eq!(code, 413, "{engine}{path}: {body}");
    }

    // Inner engines validate too: made-up banks, a negative trillion.
    let forged = serde_json::json!({
        "payment_id": uuid::Uuid::new_v4().to_string(), "from_bank": "MADEUPBK", "to_bank": "NOBANKXX",
        "amount": -1e12, "currency": "EUR", "accepted_at_ms": 1,
    });
    for (engine, path) in [
        ("obligation-engine", "/obligations"),
        ("token-engine", "/transfers"),
    ] {
        let (code, body) = post(&url(engine, path), forged.to_string().as_bytes());
        assert_eq!(code, 422, "{engine}: {body}");
        assert!(body.contains("not a participant"), "{engine}: {body}");
    }

    // 2,500 distinct currencies straight at token-engine: no new series.
    let token_series = series(port("token-engine"));
    let codes = flood(2_500, |i| {
        let o = serde_json::json!({
            "payment_id": uuid::Uuid::new_v4().to_string(), "from_bank": "DEUTDEFF", "to_bank": "BNPAFRPP",
            "amount": 10.0, "currency": format!("X{i:05}"), "accepted_at_ms": 1,
        });
        (
            url("token-engine", "/transfers"),
            o.to_string().into_bytes(),
        )
    });
    assert_eq!(codes.get(&422), Some(&2_500), "{codes:?}");
    let grown = series(port("token-engine")) as i64 - token_series as i64;
    assert!(grown <= 20, "token-engine gained {grown} series");

    // 10,000 unique large inputs: memory stays flat.
    let rss_before = [
        ("gateway", rss_kib(pid("gateway"))),
        ("compliance-engine", rss_kib(pid("compliance-engine"))),
    ];
    let gateway_log = launcher.run_dir().join("logs/gateway.log");
    let log_before = std::fs::metadata(&gateway_log)
        .map(|m| m.len())
        .unwrap_or(0);
    let codes = flood(10_000, |i| {
        let mut p = payment(
            "DEUTDEFF",
            "BNPAFRPP",
            10.0,
            "Acme Manufacturing",
            "Globex Retail",
        );
        p["debtor"] = format!("{i:06}{}", "n".repeat(16 * 1024)).into();
        (format!("{gateway}/payments"), p.to_string().into_bytes())
    });
    assert_eq!(codes.get(&422), Some(&10_000), "{codes:?}");
    let codes = flood(10_000, |i| {
        let s = serde_json::json!({ "debtor": format!("party {i:06} {}", "p".repeat(120)), "creditor": "Globex Retail" });
        (
            url("compliance-engine", "/screenings"),
            s.to_string().into_bytes(),
        )
    });
    assert_eq!(codes.get(&200), Some(&10_000), "{codes:?}");
    for (engine, before) in rss_before {
        let after = rss_kib(pid(engine));
        eprintln!("{engine}: RSS {before} KiB -> {after} KiB after 10,000 unique large inputs");
        assert!(
            after < before + 48 * 1024,
            "{engine}: RSS {before} -> {after} KiB"
        );
    }
    let log_growth = std::fs::metadata(&gateway_log)
        .map(|m| m.len())
        .unwrap_or(0)
        - log_before;
    assert!(
        log_growth < 10 * 1024 * 1024,
        "gateway log grew {log_growth} bytes for 10,000 refusals"
    );

    // The bus: no token, no connection; a token holder's forged instruction
    // is refused, counted and never reaches the ledger.
    let nats_url = launcher.fleet.nats_url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = rt.block_on(async_nats::connect(&nats_url));
    assert!(refused.is_err(), "connected without the token");
    let token = std::fs::read_to_string(launcher.run_dir().join("nats.token")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(launcher.run_dir().join("nats.token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the token file is private");
    let forged = serde_json::json!({
        "window_id": uuid::Uuid::new_v4().to_string(), "from_bank": "MADEUPBK", "to_bank": "BNPAFRPP",
        "net_amount": -999_999_999.0, "currency": "EUR",
        "route": { "corridor": "sepa", "source": "nostro", "fx_rate_usd": 1.0 },
        "members": [{ "payment_id": uuid::Uuid::new_v4().to_string(), "accepted_at_ms": 1, "carrier": {} }],
    });
    rt.block_on(async {
        let client = async_nats::ConnectOptions::with_token(token.trim().to_string())
            .connect(&nats_url)
            .await
            .unwrap();
        for payload in [forged.to_string().into_bytes(), b"not json".to_vec()] {
            client
                .publish("deltran.settlement.instructions", payload.into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
    });
    let settlement = port("settlement-engine");
    let rejected = testkit::wait_until(
        "settlement-engine to count the forged messages",
        Duration::from_secs(20),
        || {
            let (_, text) = testkit::http_get(&format!("http://127.0.0.1:{settlement}/metrics"))?;
            let count: f64 = text
                .lines()
                .filter(|l| {
                    l.starts_with("deltran_messages_rejected_total{")
                        && l.contains("deltran.settlement.instructions")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            Ok(count >= 2.0)
        },
    );
    rejected.unwrap();
    let (_, balances) =
        testkit::http_get(&format!("http://127.0.0.1:{settlement}/ledger/balances")).unwrap();
    assert!(
        !balances.contains("MADEUPBK"),
        "forged instruction in the ledger: {balances}"
    );

    // Nothing in clear anywhere: answers above, log files, OTLP, /metrics.
    std::thread::sleep(Duration::from_secs(2));
    for e in &launcher.fleet.engines {
        let log = std::fs::read_to_string(
            launcher
                .run_dir()
                .join("logs")
                .join(format!("{}.log", e.name)),
        )
        .unwrap_or_default();
        assert_no_clear(&format!("{} log", e.name), &log);
        let (_, metrics) =
            testkit::http_get(&format!("http://127.0.0.1:{}/metrics", e.port)).unwrap();
        assert_no_clear(&format!("{} /metrics", e.name), &metrics);
    }
    assert_no_clear("OTLP spans", &format!("{:?}", receiver.spans()));
    assert_no_clear("OTLP logs", &format!("{:?}", receiver.logs()));
    drop(launcher);
}

#[test]
fn a_saturated_gateway_sheds_with_503_and_retry_after_and_counts_it() {
    // Two payments at a time, each held ≥ 300 ms at compliance: 24 at once overflow.
    let launcher = Launcher::start(
        &["--rate", "0", "--latency", "compliance-engine=300"],
        &[("DELTRAN_GATEWAY_MAX_IN_FLIGHT", "2".into())],
    );
    let gateway = launcher.fleet.gateway_url.clone();
    let answers: Vec<testkit::HttpResponse> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                let url = format!("{gateway}/payments");
                s.spawn(move || {
                    let body = payment(
                        "DEUTDEFF",
                        "BNPAFRPP",
                        10.0,
                        "Acme Manufacturing",
                        "Globex Retail",
                    );
                    testkit::http_request(
                        "POST",
                        &url,
                        &[("Content-Type", "application/json")],
                        Some(body.to_string().as_bytes()),
                    )
                    .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let shed: Vec<&testkit::HttpResponse> = answers.iter().filter(|r| r.status == 503).collect();
    let accepted = answers.iter().filter(|r| r.status == 202).count();
    assert!(
        !shed.is_empty() && accepted >= 2,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(shed.len() + accepted, 24, "every request got an answer");
    for r in &shed {
        assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text());
    }
    let counted = testkit::wait_until(
        "the shed count on /metrics",
        Duration::from_secs(10),
        || {
            let (_, text) = testkit::http_get(&format!("{gateway}/metrics"))?;
            Ok(text.lines().any(|l| {
                l.starts_with("deltran_payments_total{")
                    && l.contains(r#"outcome="shed""#)
                    && l.ends_with(&format!(" {}", shed.len()))
            }))
        },
    );
    counted.unwrap_or_else(|e| panic!("{e}"));
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// A client that sends half a request and waits (slowloris) holds nothing
/// for long at any engine, axum or actix: every engine closes it once its
/// headers are late, and still answers.
#[test]
fn half_sent_requests_are_closed_at_every_engine() {
    const PER_ENGINE: usize = 60;
    let launcher = Launcher::start(&["--rate", "0"], &[]);
    let engines: Vec<(String, u16, u32)> = launcher
        .fleet
        .engines
        .iter()
        .map(|e| (e.name.clone(), e.port, e.pid))
        .collect();
    assert_eq!(engines.len(), 8);
    let mut held = Vec::new();
    for (name, port, pid) in &engines {
        let before = open_descriptors(*pid);
        let addr = ("127.0.0.1", *port);
        for i in 0..PER_ENGINE {
            // Half-sent requests, and connections that start no request:
            // silent, or an HTTP/2 preface without its settings.
            let s = match i % 4 {
                0 => testkit::stalled_connection(addr, b"").unwrap(),
                1 => testkit::stalled_connection(addr, testkit::H2_PREFACE).unwrap(),
                _ => testkit::half_sent_request(addr, "/health").unwrap(),
            };
            held.push((name.clone(), s));
        }
        std::thread::sleep(Duration::from_millis(300));
        let taken = open_descriptors(*pid).saturating_sub(before);
        assert!(
            taken <= PER_ENGINE + 8,
            "{name}: {taken} descriptors for {PER_ENGINE} connections"
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !held.is_empty() && std::time::Instant::now() < deadline {
        held.retain_mut(|(_, s)| !testkit::closes_within(s, Duration::from_millis(10)));
        std::thread::sleep(Duration::from_millis(200));
    }
    let open: BTreeMap<String, usize> = held.iter().fold(BTreeMap::new(), |mut m, (n, _)| {
        *m.entry(n.clone()).or_insert(0) += 1;
        m
    });
    assert!(open.is_empty(), "still held open after 40 s: {open:?}");
    for (name, port, _) in &engines {
        let (code, _) = testkit::http_get(&format!("http://127.0.0.1:{port}/health")).unwrap();
        assert_eq!(code, 200, "{name} answers after the flood");
    }
}

/// A request whose body arrives a byte at a time (slow POST) does not hold
/// its connection for good at any engine that reads a body, axum or actix:
/// past the request timeout (30 s; the axum engines' watchdog acts within
/// twice that) the connection is closed or answered 408, and the engine
/// still answers.
#[test]
fn bodies_sent_a_byte_at_a_time_are_cut_at_every_engine() {
    use std::io::{Read, Write};
    let launcher = Launcher::start(&["--rate", "0"], &[]);
    let mut slow = Vec::new();
    for engine in &launcher.fleet.engines {
        let path = match engine.name.as_str() {
            "gateway" => "/payments",
            "compliance-engine" => "/screenings",
            "liquidity-router" => "/routes",
            "obligation-engine" => "/obligations",
            "risk-engine" => "/assessments",
            "token-engine" => "/transfers",
            _ => continue,
        };
        let mut s = std::net::TcpStream::connect(("127.0.0.1", engine.port)).unwrap();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 5000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        slow.push((engine.name.clone(), engine.port, s, None::<String>));
    }
    assert_eq!(slow.len(), 6);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(90) && slow.iter().any(|e| e.3.is_none()) {
        for (_, _, s, outcome) in slow.iter_mut().filter(|e| e.3.is_none()) {
            let mut buf = [0u8; 512];
            let ended = match s.read(&mut buf) {
                Ok(0) => Some("closed".to_string()),
                Ok(n) => Some(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                ),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // Still open: one more byte of the body.
                    s.write_all(b" ").err().map(|e| format!("closed ({e})"))
                }
                Err(e) => Some(format!("closed ({e})")),
            };
            if let Some(ended) = ended {
                *outcome = Some(format!("{ended} after {:?}", started.elapsed()));
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let held: Vec<&String> = slow
        .iter()
        .filter(|e| e.3.is_none())
        .map(|e| &e.0)
        .collect();
    assert!(
        held.is_empty(),
        "still reading a trickling body after 90 s: {held:?}"
    );
    for (name, port, _, outcome) in &slow {
        let outcome = outcome.as_deref().unwrap_or_default();
        assert!(
            outcome.starts_with("closed") || outcome.starts_with("HTTP/1.1 408"),
            "{name}: {outcome}"
        );
        let (code, _) = testkit::http_get(&format!("http://127.0.0.1:{port}/health")).unwrap();
        assert_eq!(code, 200, "{name} answers after the slow body");
    }
}

/// Event streams are bounded: the gateway upgrades 256 WebSockets and
/// answers the next with 503 and `Retry-After` (an upgraded connection is
/// outside the accept loop's connection bound), and a slot freed is taken
/// again.
#[test]
fn the_gateways_event_streams_are_bounded() {
    use std::io::{Read, Write};
    const BOUND: usize = 256;
    // The launcher's own load opens none.
    let launcher = Launcher::start(&["--rate", "0", "--websockets", "0"], &[]);
    let gateway = launcher
        .fleet
        .engines
        .iter()
        .find(|e| e.name == "gateway")
        .map(|e| e.port)
        .unwrap();
    let open_stream = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gateway)).unwrap();
        s.write_all(
            b"GET /payments/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        (String::from_utf8_lossy(&head).to_string(), s)
    };
    let mut streams = Vec::new();
    for i in 0..BOUND {
        let (status, s) = open_stream();
        assert_eq!(status, "HTTP/1.1 101", "stream {i}");
        streams.push(s);
    }
    let (status, _) = open_stream();
    assert_eq!(status, "HTTP/1.1 503", "stream {}", BOUND + 1);
    // One closed: its slot is free again once the gateway has seen it go.
    drop(streams.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, s) = open_stream();
        if status == "HTTP/1.1 101" {
            streams.push(s);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the freed slot is not taken again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
