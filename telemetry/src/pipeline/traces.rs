//! Spans: the tracer provider with the configured sampler and limits, one
//! batch queue per exporter.

use std::sync::Arc;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::batch::BatchQueue;
use crate::config::{Config, SamplerConfig, Signal};
use crate::error::InitError;
use crate::exporters::SpanDestination;
use crate::health::PipelineStats;
use crate::processors::QueueSpanProcessor;

/// The tracer provider, its queues and the health of each.
pub(crate) struct Traces {
    pub(crate) provider: SdkTracerProvider,
    pub(crate) stats: Vec<Arc<PipelineStats>>,
    /// The provider's processors, which telemetry's layer also feeds.
    pub(crate) queues: Vec<QueueSpanProcessor>,
}

/// The tracer provider and its queues; `None` when there is nowhere to send
/// spans.
pub(crate) fn build(
    config: &Config,
    resource: &Resource,
    destinations: Vec<SpanDestination>,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<Traces>, InitError> {
    if destinations.is_empty() {
        return Ok(None);
    }
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(sampler(config.sampler))
        // Roots the early sampler kept start in the trace it decided on.
        .with_id_generator(crate::sampling::DecidedTraceIds::default())
        .with_max_attributes_per_span(config.limits.span_attribute_count)
        .with_max_events_per_span(config.limits.span_event_count)
        .with_max_links_per_span(config.limits.span_link_count)
        .with_max_attributes_per_event(config.limits.event_attribute_count)
        .with_max_attributes_per_link(config.limits.link_attribute_count);
    let mut stats = Vec::new();
    let mut queues = Vec::new();
    for (i, destination) in destinations.into_iter().enumerate() {
        let queue_stats = PipelineStats::new(Signal::Traces, config.span_batch.max_queue_size);
        let queue = BatchQueue::start(
            &format!("traces-{i}"),
            (destination.exporter)(resource),
            config.span_batch,
            runtime.clone(),
            Arc::clone(&queue_stats),
            destination.label,
        )?;
        let processor = QueueSpanProcessor::new(queue, config.limits.span_attribute_value_length);
        builder = builder.with_span_processor(processor.clone());
        queues.push(processor);
        stats.push(queue_stats);
    }
    Ok(Some(Traces {
        provider: builder.build(),
        stats,
        queues,
    }))
}

/// The sampler for `s`: the tracer provider's, and the one telemetry's
/// OpenTelemetry layer asks when a span is created (`crate::sampling`).
pub(crate) fn sampler(s: SamplerConfig) -> Sampler {
    match s {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}
