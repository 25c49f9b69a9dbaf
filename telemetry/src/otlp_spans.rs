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
use opentelemetry_sdk::trace::SpanData;

use crate::otlp_export::EncodeBatch;

/// Encodes span batches for one resource.
pub(crate) struct SpanEncoder {
    resource: ResourceAttributesWithSchema,
    block: crate::span_protobuf::ResourceBlock,
}

impl SpanEncoder {
    /// The encoder of spans of `resource`.
    pub(crate) fn new(resource: &Resource) -> SpanEncoder {
        let resource: ResourceAttributesWithSchema = resource.into();
        SpanEncoder {
            block: crate::span_protobuf::ResourceBlock::new(&resource),
            resource,
        }
    }
}

impl EncodeBatch<SpanData> for SpanEncoder {
    fn encode(&mut self, batch: &mut Vec<SpanData>, json: bool) -> Result<Vec<u8>, String> {
        batch.iter_mut().for_each(crate::redact::mask_span);
        if json {
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
            Ok(out)
        }
    }
}
