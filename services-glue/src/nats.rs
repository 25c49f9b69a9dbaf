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
//!
//! [`NatsTelemetry::consumer`] runs that loop for a service: subscribe,
//! re-subscribe with back-off, one CONSUMER span per message, stop on
//! shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time;

use futures_util::StreamExt;

use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::cardinality::{BoundedValues, subject_template};
use crate::outcome::{Duration, ErrorType, Measure, OutcomeGuard};
use crate::propagation::Propagator;

/// Most distinct subject templates kept as attribute values.
pub const MAX_SUBJECTS: usize = 200;

/// First wait before a [`Consumer`] subscribes again; doubled per
/// consecutive failure up to [`RESUBSCRIBE_MAX_DELAY`].
pub const RESUBSCRIBE_INITIAL_DELAY: time::Duration = time::Duration::from_millis(100);

/// Longest wait between two subscribe attempts of a [`Consumer`].
pub const RESUBSCRIBE_MAX_DELAY: time::Duration = time::Duration::from_secs(10);

/// NATS instruments and subject bounding; cheap to clone.
#[derive(Clone, Debug)]
pub struct NatsTelemetry {
    sent: Counter<u64>,
    consumed: Counter<u64>,
    process_duration: Histogram<f64>,
    operation_duration: Histogram<f64>,
    subjects: Arc<BoundedValues>,
    propagator: Propagator,
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
            propagator: Propagator::global(),
        }
    }

    /// Writes and reads message headers with `propagator` instead of the
    /// global one, so a service that never installs its telemetry globally
    /// still propagates context.
    pub fn with_propagator(mut self, propagator: impl Into<Propagator>) -> Self {
        self.propagator = propagator.into();
        self
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
        &self,
        span: &tracing::Span,
        mut headers: async_nats::HeaderMap,
    ) -> async_nats::HeaderMap {
        self.propagator
            .inject(&span.context(), &mut NatsInjector(&mut headers));
        headers
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

    /// Publishes with a reply subject (scatter-gather: every responder
    /// answers to `reply`, which the caller subscribed to before). Each
    /// responder's `process` span is a child of this PRODUCER span, and each
    /// answer the caller handles with [`process`](Self::process) a child of
    /// its responder's.
    pub async fn publish_with_reply(
        &self,
        client: &async_nats::Client,
        subject: &str,
        reply: &str,
        payload: Bytes,
    ) -> Result<(), async_nats::PublishError> {
        self.send(
            "publish",
            subject,
            async_nats::HeaderMap::new(),
            |headers| {
                client.publish_with_reply_and_headers(
                    subject.to_string(),
                    reply.to_string(),
                    headers,
                    payload,
                )
            },
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
        let headers = self.headers_for(&span, headers);
        let mut outcome = OutcomeGuard::new(
            span.clone(),
            SendMeasure {
                sent: self.sent.clone(),
                duration: Duration {
                    histogram: self.operation_duration.clone(),
                    attrs: vec![
                        KeyValue::new("messaging.system", "nats"),
                        KeyValue::new("messaging.operation.name", operation),
                        KeyValue::new("messaging.destination.name", label.to_string()),
                    ],
                },
            },
        );
        let result = run(headers).instrument(span).await;
        outcome.finish_result(&result, error_type);
        result
    }

    /// Starts processing a delivered message (core or JetStream, which
    /// derefs to a core message): a CONSUMER span `process {subject}` whose
    /// parent is the producer's span from the headers.
    pub fn process(&self, message: &async_nats::Message) -> Processing {
        let label = self.subject_label(message.subject.as_str());
        let incoming = message
            .headers
            .as_ref()
            .map(|headers| self.propagator.extract(&NatsExtractor(headers)));
        let span = crate::propagation::created_under(incoming, || {
            tracing::info_span!(
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
            )
        });
        let attrs = vec![
            KeyValue::new("messaging.system", "nats"),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("messaging.destination.name", label.to_string()),
        ];
        self.consumed.add(1, &attrs);
        Processing {
            outcome: OutcomeGuard::new(
                span,
                Duration {
                    histogram: self.process_duration.clone(),
                    attrs,
                },
            ),
        }
    }
}

impl NatsTelemetry {
    /// A [`Consumer`] of `subject` on `client` (wildcards allowed); nothing
    /// is subscribed until [`Consumer::run`].
    pub fn consumer(&self, client: &async_nats::Client, subject: impl Into<String>) -> Consumer {
        Consumer {
            nats: self.clone(),
            client: client.clone(),
            subject: subject.into(),
            queue_group: None,
            initial_delay: RESUBSCRIBE_INITIAL_DELAY,
            max_delay: RESUBSCRIBE_MAX_DELAY,
        }
    }
}

/// Subscribes to a subject and hands every message to an async handler
/// inside its CONSUMER span `process {subject}` (the producer's child); the
/// handler's `Result` finishes the span and `messaging.process.duration`
/// as [`Processing::finish`] does, and an error is logged in the span.
///
/// Messages are handled one at a time, in order; a handler error never
/// stops the loop. Decoding is the handler's business: it gets the whole
/// [`async_nats::Message`] (payload, headers, reply subject).
///
/// When subscribing fails, or the subscription ends (the client was
/// closed or drained), it logs that once and subscribes again after a
/// delay that doubles from [`RESUBSCRIBE_INITIAL_DELAY`] to
/// [`RESUBSCRIBE_MAX_DELAY`] and starts over once a message arrives. A lost
/// connection needs none of this: async-nats reconnects and restores live
/// subscriptions itself.
///
/// ```no_run
/// # async fn demo(client: async_nats::Client) {
/// use services_glue::nats::NatsTelemetry;
/// let nats = NatsTelemetry::new(&opentelemetry::global::meter("clearing-engine"));
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let consumer = nats
///     .consumer(&client, "obligations.created")
///     .queue_group("clearing-engine")
///     .run(
///         async move {
///             let _ = stopped.await;
///         },
///         |message: async_nats::Message| async move {
///             // Logs here carry the CONSUMER span's trace and span ids.
///             tracing::info!(bytes = message.payload.len(), "netting");
///             if message.payload.is_empty() {
///                 return Err("empty obligation"); // span ERROR, error.type=process_failed
///             }
///             Ok(())
///         },
///     );
/// let task = tokio::spawn(consumer);
/// // … on shutdown:
/// let _ = stop.send(());
/// let _ = task.await;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Consumer {
    nats: NatsTelemetry,
    client: async_nats::Client,
    subject: String,
    queue_group: Option<String>,
    initial_delay: time::Duration,
    max_delay: time::Duration,
}

impl Consumer {
    /// Joins queue group `group`: each message goes to one member.
    pub fn queue_group(mut self, group: impl Into<String>) -> Self {
        self.queue_group = Some(group.into());
        self
    }

    /// Replaces the re-subscribe back-off: `initial` (at least 1 ms, so a
    /// failing subscribe never spins), doubled up to `max`.
    pub fn backoff(mut self, initial: time::Duration, max: time::Duration) -> Self {
        self.initial_delay = initial.max(time::Duration::from_millis(1));
        self.max_delay = max.max(self.initial_delay);
        self
    }

    /// Handles messages until `shutdown` resolves.
    ///
    /// The stop signal is a plain future rather than a token type, so any
    /// signal fits without a new dependency (tokio-util is no dependency
    /// here): a process's SIGTERM future, `CancellationToken::cancelled_owned()`,
    /// `async { let _ = oneshot_receiver.await; }`. It
    /// is checked between messages: a message being handled is finished
    /// first, then the subscription is dropped (unsubscribed), so a queue
    /// group's other members get what follows. Messages already buffered
    /// for this subscriber are not handled, as with any core NATS
    /// subscriber that goes away.
    ///
    /// Returns `Ok` once stopped, or at once the error of a subject or
    /// queue group name that can never be subscribed. Any other failure is
    /// retried.
    pub async fn run<H, Fut, E>(
        self,
        shutdown: impl Future<Output = ()>,
        mut handler: H,
    ) -> Result<(), async_nats::SubscribeError>
    where
        H: FnMut(async_nats::Message) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut delay = self.initial_delay;
        loop {
            let subscribed = tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                s = self.subscribe() => s,
            };
            match subscribed {
                Ok(mut subscriber) => {
                    loop {
                        let next = tokio::select! {
                            biased;
                            () = &mut shutdown => return Ok(()),
                            m = subscriber.next() => m,
                        };
                        let Some(message) = next else { break };
                        delay = self.initial_delay;
                        self.handle(message, &mut handler).await;
                    }
                    tracing::warn!(subject = %self.subject, retry_in = ?delay, "subscription ended; subscribing again");
                }
                Err(e) if permanent(&e) => {
                    tracing::error!(subject = %self.subject, error = %e, "cannot subscribe");
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(subject = %self.subject, error = %e, retry_in = ?delay, "subscribe failed; retrying");
                }
            }
            tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
            delay = delay.saturating_mul(2).min(self.max_delay);
        }
    }

    async fn subscribe(&self) -> Result<async_nats::Subscriber, async_nats::SubscribeError> {
        match &self.queue_group {
            Some(group) => {
                self.client
                    .queue_subscribe(self.subject.clone(), group.clone())
                    .await
            }
            None => self.client.subscribe(self.subject.clone()).await,
        }
    }

    /// One message: the handler is called inside the span too, so its
    /// synchronous part before the first `await` sees the message's context.
    async fn handle<H, Fut, E>(&self, message: async_nats::Message, handler: &mut H)
    where
        H: FnMut(async_nats::Message) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let processing = self.nats.process(&message);
        let span = processing.span().clone();
        let outcome = processing
            .in_scope(|| handler(message))
            .instrument(span)
            .await;
        if let Err(e) = &outcome {
            processing.in_scope(|| tracing::warn!(error = %e, "message not processed"));
        }
        processing.finish(outcome);
    }
}

/// A subject or queue group name the client refuses: retrying cannot help.
fn permanent(e: &async_nats::SubscribeError) -> bool {
    matches!(
        e.kind(),
        async_nats::SubscribeErrorKind::InvalidSubject
            | async_nats::SubscribeErrorKind::InvalidQueueName
    )
}

/// A publish or request: one sent message counted and its operation
/// timed, under the same attributes.
#[derive(Debug)]
struct SendMeasure {
    sent: Counter<u64>,
    duration: Duration,
}

impl Measure for SendMeasure {
    fn measure(mut self, _span: &tracing::Span, elapsed: f64, error: Option<&ErrorType>) {
        if let Some(e) = error {
            self.duration
                .attrs
                .push(KeyValue::new("error.type", e.clone().into_owned()));
        }
        self.sent.add(1, &self.duration.attrs);
        self.duration
            .histogram
            .record(elapsed, &self.duration.attrs);
    }
}

/// A message being processed; [`finish`](Processing::finish) records the
/// outcome (dropping it unfinished records `error.type=cancelled`).
#[derive(Debug)]
pub struct Processing {
    outcome: OutcomeGuard<Duration>,
}

impl Processing {
    /// The CONSUMER span, to enter or instrument the handler with.
    pub fn span(&self) -> &tracing::Span {
        self.outcome.span()
    }

    /// Runs `f` inside the span.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.outcome.span().in_scope(f)
    }

    /// Records success, or the error's kind (a short, bounded string).
    pub fn finish<E: std::fmt::Display>(mut self, outcome: Result<(), E>) {
        let error = outcome.err().map(|_| ErrorType::Borrowed("process_failed"));
        self.outcome.finish(error);
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
