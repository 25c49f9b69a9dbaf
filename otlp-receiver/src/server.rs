//! The OTLP listeners: gRPC and HTTP/protobuf sockets served from a dedicated
//! thread, each export request decoded and handed to a [`Sink`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf as _, BufMut as _, Bytes};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tokio::net::TcpListener;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::budget::{BudgetedBody, BudgetedRead, ByteBudget, Exhausted, Reservation};
use crate::decoded_size;
use crate::model::{
    self, ReceivedLog, ReceivedMetric, ReceivedSpan, RequestOutcome, Signal, Transport,
};
use crate::serving::ServingThread;

pub(crate) const GRPC_TRACES_PATH: &str =
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
pub(crate) const GRPC_METRICS_PATH: &str =
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
pub(crate) const GRPC_LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// What a refused export is answered with (gRPC UNAVAILABLE / HTTP 503), so the
/// exporter retries later instead of dropping.
const REFUSED: &str = "the receiver is not accepting data now; retry later";
const THROTTLED: &str = "the receiver is throttling exports; retry after the delay given";

/// RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` detail: the OTLP
/// specification's way for a gRPC server to say "retry, but not before".
fn throttled(retry_after_secs: u32) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt as _};
    tonic::Status::with_error_details(
        tonic::Code::ResourceExhausted,
        THROTTLED,
        ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(u64::from(
            retry_after_secs,
        )))),
    )
}

/// Where decoded exports go: a test recorder, a viewer's store, anything that
/// keeps or forwards telemetry. Called on the server thread: keep it short and
/// never block, or the exporters' requests wait.
pub trait Sink: Send + Sync + 'static {
    /// One export request. `batch` is `None` when the body could not be
    /// decoded (the client gets 400 / INVALID_ARGUMENT whatever is returned).
    /// Return [`RequestOutcome::Rejected`] to answer "unavailable, retry".
    fn receive(&self, request: RequestInfo, batch: Option<Batch>) -> RequestOutcome;
}

/// Who sent an export and how: the part of a request a sink may record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// Which signal the request was for.
    pub signal: Signal,
    /// Which listener received it.
    pub transport: Transport,
    /// Request headers / gRPC metadata with lowercase names; repeated headers are joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The request's protobuf message, decompressed (empty when it could not
    /// be read): what a sink forwards unchanged to another collector.
    pub body: Bytes,
}

/// The decoded content of one export request, flattened into the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    /// A trace export.
    Spans(Vec<ReceivedSpan>),
    /// A metrics export (one entry per metric, points inside).
    Metrics(Vec<ReceivedMetric>),
    /// A logs export.
    Logs(Vec<ReceivedLog>),
}

impl Batch {
    /// Decodes an OTLP protobuf export request body of the given signal.
    ///
    /// # Errors
    /// A message naming the protobuf error when the body is not a valid request.
    pub fn decode(signal: Signal, transport: Transport, body: &[u8]) -> Result<Batch, String> {
        let err = |e: prost::DecodeError| format!("invalid OTLP protobuf: {e}");
        Ok(match signal {
            Signal::Traces => Batch::Spans(model::spans_from(
                &ExportTraceServiceRequest::decode(body).map_err(err)?,
                transport,
            )),
            Signal::Metrics => Batch::Metrics(model::metrics_from(
                &ExportMetricsServiceRequest::decode(body).map_err(err)?,
                transport,
            )),
            Signal::Logs => Batch::Logs(model::logs_from(
                &ExportLogsServiceRequest::decode(body).map_err(err)?,
                transport,
            )),
        })
    }

    /// Decodes an OTLP/JSON export request body (hex ids, lowerCamelCase);
    /// returns the batch and the same request as protobuf, so every sink
    /// sees one encoding whatever the exporter chose.
    ///
    /// # Errors
    /// A message naming the JSON error when the body is not a valid request.
    pub fn decode_json(
        signal: Signal,
        transport: Transport,
        body: &[u8],
    ) -> Result<(Batch, Bytes), String> {
        decode_json_then(signal, transport, body, |_| Ok::<(), String>(()))?
    }

    /// Spans, metrics (not points) or log records in the batch.
    pub fn len(&self) -> usize {
        match self {
            Batch::Spans(v) => v.len(),
            Batch::Metrics(v) => v.len(),
            Batch::Logs(v) => v.len(),
        }
    }

    /// Whether the batch holds nothing (an empty export is valid OTLP).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes an OTLP/JSON request into prost's structs, re-encodes it as
/// protobuf, and asks `before_model` (given that protobuf) whether to go on
/// before building the model from it. The outer error is the JSON's; the
/// inner, `before_model`'s.
fn decode_json_then<E>(
    signal: Signal,
    transport: Transport,
    body: &[u8],
    before_model: impl FnOnce(&[u8]) -> Result<(), E>,
) -> Result<Result<(Batch, Bytes), E>, String> {
    match signal {
        Signal::Traces => json_then(body, before_model, |r: &ExportTraceServiceRequest| {
            Batch::Spans(model::spans_from(r, transport))
        }),
        Signal::Metrics => json_then(body, before_model, |r: &ExportMetricsServiceRequest| {
            Batch::Metrics(model::metrics_from(r, transport))
        }),
        Signal::Logs => json_then(body, before_model, |r: &ExportLogsServiceRequest| {
            Batch::Logs(model::logs_from(r, transport))
        }),
    }
}

/// [`decode_json_then`] for one signal's request type `R`.
fn json_then<R, E>(
    body: &[u8],
    before_model: impl FnOnce(&[u8]) -> Result<(), E>,
    model: impl FnOnce(&R) -> Batch,
) -> Result<Result<(Batch, Bytes), E>, String>
where
    R: serde::de::DeserializeOwned + prost::Message,
{
    let req: R = serde_json::from_slice(body).map_err(|e| format!("invalid OTLP/JSON: {e}"))?;
    let proto = req.encode_to_vec();
    Ok(before_model(&proto).map(|()| (model(&req), Bytes::from(proto))))
}

/// Where to listen and how much one request may carry.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// OTLP/gRPC address (`127.0.0.1:0` picks a free loopback port).
    pub grpc: SocketAddr,
    /// OTLP/HTTP (protobuf) address.
    pub http: SocketAddr,
    /// Largest accepted request body, compressed or decompressed: bounds the
    /// memory one hostile or broken request can take.
    pub max_body_bytes: usize,
    /// Bytes all requests in flight may hold at once over both listeners:
    /// what they declare, read, decompress and decode to (estimated before
    /// decoding, about 7–25 times the protobuf). Past it a request is
    /// refused with a retryable answer (HTTP 503 with `Retry-After`, gRPC
    /// `UNAVAILABLE`); one that would decode to more than all of it, with
    /// a 400 (`INVALID_ARGUMENT`) that asks for smaller batches.
    pub max_bytes_in_flight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        ServerConfig {
            grpc: loopback,
            http: loopback,
            max_body_bytes: 16 * 1024 * 1024,
            max_bytes_in_flight: 256 * 1024 * 1024,
        }
    }
}

/// Running OTLP listeners. Serving stops on [`OtlpServer::shutdown`] or drop.
pub struct OtlpServer {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    in_flight: Arc<ByteBudget>,
    serving: Option<ServingThread>,
}

impl fmt::Debug for OtlpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpServer")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

struct Served {
    sink: Arc<dyn Sink>,
    max_body_bytes: usize,
    in_flight: Arc<ByteBudget>,
}

impl Served {
    fn receive(
        &self,
        signal: Signal,
        transport: Transport,
        headers: BTreeMap<String, String>,
        body: Bytes,
        batch: Option<Batch>,
    ) -> RequestOutcome {
        let invalid = batch.is_none();
        let outcome = self.sink.receive(
            RequestInfo {
                signal,
                transport,
                headers,
                body,
            },
            batch,
        );
        if invalid {
            RequestOutcome::Invalid
        } else {
            outcome
        }
    }
}

impl OtlpServer {
    /// Binds both listeners and serves them on a dedicated thread with its own
    /// tokio runtime, so it works from sync code and from inside any runtime
    /// (current_thread too) without sharing its workers.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use otlp_receiver::{Batch, OtlpServer, RequestInfo, RequestOutcome, ServerConfig, Sink};
    ///
    /// struct Count(std::sync::atomic::AtomicUsize);
    /// impl Sink for Count {
    ///     fn receive(&self, _: RequestInfo, batch: Option<Batch>) -> RequestOutcome {
    ///         let n = batch.map_or(0, |b| b.len());
    ///         self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    ///         RequestOutcome::Accepted
    ///     }
    /// }
    /// let server = OtlpServer::start(ServerConfig::default(), Arc::new(Count(Default::default())))?;
    /// assert!(server.grpc_endpoint().starts_with("http://127.0.0.1:"));
    /// server.shutdown();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// When an address cannot be bound (in use, not local), the thread cannot
    /// start, or `max_bytes_in_flight` is under twice `max_body_bytes`.
    pub fn start(config: ServerConfig, sink: Arc<dyn Sink>) -> io::Result<OtlpServer> {
        if config.max_bytes_in_flight < config.max_body_bytes.saturating_mul(2) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ServerConfig: max_bytes_in_flight ({}) must be at least twice max_body_bytes \
                     ({}): one request may hold its body and as much again decompressed, and a \
                     request that could never fit would be told to retry for ever",
                    config.max_bytes_in_flight, config.max_body_bytes
                ),
            ));
        }
        let grpc = std::net::TcpListener::bind(config.grpc)?;
        let http = std::net::TcpListener::bind(config.http)?;
        let grpc_addr = grpc.local_addr()?;
        let http_addr = http.local_addr()?;
        let in_flight = ByteBudget::new(config.max_bytes_in_flight);
        let served = Arc::new(Served {
            sink,
            max_body_bytes: config.max_body_bytes,
            in_flight: Arc::clone(&in_flight),
        });
        let serving = ServingThread::start(
            "otlp-receiver",
            vec![grpc, http],
            |listeners, stop| async move {
                let Ok([grpc, http]) = <[TcpListener; 2]>::try_from(listeners) else {
                    return;
                };
                tokio::select! {
                    _ = stop => {}
                    () = accept_loop(grpc, Arc::clone(&served), Listener::Grpc) => {}
                    () = accept_loop(http, served, Listener::Http) => {}
                }
            },
        )?;
        Ok(OtlpServer {
            grpc_addr,
            http_addr,
            in_flight,
            serving: Some(serving),
        })
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

    /// Socket address of the gRPC listener.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Socket address of the HTTP listener.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Bytes the requests in flight hold now, read and decompressed.
    pub fn bytes_in_flight(&self) -> usize {
        self.in_flight.held()
    }

    /// Stops serving and joins the server thread (dropping the server does the same).
    pub fn shutdown(mut self) {
        if let Some(serving) = self.serving.take() {
            serving.stop();
        }
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

/// A 200 answer to an OTLP/HTTP export, in JSON or protobuf.
fn success(json: bool, body: Bytes) -> Response<Full<Bytes>> {
    let content_type = if json {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

/// The message of a partial success the receiver answers with.
const PARTIAL_MESSAGE: &str = "rejected by the test receiver";

/// A partial success rejecting `rejected` items, in protobuf.
fn partial_success_body(signal: Signal, rejected: u32) -> Bytes {
    let rejected = i64::from(rejected);
    let error_message = PARTIAL_MESSAGE.to_string();
    Bytes::from(match signal {
        Signal::Traces => ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
        Signal::Logs => ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
    })
}

/// A partial success rejecting `rejected` items, in OTLP/JSON (64-bit
/// integers as strings, as protobuf's JSON mapping writes them).
fn partial_success_json(signal: Signal, rejected: u32) -> Bytes {
    let field = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    Bytes::from(
        serde_json::json!({
            "partialSuccess": { field: rejected.to_string(), "errorMessage": PARTIAL_MESSAGE }
        })
        .to_string(),
    )
}

/// A success answer with `padding` bytes in an unknown field (number 15,
/// length-delimited), which a protobuf reader skips.
fn padded_success_body(signal: Signal, padding: u32) -> Bytes {
    let mut body = success_body(signal).to_vec();
    prost::encoding::encode_key(15, prost::encoding::WireType::LengthDelimited, &mut body);
    prost::encoding::encode_varint(u64::from(padding), &mut body);
    body.resize(body.len() + padding as usize, b'p');
    Bytes::from(body)
}

/// A JSON success answer with `padding` bytes in an unknown member.
fn padded_json_body(padding: u32) -> Bytes {
    let mut body = Vec::with_capacity(padding as usize + 16);
    body.extend_from_slice(b"{\"padding\":\"");
    body.resize(body.len() + padding as usize, b'p');
    body.extend_from_slice(b"\"}");
    Bytes::from(body)
}

/// Which protocol a socket of the receiver serves (a [`Transport`] that
/// has a listener).
#[derive(Debug, Clone, Copy)]
enum Listener {
    Grpc,
    Http,
}

/// Serves one listener with the workspace's connection bound and header
/// deadline (`bounded_serve::Limits::default()`: 1,024 connections, more
/// wait in the kernel's accept queue; headers due within 10 s), until the
/// serving thread stops.
async fn accept_loop(listener: TcpListener, shared: Arc<Served>, protocol: Listener) {
    let limits = bounded_serve::Limits::default();
    let stop = std::future::pending::<()>();
    match protocol {
        Listener::Grpc => {
            let service = move || {
                let shared = Arc::clone(&shared);
                hyper::service::service_fn(move |req| grpc_route(Arc::clone(&shared), req))
            };
            bounded_serve::serve(listener, service, limits, stop).await;
        }
        Listener::Http => {
            let service = move || {
                let shared = Arc::clone(&shared);
                hyper::service::service_fn(move |req| http_route(Arc::clone(&shared), req))
            };
            bounded_serve::serve(listener, service, limits, stop).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC

/// Passes message bytes through untouched, so decoding (and its error status) is ours:
/// tonic's prost codec would answer malformed messages with INTERNAL instead of INVALID_ARGUMENT.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawCodec;

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

/// The server's codec: [`RawCodec`], with each decompressed message taken
/// from the request's share of the bytes in flight as tonic hands it over
/// (the body's frames were counted compressed; an uncompressed message is
/// those same frames, so it is not counted again).
struct BudgetedCodec {
    reservation: Arc<Reservation>,
    compressed: bool,
}

impl Codec for BudgetedCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = BudgetedCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        BudgetedCodec {
            reservation: Arc::clone(&self.reservation),
            compressed: self.compressed,
        }
    }
}

impl Decoder for BudgetedCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        if self.compressed {
            self.reservation
                .grow(src.remaining(), "what it decompresses to")
                .map_err(|exhausted| tonic::Status::unavailable(exhausted.to_string()))?;
        }
        RawCodec.decode(src)
    }
}

struct ExportHandler {
    shared: Arc<Served>,
    signal: Signal,
    headers: BTreeMap<String, String>,
    /// The request's share of the bytes in flight, grown by what the
    /// message decodes to before it is decoded.
    reservation: Arc<Reservation>,
}

impl tonic::server::UnaryService<Bytes> for ExportHandler {
    type Response = Bytes;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let body = request.into_inner();
        let headers = std::mem::take(&mut self.headers);
        if let Err(refused) = reserve_decoded(&self.reservation, self.signal, &body, false) {
            let status = match refused {
                Refused::Retry(exhausted) => tonic::Status::unavailable(exhausted.to_string()),
                Refused::Never(msg) => {
                    self.shared
                        .receive(self.signal, Transport::Grpc, headers, body, None);
                    tonic::Status::invalid_argument(msg)
                }
            };
            return std::future::ready(Err(status));
        }
        let result = match Batch::decode(self.signal, Transport::Grpc, &body) {
            Err(msg) => {
                self.shared
                    .receive(self.signal, Transport::Grpc, headers, body, None);
                Err(tonic::Status::invalid_argument(msg))
            }
            Ok(decoded) => {
                match self.shared.receive(
                    self.signal,
                    Transport::Grpc,
                    headers,
                    body,
                    Some(decoded),
                ) {
                    RequestOutcome::Accepted => Ok(tonic::Response::new(success_body(self.signal))),
                    RequestOutcome::AcceptedPadded { padding_bytes } => Ok(tonic::Response::new(
                        padded_success_body(self.signal, padding_bytes),
                    )),
                    RequestOutcome::AcceptedPartially { rejected } => Ok(tonic::Response::new(
                        partial_success_body(self.signal, rejected),
                    )),
                    RequestOutcome::Throttled { retry_after_secs } => {
                        Err(throttled(retry_after_secs))
                    }
                    _ => Err(tonic::Status::unavailable(REFUSED)),
                }
            }
        };
        std::future::ready(result)
    }
}

async fn grpc_route(
    shared: Arc<Served>,
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
    let reservation = Arc::new(shared.in_flight.reserve());
    let compressed = req
        .headers()
        .get("grpc-encoding")
        .is_some_and(|e| e.as_bytes() != b"identity");
    let codec = BudgetedCodec {
        reservation: Arc::clone(&reservation),
        compressed,
    };
    let mut grpc = tonic::server::Grpc::new(codec)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(shared.max_body_bytes);
    let handler = ExportHandler {
        shared,
        signal,
        headers: capture_headers(req.headers()),
        reservation: Arc::clone(&reservation),
    };
    // The reservation is held by the codec and the body, both dropped once
    // the request is answered.
    let req = req.map(|body| {
        BudgetedBody::new(body, reservation, 0, |exhausted| {
            Box::new(tonic::Status::unavailable(exhausted.to_string()))
        })
    });
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

/// Why an export's decoded size was not reserved.
enum Refused {
    /// Not now: the budget is taken by other requests.
    Retry(Exhausted),
    /// Never: it decodes to more than the whole budget, or is malformed.
    Never(String),
}

/// Takes what `body` decodes to from the request's reservation before it
/// is decoded (see `decoded_size`).
fn reserve_decoded(
    reservation: &Reservation,
    signal: Signal,
    body: &[u8],
    json: bool,
) -> Result<(), Refused> {
    let estimate = if json {
        decoded_size::estimate_json(body)
            .map_err(|e| Refused::Never(format!("invalid OTLP/JSON: {e}")))?
    } else {
        decoded_size::estimate(signal, body)
            .map_err(|e| Refused::Never(format!("invalid OTLP protobuf: {e}")))?
    };
    // What the request holds already (its body, what it inflated to) stays
    // held while it decodes: past the whole budget with it, it never fits.
    let limit = reservation.budget().limit();
    if estimate.saturating_add(reservation.held()) > limit {
        return Err(Refused::Never(format!(
            "the export would decode to about {estimate} bytes, beside the {} it arrived as, \
             more than the receiver's {limit} bytes for all requests in flight; send smaller \
             batches",
            reservation.held()
        )));
    }
    reservation
        .grow(estimate, "what it decodes to")
        .map_err(Refused::Retry)
}

/// Why a compressed body was not inflated.
enum Inflate {
    /// The budget of bytes in flight has no room for its output.
    Refused(Exhausted),
    /// Not a valid stream, or larger than the limit once inflated.
    Invalid(String),
}

/// Reads a decompressor to its end, at most `limit` bytes, each taken from
/// the request's reservation as it is produced.
fn inflate(
    reader: impl io::Read,
    reservation: &Reservation,
    limit: usize,
) -> Result<Bytes, Inflate> {
    let mut out = Vec::new();
    BudgetedRead {
        inner: reader,
        reservation,
    }
    .take(limit as u64 + 1)
    .read_to_end(&mut out)
    .map_err(
        |e| match e.get_ref().and_then(|e| e.downcast_ref::<Exhausted>()) {
            Some(exhausted) => Inflate::Refused(*exhausted),
            None => Inflate::Invalid(format!("cannot decompress body: {e}")),
        },
    )?;
    if out.len() > limit {
        return Err(Inflate::Invalid(format!(
            "decompressed body exceeds {limit} bytes"
        )));
    }
    Ok(Bytes::from(out))
}

/// What an HTTP export past the bytes-in-flight budget is answered: 503,
/// which OTLP/HTTP exporters retry, after the time `Retry-After` names.
fn http_refusal(why: &str) -> Response<Full<Bytes>> {
    let mut resp = plain(StatusCode::SERVICE_UNAVAILABLE, why);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    resp
}

async fn http_route(
    shared: Arc<Served>,
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
        shared.receive(signal, Transport::Http, headers, Bytes::new(), None);
        Ok(plain(status, msg))
    };
    let refuse = |refused: Refused, headers| match refused {
        Refused::Retry(exhausted) => Ok(http_refusal(&exhausted.to_string())),
        Refused::Never(msg) => invalid(StatusCode::BAD_REQUEST, &msg, headers),
    };

    let content_type = headers.get("content-type").map_or("", String::as_str);
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = match media_type.as_str() {
        "application/x-protobuf" => false,
        "application/json" => true,
        _ => {
            return invalid(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "application/x-protobuf and application/json are supported",
                headers,
            );
        }
    };
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

    // A declared length is reserved before anything is read, so a request
    // that cannot fit is refused at once rather than part-read. An oversized
    // one is read up to the limit and answered then, as one without a
    // declared length is: answered at once, a client still writing its body
    // would see the connection close, not the 400.
    let reservation = Arc::new(shared.in_flight.reserve());
    let declared = headers
        .get("content-length")
        .and_then(|l| l.trim().parse::<usize>().ok())
        .filter(|&l| l <= shared.max_body_bytes)
        .unwrap_or(0);
    if let Err(exhausted) = reservation.grow(declared, "its declared length") {
        return Ok(http_refusal(&exhausted.to_string()));
    }
    let limited = Limited::new(req.into_body(), shared.max_body_bytes);
    let budgeted = BudgetedBody::new(limited, Arc::clone(&reservation), declared, |exhausted| {
        Box::new(exhausted)
    });
    let raw = match budgeted.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<Exhausted>() => return Ok(http_refusal(&e.to_string())),
        Err(e) => {
            return invalid(
                StatusCode::BAD_REQUEST,
                &format!("cannot read body: {e}"),
                headers,
            );
        }
    };
    // Decompressed output is counted as it is produced.
    let limit = shared.max_body_bytes;
    let body = match encoding.as_str() {
        "gzip" => inflate(flate2::read::GzDecoder::new(&raw[..]), &reservation, limit),
        "zstd" => match zstd::stream::read::Decoder::new(&raw[..]) {
            Ok(d) => inflate(d, &reservation, limit),
            Err(e) => Err(Inflate::Invalid(format!("cannot decompress body: {e}"))),
        },
        _ => Ok(raw),
    };
    let body = match body {
        Ok(body) => Ok(body),
        Err(Inflate::Refused(exhausted)) => return Ok(http_refusal(&exhausted.to_string())),
        Err(Inflate::Invalid(msg)) => Err(msg),
    };
    // What the body decodes to is taken from the budget before decoding; an
    // OTLP/JSON body twice: what its parse takes, then, from the protobuf it
    // is re-encoded as, what the model built from it takes.
    let decoded = match body {
        Err(msg) => Err(msg),
        Ok(b) if json => {
            if let Err(refused) = reserve_decoded(&reservation, signal, &b, true) {
                return refuse(refused, headers);
            }
            match decode_json_then(signal, Transport::Http, &b, |proto| {
                reserve_decoded(&reservation, signal, proto, false)
            }) {
                Err(msg) => Err(msg),
                Ok(Err(refused)) => return refuse(refused, headers),
                Ok(Ok((d, proto))) => Ok((proto, d)),
            }
        }
        Ok(b) => {
            if let Err(refused) = reserve_decoded(&reservation, signal, &b, false) {
                return refuse(refused, headers);
            }
            Batch::decode(signal, Transport::Http, &b).map(|d| (b, d))
        }
    };
    let (body, decoded) = match decoded {
        Ok(d) => d,
        Err(msg) => return invalid(StatusCode::BAD_REQUEST, &msg, headers),
    };
    Ok(
        match shared.receive(signal, Transport::Http, headers, body, Some(decoded)) {
            // The answer in the request's encoding, as OTLP/HTTP says.
            RequestOutcome::Accepted if json => success(json, Bytes::from_static(b"{}")),
            RequestOutcome::Accepted => success(json, success_body(signal)),
            RequestOutcome::AcceptedPadded { padding_bytes } if json => {
                success(json, padded_json_body(padding_bytes))
            }
            RequestOutcome::AcceptedPadded { padding_bytes } => {
                success(json, padded_success_body(signal, padding_bytes))
            }
            RequestOutcome::AcceptedPartially { rejected } if json => {
                success(json, partial_success_json(signal, rejected))
            }
            RequestOutcome::AcceptedPartially { rejected } => {
                success(json, partial_success_body(signal, rejected))
            }
            RequestOutcome::Throttled { retry_after_secs } => {
                let mut resp = plain(StatusCode::TOO_MANY_REQUESTS, THROTTLED);
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    http::HeaderValue::from(retry_after_secs),
                );
                resp
            }
            _ => plain(StatusCode::SERVICE_UNAVAILABLE, REFUSED),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A client that sends half a request and waits is cut at the header
    /// timeout, and the receiver keeps taking exports meanwhile.
    #[test]
    fn half_sent_requests_are_closed_and_exports_go_on() {
        use std::io::{Read, Write};
        let receiver = crate::OtlpReceiver::start().unwrap();
        let addr = receiver.http_addr();
        let slow: Vec<_> = (0..20)
            .map(|_| testkit::half_sent_request(addr, "/v1/traces").unwrap())
            .collect();
        // An empty body is an empty export request.
        let mut export = std::net::TcpStream::connect(addr).unwrap();
        export
            .write_all(
                b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let mut answer = String::new();
        export.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        for mut s in slow {
            assert!(
                testkit::closed_by_server(
                    &mut s,
                    bounded_serve::HEADER_READ_TIMEOUT + Duration::from_secs(10)
                ),
                "a half-sent request is still held open"
            );
        }
        receiver.shutdown();
    }

    /// Counts what it is handed; the budget tests need only a sink.
    struct Accept;

    impl Sink for Accept {
        fn receive(&self, _: RequestInfo, _: Option<Batch>) -> RequestOutcome {
            RequestOutcome::Accepted
        }
    }

    /// An export request of about `bytes` bytes: one span whose name fills it.
    fn traces_request(bytes: usize) -> Vec<u8> {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "x".repeat(bytes),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn post_traces(server: &OtlpServer, body: &[u8], gzip: bool) -> testkit::HttpResponse {
        let mut headers = vec![("Content-Type", "application/x-protobuf")];
        if gzip {
            headers.push(("Content-Encoding", "gzip"));
        }
        let url = format!("{}/v1/traces", server.http_endpoint());
        testkit::http_request("POST", &url, &headers, Some(body)).unwrap()
    }

    async fn grpc_traces(
        server: &OtlpServer,
        body: Vec<u8>,
        gzip: bool,
    ) -> Result<(), tonic::Status> {
        let channel = tonic::transport::Channel::from_shared(server.grpc_endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = tonic::client::Grpc::new(channel);
        if gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        client.ready().await.unwrap();
        client
            .unary(
                tonic::Request::new(Bytes::from(body)),
                http::uri::PathAndQuery::from_static(GRPC_TRACES_PATH),
                RawCodec,
            )
            .await
            .map(drop)
    }

    fn gzip(body: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(body).unwrap();
        gz.finish().unwrap()
    }

    /// `n` bytes of an `n + 10`-byte body, then nothing: a request in
    /// flight that holds its declared length.
    fn holder(server: &OtlpServer, n: usize) -> std::net::TcpStream {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(server.http_addr()).unwrap();
        write!(
            s,
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            n + 10
        )
        .unwrap();
        s.write_all(&vec![0u8; n]).unwrap();
        s
    }

    /// Requests in flight share one byte budget over both listeners: while
    /// two half-sent bodies hold most of it, other requests are refused with
    /// the retryable answer of their protocol (a declared length at once; a
    /// gRPC body as it is read; a compressed body as it inflates), and once
    /// the two are answered the same requests are taken and nothing is held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_past_the_bytes_in_flight_are_refused_until_room_is_made() {
        use std::io::{Read, Write};
        const KIB: usize = 1024;
        let config = ServerConfig {
            max_body_bytes: 512 * KIB,
            max_bytes_in_flight: 1024 * KIB,
            ..ServerConfig::default()
        };
        let server = OtlpServer::start(config, Arc::new(Accept)).unwrap();
        let mut holders = [holder(&server, 490 * KIB), holder(&server, 490 * KIB)];
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Each holds its declared length from its headers on.
        while server.bytes_in_flight() < 2 * (490 * KIB + 10) {
            assert!(
                std::time::Instant::now() < deadline,
                "{}",
                server.bytes_in_flight()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let export = traces_request(100 * KIB);
        let small = gzip(&export);
        assert!(small.len() < 10 * KIB, "{}", small.len());
        let post = |body: &[u8], gz| tokio::task::block_in_place(|| post_traces(&server, body, gz));

        // Each is refused at the first of its stages that has no room.
        let refused = post(&export, false);
        assert_eq!(refused.status, 503, "{}", refused.text());
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert!(
            refused.text().contains("no room for its declared length"),
            "{}",
            refused.text()
        );
        let inflated = post(&small, true);
        assert_eq!(inflated.status, 503, "{}", inflated.text());
        assert!(
            inflated
                .text()
                .contains("no room for what it decompresses to"),
            "{}",
            inflated.text()
        );
        for (gz, stage) in [(false, "its body"), (true, "what it decompresses to")] {
            let status = grpc_traces(&server, export.clone(), gz).await.unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::Unavailable,
                "gzip {gz}: {status:?}"
            );
            assert!(
                status.message().contains(&format!("no room for {stage}")),
                "{status:?}"
            );
        }
        // Over the size limit: read up to the limit before it is answered
        // (answered at once, a client still writing would see the
        // connection close), so while the budget is held it is told to
        // retry, and once there is room it gets its 400.
        let oversized = vec![0u8; 600 * KIB];
        let answer = post(&oversized, false);
        assert_eq!(answer.status, 503, "{}", answer.text());
        assert!(
            answer.text().contains("no room for its body"),
            "{}",
            answer.text()
        );

        for h in &mut holders {
            h.write_all(&[0u8; 10]).unwrap();
            let mut answer = String::new();
            h.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        }
        assert_eq!(server.bytes_in_flight(), 0);
        let answer = post(&oversized, false);
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert_eq!(post(&export, false).status, 200);
        assert_eq!(post(&small, true).status, 200);
        grpc_traces(&server, export.clone(), false).await.unwrap();
        grpc_traces(&server, export, true).await.unwrap();
        assert_eq!(server.bytes_in_flight(), 0);
        server.shutdown();
    }

    /// Counts the requests handed over as invalid.
    #[derive(Default)]
    struct CountInvalid(std::sync::atomic::AtomicUsize);

    impl Sink for CountInvalid {
        fn receive(&self, _: RequestInfo, batch: Option<Batch>) -> RequestOutcome {
            if batch.is_none() {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            RequestOutcome::Accepted
        }
    }

    /// 100,000 empty spans are 200 KB of protobuf (300 KB of JSON) and over
    /// 60 MB decoded: against an 8 MiB budget each encoding is refused
    /// before decoding, as never fitting, and counted as invalid; an
    /// ordinary batch is taken, and nothing stays reserved.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exports_that_would_decode_past_the_budget_are_refused_before_decoding() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let kv = |key: &str, value: String| KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value)),
            }),
            ..Default::default()
        };
        let request = |spans: Vec<Span>| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "token-engine".into())],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bomb = request(vec![Span::default(); 100_000]).encode_to_vec();
        let bomb_json = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            vec!["{}"; 100_000].join(",")
        )
        .into_bytes();
        assert!(bomb.len() < 256 * 1024 && bomb_json.len() < 1 << 20);
        let ordinary = request(
            (0..512)
                .map(|i| Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: format!("step {i}"),
                    attributes: (0..10)
                        .map(|a| kv(&format!("k{a}"), "v".repeat(20)))
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        )
        .encode_to_vec();
        let config = ServerConfig {
            max_body_bytes: 1 << 20,
            max_bytes_in_flight: 8 << 20,
            ..ServerConfig::default()
        };
        let sink = Arc::new(CountInvalid::default());
        let server = OtlpServer::start(config, Arc::clone(&sink) as Arc<dyn Sink>).unwrap();
        let post = |body: &[u8], content_type: &str| {
            let url = format!("{}/v1/traces", server.http_endpoint());
            tokio::task::block_in_place(|| {
                testkit::http_request("POST", &url, &[("Content-Type", content_type)], Some(body))
                    .unwrap()
            })
        };
        // A scope the model copies onto each of 1,000 spans: 64 KiB of name.
        let scope_json = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"scope":{{"name":"{}"}},"spans":[{}]}}]}}]}}"#,
            "n".repeat(64 * 1024),
            vec!["{}"; 1_000].join(",")
        )
        .into_bytes();
        for (body, content_type) in [
            (&bomb, "application/x-protobuf"),
            (&bomb_json, "application/json"),
            (&scope_json, "application/json"),
        ] {
            let refused = post(body, content_type);
            assert_eq!(refused.status, 400, "{content_type}: {}", refused.text());
            assert!(
                refused.text().contains("would decode to about"),
                "{}",
                refused.text()
            );
            assert!(
                refused.text().contains("send smaller batches"),
                "{}",
                refused.text()
            );
        }
        let status = grpc_traces(&server, bomb, false).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("would decode to about"),
            "{status:?}"
        );
        // Nested past what any export needs.
        let deep = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"attributes":[{{"key":"a","value":{}"x"{}}}]}}]}}]}}]}}"#,
            r#"{"arrayValue":{"values":[{"stringValue":"#.repeat(10),
            "}]}}".repeat(10)
        );
        let refused = post(deep.as_bytes(), "application/json");
        assert_eq!(refused.status, 400, "{}", refused.text());
        assert!(
            refused.text().contains("nested deeper than 32"),
            "{}",
            refused.text()
        );
        assert_eq!(sink.0.load(std::sync::atomic::Ordering::Relaxed), 5);
        assert_eq!(post(&ordinary, "application/x-protobuf").status, 200);
        grpc_traces(&server, ordinary, true).await.unwrap();
        assert_eq!(sink.0.load(std::sync::atomic::Ordering::Relaxed), 5);
        assert_eq!(server.bytes_in_flight(), 0);
        server.shutdown();
    }

    #[test]
    fn a_budget_under_twice_the_body_limit_is_refused_with_what_to_change() {
        let config = ServerConfig {
            max_body_bytes: 1000,
            max_bytes_in_flight: 1999,
            ..ServerConfig::default()
        };
        let e = OtlpServer::start(config.clone(), Arc::new(Accept)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(
            msg.contains("max_bytes_in_flight (1999)") && msg.contains("max_body_bytes (1000)"),
            "{msg}"
        );
        let config = ServerConfig {
            max_bytes_in_flight: 2000,
            ..config
        };
        OtlpServer::start(config, Arc::new(Accept))
            .unwrap()
            .shutdown();
    }

    /// A partial success carries its rejected count in each signal's own
    /// field, as an integer in protobuf and as a string in JSON.
    #[test]
    fn partial_successes_carry_the_rejected_count_of_each_signal() {
        let traces = ExportTraceServiceResponse::decode(partial_success_body(Signal::Traces, 7));
        let metrics =
            ExportMetricsServiceResponse::decode(partial_success_body(Signal::Metrics, 7));
        let logs = ExportLogsServiceResponse::decode(partial_success_body(Signal::Logs, 7));
        let rejected = (
            traces.unwrap().partial_success.map(|p| p.rejected_spans),
            metrics
                .unwrap()
                .partial_success
                .map(|p| p.rejected_data_points),
            logs.unwrap()
                .partial_success
                .map(|p| p.rejected_log_records),
        );
        assert_eq!(rejected, (Some(7), Some(7), Some(7)));
        for (signal, field) in [
            (Signal::Traces, "rejectedSpans"),
            (Signal::Metrics, "rejectedDataPoints"),
            (Signal::Logs, "rejectedLogRecords"),
        ] {
            let json: serde_json::Value =
                serde_json::from_slice(&partial_success_json(signal, 7)).unwrap();
            assert_eq!(json["partialSuccess"][field], "7", "{signal:?}");
            assert_eq!(json["partialSuccess"]["errorMessage"], PARTIAL_MESSAGE);
        }
    }

    /// A padded answer is still a success a reader decodes: the padding is
    /// an unknown field (protobuf) or member (JSON) of the requested size.
    #[test]
    fn padded_answers_decode_as_successes_of_the_padded_size() {
        for padding in [0u32, 1, 300, 5 << 20] {
            let body = padded_success_body(Signal::Traces, padding);
            assert!(body.len() > padding as usize, "{padding}");
            let answer = ExportTraceServiceResponse::decode(body).unwrap();
            assert_eq!(answer, ExportTraceServiceResponse::default());
            let json: serde_json::Value =
                serde_json::from_slice(&padded_json_body(padding)).unwrap();
            assert_eq!(
                json["padding"].as_str().map(str::len),
                Some(padding as usize)
            );
        }
    }

    /// OTLP/JSON: 64-bit integers are written as decimal strings, and a
    /// receiver accepts strings and numbers both; ids are hex.
    #[test]
    fn json_int64_is_read_as_string_or_number() {
        for value in [r#""3""#, "3"] {
            let body = format!(
                r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"n","sum":{{"dataPoints":[{{"timeUnixNano":"1790000000000000000","asInt":{value},"attributes":[{{"key":"k","value":{{"intValue":{value}}}}}]}}],"aggregationTemporality":2,"isMonotonic":true}}}}]}}]}}]}}"#
            );
            let (batch, proto) =
                Batch::decode_json(Signal::Metrics, Transport::Http, body.as_bytes())
                    .unwrap_or_else(|e| panic!("{value}: {e}"));
            let Batch::Metrics(metrics) = batch else {
                panic!("not metrics")
            };
            let point = &metrics[0].number_points()[0];
            assert_eq!((point.value, point.is_int), (3.0, true), "{value}");
            assert_eq!(point.attributes.i64("k"), Some(3), "{value}");
            assert_eq!(point.time_unix_nanos, 1_790_000_000_000_000_000);
            // The protobuf handed to sinks decodes to the same.
            let again = Batch::decode(Signal::Metrics, Transport::Http, &proto)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again, Batch::Metrics(metrics));
        }
        let spans = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"s","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let (batch, _) = Batch::decode_json(Signal::Traces, Transport::Http, spans.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let Batch::Spans(spans) = batch else {
            panic!("not spans")
        };
        assert_eq!(spans[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(
            Batch::decode_json(Signal::Traces, Transport::Http, b"{\"resourceSpans\":7}").is_err()
        );
    }
}
