//! The accept loop every HTTP server of the workspace runs: engines, the
//! OTLP receiver, the viewer's page and telemetry's Prometheus endpoint.
//!
//! `axum::serve` and a bare hyper connection put no bound on how many
//! connections are open at once, and give a client forever to start a
//! request: a connection that sends nothing, half an HTTP/2 preface, or a
//! preface and no settings, holds its file descriptor (and with a bound,
//! its slot) for good, and an HTTP/2 one stalls a graceful stop. [`serve`]
//! adds the limits of [`Limits`] and otherwise serves as `axum::serve`
//! does: HTTP/1.1 with upgrades (for WebSockets) and HTTP/2, and, once
//! `stop` completes, no new connections while those in flight finish.
//!
//! One difference: HTTP/2 does not offer extended CONNECT (RFC 8441,
//! WebSockets inside an HTTP/2 connection), so clients open WebSockets with
//! an HTTP/1.1 upgrade, as the RFC has them do when a server does not
//! advertise it. An upgraded HTTP/1.1 connection leaves the server and its
//! deadlines; a tunnel inside an HTTP/2 connection would share that
//! connection's idle deadline and be cut with it.
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

mod activity;

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::activity::{Activity, Budget, Order, Seen, Tracked};

/// Connections a server serves at once unless told otherwise.
pub const MAX_CONNECTIONS: usize = 1024;
/// A request must start within this unless told otherwise.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in flight is closed after this unless told
/// otherwise.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection whose requests make no progress is closed after this
/// unless told otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests in flight at a stop get this long unless told otherwise.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed accept (out of file descriptors): wait, do not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a server holds for its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Requests in flight at once, over all connections; past it a request
    /// is answered 503 with `Retry-After: 1` without reaching the service.
    /// An HTTP/2 connection carries up to 200 requests at once, so the
    /// connection bound alone would not bound the work; the default lets
    /// HTTP/2 clients together have as many requests in flight as
    /// HTTP/1.1 clients can, one per connection.
    pub max_requests: usize,
    /// A new connection must have sent a whole request head within this
    /// (whatever its protocol: nothing at all, half an HTTP/2 preface and
    /// a preface without settings all count as no request), and an
    /// HTTP/1.1 request's headers must arrive within it, also between
    /// requests on a kept-alive connection. So a client that sends half a
    /// request cannot hold a connection.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight (an HTTP/2 one between
    /// requests, say) is closed after this. An upgraded connection (a
    /// WebSocket) is no longer the server's and is not timed.
    pub idle_timeout: Duration,
    /// A connection with requests in flight and none ending for this long
    /// is closed: a request body that trickles in (hyper times headers,
    /// not bodies) or a handler that hangs does not hold a connection for
    /// good.
    pub request_timeout: Duration,
    /// After `stop`, requests in flight get this long to finish; then their
    /// connections are closed.
    pub drain_timeout: Duration,
    /// What becomes of a connection that arrives when all are taken.
    pub when_full: WhenFull,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            max_requests: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            drain_timeout: DRAIN_TIMEOUT,
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
/// until `stop` completes, then stops accepting, asks every connection to
/// close once its requests are answered (HTTP/1.1 after the current
/// request, HTTP/2 with GOAWAY), and returns when all have closed or
/// [`Limits::drain_timeout`] has passed and the rest were closed.
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
    // Semaphore permits are u32-counted when waited for all at once.
    let slots = limits.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(slots));
    let budget = Arc::new(Budget::new(limits.max_requests.max(1)));
    let (stopping, stop_heard) = watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
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
        let connection = serve_connection(
            &builder,
            stream,
            make_service(),
            Arc::clone(&budget),
            limits,
            stop_heard.clone(),
        );
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection ends by its drain deadline, giving its slot back.
    let _ = permits.acquire_many(slots as u32).await;
}

/// One connection, closed when its deadlines say (see [`Limits`]): no
/// request started in time (closed at once), idle too long, or still open
/// when the drain after a stop ends. An idle connection is closed
/// gracefully first and dropped if it has not closed one
/// `header_read_timeout` later. The deadlines are kept by a watchdog task
/// that sleeps until each is due, so serving a request polls nothing but
/// the connection and one flag.
fn serve_connection<S, B>(
    builder: &Builder<TokioExecutor>,
    stream: TcpStream,
    service: S,
    budget: Arc<Budget>,
    limits: Limits,
    stop_heard: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new(budget));
    let service = Tracked::new(service, Arc::clone(&activity));
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .into_owned();
    async move {
        let watchdog = tokio::spawn(watch_over(Arc::clone(&activity), limits, stop_heard));
        let mut connection = std::pin::pin!(connection);
        let mut obeyed = Order::Serve;
        loop {
            tokio::select! {
                biased;
                // Served to the end, an error, or handed to an upgrade.
                _ = connection.as_mut() => break,
                order = activity.next_order(obeyed) => {
                    obeyed = order;
                    match order {
                        Order::Serve => {}
                        Order::CloseGracefully => connection.as_mut().graceful_shutdown(),
                        Order::Drop => break, // the socket closes as it is dropped
                    }
                }
            }
        }
        watchdog.abort();
    }
}

/// Keeps one connection's deadlines: orders it to close when no request
/// started in time, when it has been idle for `idle_timeout`, when its
/// requests have made no progress (none ended, no response data sent) for
/// `request_timeout`, and when the drain after a stop ends. The watchdog
/// looks only when a deadline is due and measures from the look that last
/// saw a change, so each deadline is met within twice its length.
async fn watch_over(
    activity: Arc<Activity>,
    limits: Limits,
    mut stop_heard: watch::Receiver<bool>,
) {
    // However the watchdog ends (a deadline, aborted once the connection
    // has ended, or a panic), the connection goes with it: it never
    // outlives its deadlines, nor holds a stop.
    let _last_word = DropOnExit(Arc::clone(&activity));
    let opened = Instant::now();
    // As opened: the first look sees any request that started.
    let mut seen = Seen::default();
    let mut due = after(opened, limits.header_read_timeout);
    let mut closing_idle = false;
    let mut drain_end: Option<Instant> = None;
    loop {
        let wake_at = drain_end.map_or(due, |d| d.min(due));
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            changed = stop_heard.changed(), if drain_end.is_none() => {
                // A stop, or the server gone: either way, drain.
                if changed.is_err() || *stop_heard.borrow() {
                    activity.order(Order::CloseGracefully);
                    drain_end = Some(after(Instant::now(), limits.drain_timeout));
                }
                continue;
            }
        }
        let now = Instant::now();
        if drain_end.is_some_and(|end| now >= end) {
            return;
        }
        if now < due {
            continue;
        }
        let latest = activity.seen();
        if !latest.started() {
            // No request to be graceful about.
            return;
        }
        if latest != seen {
            // A request started or ended, or a response sent data, since
            // the last look. (Closing an idle connection gracefully, a
            // request the client sent before it saw the GOAWAY is served.)
            seen = latest;
            let wait = if latest.in_flight > 0 {
                limits.request_timeout
            } else if closing_idle {
                limits.header_read_timeout
            } else {
                limits.idle_timeout
            };
            due = after(now, wait);
            continue;
        }
        if latest.in_flight > 0 || closing_idle {
            // No progress for a whole request timeout (a body trickling
            // in, a handler that hangs: waiting for it gracefully would
            // wait for ever), or asked to close and still open.
            return;
        }
        // Idle for a whole idle timeout.
        activity.order(Order::CloseGracefully);
        closing_idle = true;
        due = after(now, limits.header_read_timeout);
    }
}

/// Orders its connection dropped when it is dropped.
struct DropOnExit(Arc<Activity>);

impl Drop for DropOnExit {
    fn drop(&mut self) {
        self.0.order(Order::Drop);
    }
}

/// `now + wait`, or a time too far to matter when that overflows (a
/// timeout of `Duration::MAX` means "never").
fn after(now: Instant, wait: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    now.checked_add(wait)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}
