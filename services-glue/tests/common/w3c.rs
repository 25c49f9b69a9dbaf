//! Real servers for the W3C Trace Context tests: a downstream recorder that
//! keeps every raw header line it receives, raw HTTP/1.1 requests (so a test
//! controls each header line, repeated ones included), and axum services
//! run on their own thread under their own telemetry.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const PARENT_SPAN: &str = "00f067aa0ba902b7";
pub const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub const OTHER_PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The header lines of one request, names lower-cased, in order.
pub type Lines = Vec<(String, String)>;

/// Every value of header `name`, one per line received.
pub fn values<'a>(lines: &'a Lines, name: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn read_head(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut byte).unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    String::from_utf8_lossy(&buf).to_string()
}

fn header_lines(head: &str) -> Lines {
    head.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// A downstream HTTP/1.1 server answering `200 ok` to anything and keeping
/// the raw header lines of every request.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Lines>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let head = read_head(&mut conn);
                    seen.lock().unwrap().push(header_lines(&head));
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                }
            })
        };
        Recorder {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Lines> {
        self.seen.lock().unwrap().clone()
    }

    /// The one request received since the last call (panics otherwise).
    pub fn take_one(&self) -> Lines {
        let mut seen = self.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen.remove(0)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `GET path` with exactly `lines` as extra header lines (repeated
/// names stay separate lines); returns the status and the raw response.
pub fn raw_get(addr: SocketAddr, path: &str, lines: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    for (k, v) in lines {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    (buf[9..12].parse().unwrap(), buf)
}

/// The trace id and parent id of a `traceparent` value.
pub fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].to_string(), parts[2].to_string())
}

/// `n` distinct members `bar01=01,...`.
pub fn members(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("bar{i:02}={i:02}")).collect()
}

#[cfg(feature = "axum")]
#[allow(unused_imports)] // used by the axum test binaries only
pub use served::*;

#[cfg(feature = "axum")]
mod served {
    use super::*;

    /// An axum app served on its own thread, with `dispatch` as that
    /// thread's default subscriber (so each service has its own telemetry).
    pub struct Served {
        pub addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    }

    pub fn serve(dispatch: tracing::Dispatch, app: axum::Router) -> Served {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            tracing::dispatcher::with_default(&dispatch, || {
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    addr_tx.send(listener.local_addr().unwrap()).unwrap();
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                        .unwrap();
                })
            });
        });
        Served {
            addr: addr_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    impl Drop for Served {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A builder of telemetry into `sink`, configured by nothing from the
/// process environment (so a developer's `OTEL_*` cannot change a case).
pub fn in_memory_builder(
    service: &str,
    sink: &telemetry::testing::InMemory,
) -> telemetry::TelemetryBuilder {
    telemetry::Telemetry::builder(service)
        .with_env(Vec::<(String, String)>::new())
        .with_in_memory(sink)
}

/// [`in_memory_builder`], started without installing anything.
pub fn in_memory_telemetry(
    service: &str,
    sink: &telemetry::testing::InMemory,
) -> telemetry::Telemetry {
    in_memory_builder(service, sink).build().unwrap()
}
