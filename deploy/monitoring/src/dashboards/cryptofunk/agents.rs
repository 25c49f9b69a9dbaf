//! CryptoFunk / Agents: what are the seven agents saying, how fast and how
//! sure, are they healthy, and how are their LLM and tool calls going?

use super::super::{SCOPE_SERVICE, and, quantile, rate, ratio_or_zero};
use super::{per_minute, variables};
use crate::grafana::{Dashboard, Panel, Row, Target};

const LLM: &str = "gen_ai_client_operation_duration_seconds";
const LLM_COUNT: &str = "gen_ai_client_operation_duration_seconds_count";
const TOOL: &str = "mcp_client_operation_duration_seconds";
const TOOL_COUNT: &str = "mcp_client_operation_duration_seconds_count";
const CONFIDENCE: &str = "cryptofunk_agent_signal_confidence_ratio";

fn signals() -> Row {
    let no_agent = "The selected services are not agents";
    Row::new("Signals")
        .panel(
            Panel::timeseries(
                "Signals/min by agent and type",
                "Signals each agent sends the orchestrator per minute, by type: buy, sell or hold (cryptofunk.agent.signals).",
                "opm",
            )
            .min(0.0)
            .no_value(no_agent)
            .target(Target::new(
                per_minute("cryptofunk_agent_signals_total", SCOPE_SERVICE, "agent, signal_type"),
                "{{agent}} {{signal_type}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Analysis duration p95 by agent",
                "95th percentile time an agent takes for one analysis, tool and LLM calls included (cryptofunk.agent.analysis.duration).",
                "s",
            )
            .min(0.0)
            .no_value(no_agent)
            .target(Target::new(
                quantile(
                    0.95,
                    "cryptofunk_agent_analysis_duration_seconds",
                    SCOPE_SERVICE,
                    "agent",
                ),
                "{{agent}}",
            )),
        )
        .panel(
            Panel::state_timeline(
                "Agent healthy",
                "HEALTHY until an agent fails 3 analyses in a row (cryptofunk.agent.healthy 0), then UNHEALTHY until one succeeds. CryptoFunkAgentUnhealthy fires after 5 minutes.",
            )
            .mapping("0", "UNHEALTHY", "red")
            .mapping("1", "HEALTHY", "green")
            .thresholds(&[(0.0, "red"), (1.0, "green")])
            .no_value(no_agent)
            .target(Target::new(
                format!("min by (agent) (cryptofunk_agent_healthy{{{SCOPE_SERVICE}}})"),
                "{{agent}}",
            )),
        )
        .panel(
            Panel::heatmap(
                "Signal confidence distribution",
                "How sure the agents are of their signals: signals per second in each confidence bucket (0.1 wide, cryptofunk.agent.signal.confidence) over time, every selected agent together.",
                "percentunit",
            )
            .width(12)
            .no_value(no_agent)
            .target(
                Target::new(
                    format!(
                        "sum by (le) ({})",
                        rate(&format!("{CONFIDENCE}_bucket"), SCOPE_SERVICE)
                    ),
                    "{{le}}",
                )
                .heatmap(),
            ),
        )
        .panel(
            Panel::timeseries(
                "Median confidence by agent",
                "The median confidence of each agent's signals (0 to 1).",
                "percentunit",
            )
            .width(12)
            .range(0.0, 1.0)
            .no_value(no_agent)
            .target(Target::new(
                quantile(0.5, CONFIDENCE, SCOPE_SERVICE, "agent"),
                "{{agent}}",
            )),
        )
}

fn llm() -> Row {
    let no_llm = "The selected services make no LLM calls (the agents do)";
    Row::new("LLM calls (gen_ai client)")
        .panel(
            Panel::timeseries(
                "LLM calls/s by agent",
                "Chat calls per second each agent makes to the LLM (gen_ai.client.operation.duration), failed ones included.",
                "reqps",
            )
            .width(12)
            .min(0.0)
            .no_value(no_llm)
            .target(Target::new(
                format!("sum by (service_name) ({})", rate(LLM_COUNT, SCOPE_SERVICE)),
                "{{service_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "LLM failed calls/s by error",
                "LLM calls per second that failed, by error.type (timeout, rate limit, 5xx …).",
                "reqps",
            )
            .width(12)
            .min(0.0)
            .no_value("No LLM call of the selected services failed")
            .target(Target::new(
                format!(
                    "sum by (error_type) ({})",
                    rate(LLM_COUNT, &and(SCOPE_SERVICE, r#"error_type!="""#))
                ),
                "{{error_type}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "LLM error ratio by model",
                "Share of LLM calls that failed, per model; 0 while none fail. CryptoFunkLLMErrorRatio fires above the 10% line over 5 minutes, for 5 minutes, at more than 0.05 calls/s.",
                "percentunit",
            )
            .range(0.0, 1.0)
            .thresholds(&[(0.1, "red")])
            .threshold_lines()
            .no_value(no_llm)
            .target(Target::new(
                ratio_or_zero(
                    LLM_COUNT,
                    &and(SCOPE_SERVICE, r#"error_type!="""#),
                    SCOPE_SERVICE,
                    "gen_ai_request_model",
                ),
                "{{gen_ai_request_model}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "LLM latency p50 / p95 by model",
                "Duration of the agents' LLM calls per model. CryptoFunkLLMLatencyHigh fires when p95 stays above the 5 s line for 10 minutes.",
                "s",
            )
            .min(0.0)
            .thresholds(&[(5.0, "red")])
            .threshold_lines()
            .no_value(no_llm)
            .target(Target::new(
                quantile(0.5, LLM, SCOPE_SERVICE, "gen_ai_request_model"),
                "{{gen_ai_request_model}} p50",
            ))
            .target(Target::new(
                quantile(0.95, LLM, SCOPE_SERVICE, "gen_ai_request_model"),
                "{{gen_ai_request_model}} p95",
            )),
        )
        .panel(
            Panel::timeseries(
                "Tokens/s by agent and type",
                "LLM tokens per second each agent sends (input) and receives (output) (gen_ai.client.token.usage).",
                "short",
            )
            .min(0.0)
            .no_value(no_llm)
            .target(Target::new(
                format!(
                    "sum by (service_name, gen_ai_token_type) ({})",
                    rate("gen_ai_client_token_usage_sum", SCOPE_SERVICE)
                ),
                "{{service_name}} {{gen_ai_token_type}}",
            )),
        )
}

fn tools() -> Row {
    let no_tools =
        "The selected services call no MCP tools (the agents, orchestrator and api-server do)";
    let calls = and(SCOPE_SERVICE, r#"mcp_method_name="tools/call""#);
    Row::new("Tool calls (MCP client)")
        .panel(
            Panel::timeseries(
                "Tool calls/s by tool and status",
                "Tool calls per second as the callers see them (mcp.client.operation.duration, tools/call), by tool: ok, or the error.type of the failed ones.",
                "reqps",
            )
            .min(0.0)
            .no_value(no_tools)
            .target(Target::new(
                format!(
                    "sum by (gen_ai_tool_name) ({})",
                    rate(TOOL_COUNT, &and(&calls, r#"error_type="""#))
                ),
                "{{gen_ai_tool_name}} ok",
            ))
            .target(Target::new(
                format!(
                    "sum by (gen_ai_tool_name, error_type) ({})",
                    rate(TOOL_COUNT, &and(&calls, r#"error_type!="""#))
                ),
                "{{gen_ai_tool_name}} {{error_type}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Tool-call failure ratio by caller and tool",
                "Share of each caller's calls of each tool that failed; 0 while none fail. CryptoFunkMCPToolCallFailures fires above the 10% line over 5 minutes, for 5 minutes, at more than 0.02 calls/s.",
                "percentunit",
            )
            .range(0.0, 1.0)
            .thresholds(&[(0.1, "red")])
            .threshold_lines()
            .no_value(no_tools)
            .target(Target::new(
                ratio_or_zero(
                    TOOL_COUNT,
                    &and(&calls, r#"error_type!="""#),
                    &calls,
                    "service_name, gen_ai_tool_name",
                ),
                "{{service_name}} {{gen_ai_tool_name}}",
            )),
        )
        .panel(
            Panel::timeseries(
                "Tool-call p95 by tool",
                "95th percentile duration of a tool call as the caller waits for it, network included, by tool.",
                "s",
            )
            .min(0.0)
            .no_value(no_tools)
            .target(Target::new(
                quantile(0.95, TOOL, &calls, "gen_ai_tool_name"),
                "{{gen_ai_tool_name}}",
            )),
        )
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    variables(Dashboard::new(
        "cryptofunk-agents",
        "CryptoFunk / Agents",
        "What are the agents saying and are they well? Signals by agent and type, analysis time, confidence, health; their LLM calls (rate, errors, latency, tokens) and MCP tool calls (by tool and status, failure ratio, latency).",
    ))
    .row(signals())
    .row(llm())
    .row(tools())
}
