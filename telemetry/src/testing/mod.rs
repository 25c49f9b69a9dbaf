//! Test harness: the OTLP receiver (gRPC and HTTP/protobuf, from the `otlp-receiver`
//! crate) that decodes what an application exports, and in-memory exporters
//! that read the same model, so tests assert on real spans, metrics and logs
//! end to end.
//!
//! [`OtlpReceiver::start`] binds two ephemeral ports on 127.0.0.1 and serves them from a
//! dedicated thread with its own tokio runtime, so it can be used from plain `#[test]`s and
//! from any `#[tokio::test]` flavour. Point an exporter at [`OtlpReceiver::grpc_endpoint`] or
//! [`OtlpReceiver::http_endpoint`], then poll with the bounded `wait_for_*` methods.

mod in_memory;

pub use in_memory::{InMemory, InMemoryLogExporter, InMemoryMetricExporter, InMemorySpanExporter};

pub use otlp_receiver::{
    AttrValue, Attributes, ExponentialPoint, HistogramPoint, MetricData, NumberPoint, OtlpReceiver,
    ReceivedEvent, ReceivedLink, ReceivedLog, ReceivedMetric, ReceivedRequest, ReceivedSpan,
    RequestOutcome, Signal, SpanKind, SpanStatus, Transport, find_metric, find_span,
};
