//! The test recorder: an [`OtlpServer`] whose sink keeps everything received
//! (up to a bound) and lets tests wait for it.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::model::{ReceivedLog, ReceivedMetric, ReceivedRequest, ReceivedSpan, RequestOutcome};
use crate::server::{Batch, OtlpServer, RequestInfo, ServerConfig, Sink};

/// Items of each kind the recorder keeps; past it the oldest tenth goes (counted
/// in [`OtlpReceiver::evicted`]), so a long soak test cannot exhaust memory.
const MAX_ITEMS: usize = 1_000_000;

/// Largest accepted request body (compressed or decompressed): tests send big batches on purpose.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// In-process OTLP receiver for tests: gRPC and HTTP/protobuf on 127.0.0.1, ephemeral ports.
///
/// Everything received is decoded into the flattened model ([`ReceivedSpan`],
/// [`ReceivedMetric`], [`ReceivedLog`]) and kept until [`OtlpReceiver::clear`]
/// (at most a million of each; the oldest go first).
/// Serving stops on [`OtlpReceiver::shutdown`] or drop.
pub struct OtlpReceiver {
    shared: Arc<Shared>,
    server: OtlpServer,
}

impl fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = self.shared.lock();
        f.debug_struct("OtlpReceiver")
            .field("grpc_addr", &self.server.grpc_addr())
            .field("http_addr", &self.server.http_addr())
            .field("spans", &store.spans.len())
            .field("metrics", &store.metrics.len())
            .field("logs", &store.logs.len())
            .field("requests", &store.requests.len())
            .field("failing", &store.failing)
            .finish()
    }
}

impl OtlpReceiver {
    /// Binds both listeners and serves them on a dedicated thread with its own tokio runtime,
    /// so it works from sync tests and from inside any tokio runtime flavour (current_thread too).
    pub fn start() -> io::Result<OtlpReceiver> {
        OtlpReceiver::start_on(0, 0)
    }

    /// Like [`OtlpReceiver::start`], but binds 127.0.0.1 on the given ports (`0` picks a free
    /// one). Use it to bring a "collector" back on the address an exporter already points at,
    /// after a previous receiver on the same ports was shut down:
    ///
    /// ```
    /// use otlp_receiver::OtlpReceiver;
    ///
    /// let first = OtlpReceiver::start()?;
    /// let (grpc, http) = (first.grpc_addr().port(), first.http_addr().port());
    /// first.shutdown(); // the collector dies...
    /// let again = OtlpReceiver::start_on(grpc, http)?; // ...and comes back on the same ports
    /// assert_eq!(again.grpc_addr().port(), grpc);
    /// assert_eq!(again.http_addr().port(), http);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// When a port is still in use (e.g. the previous receiver is alive).
    pub fn start_on(grpc_port: u16, http_port: u16) -> io::Result<OtlpReceiver> {
        let shared = Arc::new(Shared::default());
        let config = ServerConfig {
            grpc: SocketAddr::from((Ipv4Addr::LOCALHOST, grpc_port)),
            http: SocketAddr::from((Ipv4Addr::LOCALHOST, http_port)),
            max_body_bytes: MAX_BODY_BYTES,
            // The largest request, decompressed and decoded (7-25 times its
            // protobuf), with room to spare: a test tool, not a shield.
            max_bytes_in_flight: 32 * MAX_BODY_BYTES,
        };
        let server = OtlpServer::start(config, Arc::clone(&shared) as Arc<dyn Sink>)?;
        Ok(OtlpReceiver { shared, server })
    }

    /// Base URL for OTLP/gRPC exporters, e.g. `http://127.0.0.1:4317`.
    pub fn grpc_endpoint(&self) -> String {
        self.server.grpc_endpoint()
    }

    /// Base URL for OTLP/HTTP exporters (signal paths `/v1/traces`, `/v1/metrics`, `/v1/logs`
    /// are appended by the exporter or by you).
    pub fn http_endpoint(&self) -> String {
        self.server.http_endpoint()
    }

    /// Socket address of the gRPC listener, for clients that want an address, not a URL.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.server.grpc_addr()
    }

    /// Socket address of the HTTP listener, for clients that want an address, not a URL.
    pub fn http_addr(&self) -> SocketAddr {
        self.server.http_addr()
    }

    /// All spans received so far (both transports, arrival order).
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.lock().spans.clone()
    }

    /// All metrics received so far (both transports, arrival order; periodic exports repeat).
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.shared.lock().metrics.clone()
    }

    /// All log records received so far (both transports, arrival order).
    pub fn logs(&self) -> Vec<ReceivedLog> {
        self.shared.lock().logs.clone()
    }

    /// Items (spans, metrics, log records, request records) dropped because
    /// the recorder passed its bound of a million of a kind.
    pub fn evicted(&self) -> usize {
        self.shared.lock().evicted
    }

    /// Metadata of every export request received (accepted, rejected and invalid), per signal
    /// and transport, to assert headers, compression, user-agent and retry counts.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Waits until `done(&spans)` is true or `timeout` passes; returns the current spans either way.
    pub fn wait_for_spans(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        self.wait_for(timeout, |s| &s.spans, done)
    }

    /// Waits until `done(&metrics)` is true or `timeout` passes; returns the current metrics either way.
    pub fn wait_for_metrics(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedMetric]) -> bool,
    ) -> Vec<ReceivedMetric> {
        self.wait_for(timeout, |s| &s.metrics, done)
    }

    /// Waits until `done(&logs)` is true or `timeout` passes; returns the current logs either way.
    pub fn wait_for_logs(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedLog]) -> bool,
    ) -> Vec<ReceivedLog> {
        self.wait_for(timeout, |s| &s.logs, done)
    }

    /// Waits until `done(&requests)` is true or `timeout` passes, e.g. to await rejected exports.
    pub fn wait_for_requests(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedRequest]) -> bool,
    ) -> Vec<ReceivedRequest> {
        self.wait_for(timeout, |s| &s.requests, done)
    }

    /// Makes subsequent exports fail (gRPC UNAVAILABLE / HTTP 503) until called with `false`,
    /// to simulate a collector outage; rejected requests still show up in [`Self::requests`].
    pub fn set_failing(&self, failing: bool) {
        self.shared.lock().failing = failing;
    }

    /// Makes subsequent exports fail as throttled, asking the exporter to wait
    /// `retry_after_secs` (HTTP 429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED with
    /// `RetryInfo`), until called with `None`; they show up in [`Self::requests`].
    pub fn set_throttling(&self, retry_after_secs: Option<u32>) {
        self.shared.lock().throttling = retry_after_secs;
    }

    /// Makes subsequent successful exports answer with `padding_bytes` bytes of padding,
    /// until called with `None`: a collector whose answers exceed what an exporter reads
    /// (4 MiB for tonic and `opentelemetry-http`). The data is stored as usual.
    pub fn set_answer_padding(&self, padding_bytes: Option<u32>) {
        self.shared.lock().answer_padding = padding_bytes;
    }

    /// Makes subsequent successful exports answer with an OTLP partial success
    /// rejecting `rejected` items, until called with `None`: as many as asked,
    /// even more than a request held, as a faulty collector might answer. The
    /// data is stored as usual.
    pub fn set_partial_rejection(&self, rejected: Option<u32>) {
        self.shared.lock().partial_rejection = rejected;
    }

    /// Forgets all received data and request metadata (the failing flag is kept).
    pub fn clear(&self) {
        let mut store = self.shared.lock();
        store.spans.clear();
        store.metrics.clear();
        store.logs.clear();
        store.requests.clear();
        store.generation = store.generation.wrapping_add(1);
        drop(store);
        self.shared.changed.notify_all();
    }

    /// Stops serving and joins the server thread (dropping the receiver does the same).
    pub fn shutdown(self) {
        drop(self);
    }

    fn wait_for<T: Clone>(
        &self,
        timeout: Duration,
        select: impl Fn(&Store) -> &Vec<T>,
        done: impl Fn(&[T]) -> bool,
    ) -> Vec<T> {
        let start = Instant::now();
        let deadline = start
            .checked_add(timeout)
            .or_else(|| start.checked_add(Duration::from_secs(3600)))
            .unwrap_or(start);
        loop {
            let (snapshot, generation) = {
                let store = self.shared.lock();
                (select(&store).clone(), store.generation)
            };
            // `done` runs without the lock held, so it may call back into the receiver.
            if done(&snapshot) || Instant::now() >= deadline {
                return snapshot;
            }
            let mut store = self.shared.lock();
            while store.generation == generation {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                store = self
                    .shared
                    .changed
                    .wait_timeout(store, remaining)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
}

#[derive(Default)]
struct Store {
    spans: Vec<ReceivedSpan>,
    metrics: Vec<ReceivedMetric>,
    logs: Vec<ReceivedLog>,
    requests: Vec<ReceivedRequest>,
    evicted: usize,
    failing: bool,
    throttling: Option<u32>,
    answer_padding: Option<u32>,
    partial_rejection: Option<u32>,
    /// Bumped on every change so waiters know when to re-check.
    generation: u64,
}

#[derive(Default)]
struct Shared {
    store: Mutex<Store>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panicking test thread must not make every later assertion panic too.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for Shared {
    /// Records one request; stores its data unless it is invalid or the receiver is failing.
    fn receive(&self, request: RequestInfo, batch: Option<Batch>) -> RequestOutcome {
        let mut store = self.lock();
        let (items, outcome) = match batch {
            None => (0, RequestOutcome::Invalid),
            Some(b) if store.failing => (b.len(), RequestOutcome::Rejected),
            Some(b) if store.throttling.is_some() => (
                b.len(),
                RequestOutcome::Throttled {
                    retry_after_secs: store.throttling.unwrap_or_default(),
                },
            ),
            Some(b) => {
                let n = b.len();
                let store = &mut *store;
                let evicted = match b {
                    Batch::Spans(v) => keep_bounded(&mut store.spans, v),
                    Batch::Metrics(v) => keep_bounded(&mut store.metrics, v),
                    Batch::Logs(v) => keep_bounded(&mut store.logs, v),
                };
                store.evicted += evicted;
                let outcome = match (store.partial_rejection, store.answer_padding) {
                    (Some(rejected), _) => RequestOutcome::AcceptedPartially { rejected },
                    (None, Some(padding_bytes)) => RequestOutcome::AcceptedPadded { padding_bytes },
                    (None, None) => RequestOutcome::Accepted,
                };
                (n, outcome)
            }
        };
        let RequestInfo {
            signal,
            transport,
            headers,
            ..
        } = request;
        let request = ReceivedRequest {
            signal,
            transport,
            headers,
            items,
            outcome,
        };
        store.evicted += keep_bounded(&mut store.requests, vec![request]);
        store.generation = store.generation.wrapping_add(1);
        drop(store);
        self.changed.notify_all();
        outcome
    }
}

/// Appends `new`, dropping the oldest tenth whenever the bound is passed; returns how many went.
fn keep_bounded<T>(items: &mut Vec<T>, new: Vec<T>) -> usize {
    items.extend(new);
    if items.len() <= MAX_ITEMS {
        return 0;
    }
    let excess = items.len() - MAX_ITEMS + MAX_ITEMS / 10;
    let excess = excess.min(items.len());
    items.drain(..excess);
    excess
}
