//! OTLP metric export over telemetry's own transport (`otlp_export`), so a
//! collector's partial success is counted: the data points it rejected
//! count as failed, not as exported. One attempt per collection; a failed
//! one is not retried, the next collection carries the numbers again
//! (cumulative) or what happened since (delta).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use prost::Message as _;

use crate::batch::BatchExporter as _;
use crate::config::{OtlpConfig, TemporalityPreference};
use crate::error::InitError;
use crate::otlp_export::{EncodeBatch, METRIC_DATA_POINTS, OtlpExporter};

/// Encodes one collection's request.
struct MetricEncoder;

impl EncodeBatch<ExportMetricsServiceRequest> for MetricEncoder {
    fn encode(
        &mut self,
        batch: &mut Vec<ExportMetricsServiceRequest>,
        json: bool,
    ) -> Result<Vec<u8>, String> {
        let request = ExportMetricsServiceRequest {
            resource_metrics: batch.drain(..).flat_map(|r| r.resource_metrics).collect(),
        };
        if json {
            serde_json::to_vec(&request)
                .map_err(|e| format!("metrics could not be encoded as OTLP/JSON: {e}"))
        } else {
            Ok(request.encode_to_vec())
        }
    }
}

/// Exports each collection over OTLP and keeps the count of data points
/// the collector rejected, for the pipeline's counters to read.
pub(crate) struct OtlpMetricExporter {
    /// Held across the export's await: collections are exported one at a
    /// time anyway (the periodic reader, the push thread).
    exporter: tokio::sync::Mutex<OtlpExporter<MetricEncoder>>,
    temporality: Temporality,
    /// Data points the last export's answer rejected; taken by the reader.
    rejected: Arc<AtomicU64>,
}

impl std::fmt::Debug for OtlpMetricExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpMetricExporter")
            .field("temporality", &self.temporality)
            .finish_non_exhaustive()
    }
}

impl OtlpMetricExporter {
    /// The exporter for `cfg`, its transport checked now (inside
    /// telemetry's runtime: tonic spawns its connection task there), with
    /// the temporality the configuration prefers; and the count of rejected
    /// data points it fills after each export.
    pub(crate) fn new(
        cfg: &OtlpConfig,
        temporality: TemporalityPreference,
    ) -> Result<(OtlpMetricExporter, Arc<AtomicU64>), InitError> {
        let wire = crate::otlp_export::wire(cfg, &METRIC_DATA_POINTS)?;
        // Each collection carries its own resource.
        let exporter = wire.into_exporter(MetricEncoder);
        let rejected = Arc::new(AtomicU64::new(0));
        Ok((
            OtlpMetricExporter {
                exporter: tokio::sync::Mutex::new(exporter),
                temporality: match temporality {
                    TemporalityPreference::Cumulative => Temporality::Cumulative,
                    TemporalityPreference::Delta => Temporality::Delta,
                    TemporalityPreference::LowMemory => Temporality::LowMemory,
                },
                rejected: Arc::clone(&rejected),
            },
            rejected,
        ))
    }
}

impl PushMetricExporter for OtlpMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut exporter = self.exporter.lock().await;
        exporter.take_batch(&mut vec![ExportMetricsServiceRequest::from(metrics)]);
        let result = exporter.export().await;
        let rejected = exporter.rejected();
        exporter.release_batch();
        self.rejected
            .store(if result.is_ok() { rejected } else { 0 }, Ordering::Relaxed);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        self.temporality
    }
}
