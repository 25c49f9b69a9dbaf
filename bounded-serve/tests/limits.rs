//! Each limit against raw sockets: clients that send half a request,
//! more clients than the bound, and a stop with a request in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bounded_serve::{Limits, WhenFull, serve};
use bytes::Bytes;
use http_body_util::Full;
use testkit::{H2_PREFACE, closed_by_server, closes_within, half_sent_request, stalled_connection};

/// Short, so the tests do not wait out the production deadlines.
const HEADERS_DUE: Duration = Duration::from_secs(1);
const IDLE: Duration = Duration::from_secs(1);
const DRAIN: Duration = Duration::from_secs(1);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Answers `ok`: after `delay` when the path is `/slow`, after reading the
/// whole body when it is `/upload`; on `/stream`, ten chunks `delay / 10`
/// apart.
fn service(
    delay: Duration,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(
        move |req: hyper::Request<hyper::body::Incoming>| async move {
            use http_body_util::BodyExt as _;
            match req.uri().path() {
                "/slow" => tokio::time::sleep(delay).await,
                "/upload" => {
                    let _ = req.into_body().collect().await;
                }
                "/stream" => {
                    let chunks = futures_util::stream::unfold(0u32, move |i| async move {
                        if i == 10 {
                            return None;
                        }
                        tokio::time::sleep(delay / 10).await;
                        let frame = hyper::body::Frame::data(Bytes::from_static(b"piece\n"));
                        Some((Ok::<_, Infallible>(frame), i + 1))
                    });
                    let body = http_body_util::StreamBody::new(chunks).boxed();
                    return Ok(hyper::Response::new(body));
                }
                _ => {}
            }
            let body = Full::new(Bytes::from_static(b"ok")).boxed();
            Ok::<_, Infallible>(hyper::Response::new(body))
        },
    )
}

struct Server {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    fn start(limits: Limits, delay: Duration) -> Server {
        let rt = runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let svc = service(delay);
        let served = rt.spawn(serve(listener, move || svc.clone(), limits, async {
            let _ = stopped.await;
        }));
        Server {
            rt,
            addr,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Stops the server and waits for `serve` to return, at most `wait`.
    fn stop(&mut self, wait: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(served) = self.served.take() else {
            return true;
        };
        self.rt
            .block_on(async { tokio::time::timeout(wait, served).await })
            .is_ok()
    }
}

fn limits(max_connections: usize, when_full: WhenFull) -> Limits {
    Limits {
        max_connections,
        max_requests: 64,
        header_read_timeout: HEADERS_DUE,
        idle_timeout: IDLE,
        request_timeout: Duration::from_secs(60),
        drain_timeout: DRAIN,
        when_full,
    }
}

/// The test limits with another request timeout.
fn with_request_timeout(request_timeout: Duration) -> Limits {
    Limits {
        request_timeout,
        ..limits(8, WhenFull::Wait)
    }
}

/// A whole request's answer, or `None` when none came within `wait`.
fn get(addr: SocketAddr, path: &str, wait: Duration) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    (!answer.is_empty()).then_some(answer)
}

#[test]
fn a_half_sent_request_is_closed_at_the_header_deadline() {
    let mut server = Server::start(limits(8, WhenFull::Wait), Duration::ZERO);
    let mut slow = half_sent_request(server.addr, "/").unwrap();
    // Still open well before the deadline...
    assert!(!closed_by_server(&mut slow, HEADERS_DUE / 4));
    // ...and closed after it.
    assert!(
        closed_by_server(&mut slow, HEADERS_DUE * 5),
        "a half-sent request is held past the header deadline"
    );
    assert!(server.stop(Duration::from_secs(5)));
}

#[test]
fn a_connection_that_starts_no_request_is_closed_at_the_header_deadline() {
    let mut server = Server::start(limits(8, WhenFull::Wait), Duration::ZERO);
    let opened = Instant::now();
    let clients = [
        (
            "sends nothing",
            stalled_connection(server.addr, b"").unwrap(),
        ),
        (
            "half an HTTP/2 preface",
            stalled_connection(server.addr, &H2_PREFACE[..12]).unwrap(),
        ),
        (
            "a preface without settings",
            stalled_connection(server.addr, H2_PREFACE).unwrap(),
        ),
        (
            "half an HTTP/1.1 request line",
            stalled_connection(server.addr, b"GET / HT").unwrap(),
        ),
    ];
    let watchers: Vec<_> = clients
        .into_iter()
        .map(|(what, mut s)| {
            std::thread::spawn(move || {
                let closed = closes_within(&mut s, HEADERS_DUE * 5);
                (what, closed.then(|| opened.elapsed()))
            })
        })
        .collect();
    for watcher in watchers {
        let (what, closed_after) = watcher.join().unwrap();
        let closed_after =
            closed_after.unwrap_or_else(|| panic!("a client that {what} is held open"));
        assert!(
            closed_after >= HEADERS_DUE / 2,
            "a client that {what} is closed after {closed_after:?}, before its deadline"
        );
    }
    assert!(server.stop(Duration::from_secs(5)));
}

#[test]
fn a_stop_is_not_held_by_a_connection_that_started_no_request() {
    let mut server = Server::start(limits(8, WhenFull::Wait), Duration::ZERO);
    let _held = [
        stalled_connection(server.addr, b"").unwrap(),
        stalled_connection(server.addr, H2_PREFACE).unwrap(),
        stalled_connection(server.addr, &H2_PREFACE[..12]).unwrap(),
    ];
    std::thread::sleep(Duration::from_millis(200));
    let stopping = Instant::now();
    assert!(server.stop(Duration::from_secs(10)), "serve did not return");
    let took = stopping.elapsed();
    assert!(took < HEADERS_DUE * 3, "the stop took {took:?}");
}

/// An HTTP/2 client: one request, then the connection is left open.
/// Returns the status and how long the connection stayed open after it.
fn h2_request_then_idle(server: &Server, path: &str, wait: Duration) -> (u16, Option<Duration>) {
    let addr = server.addr;
    server.rt.block_on(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        let conn = tokio::spawn(conn);
        let req = hyper::Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let status = sender.send_request(req).await.unwrap().status().as_u16();
        let answered = Instant::now();
        let closed = tokio::time::timeout(wait, conn)
            .await
            .ok()
            .map(|_| answered.elapsed());
        (status, closed)
    })
}

#[test]
fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let mut server = Server::start(limits(8, WhenFull::Wait), Duration::ZERO);
    let (status, closed_after) = h2_request_then_idle(&server, "/", IDLE * 10);
    assert_eq!(status, 200);
    let closed_after = closed_after.expect("an idle HTTP/2 connection is held open");
    assert!(closed_after >= IDLE / 2, "closed after {closed_after:?}");
    assert!(server.stop(Duration::from_secs(5)));
}

#[test]
fn a_request_longer_than_the_idle_timeout_is_answered() {
    let mut server = Server::start(limits(8, WhenFull::Wait), IDLE * 3);
    let (status, _) = h2_request_then_idle(&server, "/slow", Duration::ZERO);
    assert_eq!(status, 200);
    let answer = get(server.addr, "/slow", IDLE * 10).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(server.stop(Duration::from_secs(5)));
}

/// A body that trickles in, a byte at a time, does not hold a connection:
/// it is closed once requests have made no progress for the request
/// timeout. A whole body sent at once is answered.
#[test]
fn a_request_body_that_trickles_in_is_cut_at_the_request_timeout() {
    const REQUEST_DUE: Duration = Duration::from_secs(1);
    let mut server = Server::start(with_request_timeout(REQUEST_DUE), Duration::ZERO);
    let head = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut cut_after = None;
    while started.elapsed() < REQUEST_DUE * 10 {
        // One byte every 200 ms: the connection is never silent.
        if slow.write_all(b"x").is_err() || closes_within(&mut slow, Duration::from_millis(200)) {
            cut_after = Some(started.elapsed());
            break;
        }
    }
    let cut_after = cut_after.expect("a trickling body holds its connection");
    assert!(cut_after >= REQUEST_DUE / 2, "cut after {cut_after:?}");

    let mut whole = TcpStream::connect(server.addr).unwrap();
    whole.write_all(head.as_bytes()).unwrap();
    whole.write_all(&[b'x'; 1000]).unwrap();
    whole
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 12];
    whole.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert!(server.stop(Duration::from_secs(5)));
}

/// A response that keeps sending data is making progress, however long it
/// takes: it is not cut at the request timeout.
#[test]
fn a_response_that_keeps_sending_is_not_cut_at_the_request_timeout() {
    const REQUEST_DUE: Duration = Duration::from_secs(1);
    // Ten chunks over 4 s: four request timeouts.
    let mut server = Server::start(with_request_timeout(REQUEST_DUE), REQUEST_DUE * 4);
    let answer = get(server.addr, "/stream", REQUEST_DUE * 20).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert_eq!(answer.matches("piece").count(), 10, "{answer:?}");
    assert!(server.stop(Duration::from_secs(5)));
}

/// `Duration::MAX` means "never": no deadline overflows, and a stop still
/// ends with the drain.
#[test]
fn timeouts_of_duration_max_mean_never_and_a_stop_still_drains() {
    let mut server = Server::start(
        Limits {
            header_read_timeout: Duration::MAX,
            idle_timeout: Duration::MAX,
            request_timeout: Duration::MAX,
            ..limits(8, WhenFull::Wait)
        },
        Duration::ZERO,
    );
    let (status, closed) = h2_request_then_idle(&server, "/", IDLE * 3);
    assert_eq!(status, 200);
    assert_eq!(closed, None, "closed although no deadline applies");
    let _silent = stalled_connection(server.addr, b"").unwrap();
    let stopping = Instant::now();
    assert!(server.stop(DRAIN * 10), "serve did not return");
    assert!(
        stopping.elapsed() < DRAIN * 5,
        "the stop took {:?}",
        stopping.elapsed()
    );
}

/// Stops a server 200 ms into a request to `/slow` that takes `handling`:
/// how long the stop took, and what the client got.
fn stop_during_a_request(handling: Duration) -> (Duration, Option<String>, SocketAddr) {
    let mut server = Server::start(limits(8, WhenFull::Wait), handling);
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || get(addr, "/slow", Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(200));
    let stopping = Instant::now();
    assert!(server.stop(Duration::from_secs(30)), "serve did not return");
    let took = stopping.elapsed();
    (took, in_flight.join().unwrap(), addr)
}

#[test]
fn a_stop_closes_what_is_still_in_flight_when_the_drain_ends() {
    let (took, answer, _) = stop_during_a_request(Duration::from_secs(60));
    assert!(
        took >= DRAIN / 2 && took < DRAIN * 4,
        "the stop took {took:?}"
    );
    // The client sees its connection closed, not an answer.
    assert_eq!(answer, None);
}

#[test]
fn when_full_a_client_waits_for_a_slot_and_is_served() {
    let mut server = Server::start(limits(4, WhenFull::Wait), Duration::ZERO);
    let mut slow: Vec<TcpStream> = (0..4)
        .map(|_| half_sent_request(server.addr, "/").unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Every slot is taken: no answer while the slow clients hold them.
    assert_eq!(get(server.addr, "/", HEADERS_DUE / 2), None);
    // Once they are cut at the deadline, the next client is served.
    let answer = get(server.addr, "/", HEADERS_DUE * 10).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("ok"), "{answer:?}");
    for s in &mut slow {
        assert!(closed_by_server(s, Duration::from_secs(5)));
    }
    assert!(server.stop(Duration::from_secs(5)));
}

#[test]
fn when_full_with_close_a_client_is_closed_at_once_and_the_bound_holds() {
    let mut server = Server::start(limits(4, WhenFull::Close), Duration::ZERO);
    let _held: Vec<TcpStream> = (0..4)
        .map(|_| half_sent_request(server.addr, "/").unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // The fifth is accepted and closed, well before any deadline.
    let mut fifth = TcpStream::connect(server.addr).unwrap();
    let started = Instant::now();
    assert!(closed_by_server(&mut fifth, HEADERS_DUE / 2));
    assert!(started.elapsed() < HEADERS_DUE);
    // After the held ones are cut, clients are served again.
    std::thread::sleep(HEADERS_DUE * 2);
    let answer = get(server.addr, "/", Duration::from_secs(5)).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(server.stop(Duration::from_secs(5)));
}

#[test]
fn a_stop_lets_the_request_in_flight_finish_and_takes_no_new_connection() {
    let (took, answer, addr) = stop_during_a_request(Duration::from_millis(800));
    // serve returned only once the request was answered (≈ 600 ms left
    // when the stop came).
    assert!(took >= Duration::from_millis(300), "{took:?}");
    let answer = answer.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    // No one listens any more.
    assert!(TcpStream::connect(addr).is_err());
}

/// The request budget holds across the streams of an HTTP/2 connection:
/// with a budget of 4, eight requests at once on one connection get four
/// answers and four 503s with `Retry-After`, and the budget is free again
/// once the four are answered.
#[test]
fn the_request_budget_holds_across_http2_streams() {
    let mut server = Server::start(
        Limits {
            max_requests: 4,
            ..limits(8, WhenFull::Wait)
        },
        Duration::from_millis(600),
    );
    let addr = server.addr;
    let statuses = server.rt.block_on(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let send = |path: &'static str| {
            let mut sender = sender.clone();
            async move {
                let req = hyper::Request::get(format!("http://{addr}{path}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let response = sender.send_request(req).await.unwrap();
                let retry_after = response.headers().get("retry-after").cloned();
                (response.status().as_u16(), retry_after)
            }
        };
        let at_once: Vec<_> = (0..8).map(|_| tokio::spawn(send("/slow"))).collect();
        let mut statuses = Vec::new();
        for r in at_once {
            statuses.push(r.await.unwrap());
        }
        statuses.push(send("/").await);
        statuses
    });
    let answered = statuses[..8].iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = statuses[..8].iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!((answered, refused.len()), (4, 4), "{statuses:?}");
    assert!(
        refused
            .iter()
            .all(|(_, r)| r.as_ref().is_some_and(|v| v == "1"))
    );
    assert_eq!(statuses[8].0, 200, "the budget is free again");
    assert!(server.stop(Duration::from_secs(5)));
}

#[test]
fn http2_with_prior_knowledge_is_served() {
    let mut server = Server::start(limits(8, WhenFull::Wait), Duration::ZERO);
    let (status, _) = h2_request_then_idle(&server, "/", Duration::ZERO);
    assert_eq!(status, 200);
    assert!(server.stop(Duration::from_secs(5)));
}
