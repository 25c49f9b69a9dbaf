//! Spans the layer records itself and hands to a [`SpanSink`] when they end.
//!
//! Without a sink, a span that is kept is started through the tracer when it
//! is first entered (or asked for its context, or given a child): the SDK
//! builds its span, wraps it in a lock inside the OpenTelemetry context, and
//! moves its data again when it ends. With a sink, the layer keeps the span
//! as it was collected (name, attributes, events, links, status, times) and
//! gives the sink the whole span once, when it closes. The context made
//! current while the span is entered holds the span's span context as a
//! non-recording span, as a dropped span's does: propagation and log
//! correlation see the span's trace and span ids, and what is recorded goes
//! through `tracing` and [`OpenTelemetrySpanExt`](crate::OpenTelemetrySpanExt).
//! Writing to the span through the OpenTelemetry API on that context
//! (`Context::current().span().set_attribute(..)`) records nothing.
//!
//! A sink requires an [`EarlySampler`](crate::EarlySampler), which then
//! decides every span completely: [`EarlyDecision::Build`] and
//! [`EarlyDecision::BuildInTrace`](crate::EarlyDecision::BuildInTrace) mean
//! recorded and sampled.
//!
//! [`EarlyDecision::Build`]: crate::EarlyDecision::Build

use std::time::SystemTime;

use opentelemetry::trace::{SpanBuilder, SpanContext, SpanId, Status, TraceId};

/// How many attributes, events and links a span recorded for a
/// [`SpanSink`] keeps, and attributes each event and link keeps; what comes
/// after is counted as dropped.
///
/// They bound the memory of a long-lived span that keeps recording: the
/// first ones are kept, as the SDK keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Attributes per span.
    pub attributes: u32,
    /// Events per span.
    pub events: u32,
    /// Links per span.
    pub links: u32,
    /// Attributes per event.
    pub event_attributes: u32,
    /// Attributes per link.
    pub link_attributes: u32,
}

impl Default for RecordLimits {
    /// The OpenTelemetry specification's defaults: 128 of each.
    fn default() -> Self {
        RecordLimits {
            attributes: 128,
            events: 128,
            links: 128,
            event_attributes: 128,
            link_attributes: 128,
        }
    }
}

/// A span the layer recorded, ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct RecordedSpan {
    /// The span's own context: its trace, its id, sampled.
    pub span_context: SpanContext,
    /// The parent span's id; invalid for a root.
    pub parent_span_id: SpanId,
    /// Whether the parent came from another process.
    pub parent_span_is_remote: bool,
    /// What was collected: name, kind, start time, attributes, events and
    /// links, each within the sink's [`RecordLimits`].
    pub builder: SpanBuilder,
    /// The span's status.
    pub status: Status,
    /// When the span was last exited, or closed if it never was.
    pub end_time: SystemTime,
    /// Attributes beyond the limit, not kept.
    pub dropped_attributes: u32,
    /// Events beyond the limit, not kept.
    pub dropped_events: u32,
    /// Links beyond the limit, not kept.
    pub dropped_links: u32,
}

/// Takes the spans an [`OpenTelemetryLayer`](crate::OpenTelemetryLayer)
/// records itself (see the [module](self) for what changes).
///
/// Install one with
/// [`OpenTelemetryLayer::with_span_sink`](crate::OpenTelemetryLayer::with_span_sink).
pub trait SpanSink: Send + Sync + 'static {
    /// A new span id.
    fn new_span_id(&self) -> SpanId;

    /// A new trace id, for a root the early sampler kept without drawing one.
    fn new_trace_id(&self) -> TraceId;

    /// How much of a span is kept while it is recorded.
    fn limits(&self) -> RecordLimits {
        RecordLimits::default()
    }

    /// Whether the sink takes no more spans (its pipeline was shut down).
    /// A span that starts then gets an empty span context, as the SDK's
    /// tracer gives after shutdown: nothing is propagated for it, and it is
    /// not handed over.
    fn is_shut_down(&self) -> bool {
        false
    }

    /// Takes a span that ended. Called on the thread that closed the span,
    /// with no lock of the layer held: it must not block.
    fn end(&self, span: RecordedSpan);
}

/// A recorded span's limits and what they have dropped so far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    limits: RecordLimits,
    pub(crate) attributes: u32,
    pub(crate) events: u32,
    pub(crate) links: u32,
}

impl Bounds {
    pub(crate) fn new(limits: RecordLimits) -> Self {
        Bounds {
            limits,
            attributes: 0,
            events: 0,
            links: 0,
        }
    }

    /// Cuts `builder`'s lists back to the limits, counting what is cut.
    /// Called after each change, so a list is never more than one change
    /// over its limit, and only the last event or link can be new.
    #[inline]
    pub(crate) fn trim(&mut self, builder: &mut SpanBuilder) {
        trim(
            &mut builder.attributes,
            self.limits.attributes,
            &mut self.attributes,
        );
        trim(&mut builder.events, self.limits.events, &mut self.events);
        trim(&mut builder.links, self.limits.links, &mut self.links);
        if let Some(event) = builder.events.as_mut().and_then(|e| e.last_mut()) {
            trim_vec(
                &mut event.attributes,
                self.limits.event_attributes,
                &mut event.dropped_attributes_count,
            );
        }
        if let Some(link) = builder.links.as_mut().and_then(|l| l.last_mut()) {
            trim_vec(
                &mut link.attributes,
                self.limits.link_attributes,
                &mut link.dropped_attributes_count,
            );
        }
    }
}

#[inline]
fn trim<T>(list: &mut Option<Vec<T>>, limit: u32, dropped: &mut u32) {
    if let Some(list) = list {
        trim_vec(list, limit, dropped);
    }
}

#[inline]
fn trim_vec<T>(list: &mut Vec<T>, limit: u32, dropped: &mut u32) {
    let limit = limit as usize;
    if list.len() > limit {
        let over = list.len() - limit;
        list.truncate(limit);
        *dropped = dropped.saturating_add(u32::try_from(over).unwrap_or(u32::MAX));
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{Event, Link};
    use opentelemetry::KeyValue;

    use super::*;

    #[test]
    fn trim_keeps_the_first_and_counts_the_rest() {
        let mut bounds = Bounds::new(RecordLimits {
            attributes: 2,
            events: 1,
            links: 0,
            event_attributes: 1,
            link_attributes: 1,
        });
        let mut builder = SpanBuilder::from_name("s");
        builder.attributes = Some((0..5).map(|i| KeyValue::new("k", i)).collect());
        let mut first = Event::with_name("a");
        first.attributes = vec![KeyValue::new("x", 1), KeyValue::new("y", 2)];
        builder.events = Some(vec![first, Event::with_name("b"), Event::with_name("c")]);
        builder.links = Some(vec![Link::with_context(SpanContext::empty_context())]);
        bounds.trim(&mut builder);
        let attrs = builder.attributes.as_ref().unwrap();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[1].value, 1i64.into());
        let events = builder.events.as_ref().unwrap();
        assert_eq!((events.len(), &*events[0].name), (1, "a"));
        // The kept event's own attributes are cut too.
        assert_eq!(events[0].attributes, vec![KeyValue::new("x", 1)]);
        assert_eq!(events[0].dropped_attributes_count, 1);
        assert!(builder.links.as_ref().unwrap().is_empty());
        assert_eq!((bounds.attributes, bounds.events, bounds.links), (3, 2, 1));
        // Within the limits, nothing more is counted.
        bounds.trim(&mut builder);
        assert_eq!((bounds.attributes, bounds.events, bounds.links), (3, 2, 1));
    }
}
