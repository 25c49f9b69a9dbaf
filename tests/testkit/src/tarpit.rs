//! An unresponsive collector: accepts TCP connections and never reads from
//! or answers them — the hardest collector failure for an exporter (no
//! refusal to fail fast on, only timeouts).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{IoContext, Result};

/// Accepted sockets stay open until the tarpit is dropped, which stops the
/// accept thread and closes them.
#[derive(Debug)]
pub struct Tarpit {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Tarpit {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> Result<Tarpit> {
        let listener = TcpListener::bind("127.0.0.1:0").ctx(|| "binding the tarpit".to_string())?;
        listener
            .set_nonblocking(true)
            .ctx(|| "making the tarpit non-blocking".to_string())?;
        let addr = listener
            .local_addr()
            .ctx(|| "reading the tarpit's address".to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
            std::thread::Builder::new()
                .name("tarpit".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((socket, _)) => {
                                if let Ok(mut all) = accepted.lock() {
                                    all.push(socket);
                                }
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                })
                .ctx(|| "starting the tarpit thread".to_string())?
        };
        Ok(Tarpit {
            addr,
            stop,
            accepted,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many connections it has swallowed so far.
    pub fn connections(&self) -> usize {
        self.accepted.lock().map(|a| a.len()).unwrap_or(0)
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(mut a) = self.accepted.lock() {
            a.clear();
        }
    }
}
