//! A notification sink: an HTTP server on 127.0.0.1 that answers every POST
//! with 200 and keeps what it received, for tests that follow an alert all
//! the way to Slack's or PagerDuty's door.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// Largest request body kept (Alertmanager's are a few kilobytes).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// One received request.
#[derive(Clone, Debug)]
pub struct Received {
    /// Request path, e.g. `/slack`.
    pub path: String,
    /// The body, parsed as JSON (`Null` if it is not JSON).
    pub json: serde_json::Value,
    /// The raw body.
    pub body: String,
}

/// A running sink; stops on drop.
#[derive(Debug)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> Result<WebhookReceiver> {
        let listener =
            TcpListener::bind("127.0.0.1:0").ctx(|| "binding the webhook receiver".to_string())?;
        let addr = listener
            .local_addr()
            .ctx(|| "reading the webhook receiver's address".to_string())?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream
                        && let Some(r) = serve(stream)
                        && let Ok(mut all) = received.lock()
                    {
                        all.push(r);
                    }
                }
            })
        };
        Ok(WebhookReceiver {
            addr,
            received,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits until some received request satisfies `pred`; returns it.
    pub fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Result<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.received().into_iter().find(|r| pred(r)) {
                return Ok(r);
            }
            if Instant::now() > deadline {
                let paths: Vec<String> = self
                    .received()
                    .iter()
                    .map(|r| format!("{} {}", r.path, r.body))
                    .collect();
                return Err(Error::Timeout {
                    what: "a matching webhook request".into(),
                    timeout,
                    last: format!("received: {paths:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn serve(mut stream: TcpStream) -> Option<Received> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_string();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length.min(MAX_BODY)];
    reader.read_exact(&mut body).ok()?;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let body = String::from_utf8_lossy(&body).into_owned();
    Some(Received {
        path,
        json: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        body,
    })
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
