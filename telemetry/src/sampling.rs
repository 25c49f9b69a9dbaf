//! Unsampled spans are dropped when they are created, not when they start.
//!
//! tracing-opentelemetry builds every span's OpenTelemetry data (builder,
//! attributes, events, start and end times) and only asks the SDK's sampler
//! when the span starts, so under `parentbased_traceidratio=0.1` nine spans
//! in ten were built and thrown away, and `always_off` still cost about as
//! much as recording. [`ParentDecides`] is the early sampler installed on
//! telemetry's OpenTelemetry layer (see `vendor/README.md` for the hook): a
//! span whose parent span context is valid (a local parent, or a remote one
//! made current or given by `set_parent` before the child was created) is
//! asked of the very [`Sampler`] the tracer provider has, with the parent's
//! trace id, and when that answers `Drop` nothing about the span is built.
//!
//! Roots are left to the SDK, which decides when they start: until then
//! `set_parent` may still give a root a remote parent, and the root's fields
//! must be kept for the case that parent is sampled. Their children are then
//! decided here from the root's decision. The one exception is `always_off`,
//! which drops every span whatever its parent: roots are dropped at creation
//! too.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt, TraceFlags};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample,
};
use tracing_opentelemetry::EarlySampler;

/// Drops at creation the spans the SDK would drop for their parent.
#[derive(Debug)]
pub(crate) struct ParentDecides {
    /// The tracer provider's own sampler (built from the same
    /// [`SamplerConfig`](crate::SamplerConfig)).
    sampler: Sampler,
    /// The SDK's default id generator, which the provider uses too.
    ids: RandomIdGenerator,
    /// The sampler drops every span whatever its parent (`always_off`), so
    /// roots need not wait for a parent `set_parent` might still give them.
    drops_everything: bool,
}

impl ParentDecides {
    pub(crate) fn new(sampler: Sampler) -> Self {
        ParentDecides {
            drops_everything: matches!(sampler, Sampler::AlwaysOff),
            sampler,
            ids: RandomIdGenerator::default(),
        }
    }
}

impl EarlySampler for ParentDecides {
    fn drop_at_creation(&self, parent_cx: &Context, name: &'static str) -> Option<SpanContext> {
        let parent = parent_cx.span();
        let parent_sc = parent.span_context();
        if parent_cx.is_telemetry_suppressed() {
            // The SDK records nothing there anyway; leave it to the SDK.
            return None;
        }
        if !parent_sc.is_valid() {
            // A root: the SDK decides when it starts, unless nothing is ever
            // sampled (then as the SDK would: new trace and span ids).
            return self.drops_everything.then(|| {
                SpanContext::new(
                    self.ids.new_trace_id(),
                    self.ids.new_span_id(),
                    TraceFlags::default(),
                    false,
                    parent_sc.trace_state().clone(),
                )
            });
        }
        // Span kind, attributes and links are not known yet (kind and
        // attributes come from the span's fields); the SDK's built-in
        // samplers, the only ones telemetry configures, do not read them.
        let result = self.sampler.should_sample(
            Some(parent_cx),
            parent_sc.trace_id(),
            name,
            &SpanKind::Internal,
            &[],
            &[],
        );
        match result.decision {
            // What the SDK builds for a dropped span: the parent's trace id,
            // a span id of its own, no flags, the sampler's trace state.
            SamplingDecision::Drop => Some(SpanContext::new(
                parent_sc.trace_id(),
                self.ids.new_span_id(),
                TraceFlags::default(),
                false,
                result.trace_state,
            )),
            SamplingDecision::RecordOnly | SamplingDecision::RecordAndSample => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceId, TraceState};

    use super::*;
    use crate::SamplerConfig;
    use crate::pipeline::traces::sampler;

    const CONFIGS: [SamplerConfig; 8] = [
        SamplerConfig::AlwaysOn,
        SamplerConfig::AlwaysOff,
        SamplerConfig::TraceIdRatio(0.5),
        SamplerConfig::ParentBasedAlwaysOn,
        SamplerConfig::ParentBasedAlwaysOff,
        SamplerConfig::ParentBasedTraceIdRatio(0.5),
        SamplerConfig::ParentBasedTraceIdRatio(0.0),
        SamplerConfig::ParentBasedTraceIdRatio(1.0),
    ];

    /// Parents of every kind: none, local or remote, sampled or not, over
    /// trace ids on both sides of a 0.5 ratio.
    fn parents() -> Vec<Context> {
        let mut out = vec![Context::new()];
        for trace in [1u128, u128::MAX, 0x1234_5678_9abc_def0_0fed_cba9_8765_4321] {
            for remote in [false, true] {
                for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
                    out.push(Context::new().with_remote_span_context(SpanContext::new(
                        TraceId::from(trace),
                        SpanId::from(7),
                        flags,
                        remote,
                        TraceState::default(),
                    )));
                }
            }
        }
        out
    }

    #[test]
    fn drops_exactly_the_children_the_sdk_would_drop() {
        for config in CONFIGS {
            let early = ParentDecides::new(sampler(config));
            let sdk = sampler(config);
            for parent in parents() {
                let parent_sc = parent.span().span_context().clone();
                let early_drop = early.drop_at_creation(&parent, "span");
                if !parent_sc.is_valid() {
                    // Roots wait for the SDK, except where it drops them all.
                    assert_eq!(
                        early_drop.is_some(),
                        config == SamplerConfig::AlwaysOff,
                        "{config:?}"
                    );
                    continue;
                }
                let decision = sdk
                    .should_sample(
                        Some(&parent),
                        parent_sc.trace_id(),
                        "span",
                        &SpanKind::Internal,
                        &[],
                        &[],
                    )
                    .decision;
                assert_eq!(
                    early_drop.is_some(),
                    decision == SamplingDecision::Drop,
                    "{config:?} under {parent_sc:?}"
                );
                if let Some(sc) = early_drop {
                    // What the SDK gives a dropped span: the trace, no flags,
                    // a local span id of its own.
                    assert_eq!(sc.trace_id(), parent_sc.trace_id());
                    assert!(sc.is_valid() && !sc.is_sampled() && !sc.is_remote());
                    assert_ne!(sc.span_id(), parent_sc.span_id());
                }
            }
        }
    }

    #[test]
    fn suppressed_telemetry_is_left_to_the_sdk() {
        let early = ParentDecides::new(sampler(SamplerConfig::AlwaysOff));
        let cx = Context::new().with_telemetry_suppressed();
        assert!(early.drop_at_creation(&cx, "span").is_none());
    }
}
