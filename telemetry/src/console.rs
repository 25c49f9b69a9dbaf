//! `OTEL_TRACES_EXPORTER=console` and `OTEL_LOGS_EXPORTER=console`: one
//! JSON line per span or log record, written where stdout logs go —
//! readable, greppable and a few hundred bytes, where the SDK's debug dump
//! takes dozens of lines per span.

use std::io::Write as _;

use opentelemetry::logs::AnyValue;
use opentelemetry::trace::Status;
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{Map, Value as Json};
use tracing_subscriber::fmt::MakeWriter as _;

use crate::layers::SharedWriter;
use crate::stdout::rfc3339;

/// Spans as JSON lines: `{"type":"span","timestamp","service","name",
/// "kind","trace_id","span_id","parent_span_id","duration_ms","status",
/// "attributes",...}`.
#[derive(Debug)]
pub(crate) struct ConsoleSpanExporter {
    writer: SharedWriter,
    service: String,
}

impl ConsoleSpanExporter {
    pub(crate) fn new(writer: SharedWriter) -> Self {
        ConsoleSpanExporter {
            writer,
            service: String::new(),
        }
    }
}

impl SpanExporter for ConsoleSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = String::new();
        for span in &batch {
            out.push_str(&span_line(span, &self.service).to_string());
            out.push('\n');
        }
        write_all(&self.writer, &out)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.service = service_name(resource);
    }
}

/// Log records as JSON lines: `{"type":"log","timestamp","service",
/// "severity","body","trace_id","span_id","attributes"}`.
#[derive(Debug)]
pub(crate) struct ConsoleLogExporter {
    writer: SharedWriter,
    service: String,
}

impl ConsoleLogExporter {
    pub(crate) fn new(writer: SharedWriter) -> Self {
        ConsoleLogExporter {
            writer,
            service: String::new(),
        }
    }
}

impl LogExporter for ConsoleLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let mut out = String::new();
        for (record, _scope) in batch.iter() {
            let mut line = Map::new();
            line.insert("type".into(), "log".into());
            if let Some(t) = record.timestamp().or(record.observed_timestamp()) {
                line.insert("timestamp".into(), rfc3339(t).into());
            }
            line.insert("service".into(), self.service.clone().into());
            if let Some(severity) = record.severity_text() {
                line.insert("severity".into(), severity.into());
            }
            if let Some(body) = record.body() {
                line.insert("body".into(), any_json(body));
            }
            if let Some(cx) = record.trace_context() {
                line.insert("trace_id".into(), cx.trace_id.to_string().into());
                line.insert("span_id".into(), cx.span_id.to_string().into());
            }
            let attributes: Map<String, Json> = record
                .attributes_iter()
                .map(|(k, v)| (k.to_string(), any_json(v)))
                .collect();
            if !attributes.is_empty() {
                line.insert("attributes".into(), Json::Object(attributes));
            }
            out.push_str(&Json::Object(line).to_string());
            out.push('\n');
        }
        write_all(&self.writer, &out)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.service = service_name(resource);
    }
}

fn span_line(span: &SpanData, service: &str) -> Json {
    let mut line = Map::new();
    line.insert("type".into(), "span".into());
    line.insert("timestamp".into(), rfc3339(span.start_time).into());
    line.insert("service".into(), service.into());
    line.insert("name".into(), span.name.to_string().into());
    line.insert(
        "kind".into(),
        format!("{:?}", span.span_kind).to_lowercase().into(),
    );
    line.insert(
        "trace_id".into(),
        span.span_context.trace_id().to_string().into(),
    );
    line.insert(
        "span_id".into(),
        span.span_context.span_id().to_string().into(),
    );
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        line.insert(
            "parent_span_id".into(),
            span.parent_span_id.to_string().into(),
        );
    }
    let duration = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    // Three decimals: microsecond resolution, readable at a glance.
    let ms = (duration.as_secs_f64() * 1e6).round() / 1e3;
    line.insert("duration_ms".into(), ms.into());
    match &span.status {
        Status::Unset => line.insert("status".into(), "unset".into()),
        Status::Ok => line.insert("status".into(), "ok".into()),
        Status::Error { description } => {
            line.insert("status_message".into(), description.to_string().into());
            line.insert("status".into(), "error".into())
        }
    };
    if !span.attributes.is_empty() {
        line.insert("attributes".into(), attributes_json(&span.attributes));
    }
    if !span.events.is_empty() {
        let events: Vec<Json> = span
            .events
            .iter()
            .map(|e| {
                let mut event = Map::new();
                event.insert("name".into(), e.name.to_string().into());
                if !e.attributes.is_empty() {
                    event.insert("attributes".into(), attributes_json(&e.attributes));
                }
                Json::Object(event)
            })
            .collect();
        line.insert("events".into(), events.into());
    }
    if !span.links.is_empty() {
        let links: Vec<Json> = span
            .links
            .iter()
            .map(|l| format!("{}-{}", l.span_context.trace_id(), l.span_context.span_id()).into())
            .collect();
        line.insert("links".into(), links.into());
    }
    Json::Object(line)
}

fn service_name(resource: &Resource) -> String {
    resource
        .get(&Key::from_static_str("service.name"))
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn attributes_json(attributes: &[KeyValue]) -> Json {
    Json::Object(
        attributes
            .iter()
            .map(|kv| (kv.key.to_string(), value_json(&kv.value)))
            .collect(),
    )
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Bool(b) => (*b).into(),
        Value::I64(i) => (*i).into(),
        Value::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

fn any_json(value: &AnyValue) -> Json {
    match value {
        AnyValue::Boolean(b) => (*b).into(),
        AnyValue::Int(i) => (*i).into(),
        AnyValue::Double(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        AnyValue::String(s) => s.as_str().into(),
        other => format!("{other:?}").into(),
    }
}

/// One write per batch; a failed stdout write fails the export (counted in
/// the pipeline's health) and never the service.
fn write_all(writer: &SharedWriter, text: &str) -> OTelSdkResult {
    writer
        .make_writer()
        .write_all(text.as_bytes())
        .map_err(|e| OTelSdkError::InternalFailure(format!("writing to stdout: {e}")))
}
