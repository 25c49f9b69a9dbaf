//! The accept loop every HTTP server of the workspace runs: engines, the
//! OTLP receiver, the viewer's page and telemetry's Prometheus endpoint.
//!
//! `axum::serve` and a bare hyper connection put no bound on how many
//! connections are open at once and give a client forever to send its
//! headers, so a few hundred half-sent requests hold as many of a service's
//! file descriptors for good. [`serve`] adds both limits ([`Limits`]) and
//! otherwise serves as `axum::serve` does: HTTP/1.1 with upgrades (for
//! WebSockets), HTTP/2 with extended CONNECT, and, once `stop` completes,
//! no new connections while those in flight finish.
//!
//! ```
//! use std::convert::Infallible;
//! use bounded_serve::{Limits, serve};
//!
//! # fn main() -> std::io::Result<()> {
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let hello = || {
//!         hyper::service::service_fn(|_req| async {
//!             Ok::<_, Infallible>(hyper::Response::new(String::from("hello")))
//!         })
//!     };
//!     // Stops at once here; a service passes its shutdown signal.
//!     serve(listener, hello, Limits::default(), async {}).await;
//!     Ok(())
//! })
//! # }
//! ```

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// Connections a server serves at once unless told otherwise.
pub const MAX_CONNECTIONS: usize = 1024;
/// A request's headers must arrive within this unless told otherwise.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed accept (out of file descriptors): wait, do not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a server holds for its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// An HTTP/1.1 request's headers must arrive within this, and a
    /// keep-alive connection idle between requests is closed after it, so
    /// a client that sends half a request cannot hold a connection. An
    /// upgraded connection (a WebSocket) is not timed.
    pub header_read_timeout: Duration,
    /// What becomes of a connection that arrives when all are taken.
    pub when_full: WhenFull,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            when_full: WhenFull::Wait,
        }
    }
}

/// What a server does with a connection beyond [`Limits::max_connections`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Leave it in the kernel's accept queue until a connection ends: it
    /// takes no file descriptor of the process meanwhile. For servers whose
    /// clients wait (services, an OTLP receiver).
    Wait,
    /// Accept and close it at once: the client learns now and retries. For
    /// a scrape endpoint, where an answer late is an answer lost.
    Close,
}

/// Serves each accepted connection with a service from `make_service`
/// until `stop` completes, then stops accepting and waits for the
/// connections in flight to finish (HTTP/1.1 ones close after their
/// current request; HTTP/2 ones are sent GOAWAY).
pub async fn serve<M, S, B>(
    listener: TcpListener,
    mut make_service: M,
    limits: Limits,
    stop: impl Future<Output = ()>,
) where
    M: FnMut() -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let mut stop = std::pin::pin!(stop);
    loop {
        let permit = match limits.when_full {
            WhenFull::Wait => tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(p) => Some(p),
                    Err(_) => break,
                },
                () = &mut stop => break,
            },
            WhenFull::Close => None,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let permit = match permit {
            Some(p) => p,
            None => match Arc::clone(&permits).try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    drop(stream);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), make_service())
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Connection errors (hang-ups, garbage, a header deadline
            // missed) end only that connection.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
