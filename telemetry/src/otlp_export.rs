//! OTLP export of a batch encoded once: how it reaches the collector, and
//! what the collector's answer says (a partial success's rejected items, a
//! throttling delay). The span, log and metric exporters (`otlp_spans`,
//! `otlp_logs`, `otlp_metrics`) encode their batches and hand them here.
//!
//! Transport: tonic for gRPC, the hyper client of `opentelemetry-http` for
//! HTTP (whose response bodies are bounded), built from an [`OtlpConfig`].
//! Retrying is the batch queue's (metrics: the next collection's):
//! one attempt per call, and the queue is told how long a throttling
//! collector asked it to wait (HTTP 429/503 `Retry-After`, gRPC
//! `RetryInfo`), as the OTLP specification asks clients to honour.

use std::io::Write as _;

use bytes::Bytes;
use http::uri::PathAndQuery;
use opentelemetry_http::HttpClient as _;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use prost::Message as _;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

use crate::batch::{BatchExporter, ExportFuture};
use crate::config::{Compression, OtlpConfig, Protocol, Signal};
use crate::error::InitError;

/// What the exporter says it is, per the OTLP exporter specification's
/// `User-Agent` recommendation.
pub(crate) const USER_AGENT: &str = concat!(
    "OTel-OTLP-Exporter-Rust-telemetry/",
    env!("CARGO_PKG_VERSION")
);

/// The largest request body sent, compressed or not, as the OTLP crate's
/// HTTP exporter bounds it: a larger batch fails with an error naming the
/// batch size to lower, rather than being sent to a collector that would
/// refuse it.
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;

/// What differs between the signals exported this way.
#[derive(Debug)]
pub(crate) struct Items {
    signal: Signal,
    /// The gRPC method every export calls.
    grpc_path: &'static str,
    /// One item, as messages name it.
    noun: &'static str,
    /// The partial success's count in OTLP/JSON: lowerCamelCase, then the
    /// proto's own name.
    json_rejected: (&'static str, &'static str),
    /// What to lower when a request is too large to send.
    too_large: &'static str,
}

/// Spans, to the trace service.
pub(crate) const SPANS: Items = Items {
    signal: Signal::Traces,
    grpc_path: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    noun: "span",
    json_rejected: ("rejectedSpans", "rejected_spans"),
    too_large: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE or the attribute limits \
                (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT)",
};

/// Log records, to the logs service.
pub(crate) const LOG_RECORDS: Items = Items {
    signal: Signal::Logs,
    grpc_path: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    noun: "log record",
    json_rejected: ("rejectedLogRecords", "rejected_log_records"),
    too_large: "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE or the attribute limits \
                (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT)",
};

/// Metric data points, to the metrics service: one request per collection.
pub(crate) const METRIC_DATA_POINTS: Items = Items {
    signal: Signal::Metrics,
    grpc_path: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    noun: "metric",
    json_rejected: ("rejectedDataPoints", "rejected_data_points"),
    too_large: "the number of series (attributes with many values; a view in the \
                configuration file's meter_provider.views can drop them)",
};

/// How a batch reaches the collector.
enum Wire {
    Grpc {
        client: tonic::client::Grpc<Channel>,
        metadata: tonic::metadata::MetadataMap,
    },
    Http {
        /// Boxed: a hyper client with its TLS set-up is much larger than
        /// the gRPC side.
        client: Box<opentelemetry_http::hyper::HyperClient<crate::otlp::Connector>>,
        endpoint: http::Uri,
        /// Everything but the body's length: user agent, the configured
        /// headers, content type and encoding.
        headers: http::HeaderMap,
        json: bool,
        compression: Option<Compression>,
    },
}

/// A checked transport for `items`, waiting for the encoder of their
/// batches.
pub(crate) struct OtlpWire {
    items: &'static Items,
    wire: Wire,
}

/// The transport of `items` for `cfg`, checked at start-up: endpoint,
/// headers and TLS files. Must be called inside telemetry's runtime (tonic
/// spawns its connection task there).
pub(crate) fn wire(cfg: &OtlpConfig, items: &'static Items) -> Result<OtlpWire, InitError> {
    let signal = items.signal;
    let wire = match cfg.protocol {
        Protocol::Grpc => {
            let mut endpoint = tonic::transport::Endpoint::from_shared(cfg.endpoint.clone())
                .map_err(|e| InitError::exporter(signal, e))?
                .user_agent(USER_AGENT)
                .map_err(|e| InitError::exporter(signal, e))?
                .timeout(cfg.timeout);
            if let Some(tls) = crate::otlp::tonic_tls(cfg, signal)? {
                endpoint = endpoint
                    .tls_config(tls)
                    .map_err(|e| InitError::exporter(signal, e))?;
            }
            let mut client = tonic::client::Grpc::new(endpoint.connect_lazy())
                .max_decoding_message_size(GRPC_MAX_ANSWER);
            if let Some(c) = cfg.compression {
                let encoding = match c {
                    Compression::Gzip => CompressionEncoding::Gzip,
                    Compression::Zstd => CompressionEncoding::Zstd,
                };
                client = client.send_compressed(encoding).accept_compressed(encoding);
            }
            Wire::Grpc {
                client,
                metadata: crate::otlp::grpc_metadata(cfg, signal)?,
            }
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            let endpoint: http::Uri = cfg
                .endpoint
                .parse()
                .map_err(|e| InitError::exporter(signal, e))?;
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static(USER_AGENT),
            );
            for (k, v) in &cfg.headers {
                let name = http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| InitError::header(signal, k, e))?;
                let value =
                    http::HeaderValue::from_str(v).map_err(|e| InitError::header(signal, k, e))?;
                headers.insert(name, value);
            }
            // Every request carries the same body type and encoding.
            let json = cfg.protocol == Protocol::HttpJson;
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(if json {
                    "application/json"
                } else {
                    "application/x-protobuf"
                }),
            );
            if let Some(c) = cfg.compression {
                headers.insert(
                    http::header::CONTENT_ENCODING,
                    http::HeaderValue::from_static(match c {
                        Compression::Gzip => "gzip",
                        Compression::Zstd => "zstd",
                    }),
                );
            }
            let connector = crate::otlp::https_connector(cfg, signal)?;
            Wire::Http {
                client: Box::new(opentelemetry_http::hyper::HyperClient::new(
                    connector,
                    cfg.timeout,
                    None,
                )),
                endpoint,
                headers,
                json,
                compression: cfg.compression,
            }
        }
    };
    Ok(OtlpWire { items, wire })
}

/// What makes a batch of one signal's items into an OTLP request body.
pub(crate) trait EncodeBatch<T>: Send + 'static {
    /// The request for `batch` (as OTLP/JSON when `json`, else protobuf),
    /// masked first; the batch may be left with anything in it.
    fn encode(&mut self, batch: &mut Vec<T>, json: bool) -> Result<Vec<u8>, String>;
}

/// An OTLP exporter: an encoder of one signal's batches over the wire. The
/// batch being exported is kept as its request body, the same bytes for
/// every attempt.
pub(crate) struct OtlpExporter<E> {
    encoder: E,
    items: &'static Items,
    wire: Wire,
    /// The batch's request body; `None` between batches, or the reason it
    /// could not be encoded.
    body: Option<Result<Bytes, String>>,
    partial: PartialSuccessWarnings,
    /// The delay the collector asked for when it refused the last attempt.
    retry_after: Option<std::time::Duration>,
    /// Items the collector's answer to the last attempt rejected (an OTLP
    /// partial success).
    rejected: u64,
    /// Whether the last attempt failed in a way worth another: known from
    /// the status or error itself, not read back from its message.
    retryable: bool,
}

impl<E> std::fmt::Debug for OtlpExporter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("items", &self.items.noun)
            .finish_non_exhaustive()
    }
}

impl OtlpWire {
    /// The exporter of the batches `encoder` encodes.
    pub(crate) fn into_exporter<E>(self, encoder: E) -> OtlpExporter<E> {
        OtlpExporter {
            encoder,
            items: self.items,
            wire: self.wire,
            body: None,
            partial: PartialSuccessWarnings::default(),
            retry_after: None,
            rejected: 0,
            retryable: false,
        }
    }
}

impl<E> OtlpExporter<E> {
    /// Keeps the batch's request, checked for size and compressed once for
    /// all its attempts: or why it could not be made.
    fn keep_body(&mut self, plain: Result<Vec<u8>, String>) {
        let compression = match &self.wire {
            Wire::Grpc { .. } => None,
            Wire::Http { compression, .. } => *compression,
        };
        let items = self.items;
        self.body = Some(plain.and_then(|plain| {
            check_size(items, plain.len(), "uncompressed")?;
            let body = match compression {
                None => plain,
                Some(c) => {
                    let packed = compress(c, &plain)
                        .map_err(|e| format!("{}s could not be compressed: {e}", items.noun))?;
                    check_size(items, packed.len(), "compressed")?;
                    packed
                }
            };
            Ok(Bytes::from(body))
        }));
    }
}

impl<T, E: EncodeBatch<T>> BatchExporter<T> for OtlpExporter<E> {
    fn take_batch(&mut self, batch: &mut Vec<T>) {
        // On the worker thread: masking and encoding never cost the
        // application.
        let json = matches!(self.wire, Wire::Http { json: true, .. });
        let plain = self.encoder.encode(batch, json);
        batch.clear();
        self.keep_body(plain);
    }

    fn export(&mut self) -> ExportFuture<'_> {
        let body = match &self.body {
            Some(Ok(body)) => body.clone(),
            Some(Err(e)) => {
                let e = OTelSdkError::InternalFailure(e.clone());
                return Box::pin(async move { Err(e) });
            }
            None => return Box::pin(async { Ok(()) }),
        };
        let items = self.items;
        let answer = Answer {
            items,
            partial: &mut self.partial,
            retry_after: &mut self.retry_after,
            rejected: &mut self.rejected,
            retryable: &mut self.retryable,
        };
        *answer.retry_after = None;
        *answer.rejected = 0;
        *answer.retryable = false;
        match &mut self.wire {
            Wire::Grpc { client, metadata } => {
                Box::pin(
                    async move { answer.settle(send_grpc(items, client, metadata, body).await) },
                )
            }
            Wire::Http {
                client,
                endpoint,
                headers,
                json,
                ..
            } => {
                let mut request = http::Request::new(body);
                *request.method_mut() = http::Method::POST;
                *request.uri_mut() = endpoint.clone();
                request.headers_mut().clone_from(headers);
                let json = *json;
                let client = &*client;
                Box::pin(
                    async move { answer.settle(send_http(items, client, request, json).await) },
                )
            }
        }
    }

    fn release_batch(&mut self) {
        self.body = None;
    }

    fn retry_after(&mut self) -> Option<std::time::Duration> {
        self.retry_after.take()
    }

    fn retryable(&mut self, _message: &str) -> bool {
        std::mem::take(&mut self.retryable)
    }

    fn rejected(&mut self) -> u64 {
        std::mem::take(&mut self.rejected)
    }

    fn shutdown(&mut self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn check_size(items: &Items, len: usize, form: &str) -> Result<(), String> {
    if len > MAX_REQUEST_BODY {
        return Err(format!(
            "OTLP {} export not sent: the {form} request is {len} bytes, over the \
             {MAX_REQUEST_BODY}-byte limit; lower {}",
            items.noun, items.too_large
        ));
    }
    Ok(())
}

fn compress(compression: Compression, plain: &[u8]) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(plain)?;
            encoder.finish()
        }
        Compression::Zstd => zstd::bulk::compress(plain, 0),
    }
}

/// A failed attempt: what it reads as, whether another attempt may
/// succeed, and the delay the collector asked for, if it throttled.
struct Failure {
    error: OTelSdkError,
    retry_after: Option<std::time::Duration>,
    retryable: bool,
}

impl Failure {
    /// A failure that would happen again: not retried.
    fn plain(message: String) -> Failure {
        Failure {
            error: OTelSdkError::InternalFailure(message),
            retry_after: None,
            retryable: false,
        }
    }
}

/// Where an attempt's answer is kept: the exporter's fields the attempt's
/// future borrows.
struct Answer<'a> {
    items: &'static Items,
    partial: &'a mut PartialSuccessWarnings,
    retry_after: &'a mut Option<std::time::Duration>,
    rejected: &'a mut u64,
    retryable: &'a mut bool,
}

impl Answer<'_> {
    /// Keeps an attempt's rejected items and reports them, or keeps its
    /// throttling delay.
    fn settle(self, attempt: Result<Option<PartialSuccess>, Failure>) -> OTelSdkResult {
        match attempt {
            Ok(p) => {
                *self.rejected = self.partial.report(self.items, p);
                Ok(())
            }
            Err(failure) => {
                *self.retry_after = failure.retry_after;
                *self.retryable = failure.retryable;
                Err(failure.error)
            }
        }
    }
}

async fn send_grpc(
    items: &Items,
    client: &mut tonic::client::Grpc<Channel>,
    metadata: &tonic::metadata::MetadataMap,
    body: Bytes,
) -> Result<Option<PartialSuccess>, Failure> {
    let response = async {
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::from_error(Box::new(e)))?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = metadata.clone();
        client
            .unary(
                request,
                PathAndQuery::from_static(items.grpc_path),
                EncodedCodec,
            )
            .await
    }
    .await;
    match response {
        Ok(response) => Ok(response.into_inner().partial_success),
        Err(status) if is_oversized_answer(&status) => Err(Failure::plain(format!(
            "OTLP {} export failed: the collector's response is larger than the client \
             accepts ({} MiB); the batch is not sent again",
            items.noun,
            GRPC_MAX_ANSWER >> 20
        ))),
        Err(status) => Err(Failure {
            error: OTelSdkError::InternalFailure(grpc_failure(items, &status)),
            retry_after: grpc_retry_delay(&status),
            retryable: grpc_retryable(&status),
        }),
    }
}

/// The delay a throttling gRPC collector asks for: a `RetryInfo` detail on
/// RESOURCE_EXHAUSTED (which the OTLP specification makes retryable only
/// with one) or on UNAVAILABLE.
fn grpc_retry_delay(status: &tonic::Status) -> Option<std::time::Duration> {
    use tonic_types::StatusExt as _;
    if !matches!(
        status.code(),
        tonic::Code::ResourceExhausted | tonic::Code::Unavailable
    ) {
        return None;
    }
    status.get_details_retry_info()?.retry_delay
}

/// The delay an HTTP `Retry-After` value asks for: seconds, or an HTTP date
/// (a date in the past asks for none).
fn parse_retry_after(value: &str) -> Option<std::time::Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(std::time::Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The largest gRPC answer tonic decodes (its default).
const GRPC_MAX_ANSWER: usize = 4 << 20;

/// Whether tonic refused the collector's answer for its size. It says so
/// with OUT_OF_RANGE, a code the OTLP specification makes retryable when a
/// collector sends it; but the collector did answer, and sending the batch
/// again would get the same answer, so it must not read as that code.
fn is_oversized_answer(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::OutOfRange
        && status
            .message()
            .starts_with("Error, decoded message length too large")
}

/// Whether a gRPC failure is worth another attempt: the codes the OTLP
/// specification makes retryable (UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED,
/// ABORTED, OUT_OF_RANGE, DATA_LOSS; RESOURCE_EXHAUSTED only with a
/// `RetryInfo`, which the queue honours as throttling), and any status tonic
/// made up because the connection failed or broke with the request in
/// flight (a collector down, killed or restarted), whatever code it gave
/// it (`Unknown` for a reset connection). A status the collector sent has
/// no transport error behind it.
fn grpc_retryable(status: &tonic::Status) -> bool {
    use tonic::Code;
    let from_transport = std::error::Error::source(status)
        .is_some_and(|cause| cause.is::<tonic::transport::Error>());
    from_transport
        || matches!(
            status.code(),
            Code::Unavailable
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::OutOfRange
                | Code::DataLoss
        )
}

/// How a failed gRPC export reads: the code and, for a status tonic made up
/// from a broken connection, the transport's error chain. The collector's own message is left out:
/// it may echo credentials.
fn grpc_failure(items: &Items, status: &tonic::Status) -> String {
    let mut out = format!(
        "OTLP {} export failed with gRPC code: {:?}",
        items.noun,
        status.code()
    );
    push_causes(&mut out, std::error::Error::source(status));
    out
}

/// Appends an error chain, `: cause: its cause…`.
fn push_causes(out: &mut String, mut next: Option<&(dyn std::error::Error + 'static)>) {
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
}

async fn send_http(
    items: &Items,
    client: &opentelemetry_http::hyper::HyperClient<crate::otlp::Connector>,
    request: http::Request<Bytes>,
    json: bool,
) -> Result<Option<PartialSuccess>, Failure> {
    let response = client.send_bytes(request).await.map_err(|e| {
        // The collector answered, with more than a response may hold: the
        // spans may well have been taken, and sending them again would get
        // the same answer. Not a network error, so not retried.
        if e.downcast_ref::<opentelemetry_http::ResponseBodyTooLarge>()
            .is_some()
        {
            return Failure::plain(format!(
                "OTLP {} export failed: the collector's response is larger than the \
                 client accepts ({e}); the batch is not sent again",
                items.noun
            ));
        }
        let mut out = format!("OTLP {} export failed: network error", items.noun);
        push_causes(
            &mut out,
            Some(e.as_ref() as &(dyn std::error::Error + 'static)),
        );
        // Refused, reset, unreachable: the collector may be back soon.
        Failure {
            retryable: true,
            ..Failure::plain(out)
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        // 429 and 503 may say when to come back (OTLP/HTTP: the client
        // SHOULD honour it).
        let retry_after = matches!(status.as_u16(), 429 | 503)
            .then(|| response.headers().get(http::header::RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // The body may echo credentials: only the status is reported.
        return Err(Failure {
            error: OTelSdkError::InternalFailure(format!(
                "OTLP {} export failed with status code: {}",
                items.noun,
                status.as_u16()
            )),
            retry_after,
            // The OTLP specification's retryable HTTP statuses.
            retryable: matches!(status.as_u16(), 429 | 502 | 503 | 504),
        });
    }
    Ok(partial_success_of(items, response.body(), json))
}

/// What a collector that accepted an export says it rejected of it. The
/// same message in every signal's answer (field 1 of the response, with
/// the count in field 1 and the message in field 2), so one decodes all.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PartialSuccess {
    /// Items rejected: `rejected_spans`, `rejected_log_records`, …
    #[prost(int64, tag = "1")]
    pub(crate) rejected: i64,
    #[prost(string, tag = "2")]
    pub(crate) error_message: String,
}

/// A collector's answer to an export, of any signal.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportAnswer {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

/// The partial success a successful HTTP response carries, if any. A body
/// that does not decode is ignored: the items were accepted.
fn partial_success_of(items: &Items, body: &[u8], json: bool) -> Option<PartialSuccess> {
    if body.is_empty() {
        return None;
    }
    if json {
        return partial_success_of_json(items, body);
    }
    ExportAnswer::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
}

/// Read by hand: the proto3 JSON mapping writes an int64 as a string (the
/// Collector's `rejectedSpans: "3"`), which the generated types refuse.
/// Field names may be lowerCamelCase or the proto's own.
fn partial_success_of_json(items: &Items, body: &[u8]) -> Option<PartialSuccess> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let partial = field(&answer, "partialSuccess", "partial_success")?;
    let (camel, snake) = items.json_rejected;
    let rejected = match field(partial, camel, snake) {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    };
    let error_message = field(partial, "errorMessage", "error_message")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some(PartialSuccess {
        rejected,
        error_message,
    })
}

/// `camel` or, failing that, `snake` in the JSON object `v`.
fn field<'a>(v: &'a serde_json::Value, camel: &str, snake: &str) -> Option<&'a serde_json::Value> {
    v.get(camel).or_else(|| v.get(snake))
}

/// Partial successes are reported, not retried (the specification: the
/// rejected items would be rejected again), at most one warning a minute so
/// a collector that rejects part of every batch cannot flood the log.
#[derive(Default)]
struct PartialSuccessWarnings {
    last: Option<std::time::Instant>,
    /// Rejected items since the last warning.
    rejected: i64,
}

/// The shortest time between two partial-success warnings.
const PARTIAL_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl PartialSuccessWarnings {
    /// Warns of a partial success (at most once a minute, counting the
    /// rejected items in between); returns the items it rejected.
    fn report(&mut self, items: &Items, partial: Option<PartialSuccess>) -> u64 {
        let Some(p) = partial else { return 0 };
        if p.rejected <= 0 && p.error_message.is_empty() {
            return 0;
        }
        // A negative count from a faulty collector rejects nothing.
        let rejected = u64::try_from(p.rejected).unwrap_or(0);
        self.rejected = self.rejected.saturating_add(p.rejected.max(0));
        if self.last.is_some_and(|t| t.elapsed() < PARTIAL_WARN_EVERY) {
            return rejected;
        }
        self.last = Some(std::time::Instant::now());
        // The collector's message is cut short: it is its text, not ours.
        let message: String = p.error_message.chars().take(256).collect();
        let since_last = std::mem::take(&mut self.rejected);
        match items.signal {
            Signal::Metrics => tracing::warn!(
                target: "telemetry::export",
                signal = "metrics",
                rejected_data_points = since_last,
                collector_message = %message,
                "the collector accepted a metric export but rejected part of it; rejected data \
                 points are not retried"
            ),
            Signal::Logs => tracing::warn!(
                target: "telemetry::export",
                signal = "logs",
                rejected_log_records = since_last,
                collector_message = %message,
                "the collector accepted a log export but rejected part of it; rejected log \
                 records are not retried"
            ),
            Signal::Traces => tracing::warn!(
                target: "telemetry::export",
                signal = "traces",
                rejected_spans = since_last,
                collector_message = %message,
                "the collector accepted a span export but rejected part of it; rejected spans \
                 are not retried"
            ),
        }
        rejected
    }
}

/// Sends an already encoded request and decodes the collector's answer.
struct EncodedCodec;

impl Codec for EncodedCodec {
    type Encode = Bytes;
    type Decode = ExportAnswer;
    type Encoder = EncodedCodec;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> Self::Encoder {
        EncodedCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

impl Encoder for EncodedCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportAnswer;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<ExportAnswer>, tonic::Status> {
        ExportAnswer::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable export response: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Lines;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        use std::time::{Duration, SystemTime};
        assert_eq!(parse_retry_after("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let wait = parse_retry_after(&later).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past asks for no wait"
        );
        for garbage in ["", "-5", "soon", "1.5", "99999999999999999999999"] {
            assert_eq!(parse_retry_after(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn grpc_throttling_is_read_from_retry_info_on_the_codes_that_may_carry_it() {
        use std::time::Duration;
        use tonic_types::{ErrorDetails, StatusExt as _};
        let with = |code| {
            tonic::Status::with_error_details(
                code,
                "slow down",
                ErrorDetails::with_retry_info(Some(Duration::from_secs(45))),
            )
        };
        let exhausted = with(tonic::Code::ResourceExhausted);
        assert_eq!(grpc_retry_delay(&exhausted), Some(Duration::from_secs(45)));
        assert_eq!(
            grpc_retry_delay(&with(tonic::Code::Unavailable)),
            Some(Duration::from_secs(45))
        );
        assert_eq!(grpc_retry_delay(&with(tonic::Code::InvalidArgument)), None);
        assert_eq!(
            grpc_retry_delay(&tonic::Status::resource_exhausted("no detail")),
            None
        );
    }

    #[test]
    fn an_oversized_request_is_refused_naming_what_to_lower() {
        assert!(check_size(&SPANS, MAX_REQUEST_BODY, "compressed").is_ok());
        let e = check_size(&SPANS, MAX_REQUEST_BODY + 1, "compressed").unwrap_err();
        assert!(e.contains("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), "{e}");
        assert!(e.contains("compressed request"), "{e}");
        let e = check_size(&LOG_RECORDS, MAX_REQUEST_BODY + 1, "uncompressed").unwrap_err();
        assert!(e.contains("OTLP log record export not sent"), "{e}");
        assert!(e.contains("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"), "{e}");
        let e = check_size(&METRIC_DATA_POINTS, MAX_REQUEST_BODY + 1, "compressed").unwrap_err();
        assert!(e.contains("OTLP metric export not sent"), "{e}");
        assert!(e.contains("number of series"), "{e}");
    }

    #[test]
    fn grpc_failures_are_retried_by_code_and_read_without_the_collectors_text() {
        use tonic::Code;
        let retried = [
            Code::Unavailable,
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::DataLoss,
        ];
        let all = [
            Code::Ok,
            Code::Cancelled,
            Code::Unknown,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
            Code::Unauthenticated,
        ];
        for code in all {
            let status = tonic::Status::new(code, "token s3cret expired");
            assert_eq!(grpc_retryable(&status), retried.contains(&code), "{code:?}");
            for items in [&SPANS, &LOG_RECORDS, &METRIC_DATA_POINTS] {
                let read = grpc_failure(items, &status);
                assert!(!read.contains("s3cret"), "{read}");
                assert!(read.contains(&format!("{code:?}")), "{read}");
            }
        }
    }

    /// A status tonic makes up from a connection that failed is retried
    /// whatever its code, and reads with the transport's error; the same
    /// code from a collector is not retried.
    #[test]
    fn a_status_made_up_from_a_failed_connection_is_retried() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let transport_error = || {
            rt.block_on(
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{refused}"))
                    .unwrap()
                    .connect(),
            )
            .unwrap_err()
        };
        // As `send_grpc` makes it from a channel that is not ready.
        let not_ready = tonic::Status::from_error(Box::new(transport_error()));
        assert!(grpc_retryable(&not_ready), "{:?}", not_ready.code());
        // A connection reset with the request in flight: tonic reports
        // Unknown, with the transport's error behind it.
        let mut reset = tonic::Status::unknown("connection reset");
        reset.set_source(std::sync::Arc::new(transport_error()));
        assert!(grpc_retryable(&reset));
        let read = grpc_failure(&SPANS, &reset);
        assert!(read.contains("Unknown: transport error"), "{read}");
        // Unknown from a collector: no transport error behind it.
        assert!(!grpc_retryable(&tonic::Status::unknown(
            "from the collector"
        )));
    }

    #[test]
    fn partial_success_is_read_from_protobuf_and_json_answers_of_each_signal() {
        use opentelemetry_proto::tonic::collector::logs::v1::{
            ExportLogsPartialSuccess, ExportLogsServiceResponse,
        };
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        // Protobuf, as the generated messages of each signal write it.
        let spans = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "span too large".into(),
            }),
        };
        let metrics = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse {
            partial_success: Some(
                opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess {
                    rejected_data_points: 5,
                    error_message: "too many series".into(),
                },
            ),
        };
        let p = partial_success_of(&METRIC_DATA_POINTS, &metrics.encode_to_vec(), false).unwrap();
        assert_eq!(
            (p.rejected, p.error_message.as_str()),
            (5, "too many series")
        );
        let logs = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 4,
                error_message: "record too large".into(),
            }),
        };
        let p = partial_success_of(&SPANS, &spans.encode_to_vec(), false).unwrap();
        assert_eq!(
            (p.rejected, p.error_message.as_str()),
            (3, "span too large")
        );
        let p = partial_success_of(&LOG_RECORDS, &logs.encode_to_vec(), false).unwrap();
        assert_eq!(
            (p.rejected, p.error_message.as_str()),
            (4, "record too large")
        );
        // OTLP/JSON: lowerCamelCase names; an int64 may come as a string.
        for (items, json) in [
            (
                &SPANS,
                r#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"too large"}}"#,
            ),
            (
                &SPANS,
                r#"{"partialSuccess":{"rejectedSpans":3,"errorMessage":"too large"}}"#,
            ),
            (
                &SPANS,
                r#"{"partial_success":{"rejected_spans":3,"error_message":"too large"}}"#,
            ),
            (
                &LOG_RECORDS,
                r#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"too large"}}"#,
            ),
            (
                &LOG_RECORDS,
                r#"{"partial_success":{"rejected_log_records":3,"error_message":"too large"}}"#,
            ),
        ] {
            let p = partial_success_of(items, json.as_bytes(), true)
                .unwrap_or_else(|| panic!("{json}"));
            assert_eq!(p.rejected, 3, "{json}");
            assert_eq!(p.error_message, "too large", "{json}");
        }
        // Another signal's count is not this one's.
        let p = partial_success_of(
            &LOG_RECORDS,
            br#"{"partialSuccess":{"rejectedSpans":3}}"#,
            true,
        );
        assert_eq!(p.map(|p| p.rejected), Some(0));
        // Success without detail, or an answer that does not decode.
        assert!(partial_success_of(&SPANS, b"", false).is_none());
        assert!(partial_success_of(&SPANS, b"{}", true).is_none());
        assert!(partial_success_of(&SPANS, b"<html>ok</html>", true).is_none());
        assert!(partial_success_of(&SPANS, &[0xff, 0xff, 0xff], false).is_none());
    }

    #[test]
    fn partial_successes_warn_at_most_once_a_minute_and_count_what_they_skipped() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
        let rejected = |n: i64| {
            Some(PartialSuccess {
                rejected: n,
                error_message: "x".repeat(10_000),
            })
        };
        let mut warnings = PartialSuccessWarnings::default();
        tracing::subscriber::with_default(subscriber, || {
            warnings.report(&SPANS, rejected(2));
            warnings.report(&SPANS, rejected(5));
            warnings.report(&SPANS, rejected(7));
            // Nothing rejected: nothing to say.
            warnings.report(&SPANS, Some(PartialSuccess::default()));
            warnings.report(&SPANS, None);
            warnings.last = Some(std::time::Instant::now() - PARTIAL_WARN_EVERY);
            warnings.report(&SPANS, rejected(1));
            let mut logs = PartialSuccessWarnings::default();
            logs.report(&LOG_RECORDS, rejected(4));
            let mut metrics = PartialSuccessWarnings::default();
            metrics.report(&METRIC_DATA_POINTS, rejected(6));
        });
        let text = lines.text();
        let warned: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("rejected part"))
            .collect();
        assert_eq!(warned.len(), 4, "{text}");
        assert!(warned[0].contains("rejected_spans=2"), "{}", warned[0]);
        // The second warning counts the spans of the two it held back too.
        assert!(warned[1].contains("rejected_spans=13"), "{}", warned[1]);
        // The collector's text is cut short.
        assert!(warned[0].len() < 1_000, "{}", warned[0]);
        // Each signal names its own items.
        assert!(
            warned[2].contains("rejected_log_records=4"),
            "{}",
            warned[2]
        );
        assert!(warned[2].contains("signal=\"logs\""), "{}", warned[2]);
        assert!(
            warned[3].contains("rejected_data_points=6"),
            "{}",
            warned[3]
        );
    }
}
