//! NATS messaging (async-nats): PRODUCER spans `publish {subject}` with the
//! context injected into message headers, CONSUMER spans `process {subject}`
//! parented on the producer, request/reply, JetStream publish and consume,
//! and the messaging metrics — the original "NATS messages published by
//! subject and status" as `messaging.client.sent.messages` with `error.type`.
//!
//! Subjects are bounded before they become attributes: identifier-like
//! tokens become `*` ([`subject_template`]) and at most
//! [`MAX_SUBJECTS`] distinct templates are kept, the rest `_OTHER`.
//!
//! ```no_run
//! # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use services_glue::nats::NatsTelemetry;
//! let nats = NatsTelemetry::new(&opentelemetry::global::meter("obligation-engine"));
//! nats.publish(&client, "obligations.created", "{}".into()).await?;
//!
//! let mut sub = client.subscribe("obligations.created").await?;
//! # use futures_util::StreamExt;
//! while let Some(msg) = sub.next().await {
//!     let processing = nats.process(&msg);            // CONSUMER span, child of the producer
//!     let ok = processing.in_scope(|| true);
//!     processing.finish(ok.then_some(()).ok_or("rejected"));
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::cardinality::{BoundedValues, subject_template};

/// Most distinct subject templates kept as attribute values.
pub const MAX_SUBJECTS: usize = 200;

/// NATS instruments and subject bounding; cheap to clone.
#[derive(Clone, Debug)]
pub struct NatsTelemetry {
    sent: Counter<u64>,
    consumed: Counter<u64>,
    process_duration: Histogram<f64>,
    operation_duration: Histogram<f64>,
    subjects: Arc<BoundedValues>,
}

impl NatsTelemetry {
    /// Creates the instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        NatsTelemetry {
            sent: meter
                .u64_counter("messaging.client.sent.messages")
                .with_unit("{message}")
                .with_description("Messages a producer attempted to publish")
                .build(),
            consumed: meter
                .u64_counter("messaging.client.consumed.messages")
                .with_unit("{message}")
                .with_description("Messages delivered to a consumer")
                .build(),
            process_duration: meter
                .f64_histogram("messaging.process.duration")
                .with_unit("s")
                .with_description("Duration of processing one message")
                .with_boundaries(crate::semconv::SECONDS_BUCKETS.to_vec())
                .build(),
            operation_duration: meter
                .f64_histogram("messaging.client.operation.duration")
                .with_unit("s")
                .with_description("Duration of publish and request operations")
                .with_boundaries(crate::semconv::SECONDS_BUCKETS.to_vec())
                .build(),
            subjects: Arc::new(BoundedValues::new(MAX_SUBJECTS)),
        }
    }

    /// The subject as it appears in span names and attributes.
    pub fn subject_label(&self, subject: &str) -> Arc<str> {
        self.subjects.bound(&subject_template(subject))
    }

    fn producer_span(&self, operation: &'static str, label: &str) -> tracing::Span {
        tracing::info_span!(
            "messaging",
            otel.name = %format!("{operation} {label}"),
            otel.kind = "producer",
            otel.status_code = Empty,
            messaging.system = "nats",
            messaging.operation.name = operation,
            messaging.operation.type = "send",
            messaging.destination.name = %label,
            error.type = Empty,
        )
    }

    fn headers_for(
        span: &tracing::Span,
        mut headers: async_nats::HeaderMap,
    ) -> async_nats::HeaderMap {
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut NatsInjector(&mut headers))
        });
        headers
    }

    fn record_send(
        &self,
        operation: &'static str,
        label: &Arc<str>,
        start: Instant,
        error: Option<&'static str>,
        span: &tracing::Span,
    ) {
        let mut attrs = vec![
            KeyValue::new("messaging.system", "nats"),
            KeyValue::new("messaging.operation.name", operation),
            KeyValue::new("messaging.destination.name", label.to_string()),
        ];
        if let Some(e) = error {
            span.record("error.type", e);
            span.record("otel.status_code", "ERROR");
            attrs.push(KeyValue::new("error.type", e));
        }
        self.sent.add(1, &attrs);
        self.operation_duration
            .record(start.elapsed().as_secs_f64(), &attrs);
    }

    /// Publishes with a PRODUCER span and the context in the headers.
    pub async fn publish(
        &self,
        client: &async_nats::Client,
        subject: &str,
        payload: Bytes,
    ) -> Result<(), async_nats::PublishError> {
        self.publish_with_headers(client, subject, async_nats::HeaderMap::new(), payload)
            .await
    }

    /// [`publish`](Self::publish) keeping the caller's headers.
    pub async fn publish_with_headers(
        &self,
        client: &async_nats::Client,
        subject: &str,
        headers: async_nats::HeaderMap,
        payload: Bytes,
    ) -> Result<(), async_nats::PublishError> {
        self.send(
            "publish",
            subject,
            headers,
            |headers| client.publish_with_headers(subject.to_string(), headers, payload),
            |_| "publish_failed",
        )
        .await
    }

    /// Request/reply: a PRODUCER span `send {subject}` around the request;
    /// the responder's `process` span is its child.
    pub async fn request(
        &self,
        client: &async_nats::Client,
        subject: &str,
        payload: Bytes,
    ) -> Result<async_nats::Message, async_nats::RequestError> {
        self.send(
            "send",
            subject,
            async_nats::HeaderMap::new(),
            |headers| client.request_with_headers(subject.to_string(), headers, payload),
            |e: &async_nats::RequestError| match e.kind() {
                async_nats::RequestErrorKind::TimedOut => "timeout",
                async_nats::RequestErrorKind::NoResponders => "no_responders",
                _ => "request_failed",
            },
        )
        .await
    }

    /// JetStream publish (waits for the stream's acknowledgement).
    pub async fn jetstream_publish(
        &self,
        js: &async_nats::jetstream::Context,
        subject: &str,
        payload: Bytes,
    ) -> Result<
        async_nats::jetstream::publish::PublishAck,
        async_nats::jetstream::context::PublishError,
    > {
        self.send(
            "publish",
            subject,
            async_nats::HeaderMap::new(),
            |headers| async move {
                js.publish_with_headers(subject.to_string(), headers, payload)
                    .await?
                    .await
            },
            |_| "publish_failed",
        )
        .await
    }

    /// One outgoing operation: PRODUCER span, context in `headers`, the
    /// operation run inside the span, then the sent-message count and
    /// duration with `error_type` of a failure.
    async fn send<T, E, Fut>(
        &self,
        operation: &'static str,
        subject: &str,
        headers: async_nats::HeaderMap,
        run: impl FnOnce(async_nats::HeaderMap) -> Fut,
        error_type: impl Fn(&E) -> &'static str,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let label = self.subject_label(subject);
        let span = self.producer_span(operation, &label);
        let headers = Self::headers_for(&span, headers);
        let start = Instant::now();
        let result = run(headers).instrument(span.clone()).await;
        let error = result.as_ref().err().map(&error_type);
        self.record_send(operation, &label, start, error, &span);
        result
    }

    /// Starts processing a delivered message (core or JetStream, which
    /// derefs to a core message): a CONSUMER span `process {subject}` whose
    /// parent is the producer's span from the headers.
    pub fn process(&self, message: &async_nats::Message) -> Processing {
        let label = self.subject_label(message.subject.as_str());
        let span = tracing::info_span!(
            "messaging",
            otel.name = %format!("process {label}"),
            otel.kind = "consumer",
            otel.status_code = Empty,
            messaging.system = "nats",
            messaging.operation.name = "process",
            messaging.operation.type = "process",
            messaging.destination.name = %label,
            messaging.message.body.size = message.payload.len() as i64,
            error.type = Empty,
        );
        if let Some(headers) = &message.headers {
            let parent = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&NatsExtractor(headers))
            });
            let _ = span.set_parent(parent);
        }
        let attrs = vec![
            KeyValue::new("messaging.system", "nats"),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("messaging.destination.name", label.to_string()),
        ];
        self.consumed.add(1, &attrs);
        Processing {
            span,
            start: Instant::now(),
            attrs,
            duration: self.process_duration.clone(),
            done: false,
        }
    }
}

/// A message being processed; [`finish`](Processing::finish) records the
/// outcome (dropping it unfinished records `error.type=cancelled`).
#[derive(Debug)]
pub struct Processing {
    span: tracing::Span,
    start: Instant,
    attrs: Vec<KeyValue>,
    duration: Histogram<f64>,
    done: bool,
}

impl Processing {
    /// The CONSUMER span, to enter or instrument the handler with.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Runs `f` inside the span.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.span.in_scope(f)
    }

    /// Records success, or the error's kind (a short, bounded string).
    pub fn finish<E: std::fmt::Display>(mut self, outcome: Result<(), E>) {
        let error = outcome.err().map(|_| "process_failed");
        self.record(error);
    }

    fn record(&mut self, error: Option<&'static str>) {
        if self.done {
            return;
        }
        self.done = true;
        let mut attrs = self.attrs.clone();
        if let Some(e) = error {
            self.span.record("error.type", e);
            self.span.record("otel.status_code", "ERROR");
            attrs.push(KeyValue::new("error.type", e));
        }
        self.duration
            .record(self.start.elapsed().as_secs_f64(), &attrs);
    }
}

impl Drop for Processing {
    fn drop(&mut self) {
        self.record(Some("cancelled"));
    }
}

struct NatsInjector<'a>(&'a mut async_nats::HeaderMap);

impl opentelemetry::propagation::Injector for NatsInjector<'_> {
    /// Replaces the field; empty values (an empty `tracestate`) are not written.
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.insert(key, value.as_str());
        }
    }
}

struct NatsExtractor<'a>(&'a async_nats::HeaderMap);

impl opentelemetry::propagation::Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
    /// Every value of a repeated header, so `tracestate` values are combined
    /// and a duplicated `traceparent` is seen (and ignored) as invalid.
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        crate::propagation::all_lines(self.0.get_all(key).map(|v| Some(v.as_str())))
    }
}
