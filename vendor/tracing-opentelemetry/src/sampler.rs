//! Sampling decided when a span is created.
//!
//! Without it, the layer builds a `SpanBuilder` (name, attributes, events,
//! start and end times) for every span and the tracer's sampler sees the
//! span only when it starts, so a span that will be dropped costs nearly as
//! much as one that is recorded. An [`EarlySampler`] lets the layer skip all
//! of that for spans whose fate is already known when they are created.

use opentelemetry::trace::{SpanContext, TraceId};
use opentelemetry::Context;
use tracing_core::Metadata;

/// What an [`EarlySampler`] decides for a span when it is created.
#[derive(Debug, Clone, PartialEq)]
pub enum EarlyDecision {
    /// Built as usual; the tracer's sampler decides when it starts. With a
    /// [`SpanSink`](crate::SpanSink): recorded and sampled.
    Build,
    /// A root, built, that must start in this trace: its sampling was
    /// decided on this trace id (see [`EarlySampler::start_in_trace`]).
    /// With a [`SpanSink`](crate::SpanSink): recorded and sampled, in it.
    BuildInTrace(TraceId),
    /// Dropped, with this span context.
    Drop(SpanContext),
    /// Dropped, with this span context, but kept able to become a span under
    /// a parent given by `set_parent`: its creation fields are kept (for a
    /// root, which commonly gets its remote parent that way).
    DropUnlessReparented(SpanContext),
}

/// Decides at span creation that a span will not be sampled.
///
/// Install one with [`OpenTelemetryLayer::with_early_sampler`]. For each new
/// span the layer asks it with the span's parent context (the context the
/// span would be started with). When it answers [`EarlyDecision::Drop`],
/// the layer records nothing about the span: the span's OpenTelemetry
/// context is the parent context with the given span context as a
/// non-recording span. That is what `OpenTelemetrySpanExt::context` returns
/// and what is made current while the span is entered, so propagation and
/// log correlation carry the trace id with the flags given. The span's
/// fields, events, links, and attributes or status set through
/// `OpenTelemetrySpanExt` are discarded.
///
/// `OpenTelemetrySpanExt::set_parent` still works on such a span until it is
/// started (entered, asked for its context, or given a child): the span is
/// decided again, under the new parent, as if it had been created there.
/// Dropped there, it stays a dropped span, in the new parent's trace; kept,
/// it is built as a usual span named after its callsite, and the tracer's
/// sampler decides when it starts. The fields it was created with are kept
/// only under [`EarlyDecision::DropUnlessReparented`]. A span being built
/// that `set_parent` puts under a parent where it is dropped (a request
/// from a trace not sampled upstream) becomes a dropped span the same way,
/// keeping its name, kind, attributes and status for a later `set_parent`.
///
/// An implementation should drop only where the tracer's sampler would drop
/// the span, so that the early decision is the tracer's decision. For a
/// root it may decide on a trace id of its own choosing: a root it keeps
/// ([`EarlyDecision::BuildInTrace`]) is then started through
/// [`EarlySampler::start_in_trace`], which must make the tracer use that
/// trace id (e.g. through its id generator).
///
/// A span created under a dropped span (its explicit parent, or the current
/// span while the current OpenTelemetry context is the dropped span's or
/// none) is dropped too, without asking: the tracer's samplers drop a child
/// of a local parent that is not sampled (parent-based), or decide it on
/// the same trace id (ratio), or drop everything. Such a span keeps no data
/// at all, so it costs about what the `tracing` span costs: it is not made
/// current when entered (the dropped ancestor's context stays current while
/// that ancestor is entered), and `OpenTelemetrySpanExt::context` on it
/// returns the dropped ancestor's context. `set_parent` on it decides it
/// again under the new parent, as on a dropped span that has not started;
/// keeping nothing, it is not known to have started, so it takes a new
/// parent even after it was entered.
///
/// [`OpenTelemetryLayer::with_early_sampler`]: crate::OpenTelemetryLayer::with_early_sampler
pub trait EarlySampler: Send + Sync + 'static {
    /// What becomes of a span of callsite `metadata` created under
    /// `parent_cx`.
    fn decide(&self, parent_cx: &Context, metadata: &'static Metadata<'static>) -> EarlyDecision;

    /// Starts a root kept by [`EarlyDecision::BuildInTrace`]: `start` must be
    /// called once, with the tracer set to use `trace_id` for a new trace.
    fn start_in_trace(&self, trace_id: TraceId, start: &mut dyn FnMut()) {
        let _ = trace_id;
        start();
    }

    /// Whether an event of callsite `metadata` inside a recorded span
    /// becomes one of its span events. All do unless this says otherwise.
    fn records_event(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }
}
