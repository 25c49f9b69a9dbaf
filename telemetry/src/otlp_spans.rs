//! OTLP span export that encodes each batch once.
//!
//! The OTLP crate's span exporter takes the spans by value, so a queue that
//! keeps a batch for its retries has to copy every span before each attempt;
//! over gRPC the exporter then copies them once more per attempt
//! (open-telemetry/opentelemetry-rust#3368). In the fleet those two deep
//! copies were a sixth of all the CPU telemetry added. Here a batch is
//! masked, grouped by scope and encoded once, consuming the spans, and every
//! attempt sends the same bytes.
//!
//! The protobuf is written straight from the spans (`span_protobuf`, the
//! same bytes as the OTLP crate's generated messages); OTLP/JSON goes
//! through those messages. Sending, and reading the collector's answer, is
//! `otlp_export`'s.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SpanData;

use crate::batch::{BatchExporter, ExportFuture};
use crate::config::OtlpConfig;
use crate::error::InitError;
use crate::otlp_export::{OtlpExport, OtlpWire, SPANS};

/// Exports spans over OTLP, encoding each batch once.
pub(crate) struct OtlpSpanExporter {
    resource: ResourceAttributesWithSchema,
    block: crate::span_protobuf::ResourceBlock,
    export: OtlpExport,
}

impl std::fmt::Debug for OtlpSpanExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSpanExporter").finish_non_exhaustive()
    }
}

/// The span transport for `cfg`, checked at start-up: endpoint, headers
/// and TLS files. Must be called inside telemetry's runtime (tonic spawns
/// its connection task there).
pub(crate) fn span_wire(cfg: &OtlpConfig) -> Result<SpanWire, InitError> {
    crate::otlp_export::wire(cfg, &SPANS).map(SpanWire)
}

/// A checked transport, waiting for the resource its exporter labels spans with.
pub(crate) struct SpanWire(OtlpWire);

impl SpanWire {
    /// The exporter, sending spans of `resource`.
    pub(crate) fn into_exporter(self, resource: &Resource) -> OtlpSpanExporter {
        let resource: ResourceAttributesWithSchema = resource.into();
        OtlpSpanExporter {
            block: crate::span_protobuf::ResourceBlock::new(&resource),
            resource,
            export: self.0.into_export(),
        }
    }
}

impl OtlpSpanExporter {
    /// The request for the batch, which is left empty.
    fn encode(&self, batch: &mut Vec<SpanData>) -> Result<Vec<u8>, String> {
        if self.export.json() {
            // JSON is rare and slow anyway: the generated messages' serde.
            let request = ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(
                    std::mem::take(batch),
                    &self.resource,
                ),
            };
            serde_json::to_vec(&request)
                .map_err(|e| format!("spans could not be encoded as OTLP/JSON: {e}"))
        } else {
            let mut out = Vec::new();
            crate::span_protobuf::encode_request(&self.block, batch, &mut out);
            batch.clear();
            Ok(out)
        }
    }
}

impl BatchExporter<SpanData> for OtlpSpanExporter {
    fn take_batch(&mut self, batch: &mut Vec<SpanData>) {
        // On the worker thread: masking never costs the application.
        batch.iter_mut().for_each(crate::redact::mask_span);
        let plain = self.encode(batch);
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
