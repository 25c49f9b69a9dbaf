//! Forwarding: every export received, passed on unchanged (the protobuf
//! message as it arrived, decompressed) to another OTLP endpoint, so a local
//! viewer can sit in front of a real collector. Fire and forget through a
//! bounded queue: a slow or absent collector costs forwarded data (counted),
//! never a slower answer to the exporter.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use tokio::sync::mpsc;

use crate::budget::{ByteBudget, Reservation};
use crate::model::{RequestOutcome, Signal};
use crate::server::{Batch, GRPC_LOGS_PATH, GRPC_METRICS_PATH, GRPC_TRACES_PATH, RawCodec};
use crate::server::{RequestInfo, Sink};

/// How to reach the next collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardProtocol {
    /// OTLP/gRPC (`http://host:4317`).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http://host:4318`; `/v1/<signal>` is appended).
    HttpProtobuf,
}

/// Where and how to forward.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// Base URL of the next collector; plain `http://` only.
    pub endpoint: String,
    /// Its protocol.
    pub protocol: ForwardProtocol,
    /// Export requests waiting to be forwarded; past it new ones are dropped.
    pub queue: usize,
    /// Bytes of export requests waiting to be forwarded; past it new ones
    /// are dropped. A request's body leaves the receiver's budget once it
    /// is answered, so the queue bounds its own.
    pub queue_bytes: usize,
    /// Deadline of one forwarded request.
    pub timeout: Duration,
}

impl ForwardConfig {
    /// Forwarding to `endpoint` with a queue of 512 requests and 64 MiB, and
    /// a 10 s deadline.
    pub fn new(endpoint: impl Into<String>, protocol: ForwardProtocol) -> ForwardConfig {
        ForwardConfig {
            endpoint: endpoint.into(),
            protocol,
            queue: 512,
            queue_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Export requests forwarded, failed (the collector refused or was
/// unreachable) and dropped (the queue was full).
#[derive(Debug, Default)]
pub struct ForwardStats {
    forwarded: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl ForwardStats {
    /// Requests the next collector accepted.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
    /// Requests it refused, or that could not reach it.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    /// Requests dropped because the queue was full (in requests or bytes).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Job {
    signal: Signal,
    headers: BTreeMap<String, String>,
    body: Bytes,
    /// The body's share of the queue's bytes, given back when the job is
    /// sent, fails or is dropped.
    _queued: Reservation,
}

/// A [`Sink`] that forwards every decodable export to another collector.
pub struct Forwarder {
    queue: Option<mpsc::Sender<Job>>,
    /// Bytes of the jobs queued or being sent.
    queued_bytes: Arc<ByteBudget>,
    stats: Arc<ForwardStats>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarder")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Headers that belong to one hop, not to the export: never forwarded.
const HOP_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-encoding",
    "content-type",
    "connection",
    "transfer-encoding",
    "te",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-timeout",
    "accept-encoding",
];

impl Forwarder {
    /// Starts the forwarding thread.
    ///
    /// # Errors
    /// An endpoint that is not a plain `http://` URL, or a thread that cannot start.
    pub fn start(config: ForwardConfig) -> Result<Forwarder, String> {
        let endpoint = config.endpoint.trim_end_matches('/').to_string();
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("forward endpoint {endpoint:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!(
                "forward endpoint {endpoint:?}: only plain http://host:port is supported \
                 (TLS to the collector is the engines' own exporter's job)"
            ));
        }
        let (tx, rx) = mpsc::channel::<Job>(config.queue.max(1));
        let queued_bytes = ByteBudget::new(config.queue_bytes);
        let stats = Arc::new(ForwardStats::default());
        let worker_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("otlp-forward".to_string())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(work(rx, uri, endpoint, config, worker_stats));
            })
            .map_err(|e| format!("cannot start the forwarding thread: {e}"))?;
        Ok(Forwarder {
            queue: Some(tx),
            queued_bytes,
            stats,
            thread: Some(thread),
        })
    }

    /// What happened to the forwarded requests so far.
    pub fn stats(&self) -> &Arc<ForwardStats> {
        &self.stats
    }
}

impl Sink for Forwarder {
    fn receive(&self, request: RequestInfo, batch: Option<Batch>) -> RequestOutcome {
        if batch.is_none() {
            return RequestOutcome::Invalid;
        }
        self.forward(request)
    }
}

impl Forwarder {
    /// Queues a valid request's bytes for sending on; the decoded batch is
    /// not needed, so a sink that also stores batches need not copy one.
    pub fn forward(&self, request: RequestInfo) -> RequestOutcome {
        let headers = request
            .headers
            .into_iter()
            .filter(|(k, _)| !HOP_HEADERS.contains(&k.as_str()))
            .collect();
        let queued = self.queued_bytes.reserve();
        if queued
            .grow(request.body.len(), "the forward queue")
            .is_err()
        {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return RequestOutcome::Accepted;
        }
        let job = Job {
            signal: request.signal,
            headers,
            body: request.body,
            _queued: queued,
        };
        if let Some(queue) = &self.queue
            && queue.try_send(job).is_err()
        {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        RequestOutcome::Accepted
    }
}

/// How long a stopping forwarder keeps sending what is queued.
const DRAIN: Duration = Duration::from_secs(3);

impl Drop for Forwarder {
    fn drop(&mut self) {
        // Closing the queue lets the worker send what is queued, then end;
        // against a dead collector that could take a deadline per request,
        // so after DRAIN the thread is left to end with the process.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let deadline = std::time::Instant::now() + DRAIN;
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

async fn work(
    mut rx: mpsc::Receiver<Job>,
    uri: http::Uri,
    endpoint: String,
    config: ForwardConfig,
    stats: Arc<ForwardStats>,
) {
    let http = reqwest::Client::builder().timeout(config.timeout).build();
    let channel = tonic::transport::Endpoint::from(uri)
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .connect_lazy();
    while let Some(job) = rx.recv().await {
        let sent = match config.protocol {
            ForwardProtocol::HttpProtobuf => match &http {
                Ok(client) => send_http(client, &endpoint, job).await,
                Err(_) => false,
            },
            ForwardProtocol::Grpc => send_grpc(channel.clone(), job).await,
        };
        let counter = if sent {
            &stats.forwarded
        } else {
            &stats.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

async fn send_http(client: &reqwest::Client, endpoint: &str, job: Job) -> bool {
    let path = match job.signal {
        Signal::Traces => "/v1/traces",
        Signal::Metrics => "/v1/metrics",
        Signal::Logs => "/v1/logs",
    };
    let mut request = client
        .post(format!("{endpoint}{path}"))
        .header("content-type", "application/x-protobuf")
        .body(job.body);
    for (k, v) in &job.headers {
        request = request.header(k.as_str(), v.as_str());
    }
    request.send().await.is_ok_and(|r| r.status().is_success())
}

async fn send_grpc(channel: tonic::transport::Channel, job: Job) -> bool {
    let path = PathAndQuery::from_static(match job.signal {
        Signal::Traces => GRPC_TRACES_PATH,
        Signal::Metrics => GRPC_METRICS_PATH,
        Signal::Logs => GRPC_LOGS_PATH,
    });
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        return false;
    }
    let mut request = tonic::Request::new(job.body);
    for (k, v) in &job.headers {
        if let (Ok(key), Ok(value)) = (
            k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            v.parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>(),
        ) {
            request.metadata_mut().insert(key, value);
        }
    }
    grpc.unary::<Bytes, Bytes, RawCodec>(request, path, RawCodec)
        .await
        .is_ok()
}

/// Several sinks as one: each gets every export; the first one's answer is
/// the exporter's answer (e.g. a viewer's store, then a forwarder).
pub struct Tee(pub Vec<Arc<dyn Sink>>);

impl fmt::Debug for Tee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tee({} sinks)", self.0.len())
    }
}

impl Sink for Tee {
    fn receive(&self, request: RequestInfo, batch: Option<Batch>) -> RequestOutcome {
        // Every sink but the last gets a copy; the last takes the batch, so
        // a tee of two holds two decoded batches at most, not three.
        let Some((last, firsts)) = self.0.split_last() else {
            return RequestOutcome::Accepted;
        };
        let mut answer = None;
        for sink in firsts {
            let outcome = sink.receive(request.clone(), batch.clone());
            answer.get_or_insert(outcome);
        }
        let outcome = last.receive(request, batch);
        answer.unwrap_or(outcome)
    }
}
