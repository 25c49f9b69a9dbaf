//! Unsampled spans are dropped when they are created, not when they start.
//!
//! tracing-opentelemetry builds every span's OpenTelemetry data (builder,
//! attributes, events, start and end times) and only asks the SDK's sampler
//! when the span starts, so under `parentbased_traceidratio=0.1` nine spans
//! in ten were built and thrown away, and `always_off` still cost about as
//! much as recording. [`ParentDecides`] is the early sampler installed on
//! telemetry's OpenTelemetry layer (see `vendor/README.md` for the hook). It
//! asks the very [`Sampler`] the tracer provider has, when the span is
//! created:
//! - a span whose parent span context is valid (a local parent, or a remote
//!   one made current or given by `set_parent` before the span was created)
//!   is decided on the parent's trace id; when the answer is `Drop` nothing
//!   about the span is built, and what is created under it is dropped with
//!   it, keeping nothing at all;
//! - a root is decided on a trace id drawn here. Kept, it is recorded in
//!   that very trace (the layer records kept spans itself,
//!   `crate::recorded_spans`; a span started through the SDK instead gets
//!   that id from the provider's id generator, [`DecidedTraceIds`]).
//!   Dropped, its
//!   creation fields are still kept, because `set_parent` may yet give it a
//!   remote parent that is sampled (the usual way a server span learns its
//!   caller), and then it is built whole;
//! - the exporters' own spans are dropped whatever their parent
//!   (`crate::feedback`).
//!
//! Since the layer records what is kept without asking the SDK again, a
//! decision to build is final: recorded and sampled.

use std::cell::Cell;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample,
};
use tracing::Metadata;
use tracing_opentelemetry::{EarlyDecision, EarlySampler};

use crate::SamplerConfig;
use crate::feedback::is_exporter_target;

thread_local! {
    /// The trace id a root kept at creation starts in: set by
    /// [`ParentDecides::start_in_trace`] around the SDK's start of that root
    /// on this thread, taken by [`DecidedTraceIds::new_trace_id`].
    static DECIDED_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// The tracer provider's id generator: random ids, except for a root whose
/// sampling [`ParentDecides`] decided at creation, which gets the trace id
/// that decision was made on.
#[derive(Debug, Default)]
pub(crate) struct DecidedTraceIds {
    random: RandomIdGenerator,
}

impl IdGenerator for DecidedTraceIds {
    fn new_trace_id(&self) -> TraceId {
        DECIDED_TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.random.new_trace_id())
    }
    fn new_span_id(&self) -> SpanId {
        self.random.new_span_id()
    }
}

/// Decides at creation what the SDK would decide when the span starts.
#[derive(Debug)]
pub(crate) struct ParentDecides {
    /// The tracer provider's own sampler (built from the same
    /// [`SamplerConfig`](crate::SamplerConfig)).
    sampler: Sampler,
    /// Ids as the SDK draws them.
    ids: RandomIdGenerator,
    /// The sampler drops every span whatever its parent (`always_off`): a
    /// root dropped here cannot be revived by `set_parent`, so its fields
    /// need not be kept.
    drops_everything: bool,
    /// A child of a sampled parent is sampled (every configuration but
    /// `always_off` and a ratio that is not parent-based): nothing to ask.
    sampled_parents_keep: bool,
    /// A child of a parent that is not sampled is dropped (the parent-based
    /// configurations, whose delegates for such parents are `always_off`):
    /// nothing to ask. A service down the call chain meets this for nine
    /// requests in ten under a ratio at the edge.
    unsampled_parents_drop: bool,
    /// How roots are decided.
    roots: Roots,
    /// The ratio of a ratio sampler, decided here as the SDK's
    /// `TraceIdRatioBased` decides (for roots, and for every span when the
    /// ratio is not parent-based): no call into the sampler, and no
    /// `SamplingResult` made only to be thrown away.
    ratio: Option<f64>,
}

/// What the sampler makes of a span without a parent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Roots {
    /// Always sampled (`always_on`, `parentbased_always_on`): built without
    /// asking, nothing to draw.
    Sampled,
    /// Decided on the trace id (a ratio): drawn here, and a kept root starts
    /// in the trace it was decided on.
    ByTraceId,
    /// Never sampled on their own (`always_off`, `parentbased_always_off`).
    Dropped,
}

impl ParentDecides {
    pub(crate) fn new(config: SamplerConfig) -> Self {
        let roots = match config {
            SamplerConfig::AlwaysOn | SamplerConfig::ParentBasedAlwaysOn => Roots::Sampled,
            SamplerConfig::TraceIdRatio(_) | SamplerConfig::ParentBasedTraceIdRatio(_) => {
                Roots::ByTraceId
            }
            SamplerConfig::AlwaysOff | SamplerConfig::ParentBasedAlwaysOff => Roots::Dropped,
        };
        let ratio = match config {
            SamplerConfig::TraceIdRatio(ratio) | SamplerConfig::ParentBasedTraceIdRatio(ratio) => {
                Some(ratio)
            }
            _ => None,
        };
        ParentDecides {
            ratio,
            drops_everything: config == SamplerConfig::AlwaysOff,
            sampled_parents_keep: !matches!(
                config,
                SamplerConfig::AlwaysOff | SamplerConfig::TraceIdRatio(_)
            ),
            unsampled_parents_drop: matches!(
                config,
                SamplerConfig::ParentBasedAlwaysOn
                    | SamplerConfig::ParentBasedAlwaysOff
                    | SamplerConfig::ParentBasedTraceIdRatio(_)
            ),
            roots,
            sampler: crate::pipeline::traces::sampler(config),
            ids: RandomIdGenerator::default(),
        }
    }

    /// A dropped span's context, as the SDK makes it: the trace, no flags, a
    /// local span id of its own.
    fn dropped(&self, trace_id: TraceId, parent_sc: &SpanContext) -> SpanContext {
        SpanContext::new(
            trace_id,
            self.ids.new_span_id(),
            TraceFlags::default(),
            false,
            parent_sc.trace_state().clone(),
        )
    }
}

impl EarlySampler for ParentDecides {
    fn decide(&self, parent_cx: &Context, metadata: &'static Metadata<'static>) -> EarlyDecision {
        if parent_cx.is_telemetry_suppressed() {
            // The SDK records nothing there: no span, not even an id.
            return EarlyDecision::Drop(SpanContext::empty_context());
        }
        let parent = parent_cx.span();
        let parent_sc = parent.span_context();
        let is_root = !parent_sc.is_valid();
        if is_root && parent_cx.has_active_span() && self.unsampled_parents_drop {
            // An active span with an invalid context: the SDK's parent-based
            // samplers read it as a parent that is not sampled.
            return EarlyDecision::Drop(self.dropped(self.ids.new_trace_id(), parent_sc));
        }
        let is_exporter = is_exporter_target(metadata.target());
        if !is_exporter
            && ((is_root && self.roots == Roots::Sampled)
                || (!is_root && parent_sc.is_sampled() && self.sampled_parents_keep))
        {
            // Nothing to decide: the SDK samples it whatever its trace id.
            return EarlyDecision::Build;
        }
        let trace_id = if is_root {
            self.ids.new_trace_id()
        } else {
            parent_sc.trace_id()
        };
        if is_exporter
            || (is_root && self.drops_everything)
            || (!is_root && !parent_sc.is_sampled() && self.unsampled_parents_drop)
        {
            // Never exported, whatever the parent: the exporters' own spans
            // (a feedback loop), or everything under `always_off`; or the
            // child of a parent that is not sampled, under a parent-based
            // sampler.
            return EarlyDecision::Drop(self.dropped(trace_id, parent_sc));
        }
        let decision = match self.ratio {
            // A root, or any span under a ratio that ignores its parent.
            Some(ratio) if is_root || !self.sampled_parents_keep => ratio_decision(ratio, trace_id),
            // Span kind, attributes and links are not known yet (kind and
            // attributes come from the span's fields); the SDK's built-in
            // samplers, the only ones telemetry configures, do not read them.
            _ => {
                self.sampler
                    .should_sample(
                        Some(parent_cx),
                        trace_id,
                        metadata.name(),
                        &SpanKind::Internal,
                        &[],
                        &[],
                    )
                    .decision
            }
        };
        match decision {
            // Recorded but not sampled is never exported: dropped here.
            SamplingDecision::Drop | SamplingDecision::RecordOnly => {
                // The SDK's samplers hand on the parent's trace state.
                let sc = self.dropped(trace_id, parent_sc);
                if is_root {
                    EarlyDecision::DropUnlessReparented(sc)
                } else {
                    EarlyDecision::Drop(sc)
                }
            }
            SamplingDecision::RecordAndSample => {
                if is_root && self.roots == Roots::ByTraceId {
                    EarlyDecision::BuildInTrace(trace_id)
                } else {
                    EarlyDecision::Build
                }
            }
        }
    }

    fn start_in_trace(&self, trace_id: TraceId, start: &mut dyn FnMut()) {
        DECIDED_TRACE_ID.with(|id| id.set(Some(trace_id)));
        start();
        // Unused when `set_parent` gave the root a parent meanwhile.
        DECIDED_TRACE_ID.with(|id| id.set(None));
    }

    fn records_event(&self, metadata: &Metadata<'_>) -> bool {
        !is_exporter_target(metadata.target())
    }
}

/// What the SDK's `TraceIdRatioBased` sampler decides for `trace_id`: kept
/// when the trace id's low 63 bits fall under the ratio's share of them.
fn ratio_decision(ratio: f64, trace_id: TraceId) -> SamplingDecision {
    if ratio >= 1.0 {
        return SamplingDecision::RecordAndSample;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    let low = u128::from_be_bytes(trace_id.to_bytes()) as u64;
    if low >> 1 < bound {
        SamplingDecision::RecordAndSample
    } else {
        SamplingDecision::Drop
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceState;

    use super::*;
    use crate::pipeline::traces::sampler;

    const CONFIGS: [SamplerConfig; 10] = [
        SamplerConfig::AlwaysOn,
        SamplerConfig::AlwaysOff,
        SamplerConfig::TraceIdRatio(0.5),
        SamplerConfig::TraceIdRatio(0.1),
        SamplerConfig::ParentBasedTraceIdRatio(0.25),
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

    /// The span context of a decision that drops.
    fn dropped(decision: &EarlyDecision) -> Option<&SpanContext> {
        match decision {
            EarlyDecision::Drop(sc) | EarlyDecision::DropUnlessReparented(sc) => Some(sc),
            EarlyDecision::Build | EarlyDecision::BuildInTrace(_) => None,
        }
    }

    fn sdk_decision(sdk: &Sampler, parent: &Context, trace_id: TraceId) -> SamplingDecision {
        sdk.should_sample(
            Some(parent),
            trace_id,
            "span",
            &SpanKind::Internal,
            &[],
            &[],
        )
        .decision
    }

    #[test]
    fn decides_at_creation_what_the_sdk_decides_at_start() {
        for config in CONFIGS {
            let early = ParentDecides::new(config);
            let sdk = sampler(config);
            for parent in parents() {
                let parent_sc = parent.span().span_context().clone();
                // Roots are drawn a trace id each time: try several.
                let tries = if parent_sc.is_valid() { 1 } else { 64 };
                for _ in 0..tries {
                    let decision = early.decide(&parent, application_span());
                    let trace_id = match &decision {
                        EarlyDecision::Drop(sc) | EarlyDecision::DropUnlessReparented(sc) => {
                            // What the SDK gives a dropped span: the trace, no
                            // flags, a local span id of its own.
                            assert!(sc.is_valid() && !sc.is_sampled() && !sc.is_remote());
                            assert_ne!(sc.span_id(), parent_sc.span_id());
                            sc.trace_id()
                        }
                        EarlyDecision::BuildInTrace(trace_id) => {
                            assert!(!parent_sc.is_valid(), "only roots get a trace id");
                            *trace_id
                        }
                        // Decided by the SDK when it starts: on the parent's
                        // trace, or a root's on whatever id it draws.
                        EarlyDecision::Build if parent_sc.is_valid() => parent_sc.trace_id(),
                        EarlyDecision::Build => TraceId::from(0x77u128 << 64),
                    };
                    if parent_sc.is_valid() {
                        assert_eq!(trace_id, parent_sc.trace_id());
                    }
                    let sdk_drops = sdk_decision(&sdk, &parent, trace_id) == SamplingDecision::Drop;
                    assert_eq!(
                        dropped(&decision).is_some(),
                        sdk_drops,
                        "{config:?} under {parent_sc:?}: {decision:?}"
                    );
                    // A dropped root may still be given a parent by
                    // `set_parent`, unless nothing is ever sampled.
                    let keeps_fields = matches!(decision, EarlyDecision::DropUnlessReparented(_));
                    assert_eq!(
                        keeps_fields,
                        sdk_drops && !parent_sc.is_valid() && config != SamplerConfig::AlwaysOff,
                        "{config:?}: {decision:?}"
                    );
                    // Kept roots decided on their trace id start in it.
                    let ratio_root = matches!(
                        config,
                        SamplerConfig::TraceIdRatio(_) | SamplerConfig::ParentBasedTraceIdRatio(_)
                    ) && !parent_sc.is_valid();
                    assert_eq!(
                        matches!(decision, EarlyDecision::BuildInTrace(_)),
                        ratio_root && !sdk_drops,
                        "{config:?}: {decision:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_active_span_without_a_valid_context_is_decided_as_the_sdk_decides_it() {
        let parent = Context::new().with_remote_span_context(SpanContext::empty_context());
        for config in CONFIGS {
            let early = ParentDecides::new(config);
            let sdk = sampler(config);
            for _ in 0..64 {
                let decision = early.decide(&parent, application_span());
                let trace_id = match &decision {
                    EarlyDecision::Drop(sc) | EarlyDecision::DropUnlessReparented(sc) => {
                        sc.trace_id()
                    }
                    EarlyDecision::BuildInTrace(trace_id) => *trace_id,
                    EarlyDecision::Build => TraceId::from(0x77u128 << 64),
                };
                let sdk_drops = sdk_decision(&sdk, &parent, trace_id) == SamplingDecision::Drop;
                assert_eq!(dropped(&decision).is_some(), sdk_drops, "{config:?}");
            }
        }
    }

    #[test]
    fn the_ratio_is_decided_as_the_sdk_decides_it() {
        let ids = RandomIdGenerator::default();
        let ratios = [-1.0, 0.0, 1e-6, 0.1, 0.25, 0.5, 0.999_999, 1.0, 2.0];
        for ratio in ratios {
            let sdk = Sampler::TraceIdRatioBased(ratio);
            let bound = (f64::max(ratio, 0.0) * (1u64 << 63) as f64) as u64;
            // The edges of the bound (in the low 63 bits, above the high
            // half and the lowest bit, which the decision ignores), and
            // random ids.
            let mut trace_ids = vec![0u128, 1, u128::MAX, u128::from(u64::MAX)];
            for low in [bound.saturating_sub(1), bound, bound.saturating_add(1)] {
                for high in [0u128, u128::from(u64::MAX) << 64] {
                    trace_ids.push(high | u128::from(low << 1));
                    trace_ids.push(high | u128::from(low << 1 | 1));
                }
            }
            trace_ids.extend((0..2000).map(|_| u128::from_be_bytes(ids.new_trace_id().to_bytes())));
            for id in trace_ids {
                let trace_id = TraceId::from(id);
                assert_eq!(
                    ratio_decision(ratio, trace_id),
                    sdk_decision(&sdk, &Context::new(), trace_id),
                    "ratio {ratio}, trace id {trace_id}"
                );
            }
        }
    }

    #[test]
    fn a_root_kept_on_its_trace_id_starts_in_that_trace() {
        let ids = DecidedTraceIds::default();
        let early = ParentDecides::new(SamplerConfig::ParentBasedTraceIdRatio(1.0));
        let EarlyDecision::BuildInTrace(decided) =
            early.decide(&Context::new(), application_span())
        else {
            panic!("ratio 1 keeps every root on its trace id");
        };
        let mut started = None;
        early.start_in_trace(decided, &mut || started = Some(ids.new_trace_id()));
        assert_eq!(started, Some(decided));
        // Only that start: the next root gets a random id, as does a start
        // that never asked for one (a root `set_parent` gave a parent).
        assert_ne!(ids.new_trace_id(), decided);
        early.start_in_trace(decided, &mut || {});
        assert_ne!(ids.new_trace_id(), decided);
    }

    /// The callsite of an application's span.
    fn application_span() -> &'static Metadata<'static> {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            tracing::info_span!("span").metadata().unwrap()
        })
    }

    /// The callsite of a span of the exporters' own transport.
    fn exporter_span() -> &'static Metadata<'static> {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            tracing::info_span!(target: "h2::proto", "span")
                .metadata()
                .unwrap()
        })
    }

    #[test]
    fn what_is_created_under_a_dropped_span_the_sdk_drops_too() {
        // The layer drops a dropped span's descendants without asking: that
        // must be the SDK's decision for a child of that span.
        for config in CONFIGS {
            let early = ParentDecides::new(config);
            let sdk = sampler(config);
            for parent in parents() {
                let decision = early.decide(&parent, application_span());
                let Some(dropped) = dropped(&decision).cloned() else {
                    continue;
                };
                let under_dropped = parent.with_remote_span_context(dropped.clone());
                let decision = sdk
                    .should_sample(
                        Some(&under_dropped),
                        dropped.trace_id(),
                        "child",
                        &SpanKind::Internal,
                        &[],
                        &[],
                    )
                    .decision;
                assert_eq!(decision, SamplingDecision::Drop, "{config:?} {dropped:?}");
            }
        }
    }

    #[test]
    fn the_exporters_own_spans_and_events_are_never_recorded() {
        for config in CONFIGS {
            let early = ParentDecides::new(config);
            for parent in parents() {
                let EarlyDecision::Drop(sc) = early.decide(&parent, exporter_span()) else {
                    panic!("{config:?} kept an exporter span");
                };
                assert!(sc.is_valid() && !sc.is_sampled());
            }
            assert!(!early.records_event(exporter_span()));
            assert!(early.records_event(application_span()));
        }
    }

    #[test]
    fn suppressed_telemetry_is_dropped_as_the_sdk_drops_it() {
        let cx = Context::new().with_telemetry_suppressed();
        for config in CONFIGS {
            let early = ParentDecides::new(config);
            assert_eq!(
                early.decide(&cx, application_span()),
                EarlyDecision::Drop(SpanContext::empty_context()),
                "{config:?}"
            );
        }
    }
}
