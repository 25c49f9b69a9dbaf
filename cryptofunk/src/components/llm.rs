//! The LLM: a simulated provider with an OpenAI-compatible chat API
//! (`POST /v1/chat/completions`) that answers deterministically and
//! reports token usage, and the client the agents call it with (the glue's
//! `gen_ai` conventions around a traced HTTP call). The provider is
//! simulated; the instrumentation around it is what a real one gets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use services_glue::llm::GenAiTelemetry;
use services_glue::reqwest::TracedClient;
use tracing::Instrument;

use super::{ComponentError, Host, always};
use crate::market::unit;

/// The model name the simulated provider answers as.
pub const MODEL: &str = "cryptofunk-sim-1";
/// `gen_ai.provider.name`: the API the client speaks.
pub const PROVIDER: &str = "openai";
/// Longest prompt accepted, in characters.
const MAX_PROMPT: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
struct Message {
    role: String,
    content: String,
}

struct Gateway {
    latency: Duration,
    error_rate: f64,
    seed: u64,
    calls: AtomicU64,
}

/// Serves the simulated provider.
pub async fn serve(host: Host<'_>) -> Result<(), ComponentError> {
    let g = Arc::new(Gateway {
        latency: host.env.llm_latency,
        error_rate: host.env.llm_error_rate,
        seed: host.env.seed,
        calls: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(chat))
        .with_state(g);
    host.serve(app, None, always()).await
}

/// Roughly four characters a token, as English text goes.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

async fn chat(State(g): State<Arc<Gateway>>, Json(request): Json<ChatRequest>) -> Response {
    let n = g.calls.fetch_add(1, Ordering::Relaxed);
    let prompt: String = request
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    if request.model != MODEL {
        return (StatusCode::NOT_FOUND, Json(json!({"error": {"message": format!("model {} does not exist; use {MODEL}", request.model.chars().take(64).collect::<String>()), "type": "invalid_request_error"}}))).into_response();
    }
    if prompt.len() > MAX_PROMPT || request.messages.is_empty() {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": {"message": format!("1 to {MAX_PROMPT} characters of messages"), "type": "invalid_request_error"}}))).into_response();
    }
    if !g.latency.is_zero() {
        tokio::time::sleep(g.latency).await;
    }
    if unit(g.seed ^ n.wrapping_mul(0x9E37)) < g.error_rate {
        tracing::warn!("simulated provider overload");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": {"message": "the simulated provider is overloaded", "type": "server_error"}}))).into_response();
    }
    // Deterministic: the same prompt always gets the same conviction.
    let hash = prompt
        .bytes()
        .fold(g.seed, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let conviction = 0.6 + 0.4 * unit(hash);
    let content = format!("Assessment noted. conviction={conviction:.3}");
    let (input, output) = (tokens(&prompt), tokens(&content));
    Json(json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
    }))
    .into_response()
}

/// Why an LLM call failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Not answered in time, or not reached.
    #[error("llm unreachable: {0}")]
    Unreachable(String),
    /// Answered with an error status.
    #[error("llm answered {0}")]
    Status(u16),
    /// Answered something else than a chat completion.
    #[error("llm answer unreadable")]
    Unreadable,
}

/// How the agents call the provider.
#[derive(Clone)]
pub struct LlmClient {
    url: String,
    http: TracedClient,
    genai: GenAiTelemetry,
}

#[derive(Deserialize)]
struct ChatAnswer {
    choices: Vec<Choice>,
    usage: Usage,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient").field("url", &self.url).finish()
    }
}

impl LlmClient {
    /// A client of the provider at `base_url`.
    pub fn new(base_url: &str, meter: &opentelemetry::metrics::Meter) -> LlmClient {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        LlmClient {
            url: format!("{base_url}/v1/chat/completions"),
            http: TracedClient::new(client, meter),
            genai: GenAiTelemetry::new(meter),
        }
    }

    /// One chat completion: the answer's text.
    pub async fn chat(&self, system: &str, prompt: &str) -> Result<String, LlmError> {
        let call = self.genai.start("chat", PROVIDER, MODEL);
        let body = json!({
            "model": MODEL,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
        });
        let request = match self.http.inner().post(&self.url).json(&body).build() {
            Ok(r) => r,
            Err(e) => {
                call.finish_err("bad_request");
                return Err(LlmError::Unreachable(e.to_string()));
            }
        };
        let span = call.span().clone();
        let response = self.http.execute(request).instrument(span.clone()).await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                call.finish_err(if e.is_timeout() {
                    "timeout"
                } else {
                    "unreachable"
                });
                return Err(LlmError::Unreachable(e.to_string()));
            }
        };
        let status = response.status();
        if !status.is_success() {
            call.finish_err(match status.as_u16() {
                429 => "rate_limited",
                500..=599 => "server_error",
                _ => "client_error",
            });
            return Err(LlmError::Status(status.as_u16()));
        }
        match response.json::<ChatAnswer>().instrument(span).await {
            Ok(answer) => {
                call.finish_ok(answer.usage.prompt_tokens, answer.usage.completion_tokens);
                Ok(answer
                    .choices
                    .into_iter()
                    .next()
                    .map(|c| c.message.content)
                    .unwrap_or_default())
            }
            Err(_) => {
                call.finish_err("unreadable");
                Err(LlmError::Unreadable)
            }
        }
    }
}

/// The conviction (0.6–1.0) the simulated provider states, if any.
pub fn conviction(answer: &str) -> Option<f64> {
    answer
        .split("conviction=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conviction_is_read_from_the_answer() {
        assert_eq!(
            conviction("Assessment noted. conviction=0.812"),
            Some(0.812)
        );
        assert_eq!(conviction("no number"), None);
        assert_eq!(tokens("abcd"), 1);
        assert_eq!(tokens("abcde"), 2);
    }
}
