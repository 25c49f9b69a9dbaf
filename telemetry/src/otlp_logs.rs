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
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use prost::Message as _;

use crate::exporters::LogItem;
use crate::otlp_export::EncodeBatch;

/// Encodes log record batches for one resource.
pub(crate) struct LogEncoder {
    resource: ResourceAttributesWithSchema,
    /// Makes blank records for masked copies (the SDK's records cannot
    /// rewrite an attribute in place). Its provider has no processor.
    blank: SdkLogger,
}

impl LogEncoder {
    /// The encoder of log records of `resource`.
    pub(crate) fn new(resource: &Resource) -> LogEncoder {
        LogEncoder {
            resource: resource.into(),
            blank: SdkLoggerProvider::builder()
                .build()
                .logger("telemetry.redact"),
        }
    }
}

impl EncodeBatch<LogItem> for LogEncoder {
    fn encode(&mut self, batch: &mut Vec<LogItem>, json: bool) -> Result<Vec<u8>, String> {
        for (record, _) in batch.iter_mut() {
            if let Some(masked) = crate::redact::masked_log_record(record, &self.blank) {
                *record = masked;
            }
        }
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            batch.iter().map(|(r, s)| (r, s)).collect();
        let request = ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(&LogBatch::new(&refs), &self.resource),
        };
        if json {
            serde_json::to_vec(&request)
                .map_err(|e| format!("log records could not be encoded as OTLP/JSON: {e}"))
        } else {
            Ok(request.encode_to_vec())
        }
    }
}
