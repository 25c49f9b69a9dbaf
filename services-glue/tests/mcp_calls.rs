//! MCP through the official SDK (rmcp) over Streamable HTTP on a real axum
//! server: the client's and the server's spans join one trace through
//! `params._meta`, durations are recorded by method, tool and outcome, and
//! failures are told apart.
#![cfg(all(feature = "mcp", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, Content, ErrorData, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerInfo, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use services_glue::mcp::McpTelemetry;
use telemetry::testing::{MetricData, SpanKind};

/// A tool server: `add` sums two numbers, `fail` answers `isError`, other
/// names are JSON-RPC errors.
#[derive(Clone)]
struct Calculator {
    mcp: McpTelemetry,
}

impl rmcp::ServerHandler for Calculator {
    fn get_info(&self) -> ServerInfo {
        ServerInfo {
            capabilities: ServerCapabilities::builder().enable_tools().build(),
            ..Default::default()
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.mcp
            .serve_method("tools/list", &context, async {
                let schema: JsonObject = serde_json::from_str(r#"{"type":"object"}"#).unwrap();
                Ok(ListToolsResult {
                    tools: vec![Tool::new("add", "a + b", Arc::new(schema))],
                    ..Default::default()
                })
            })
            .await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = request.name.to_string();
        let args = request.arguments.clone().unwrap_or_default();
        self.mcp
            .serve_tool(&request, &context, async move {
                tracing::info!("computing");
                match name.as_str() {
                    "add" => {
                        let n = |k: &str| args.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
                        Ok(CallToolResult::success(vec![Content::text(
                            (n("a") + n("b")).to_string(),
                        )]))
                    }
                    "fail" => Ok(CallToolResult::error(vec![Content::text("no")])),
                    _ => Err(ErrorData::invalid_params("no such tool", None)),
                }
            })
            .await
    }
}

#[test]
fn tool_calls_join_one_trace_through_meta_and_record_their_outcome() {
    let sink = common::run_in_telemetry("mcp-test", |meter| async move {
        let mcp = McpTelemetry::new(&meter).with_propagator(common::w3c());
        let server_mcp = mcp.clone();
        let service = StreamableHttpService::new(
            move || {
                Ok(Calculator {
                    mcp: server_mcp.clone(),
                })
            },
            Arc::new(NeverSessionManager::default()),
            StreamableHttpServerConfig {
                stateful_mode: false,
                json_response: true,
                ..Default::default()
            },
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let transport = StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"));
        let client = ().serve(transport).await.expect("initialize");
        let tools = client.peer().list_all_tools().await.unwrap();
        assert_eq!(tools[0].name, "add");

        let args = |a: f64, b: f64| -> JsonObject {
            serde_json::from_value(serde_json::json!({"a": a, "b": b})).unwrap()
        };
        let root = tracing::info_span!("round");
        let (sum, failed, unknown) = {
            use tracing::Instrument;
            async {
                let sum = mcp.call_tool(client.peer(), "add", args(2.0, 3.0)).await;
                let failed = mcp
                    .call_tool(client.peer(), "fail", JsonObject::new())
                    .await;
                let unknown = mcp
                    .call_tool(client.peer(), "nope", JsonObject::new())
                    .await;
                (sum, failed, unknown)
            }
            .instrument(root)
            .await
        };
        let sum = sum.unwrap();
        assert_eq!(sum.content[0].as_text().unwrap().text, "5");
        assert_eq!(failed.unwrap().is_error, Some(true));
        assert!(unknown.is_err(), "a JSON-RPC error is an Err");
        client.cancel().await.unwrap();
    });

    let spans = sink.spans();
    let root = spans.iter().find(|s| s.name == "round").unwrap();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client && s.name.starts_with("tools/call"))
        .collect();
    assert_eq!(
        clients.len(),
        3,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for client in &clients {
        assert_eq!(client.trace_id, root.trace_id);
        assert_eq!(
            client.parent_span_id.as_deref(),
            Some(root.span_id.as_str())
        );
        assert_eq!(client.attributes.str("mcp.method.name"), Some("tools/call"));
        // Each call's server span is the child of its client span, across
        // HTTP, through `_meta`.
        let server = spans
            .iter()
            .find(|s| {
                s.kind == SpanKind::Server
                    && s.parent_span_id.as_deref() == Some(client.span_id.as_str())
            })
            .unwrap_or_else(|| panic!("no server span under {}", client.name));
        assert_eq!(server.trace_id, root.trace_id);
        assert_eq!(server.name, client.name);
    }
    let add = clients.iter().find(|s| s.name == "tools/call add").unwrap();
    assert_eq!(add.attributes.str("gen_ai.tool.name"), Some("add"));
    assert!(!add.attributes.contains_key("error.type"));
    let fail = clients
        .iter()
        .find(|s| s.name == "tools/call fail")
        .unwrap();
    assert_eq!(fail.attributes.str("error.type"), Some("tool_error"));
    let nope = clients
        .iter()
        .find(|s| s.name == "tools/call nope")
        .unwrap();
    assert_eq!(nope.attributes.str("error.type"), Some("jsonrpc_error"));
    // The tool's own log line is inside its server span.
    let logs = sink.logs();
    let computing = logs
        .iter()
        .find(|l| l.body.as_deref() == Some("computing"))
        .unwrap();
    assert_eq!(computing.trace_id.as_deref(), Some(root.trace_id.as_str()));

    // Durations by method, tool and outcome, on both sides.
    let metrics = sink.metrics();
    for (name, side_errors) in [
        (
            "mcp.client.operation.duration",
            ["tool_error", "jsonrpc_error"],
        ),
        ("mcp.server.operation.duration", ["tool_error", "-32602"]),
    ] {
        let m = telemetry::testing::find_metric(&metrics, name).unwrap_or_else(|| panic!("{name}"));
        let MetricData::Histogram { points, .. } = &m.data else {
            panic!("{name} is a histogram")
        };
        let key = |p: &telemetry::testing::HistogramPoint| {
            (
                p.attributes.str("gen_ai.tool.name").map(str::to_string),
                p.attributes.str("error.type").map(str::to_string),
            )
        };
        let keys: Vec<_> = points.iter().map(key).collect();
        assert!(
            keys.contains(&(Some("add".into()), None)),
            "{name}: {keys:?}"
        );
        assert!(
            keys.contains(&(Some("fail".into()), Some(side_errors[0].into()))),
            "{name}: {keys:?}"
        );
        assert!(
            keys.iter()
                .any(|(_, e)| e.as_deref() == Some(side_errors[1])),
            "{name}: {keys:?}"
        );
    }
    let server =
        telemetry::testing::find_metric(&metrics, "mcp.server.operation.duration").unwrap();
    assert!(
        server
            .histogram_points()
            .iter()
            .any(|p| p.attributes.str("mcp.method.name") == Some("tools/list")),
        "tools/list recorded"
    );
}
