//! OTLP log export that encodes each batch once and counts what the
//! collector rejects.
//!
//! The OTLP crate's log exporter retries inside its own client and logs a
//! partial success without saying how many records it rejected, so those
//! records counted as exported. Here a batch is masked and encoded once
//! (the OTLP crate's own grouping into the generated messages), every
//! attempt sends the same bytes, retrying is the batch queue's as for
//! spans, and a partial success's rejected records count as failed.

use opentelemetry::InstrumentationScope;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use prost::Message as _;

use crate::batch::{BatchExporter, ExportFuture};
use crate::config::OtlpConfig;
use crate::error::InitError;
use crate::exporters::LogItem;
use crate::otlp_export::{LOG_RECORDS, OtlpExport, OtlpWire};

/// Exports log records over OTLP, encoding each batch once.
pub(crate) struct OtlpLogExporter {
    resource: ResourceAttributesWithSchema,
    export: OtlpExport,
    /// Makes blank records for masked copies (the SDK's records cannot
    /// rewrite an attribute in place). Its provider has no processor.
    blank: SdkLogger,
}

impl std::fmt::Debug for OtlpLogExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpLogExporter").finish_non_exhaustive()
    }
}

/// The log transport for `cfg`, checked at start-up: endpoint, headers and
/// TLS files. Must be called inside telemetry's runtime (tonic spawns its
/// connection task there).
pub(crate) fn log_wire(cfg: &OtlpConfig) -> Result<LogWire, InitError> {
    crate::otlp_export::wire(cfg, &LOG_RECORDS).map(LogWire)
}

/// A checked transport, waiting for the resource its exporter labels log
/// records with.
pub(crate) struct LogWire(OtlpWire);

impl LogWire {
    /// The exporter, sending log records of `resource`.
    pub(crate) fn into_exporter(self, resource: &Resource) -> OtlpLogExporter {
        use opentelemetry::logs::LoggerProvider as _;
        OtlpLogExporter {
            resource: resource.into(),
            export: self.0.into_export(),
            blank: SdkLoggerProvider::builder()
                .build()
                .logger("telemetry.redact"),
        }
    }
}

impl OtlpLogExporter {
    /// The request for the batch.
    fn encode(&self, batch: &[LogItem]) -> Result<Vec<u8>, String> {
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            batch.iter().map(|(r, s)| (r, s)).collect();
        let request = ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(&LogBatch::new(&refs), &self.resource),
        };
        if self.export.json() {
            serde_json::to_vec(&request)
                .map_err(|e| format!("log records could not be encoded as OTLP/JSON: {e}"))
        } else {
            Ok(request.encode_to_vec())
        }
    }
}

impl BatchExporter<LogItem> for OtlpLogExporter {
    fn take_batch(&mut self, batch: &mut Vec<LogItem>) {
        // On the worker thread: masking never costs the application.
        for (record, _) in batch.iter_mut() {
            if let Some(masked) = crate::redact::masked_log_record(record, &self.blank) {
                *record = masked;
            }
        }
        let plain = self.encode(batch);
        batch.clear();
        self.export.set_batch(plain);
    }

    fn export(&mut self) -> ExportFuture<'_> {
        self.export.send()
    }

    fn release_batch(&mut self) {
        self.export.release();
    }

    fn retry_after(&mut self) -> Option<std::time::Duration> {
        self.export.retry_after()
    }

    fn rejected(&mut self) -> u64 {
        self.export.rejected()
    }

    fn shutdown(&mut self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}
