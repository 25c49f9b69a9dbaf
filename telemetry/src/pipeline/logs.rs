//! Log records: the logger provider, one batch queue per exporter.

use std::sync::Arc;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;

use crate::batch::BatchQueue;
use crate::config::{Config, Signal};
use crate::error::InitError;
use crate::exporters::LogDestination;
use crate::health::PipelineStats;
use crate::pipeline::Built;
use crate::processors::QueueLogProcessor;

/// The logger provider and the health of each of its queues; `None` when
/// there is nowhere to send log records.
pub(crate) fn build(
    config: &Config,
    resource: &Resource,
    destinations: Vec<LogDestination>,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<Built<SdkLoggerProvider>>, InitError> {
    if destinations.is_empty() {
        return Ok(None);
    }
    let mut builder = SdkLoggerProvider::builder().with_resource(resource.clone());
    let mut stats = Vec::new();
    let count = destinations.len();
    for (i, destination) in destinations.into_iter().enumerate() {
        let queue_stats = PipelineStats::new(Signal::Logs, config.log_batch.max_queue_size);
        let queue = BatchQueue::start(
            &format!("logs-{i}"),
            (destination.exporter)(resource),
            config.log_batch,
            runtime.clone(),
            Arc::clone(&queue_stats),
            destination.label,
        )?;
        builder = builder.with_log_processor(QueueLogProcessor::new(queue, i + 1 == count));
        stats.push(queue_stats);
    }
    Ok(Some((builder.build(), stats)))
}
