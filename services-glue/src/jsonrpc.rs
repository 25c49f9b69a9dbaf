//! JSON-RPC / MCP-style servers: request and tool-call counts and durations
//! by server, method or tool, and status (the CryptoFunk family).
//!
//! Requests: SERVER span `{method}` and `rpc.server.call.duration` (s) with
//! `rpc.system=jsonrpc`, `rpc.service` (the server), `rpc.method` and, on
//! failure, `rpc.jsonrpc.error_code` + `error.type`. Tool calls: INTERNAL span
//! `execute_tool {tool}` and `mcp.tool.call.duration` (s) with
//! `gen_ai.tool.name`. Counts are the histograms' `_count`. Method and tool
//! names come from clients, so they are bounded (allow-list if given, else
//! the first 100 distinct, then `_OTHER`).
//!
//! ```
//! use services_glue::jsonrpc::RpcServerTelemetry;
//! let meter = opentelemetry::global::meter("market-data");
//! let rpc = RpcServerTelemetry::new(&meter, "market-data").with_methods(["tools/call", "tools/list"]);
//! let result: Result<u32, i64> = rpc.call("tools/list", || Ok(3));
//! let quote: Result<f64, &str> = rpc.tool("get_quote", || Ok(101.5));
//! assert_eq!(result, Ok(3));
//! # let _ = quote;
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tracing::field::Empty;

use crate::cardinality::{BoundedValues, OTHER};
use crate::outcome::{Duration, ErrorType, OutcomeGuard};

/// A JSON-RPC error code, for `rpc.jsonrpc.error_code`.
pub trait RpcErrorCode {
    /// The JSON-RPC error code (e.g. -32601 method not found).
    fn code(&self) -> i64;
}

impl RpcErrorCode for i64 {
    fn code(&self) -> i64 {
        *self
    }
}

impl RpcErrorCode for &str {
    fn code(&self) -> i64 {
        -32000
    }
}

impl RpcErrorCode for String {
    fn code(&self) -> i64 {
        -32000
    }
}

#[derive(Debug)]
enum Names {
    Allowed(HashSet<String>),
    Bounded(BoundedValues),
}

impl Names {
    fn label(&self, name: &str) -> Arc<str> {
        match self {
            Names::Allowed(set) if set.contains(name) => Arc::from(name),
            Names::Allowed(_) => Arc::from(OTHER),
            Names::Bounded(b) => b.bound(name),
        }
    }
}

/// Instruments for one JSON-RPC/MCP server; cheap to clone.
#[derive(Clone, Debug)]
pub struct RpcServerTelemetry {
    server: &'static str,
    calls: Histogram<f64>,
    tools: Histogram<f64>,
    methods: Arc<Names>,
    tool_names: Arc<Names>,
}

impl RpcServerTelemetry {
    /// Instruments for the server called `server`.
    pub fn new(meter: &Meter, server: &'static str) -> Self {
        RpcServerTelemetry {
            server,
            calls: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("Duration of JSON-RPC requests")
                .with_boundaries(crate::semconv::SECONDS_BUCKETS.to_vec())
                .build(),
            tools: meter
                .f64_histogram("mcp.tool.call.duration")
                .with_unit("s")
                .with_description("Duration of MCP tool calls")
                .with_boundaries(crate::semconv::SECONDS_BUCKETS.to_vec())
                .build(),
            methods: Arc::new(Names::Bounded(BoundedValues::new(100))),
            tool_names: Arc::new(Names::Bounded(BoundedValues::new(100))),
        }
    }

    /// Only these methods are recorded by name; others become `_OTHER`.
    pub fn with_methods<I: IntoIterator<Item = S>, S: Into<String>>(mut self, methods: I) -> Self {
        self.methods = Arc::new(Names::Allowed(
            methods.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Only these tools are recorded by name; others become `_OTHER`.
    pub fn with_tools<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tools: I) -> Self {
        self.tool_names = Arc::new(Names::Allowed(tools.into_iter().map(Into::into).collect()));
        self
    }

    /// Handles one request inside a SERVER span and records its duration.
    pub fn call<T, E: RpcErrorCode>(
        &self,
        method: &str,
        handler: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let method = self.methods.label(method);
        let span = tracing::info_span!(
            "rpc",
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "jsonrpc",
            rpc.service = self.server,
            rpc.method = %method,
            rpc.jsonrpc.error_code = Empty,
            error.type = Empty,
        );
        let mut outcome = OutcomeGuard::new(
            span,
            Duration {
                histogram: self.calls.clone(),
                attrs: vec![
                    KeyValue::new("rpc.system", "jsonrpc"),
                    KeyValue::new("rpc.service", self.server),
                    KeyValue::new("rpc.method", method.to_string()),
                ],
            },
        );
        let result = outcome.span().in_scope(handler);
        let error = result.as_ref().err().map(|e| {
            let code = e.code();
            outcome.span().record("rpc.jsonrpc.error_code", code);
            if let Some(m) = outcome.measure_mut() {
                m.attrs.push(KeyValue::new("rpc.jsonrpc.error_code", code));
            }
            ErrorType::Owned(code.to_string())
        });
        outcome.finish(error);
        result
    }

    /// Runs one tool call inside a span and records its duration and status.
    pub fn tool<T, E>(&self, tool: &str, run: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let tool = self.tool_names.label(tool);
        let span = tracing::info_span!(
            "tool",
            otel.name = %format!("execute_tool {tool}"),
            otel.status_code = Empty,
            rpc.service = self.server,
            gen_ai.tool.name = %tool,
            error.type = Empty,
        );
        let mut outcome = OutcomeGuard::new(
            span,
            Duration {
                histogram: self.tools.clone(),
                attrs: vec![
                    KeyValue::new("rpc.service", self.server),
                    KeyValue::new("gen_ai.tool.name", tool.to_string()),
                ],
            },
        );
        let result = outcome.span().in_scope(run);
        outcome.finish(result.is_err().then_some(ErrorType::Borrowed("tool_error")));
        result
    }
}
