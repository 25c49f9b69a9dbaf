//! Model Context Protocol through the official Rust SDK (`rmcp`), after the
//! MCP semantic conventions: a CLIENT span and a SERVER span named
//! `{mcp.method.name} {gen_ai.tool.name}` (`tools/call get_candles`), the
//! trace context carried in the request's `params._meta` (MCP messages may
//! share one HTTP request, so HTTP headers cannot carry it), and
//! `mcp.client.operation.duration` / `mcp.server.operation.duration` (s)
//! by `mcp.method.name`, `gen_ai.tool.name` and, on failure, `error.type`.
//!
//! A tool result with `isError: true` is a failed call (`error.type =
//! tool_error`) though the JSON-RPC exchange succeeded; a transport failure
//! or a JSON-RPC error is recorded with its kind. Tool names come from
//! clients, so the server bounds them (the first 100 distinct, then
//! `_OTHER`).
//!
//! ```
//! use services_glue::mcp::{McpTelemetry, meta_carrier};
//!
//! let mcp = McpTelemetry::new(&opentelemetry::global::meter("agent"));
//! // A client calls `mcp.call_tool(&peer, "get_candles", args).await`; a
//! // server's `call_tool` handler wraps its work in
//! // `mcp.serve_tool(&request, &context, work).await`.
//! let carrier = meta_carrier(None);
//! assert!(carrier.is_empty());
//! # let _ = mcp;
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorData, JsonObject, Meta};
use rmcp::service::{Peer, RequestContext, RoleClient, RoleServer, ServiceError};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::cardinality::BoundedValues;
use crate::outcome::{Duration, ErrorType, OutcomeGuard};
use crate::propagation::Propagator;

/// `mcp.method.name` of a tool call.
pub const TOOLS_CALL: &str = "tools/call";

/// Distinct tool names a server records before the rest become `_OTHER`.
const MAX_TOOLS: usize = 100;

/// `error.type` of a tool result with `isError: true`.
pub const TOOL_ERROR: &str = "tool_error";

/// MCP instruments and the propagator; cheap to clone.
#[derive(Clone, Debug)]
pub struct McpTelemetry {
    client: Histogram<f64>,
    server: Histogram<f64>,
    tools: Arc<BoundedValues>,
    propagator: Propagator,
}

impl McpTelemetry {
    /// Creates the two duration histograms (the semantic conventions'
    /// bucket advice), with the global propagator.
    pub fn new(meter: &Meter) -> Self {
        let buckets = crate::semconv::SECONDS_BUCKETS.to_vec();
        McpTelemetry {
            client: meter
                .f64_histogram("mcp.client.operation.duration")
                .with_unit("s")
                .with_description(
                    "Duration of MCP requests as the client sees them, until the response",
                )
                .with_boundaries(buckets.clone())
                .build(),
            server: meter
                .f64_histogram("mcp.server.operation.duration")
                .with_unit("s")
                .with_description("Duration of MCP requests as the server handles them")
                .with_boundaries(buckets)
                .build(),
            tools: Arc::new(BoundedValues::new(MAX_TOOLS)),
            propagator: Propagator::global(),
        }
    }

    /// Reads and writes context with `propagator` instead of the global one.
    pub fn with_propagator(mut self, propagator: Propagator) -> Self {
        self.propagator = propagator;
        self
    }

    /// Calls `tool` on `peer` in a CLIENT span, the span's context in
    /// `params._meta`. A result with `isError: true` is returned as it is
    /// and recorded as a failure.
    pub async fn call_tool(
        &self,
        peer: &Peer<RoleClient>,
        tool: &str,
        arguments: JsonObject,
    ) -> Result<CallToolResult, ServiceError> {
        let span = operation_span("client", TOOLS_CALL, Some(tool));
        let mut outcome = OutcomeGuard::new(
            span,
            Duration {
                histogram: self.client.clone(),
                attrs: attributes(TOOLS_CALL, Some(tool)),
            },
        );
        let mut carrier = HashMap::new();
        self.propagator
            .inject(&outcome.span().context(), &mut carrier);
        let mut meta = Meta::new();
        for (k, v) in carrier {
            meta.0.insert(k, serde_json::Value::String(v));
        }
        let params = CallToolRequestParams {
            meta: Some(meta),
            name: tool.to_string().into(),
            arguments: Some(arguments),
            task: None,
        };
        let result = peer
            .call_tool(params)
            .instrument(outcome.span().clone())
            .await;
        outcome.finish(match &result {
            Ok(r) if r.is_error == Some(true) => Some(ErrorType::Borrowed(TOOL_ERROR)),
            Ok(_) => None,
            Err(e) => Some(ErrorType::Borrowed(client_error_type(e))),
        });
        result
    }

    /// Runs a server's `tools/call` handler in a SERVER span whose parent
    /// is the caller's context (`params._meta`, else the HTTP request's
    /// headers), and records its duration and outcome.
    pub async fn serve_tool<F>(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        work: F,
    ) -> Result<CallToolResult, ErrorData>
    where
        F: Future<Output = Result<CallToolResult, ErrorData>>,
    {
        let tool = self.tools.bound(&request.name);
        self.serve(
            TOOLS_CALL,
            Some(&tool),
            request.meta.as_ref(),
            context,
            work,
        )
        .await
    }

    /// [`serve_tool`](Self::serve_tool) for another method (`tools/list`,
    /// `initialize`): no tool name.
    pub async fn serve_method<T, F>(
        &self,
        method: &'static str,
        context: &RequestContext<RoleServer>,
        work: F,
    ) -> Result<T, ErrorData>
    where
        F: Future<Output = Result<T, ErrorData>>,
        T: ToolOutcome,
    {
        self.serve(method, None, None, context, work).await
    }

    async fn serve<T, F>(
        &self,
        method: &str,
        tool: Option<&str>,
        request_meta: Option<&Meta>,
        context: &RequestContext<RoleServer>,
        work: F,
    ) -> Result<T, ErrorData>
    where
        F: Future<Output = Result<T, ErrorData>>,
        T: ToolOutcome,
    {
        let mut carrier = meta_carrier(request_meta);
        if carrier.is_empty() {
            carrier = meta_carrier(Some(&context.meta));
        }
        let parent = if carrier.is_empty() {
            // Not propagated in `_meta`: the HTTP request that carried it.
            context
                .extensions
                .get::<http::request::Parts>()
                .map(|parts| self.propagator.extract_headers(&parts.headers))
        } else {
            Some(self.propagator.extract(&carrier))
        };
        let span =
            crate::propagation::created_under(parent, || operation_span("server", method, tool));
        let mut outcome = OutcomeGuard::new(
            span,
            Duration {
                histogram: self.server.clone(),
                attrs: attributes(method, tool),
            },
        );
        let result = work.instrument(outcome.span().clone()).await;
        outcome.finish(match &result {
            Ok(r) if r.failed() => Some(ErrorType::Borrowed(TOOL_ERROR)),
            Ok(_) => None,
            Err(e) => Some(ErrorType::Owned(e.code.0.to_string())),
        });
        result
    }
}

/// Whether a successful JSON-RPC answer still reports a failure.
pub trait ToolOutcome {
    /// `true` for a tool result with `isError: true`.
    fn failed(&self) -> bool {
        false
    }
}

impl ToolOutcome for CallToolResult {
    fn failed(&self) -> bool {
        self.is_error == Some(true)
    }
}

impl ToolOutcome for rmcp::model::ListToolsResult {}
impl ToolOutcome for rmcp::model::InitializeResult {}

/// The string entries of a request's `_meta` (where the context travels).
pub fn meta_carrier(meta: Option<&Meta>) -> HashMap<String, String> {
    meta.map(|m| {
        m.0.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    })
    .unwrap_or_default()
}

/// The span of one MCP operation; `side` is `client` or `server`.
fn operation_span(side: &'static str, method: &str, tool: Option<&str>) -> tracing::Span {
    let name = match tool {
        Some(tool) => format!("{method} {tool}"),
        None => method.to_string(),
    };
    tracing::info_span!(
        "mcp",
        otel.name = %name,
        otel.kind = side,
        otel.status_code = Empty,
        mcp.method.name = %method,
        gen_ai.tool.name = tool,
        gen_ai.operation.name = tool.map(|_| "execute_tool"),
        network.transport = "tcp",
        error.type = Empty,
    )
}

fn attributes(method: &str, tool: Option<&str>) -> Vec<KeyValue> {
    let mut attrs = vec![KeyValue::new("mcp.method.name", method.to_string())];
    if let Some(tool) = tool {
        attrs.push(KeyValue::new("gen_ai.tool.name", tool.to_string()));
    }
    attrs
}

/// `error.type` of a client-side failure: bounded, from the error's kind.
fn client_error_type(e: &ServiceError) -> &'static str {
    match e {
        ServiceError::McpError(_) => "jsonrpc_error",
        ServiceError::Timeout { .. } => "timeout",
        ServiceError::Cancelled { .. } => "cancelled",
        ServiceError::TransportSend(_) | ServiceError::TransportClosed => "transport_error",
        _ => "_OTHER",
    }
}
