//! Spans telemetry's layer records itself go straight into the span queues.
//!
//! Started through the SDK, a kept span is built three times over: the
//! layer's builder, the SDK's span (boxed, behind a lock in the
//! OpenTelemetry context, with a processor call when it starts) and the
//! `SpanData` it becomes when it ends. The layer instead keeps what it
//! collected and hands it over once, when the span closes ([`QueueSink`]);
//! it becomes the same `SpanData` the SDK would have made, with the tracer
//! provider's limits applied, and goes to the same queues. The SDK path
//! stays for spans started through the OpenTelemetry API.

use std::sync::Arc;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanLinks};
use tracing_opentelemetry::{RecordLimits, RecordedSpan, SpanSink};

use crate::config::LimitsConfig;
use crate::processors::QueueSpanProcessor;

/// Where telemetry's layer hands the spans it records: every span queue.
#[derive(Debug, Clone)]
pub(crate) struct QueueSink(Arc<Sink>);

#[derive(Debug)]
struct Sink {
    queues: Vec<QueueSpanProcessor>,
    /// The service tracer's scope, as the SDK would give each span.
    scope: InstrumentationScope,
    ids: RandomIdGenerator,
    limits: LimitsConfig,
}

impl QueueSink {
    pub(crate) fn new(
        queues: Vec<QueueSpanProcessor>,
        scope: InstrumentationScope,
        limits: LimitsConfig,
    ) -> Self {
        QueueSink(Arc::new(Sink {
            queues,
            scope,
            ids: RandomIdGenerator::default(),
            limits,
        }))
    }
}

impl SpanSink for QueueSink {
    fn new_span_id(&self) -> SpanId {
        self.0.ids.new_span_id()
    }

    fn new_trace_id(&self) -> TraceId {
        self.0.ids.new_trace_id()
    }

    fn limits(&self) -> RecordLimits {
        let limits = &self.0.limits;
        RecordLimits {
            attributes: limits.span_attribute_count,
            events: limits.span_event_count,
            links: limits.span_link_count,
            event_attributes: limits.event_attribute_count,
            link_attributes: limits.link_attribute_count,
        }
    }

    /// The queues shut down with the tracer provider.
    fn is_shut_down(&self) -> bool {
        self.0.queues.iter().all(QueueSpanProcessor::is_shut_down)
    }

    fn end(&self, span: RecordedSpan) {
        // Ended after the provider's shutdown (started before it): the SDK
        // ends such spans without a word, nothing queued nor counted.
        if self.is_shut_down() {
            return;
        }
        let Some((last, others)) = self.0.queues.split_last() else {
            return;
        };
        let data = span_data(span, &self.0.scope);
        for queue in others {
            queue.push(data.clone());
        }
        last.push(data);
    }
}

/// `span` as the SDK ends a span (the layer kept it within the limits).
fn span_data(span: RecordedSpan, scope: &InstrumentationScope) -> SpanData {
    let builder = span.builder;
    let mut events = SpanEvents::default();
    events.events = builder.events.unwrap_or_default();
    events.dropped_count = span.dropped_events;
    let mut links = SpanLinks::default();
    links.links = builder.links.unwrap_or_default();
    links.dropped_count = span.dropped_links;
    SpanData {
        span_context: span.span_context,
        parent_span_id: span.parent_span_id,
        parent_span_is_remote: span.parent_span_is_remote,
        span_kind: builder.span_kind.unwrap_or(SpanKind::Internal),
        name: builder.name,
        start_time: builder.start_time.unwrap_or(span.end_time),
        end_time: span.end_time,
        attributes: builder.attributes.unwrap_or_default(),
        dropped_attributes_count: span.dropped_attributes,
        events,
        links,
        status: span.status,
        instrumentation_scope: scope.clone(),
    }
}
