//! The three signal pipelines, one module each, built from
//! [`Destination`](crate::exporters::Destination)s whatever exporter they
//! carry: every span and log record goes through telemetry's bounded batch
//! queue (masking, retries, drop accounting), every metric exporter through
//! the counting wrapper.

pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod traces;

use std::sync::Arc;

use crate::health::PipelineStats;

/// A signal's provider and the health of each of its queues.
pub(crate) type Built<P> = (P, Vec<Arc<PipelineStats>>);
