//! The OTLP receiver: gRPC and HTTP/protobuf listeners on a dedicated thread + shared store.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::io::{self, Read as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf as _, BufMut as _, Bytes};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::model::{
    self, ReceivedLog, ReceivedMetric, ReceivedRequest, ReceivedSpan, RequestOutcome, Signal,
    Transport,
};

/// Largest accepted request body (compressed or decompressed), to bound memory on bad input.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

const GRPC_TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const GRPC_METRICS_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const GRPC_LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// In-process OTLP receiver for tests: gRPC and HTTP/protobuf on 127.0.0.1, ephemeral ports.
///
/// Everything received is decoded into the flattened model ([`ReceivedSpan`],
/// [`ReceivedMetric`], [`ReceivedLog`]) and kept until [`OtlpReceiver::clear`].
/// Serving stops on [`OtlpReceiver::shutdown`] or drop.
pub struct OtlpReceiver {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown_tx: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = self.shared.lock();
        f.debug_struct("OtlpReceiver")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
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
    /// use telemetry::testing::OtlpReceiver;
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
        let grpc_std = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, grpc_port))?;
        let http_std = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, http_port))?;
        let grpc_addr = grpc_std.local_addr()?;
        let http_addr = http_std.local_addr()?;
        grpc_std.set_nonblocking(true)?;
        http_std.set_nonblocking(true)?;

        let shared = Arc::new(Shared::default());
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread_shared = Arc::clone(&shared);
        // The runtime is created and dropped on the receiver thread only: dropping a runtime
        // inside a caller's async context would panic.
        let thread = std::thread::Builder::new()
            .name("otlp-test-receiver".to_string())
            .spawn(move || {
                let setup = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        let listeners = {
                            let _guard = rt.enter();
                            TcpListener::from_std(grpc_std)
                                .and_then(|g| Ok((g, TcpListener::from_std(http_std)?)))
                        };
                        listeners.map(|l| (rt, l))
                    });
                let (rt, (grpc, http)) = match setup {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                rt.block_on(async move {
                    tokio::select! {
                        _ = shutdown_rx => {}
                        () = accept_loop(grpc, Arc::clone(&thread_shared), Listener::Grpc) => {}
                        () = accept_loop(http, thread_shared, Listener::Http) => {}
                    }
                });
                // Dropping `rt` here cancels all connection tasks.
            })?;

        let ready = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| {
                Err(io::Error::other(
                    "OTLP test receiver thread did not start within 10s",
                ))
            });
        let receiver = OtlpReceiver {
            shared,
            grpc_addr,
            http_addr,
            shutdown_tx: Some(shutdown_tx),
            thread: Some(thread),
        };
        // On error, dropping `receiver` signals and joins the thread.
        ready.map(|()| receiver)
    }

    /// Base URL for OTLP/gRPC exporters, e.g. `http://127.0.0.1:4317`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Base URL for OTLP/HTTP exporters (signal paths `/v1/traces`, `/v1/metrics`, `/v1/logs`
    /// are appended by the exporter or by you).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Socket address of the gRPC listener, for clients that want an address, not a URL.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Socket address of the HTTP listener, for clients that want an address, not a URL.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
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

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Default)]
struct Store {
    spans: Vec<ReceivedSpan>,
    metrics: Vec<ReceivedMetric>,
    logs: Vec<ReceivedLog>,
    requests: Vec<ReceivedRequest>,
    failing: bool,
    /// Bumped on every change so waiters know when to re-check.
    generation: u64,
}

#[derive(Default)]
struct Shared {
    store: Mutex<Store>,
    changed: Condvar,
}

enum Decoded {
    Traces(Vec<ReceivedSpan>),
    Metrics(Vec<ReceivedMetric>),
    Logs(Vec<ReceivedLog>),
}

impl Decoded {
    fn decode(signal: Signal, transport: Transport, body: &[u8]) -> Result<Decoded, String> {
        let err = |e: prost::DecodeError| format!("invalid OTLP protobuf: {e}");
        Ok(match signal {
            Signal::Traces => Decoded::Traces(model::spans_from(
                &ExportTraceServiceRequest::decode(body).map_err(err)?,
                transport,
            )),
            Signal::Metrics => Decoded::Metrics(model::metrics_from(
                &ExportMetricsServiceRequest::decode(body).map_err(err)?,
                transport,
            )),
            Signal::Logs => Decoded::Logs(model::logs_from(
                &ExportLogsServiceRequest::decode(body).map_err(err)?,
                transport,
            )),
        })
    }

    fn len(&self) -> usize {
        match self {
            Decoded::Traces(v) => v.len(),
            Decoded::Metrics(v) => v.len(),
            Decoded::Logs(v) => v.len(),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panicking test thread must not make every later assertion panic too.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one request; stores its data unless it is invalid or the receiver is failing.
    fn ingest(
        &self,
        signal: Signal,
        transport: Transport,
        headers: BTreeMap<String, String>,
        decoded: Option<Decoded>,
    ) -> RequestOutcome {
        let mut store = self.lock();
        let (items, outcome) = match decoded {
            None => (0, RequestOutcome::Invalid),
            Some(d) if store.failing => (d.len(), RequestOutcome::Rejected),
            Some(d) => {
                let n = d.len();
                match d {
                    Decoded::Traces(v) => store.spans.extend(v),
                    Decoded::Metrics(v) => store.metrics.extend(v),
                    Decoded::Logs(v) => store.logs.extend(v),
                }
                (n, RequestOutcome::Accepted)
            }
        };
        store.requests.push(ReceivedRequest {
            signal,
            transport,
            headers,
            items,
            outcome,
        });
        store.generation = store.generation.wrapping_add(1);
        drop(store);
        self.changed.notify_all();
        outcome
    }
}

fn capture_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

fn success_body(signal: Signal) -> Bytes {
    Bytes::from(match signal {
        Signal::Traces => ExportTraceServiceResponse::default().encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceResponse::default().encode_to_vec(),
        Signal::Logs => ExportLogsServiceResponse::default().encode_to_vec(),
    })
}

/// Which protocol a socket of the receiver serves (a [`Transport`] that
/// has a listener).
#[derive(Debug, Clone, Copy)]
enum Listener {
    Grpc,
    Http,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, protocol: Listener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // E.g. EMFILE: back off briefly instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let io = TokioIo::new(stream);
            // Connection errors (client hang-ups, garbage) only end that connection.
            let _ = match protocol {
                Listener::Grpc => {
                    let svc =
                        hyper::service::service_fn(move |req| grpc_route(Arc::clone(&shared), req));
                    builder.serve_connection(io, svc).await
                }
                Listener::Http => {
                    let svc =
                        hyper::service::service_fn(move |req| http_route(Arc::clone(&shared), req));
                    builder.serve_connection(io, svc).await
                }
            };
        });
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC

/// Passes message bytes through untouched, so decoding (and its error status) is ours:
/// tonic's prost codec would answer malformed messages with INTERNAL instead of INVALID_ARGUMENT.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

struct ExportHandler {
    shared: Arc<Shared>,
    signal: Signal,
    headers: BTreeMap<String, String>,
}

impl tonic::server::UnaryService<Bytes> for ExportHandler {
    type Response = Bytes;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let body = request.into_inner();
        let headers = std::mem::take(&mut self.headers);
        let result = match Decoded::decode(self.signal, Transport::Grpc, &body) {
            Err(msg) => {
                self.shared
                    .ingest(self.signal, Transport::Grpc, headers, None);
                Err(tonic::Status::invalid_argument(msg))
            }
            Ok(decoded) => {
                match self
                    .shared
                    .ingest(self.signal, Transport::Grpc, headers, Some(decoded))
                {
                    RequestOutcome::Accepted => Ok(tonic::Response::new(success_body(self.signal))),
                    _ => Err(tonic::Status::unavailable(
                        "OtlpReceiver::set_failing(true) is in effect",
                    )),
                }
            }
        };
        std::future::ready(result)
    }
}

async fn grpc_route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<tonic::body::Body>, Infallible> {
    let signal = match req.uri().path() {
        GRPC_TRACES_PATH => Signal::Traces,
        GRPC_METRICS_PATH => Signal::Metrics,
        GRPC_LOGS_PATH => Signal::Logs,
        other => {
            return Ok(
                tonic::Status::unimplemented(format!("unknown gRPC method {other}")).into_http(),
            );
        }
    };
    let handler = ExportHandler {
        shared,
        signal,
        headers: capture_headers(req.headers()),
    };
    let mut grpc = tonic::server::Grpc::new(RawCodec)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(MAX_BODY_BYTES);
    Ok(grpc.unary(handler, req).await)
}

// ---------------------------------------------------------------------------------------------
// HTTP/protobuf

fn plain(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(msg.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn read_limited(mut reader: impl io::Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .by_ref()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress body: {e}"))?;
    if out.len() > MAX_BODY_BYTES {
        return Err(format!("decompressed body exceeds {MAX_BODY_BYTES} bytes"));
    }
    Ok(out)
}

async fn http_route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let signal = match req.uri().path() {
        "/v1/traces" => Signal::Traces,
        "/v1/metrics" => Signal::Metrics,
        "/v1/logs" => Signal::Logs,
        _ => return Ok(plain(StatusCode::NOT_FOUND, "unknown OTLP path")),
    };
    if req.method() != Method::POST {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "only POST is supported");
        resp.headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("POST"));
        return Ok(resp);
    }
    let headers = capture_headers(req.headers());
    let invalid = |status: StatusCode, msg: &str, headers| {
        shared.ingest(signal, Transport::Http, headers, None);
        Ok(plain(status, msg))
    };

    let content_type = headers.get("content-type").map_or("", String::as_str);
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-protobuf") {
        return invalid(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only application/x-protobuf is supported",
            headers,
        );
    }
    let encoding = headers
        .get("content-encoding")
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(encoding.as_str(), "" | "identity" | "gzip" | "zstd") {
        return invalid(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content-encoding (identity, gzip and zstd are supported)",
            headers,
        );
    }

    let raw = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return invalid(
                StatusCode::BAD_REQUEST,
                &format!("cannot read body: {e}"),
                headers,
            );
        }
    };
    let body = match encoding.as_str() {
        "gzip" => read_limited(flate2::read::GzDecoder::new(&raw[..])).map(Bytes::from),
        "zstd" => zstd::stream::read::Decoder::new(&raw[..])
            .map_err(|e| format!("cannot decompress body: {e}"))
            .and_then(read_limited)
            .map(Bytes::from),
        _ => Ok(raw),
    };
    let decoded = body.and_then(|b| Decoded::decode(signal, Transport::Http, &b));
    let decoded = match decoded {
        Ok(d) => d,
        Err(msg) => return invalid(StatusCode::BAD_REQUEST, &msg, headers),
    };
    Ok(
        match shared.ingest(signal, Transport::Http, headers, Some(decoded)) {
            RequestOutcome::Accepted => {
                let mut resp = Response::new(Full::new(success_body(signal)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/x-protobuf"),
                );
                resp
            }
            _ => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "OtlpReceiver::set_failing(true) is in effect",
            ),
        },
    )
}
