//! MCP on both sides, over the official SDK: a tool server (any [`Tools`]
//! set served on `/mcp`, stateless Streamable HTTP with JSON answers, every
//! call in the glue's SERVER span) and the client pool components call
//! tools through (one session per server, re-initialised after a failure,
//! every call in the glue's CLIENT span with the context in `_meta`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, Content, ErrorData, Implementation, JsonObject,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerInfo, Tool,
};
use rmcp::service::{Peer, RequestContext, RoleClient, RoleServer, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use services_glue::mcp::McpTelemetry;
use tokio::sync::Mutex;

use crate::catalogue::Component;

/// Why a tool call failed on the server.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments are wrong: a JSON-RPC error (-32602).
    #[error("{0}")]
    Invalid(String),
    /// The tool ran and failed: a result with `isError: true`.
    #[error("{0}")]
    Failed(String),
}

/// A future a tool returns.
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send + 'a>>;

/// One set of tools.
pub trait Tools: Send + Sync + 'static {
    /// Name, description and the JSON schema of the arguments, per tool.
    fn list(&self) -> Vec<(&'static str, &'static str, Value)>;
    /// Runs `tool`.
    fn call<'a>(&'a self, tool: &'a str, args: JsonObject) -> ToolFuture<'a>;
}

/// The rmcp handler: lists and runs a [`Tools`] set, instrumented.
struct Handler {
    tools: Arc<dyn Tools>,
    mcp: McpTelemetry,
    name: &'static str,
}

impl Clone for Handler {
    fn clone(&self) -> Self {
        Handler {
            tools: Arc::clone(&self.tools),
            mcp: self.mcp.clone(),
            name: self.name,
        }
    }
}

impl rmcp::ServerHandler for Handler {
    fn get_info(&self) -> ServerInfo {
        ServerInfo {
            capabilities: ServerCapabilities::builder().enable_tools().build(),
            server_info: Implementation {
                name: self.name.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self
            .tools
            .list()
            .into_iter()
            .map(|(name, description, schema)| {
                let schema: JsonObject = match schema {
                    Value::Object(map) => map,
                    _ => JsonObject::new(),
                };
                Tool::new(name, description, Arc::new(schema))
            })
            .collect();
        self.mcp
            .serve_method("tools/list", &context, async {
                Ok(ListToolsResult {
                    tools,
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
        let tools = Arc::clone(&self.tools);
        let name = request.name.to_string();
        let args = request.arguments.clone().unwrap_or_default();
        self.mcp
            .serve_tool(&request, &context, async move {
                match tools.call(&name, args).await {
                    Ok(value) => {
                        let text = value.to_string();
                        let mut result = CallToolResult::success(vec![Content::text(text)]);
                        result.structured_content = Some(value);
                        Ok(result)
                    }
                    Err(ToolError::Failed(why)) => {
                        Ok(CallToolResult::error(vec![Content::text(why)]))
                    }
                    Err(ToolError::Invalid(why)) => Err(ErrorData::invalid_params(why, None)),
                }
            })
            .await
    }
}

/// Largest MCP request body a tool server reads.
pub const MAX_MCP_BODY: usize = 256 * 1024;

/// `/mcp` serving `tools`: stateless Streamable HTTP answering in JSON,
/// bodies cut off at [`MAX_MCP_BODY`] (the SDK reads whole bodies).
pub fn router(name: &'static str, tools: Arc<dyn Tools>, mcp: McpTelemetry) -> axum::Router {
    let handler = Handler { tools, mcp, name };
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig {
            stateful_mode: false,
            json_response: true,
            ..Default::default()
        },
    );
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(limit_body))
}

/// 413 for a declared length past the limit; any other body is cut off
/// there while it is read.
async fn limit_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_MCP_BODY) {
        return (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("MCP requests are at most {MAX_MCP_BODY} bytes\n"),
        )
            .into_response();
    }
    let request =
        request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, MAX_MCP_BODY)));
    next.run(request).await
}

/// Reads an argument.
pub fn arg<T: serde::de::DeserializeOwned>(args: &JsonObject, key: &str) -> Result<T, ToolError> {
    let value = args
        .get(key)
        .ok_or_else(|| ToolError::Invalid(format!("missing argument {key}")))?;
    serde_json::from_value(value.clone())
        .map_err(|e| ToolError::Invalid(format!("argument {key}: {e}")))
}

/// An optional argument with a default.
pub fn arg_or<T: serde::de::DeserializeOwned>(
    args: &JsonObject,
    key: &str,
    default: T,
) -> Result<T, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(_) => arg(args, key),
    }
}

/// A JSON schema for an object of the given properties (all required).
pub fn schema(properties: &[(&str, &str)]) -> Value {
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(k, t)| ((*k).to_string(), serde_json::json!({ "type": t })))
        .collect();
    let required: Vec<&str> = properties.iter().map(|(k, _)| *k).collect();
    serde_json::json!({ "type": "object", "properties": props, "required": required })
}

/// Why a tool call failed on the client.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server could not be reached or answered badly.
    #[error("{server}: {why}")]
    Unreachable {
        /// Which server.
        server: &'static str,
        /// What happened.
        why: String,
    },
    /// The tool answered `isError`.
    #[error("{server}/{tool}: {why}")]
    Tool {
        /// Which server.
        server: &'static str,
        /// Which tool.
        tool: String,
        /// Its message.
        why: String,
    },
}

/// Longest wait for one tool call.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// MCP sessions to the tool servers, one per server, opened on first use
/// and again after a failure.
pub struct ToolClients {
    mcp: McpTelemetry,
    urls: HashMap<Component, String>,
    sessions: Mutex<HashMap<Component, RunningService<RoleClient, ()>>>,
}

impl std::fmt::Debug for ToolClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolClients")
            .field("urls", &self.urls)
            .finish()
    }
}

impl ToolClients {
    /// Clients of the servers at `urls` (base URLs; `/mcp` is added).
    pub fn new(mcp: McpTelemetry, urls: HashMap<Component, String>) -> ToolClients {
        ToolClients {
            mcp,
            urls,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    async fn session(&self, server: Component) -> Result<Peer<RoleClient>, CallError> {
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(&server) {
            return Ok(s.peer().clone());
        }
        let url = format!(
            "{}/mcp",
            self.urls
                .get(&server)
                .map(String::as_str)
                .unwrap_or_default()
        );
        let transport = StreamableHttpClientTransport::from_uri(url);
        // The SDK's workers live as long as the session and keep the span
        // current when it starts: started on a task of their own, they hold
        // no span of the request that happened to open the session (which
        // would otherwise never end, nor its trace).
        let opening = tokio::spawn(async move { ().serve(transport).await });
        let session = tokio::time::timeout(CALL_TIMEOUT, opening)
            .await
            .map_err(|_| unreachable(server, "initialize timed out".into()))?
            .map_err(|e| unreachable(server, format!("initialize: {e}")))?
            .map_err(|e| unreachable(server, format!("initialize: {e}")))?;
        let peer = session.peer().clone();
        sessions.insert(server, session);
        Ok(peer)
    }

    /// Ends every session (the SDK's workers stop instead of being
    /// cancelled at exit).
    pub async fn close(&self) {
        let sessions: Vec<_> = self.sessions.lock().await.drain().map(|(_, s)| s).collect();
        for session in sessions {
            let _ = session.cancel().await;
        }
    }

    /// Calls `tool` on `server`; the structured result.
    pub async fn call(
        &self,
        server: Component,
        tool: &str,
        args: Value,
    ) -> Result<Value, CallError> {
        let peer = self.session(server).await?;
        let args = match args {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        };
        let result =
            tokio::time::timeout(CALL_TIMEOUT, self.mcp.call_tool(&peer, tool, args)).await;
        let result = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.forget(server).await;
                return Err(unreachable(server, e.to_string()));
            }
            Err(_) => {
                self.forget(server).await;
                return Err(unreachable(server, format!("{tool} timed out")));
            }
        };
        let text = result
            .content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone())
            .unwrap_or_default();
        if result.is_error == Some(true) {
            return Err(CallError::Tool {
                server: server.name(),
                tool: tool.to_string(),
                why: text,
            });
        }
        Ok(match result.structured_content {
            Some(v) => v,
            None => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }

    async fn forget(&self, server: Component) {
        let stale = self.sessions.lock().await.remove(&server);
        if let Some(session) = stale {
            let _ = session.cancel().await;
        }
    }
}

fn unreachable(server: Component, why: String) -> CallError {
    CallError::Unreachable {
        server: server.name(),
        why,
    }
}
