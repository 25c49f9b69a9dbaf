//! Sampling decided when a span is created.
//!
//! Without it, the layer builds a `SpanBuilder` (name, attributes, events,
//! start and end times) for every span and the tracer's sampler sees the
//! span only when it starts, so a span that will be dropped costs nearly as
//! much as one that is recorded. An [`EarlySampler`] lets the layer skip all
//! of that for spans whose fate is already known when they are created.

use opentelemetry::trace::SpanContext;
use opentelemetry::Context;

/// Decides at span creation that a span will not be sampled.
///
/// Install one with [`OpenTelemetryLayer::with_early_sampler`]. For each new
/// span the layer asks it with the span's parent context (the context the
/// span would be started with). When it answers `Some(span_context)`, the
/// layer records nothing about the span: the span's OpenTelemetry context is
/// the parent context with `span_context` as a non-recording span. That is
/// what `OpenTelemetrySpanExt::context` returns and what is made current
/// while the span is entered, so propagation and log correlation carry the
/// trace id with the flags given. The span's fields, events, links, and
/// attributes or status set through `OpenTelemetrySpanExt` are discarded.
///
/// `OpenTelemetrySpanExt::set_parent` still works on such a span until it is
/// started (entered, asked for its context, or given a child): the span is
/// then built as a usual span named after its callsite, under the new
/// parent, and the tracer's sampler decides when it starts; the fields it
/// was created with are not recorded in that case. So an implementation
/// should drop only spans that are not expected to be re-parented, such as
/// spans created under a parent whose span context is valid.
///
/// When it answers `None`, the span is built as usual and the tracer's own
/// sampler decides when the span starts. An implementation should answer
/// `Some` only where the tracer's sampler would drop the span, so that the
/// early decision is the tracer's decision.
///
/// [`OpenTelemetryLayer::with_early_sampler`]: crate::OpenTelemetryLayer::with_early_sampler
pub trait EarlySampler: Send + Sync + 'static {
    /// The span context of a span named `name` created under `parent_cx`, if
    /// the span is to be dropped; `None` to build it as usual.
    fn drop_at_creation(&self, parent_cx: &Context, name: &'static str) -> Option<SpanContext>;
}
