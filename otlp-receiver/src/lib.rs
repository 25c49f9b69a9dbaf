//! An OTLP receiver: gRPC and HTTP/protobuf listeners that decode every export
//! into a flat, comparable model ([`ReceivedSpan`], [`ReceivedMetric`],
//! [`ReceivedLog`]) and hand it to a [`Sink`].
//!
//! Two sinks ship with it: [`OtlpReceiver`], the recorder tests assert on, and
//! whatever a viewer implements to keep recent telemetry in bounded memory.
//! The listeners run on their own thread and runtime, so a slow sink never
//! takes a worker from the application that embeds them.
//!
//! ```
//! use std::time::Duration;
//! use otlp_receiver::{OtlpReceiver, find_span};
//!
//! let receiver = OtlpReceiver::start()?;
//! assert!(receiver.grpc_endpoint().starts_with("http://127.0.0.1:"));
//! assert!(receiver.http_endpoint().starts_with("http://127.0.0.1:"));
//!
//! // ... configure the exporter with `receiver.grpc_endpoint()` and emit telemetry ...
//!
//! // Bounded wait: returns whatever arrived once `done` holds or the timeout passes.
//! let spans = receiver.wait_for_spans(Duration::from_millis(50), |s| !s.is_empty());
//! assert!(spans.is_empty());
//! assert!(find_span(&spans, "checkout").is_none());
//! assert!(receiver.requests().is_empty());
//! receiver.shutdown();
//! # Ok::<(), std::io::Error>(())
//! ```

mod budget;
mod decoded_size;
mod forward;
mod model;
mod recorder;
mod server;
mod serving;

pub use forward::{ForwardConfig, ForwardProtocol, ForwardStats, Forwarder, Tee};
pub use model::{
    AttrValue, Attributes, ExponentialPoint, HistogramPoint, MetricData, NumberPoint,
    ReceivedEvent, ReceivedLink, ReceivedLog, ReceivedMetric, ReceivedRequest, ReceivedSpan,
    RequestOutcome, Signal, SpanKind, SpanStatus, Transport, find_metric, find_span, logs_from,
    metrics_from, spans_from,
};
pub use recorder::OtlpReceiver;
pub use server::{Batch, OtlpServer, RequestInfo, ServerConfig, Sink};
pub use serving::ServingThread;
