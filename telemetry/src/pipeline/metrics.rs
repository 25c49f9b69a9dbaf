//! Metrics: the meter provider, its readers and the Prometheus endpoint.
//!
//! Each push exporter gets a periodic reader of its own — except when a
//! Prometheus endpoint is also on: then that endpoint's reader is the only
//! one and a push thread hands its collections to every cumulative
//! exporter (`metrics_push`), so each measurement is aggregated once.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use crate::config::{Config, MetricExporterKind, Signal};
use crate::error::InitError;
use crate::exporters::MetricDestination;
use crate::health::PipelineStats;
use crate::metrics::{CountingMetricExporter, view};
use crate::metrics_push::{MetricsPush, SharedReader};
use crate::prometheus::PrometheusHandle;

/// What the metric pipeline is made of.
#[derive(Default)]
pub(crate) struct MetricsPipeline {
    /// `None` without any reader: instruments are then no-ops.
    pub(crate) provider: Option<SdkMeterProvider>,
    pub(crate) stats: Vec<Arc<PipelineStats>>,
    pub(crate) prometheus: Option<Prometheus>,
    pub(crate) push: Option<MetricsPush>,
}

/// The pull endpoint: the renderer, and the socket bound for it (served
/// once the runtime runs).
pub(crate) struct Prometheus {
    pub(crate) handle: PrometheusHandle,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) listener: TcpListener,
}

/// Builds the meter provider. Metrics come first among the signals:
/// instruments created before the provider exists would be silent no-ops.
pub(crate) fn build(
    config: &Config,
    resource: &Resource,
    destinations: Vec<MetricDestination>,
    boundaries: HashMap<String, Vec<f64>>,
    runtime: &tokio::runtime::Handle,
    deadline: &Arc<Mutex<Option<Instant>>>,
) -> Result<MetricsPipeline, InitError> {
    let mut pipeline = MetricsPipeline::default();
    // Everything fallible comes before the first periodic reader exists: a
    // reader dropped before its provider is built keeps its thread forever.
    let prometheus_reader = if config
        .metrics_exporters
        .contains(&MetricExporterKind::Prometheus)
    {
        let (reader, handle) = crate::prometheus::reader()?;
        let listener = crate::prometheus::bind(&config.prometheus_host, config.prometheus_port)?;
        pipeline.prometheus = Some(Prometheus {
            handle,
            addr: listener.local_addr().ok(),
            listener,
        });
        Some(SharedReader(Arc::new(reader)))
    } else {
        None
    };
    if prometheus_reader.is_none() && destinations.is_empty() {
        return Ok(pipeline);
    }

    let mut builder = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_view(view(
            config.views.clone(),
            boundaries,
            config.histogram_aggregation,
        ));
    let mut pushed = Vec::new();
    for destination in destinations {
        let stats = PipelineStats::new(Signal::Metrics, 0);
        let exporter = CountingMetricExporter {
            inner: destination.exporter,
            stats: Arc::clone(&stats),
            runtime: runtime.clone(),
            timeout: config.metric_export_timeout,
            endpoint: destination.label,
            deadline: Arc::clone(deadline),
        };
        pipeline.stats.push(stats);
        let cumulative = exporter.inner.temporality() == Temporality::Cumulative;
        if prometheus_reader.is_some() && cumulative {
            pushed.push(exporter);
        } else {
            builder = builder.with_reader(
                PeriodicReader::builder(exporter)
                    .with_interval(config.metric_export_interval)
                    .build(),
            );
        }
    }
    if let Some(reader) = &prometheus_reader {
        builder = builder.with_reader(reader.clone());
    }
    // Built now, so an error below drops the provider, which shuts the
    // readers (and their threads) down; nothing is recorded yet, so that
    // exports nothing.
    pipeline.provider = Some(builder.build());
    if let Some(reader) = prometheus_reader
        && !pushed.is_empty()
    {
        pipeline.push = Some(MetricsPush::start(
            reader,
            pushed,
            config.metric_export_interval,
        )?);
    }
    Ok(pipeline)
}
