//! Test harness: an in-process OTLP receiver (gRPC and HTTP/protobuf) that decodes what an
//! application exports, so tests can assert on real spans, metrics and logs end to end.
//!
//! [`OtlpReceiver::start`] binds two ephemeral ports on 127.0.0.1 and serves them from a
//! dedicated thread with its own tokio runtime, so it can be used from plain `#[test]`s and
//! from any `#[tokio::test]` flavour. Point an exporter at [`OtlpReceiver::grpc_endpoint`] or
//! [`OtlpReceiver::http_endpoint`], then poll with the bounded `wait_for_*` methods.
//!
//! ```
//! use std::time::Duration;
//! use telemetry::testing::{OtlpReceiver, find_span};
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

mod in_memory;
mod model;
mod receiver;

pub use in_memory::{InMemory, InMemoryLogExporter, InMemoryMetricExporter, InMemorySpanExporter};

pub use model::{
    AttrValue, Attributes, HistogramPoint, MetricData, NumberPoint, ReceivedEvent, ReceivedLink,
    ReceivedLog, ReceivedMetric, ReceivedRequest, ReceivedSpan, RequestOutcome, Signal, SpanKind,
    SpanStatus, Transport, find_metric, find_span,
};
pub use receiver::OtlpReceiver;
