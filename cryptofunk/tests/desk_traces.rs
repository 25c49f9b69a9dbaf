//! The desk with the telemetry test receiver as its OTLP endpoint: one
//! trading decision is one trace holding every agent, its tool calls and
//! its LLM call, with correct parentage across NATS, MCP and HTTP; and
//! every declared instrument of every component arrives with data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cryptofunk::catalogue::{AgentKind, Component};
use telemetry::testing::{OtlpReceiver, ReceivedLog, ReceivedSpan, SpanKind};

fn service(s: &ReceivedSpan) -> &str {
    s.resource.str("service.name").unwrap_or_default()
}

/// The spans of one trace, indexed.
struct Trace<'a> {
    spans: Vec<&'a ReceivedSpan>,
}

impl<'a> Trace<'a> {
    fn parent(&self, s: &ReceivedSpan) -> Option<&'a ReceivedSpan> {
        let id = s.parent_span_id.as_deref()?;
        self.spans.iter().copied().find(|p| p.span_id == id)
    }

    fn children(&self, s: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
        self.spans
            .iter()
            .copied()
            .filter(|c| c.parent_span_id.as_deref() == Some(s.span_id.as_str()))
            .collect()
    }

    /// Descendants of `s` (children first).
    fn below(&self, s: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
        let mut out = Vec::new();
        let mut pending = self.children(s);
        while let Some(c) = pending.pop() {
            pending.extend(self.children(c));
            out.push(c);
        }
        out
    }

    /// The server span an MCP client span reached, in `server`.
    fn served(&self, client: &ReceivedSpan, server: &str) -> bool {
        self.children(client)
            .iter()
            .any(|c| c.kind == SpanKind::Server && service(c) == server && c.name == client.name)
    }
}

#[test]
fn one_decision_is_one_trace_and_every_instrument_reports() {
    let receiver = OtlpReceiver::start().unwrap();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_string()),
        ("OTEL_BLRP_SCHEDULE_DELAY", "200".to_string()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000".to_string()),
    ];
    let mut desk = common::Desk::start(&["--round", "1s"], &env);

    // A round that traded, with every agent's answer (none failed: a failed
    // analysis answers `hold` without its `signal` log line).
    let round = desk.round_where(Duration::from_secs(60), |r| {
        r["order"] == "filled"
            && r["signals"]
                .as_array()
                .is_some_and(|s| s.len() == 7 && s.iter().all(|a| a["error"].is_null()))
    });
    let trace_id = round["trace_id"].as_str().unwrap().to_string();
    let decision = round["decision"].as_str().unwrap().to_string();

    // Wait for the trace to arrive whole: its spans come from fourteen
    // processes' batches; whole is the round's own span (it ends last), the
    // order's server span, and no span whose parent has not arrived.
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans = receiver.spans();
        let of_trace: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
        let has =
            |name: &str, svc: &str| of_trace.iter().any(|s| s.name == name && service(s) == svc);
        let orphans = of_trace.iter().any(|s| {
            s.parent_span_id
                .as_deref()
                .is_some_and(|p| !of_trace.iter().any(|x| x.span_id == p))
        });
        // Every MCP client call has its server's span.
        let unanswered = of_trace.iter().any(|c| {
            c.kind == SpanKind::Client
                && c.name.starts_with("tools/call ")
                && !of_trace
                    .iter()
                    .any(|s| s.parent_span_id.as_deref() == Some(c.span_id.as_str()))
        });
        // Every LLM call has reached the provider: its server spans are
        // leaves, which the orphan check cannot miss.
        let chats = of_trace
            .iter()
            .filter(|s| s.name == "chat cryptofunk-sim-1")
            .count();
        let served = of_trace
            .iter()
            .filter(|s| {
                s.kind == SpanKind::Server
                    && service(s) == "llm-gateway"
                    && s.name == "POST /v1/chat/completions"
            })
            .count();
        let whole = has("trading round", "orchestrator")
            && has("tools/call place_market_order", "order-executor")
            && !orphans
            && !unanswered
            && served >= chats;
        if whole || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let trace = Trace {
        spans: spans.iter().filter(|s| s.trace_id == trace_id).collect(),
    };

    // One root: the orchestrator's round; every other span's parent is here.
    let roots: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "{:?}",
        roots.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let root = roots[0];
    assert_eq!(
        (root.name.as_str(), service(root)),
        ("trading round", "orchestrator")
    );
    assert_eq!(
        root.attributes.str("cryptofunk.decision"),
        Some(decision.as_str())
    );
    for s in &trace.spans {
        if s.parent_span_id.is_some() {
            assert!(
                trace.parent(s).is_some(),
                "{} ({}) has no parent in the trace",
                s.name,
                service(s)
            );
        }
    }

    // The question to the agents over NATS.
    let ask = trace
        .children(root)
        .into_iter()
        .find(|s| s.kind == SpanKind::Producer && s.name == "publish cryptofunk.analysis.requests")
        .expect("the round publishes its question");
    let answered: BTreeMap<&str, &ReceivedSpan> = trace
        .children(ask)
        .into_iter()
        .filter(|s| s.kind == SpanKind::Consumer)
        .map(|s| (service(s), s))
        .collect();
    let agents: BTreeSet<String> = AgentKind::ALL
        .iter()
        .map(|a| format!("{}-agent", a.label()))
        .collect();
    assert_eq!(
        answered
            .keys()
            .map(|k| k.to_string())
            .collect::<BTreeSet<_>>(),
        agents,
        "every agent processes the round's question as a child of it"
    );
    for (agent, process) in &answered {
        let below = trace.below(process);
        // Its MCP tool calls, each served by a tool server as its child.
        let tool_calls: Vec<_> = below
            .iter()
            .filter(|s| {
                s.kind == SpanKind::Client
                    && service(s) == *agent
                    && s.name.starts_with("tools/call ")
            })
            .collect();
        assert!(!tool_calls.is_empty(), "{agent} called no tool");
        for call in &tool_calls {
            let served = ["market-data", "technical-indicators", "risk-analyzer"]
                .iter()
                .any(|server| trace.served(call, server));
            assert!(
                served,
                "{agent}'s {} has no server span under it",
                call.name
            );
            assert!(call.attributes.str("gen_ai.tool.name").is_some());
        }
        // Its LLM call: gen_ai CLIENT span → HTTP CLIENT span → the
        // provider's SERVER span.
        let chat = below
            .iter()
            .find(|s| service(s) == *agent && s.name == "chat cryptofunk-sim-1")
            .unwrap_or_else(|| panic!("{agent} made no LLM call"));
        assert_eq!(chat.kind, SpanKind::Client);
        assert!(
            chat.attributes
                .i64("gen_ai.usage.input_tokens")
                .unwrap_or(0)
                > 0
        );
        let provider = trace.below(chat).into_iter().find(|s| {
            s.kind == SpanKind::Server
                && service(s) == "llm-gateway"
                && s.name == "POST /v1/chat/completions"
        });
        let provider =
            provider.unwrap_or_else(|| panic!("{agent}'s LLM call never reached the provider"));
        let http = trace.parent(provider).unwrap();
        assert_eq!((http.kind, service(http)), (SpanKind::Client, *agent));
        // Its answer: a reply the orchestrator processes as its child.
        let reply = below
            .iter()
            .find(|s| s.kind == SpanKind::Producer && service(s) == *agent)
            .unwrap_or_else(|| panic!("{agent} sent no reply"));
        assert!(
            trace
                .children(reply)
                .iter()
                .any(|c| c.kind == SpanKind::Consumer && service(c) == "orchestrator"),
            "the orchestrator's processing of {agent}'s answer is the child of its reply"
        );
    }

    // The order (and, for a buy, the risk check) from the round itself;
    // the executor prices it through market-data, nested.
    let calls: Vec<_> = trace
        .children(root)
        .into_iter()
        .filter(|s| s.kind == SpanKind::Client)
        .collect();
    let order = calls
        .iter()
        .find(|s| s.name == "tools/call place_market_order")
        .expect("the order");
    assert!(trace.served(order, "order-executor"));
    let executor = trace
        .children(order)
        .into_iter()
        .find(|c| service(c) == "order-executor")
        .unwrap();
    let priced = trace
        .below(executor)
        .into_iter()
        .find(|s| s.kind == SpanKind::Client && s.name == "tools/call get_prices")
        .expect("the executor asks market-data for prices");
    assert!(trace.served(priced, "market-data"));
    if decision == "buy" {
        let check = calls
            .iter()
            .find(|s| s.name == "tools/call check_limits")
            .expect("a buy is risk-checked");
        assert!(trace.served(check, "risk-analyzer"));
    }
    let portfolio = calls
        .iter()
        .find(|s| s.name == "tools/call get_portfolio")
        .expect("the portfolio first");
    assert!(trace.served(portfolio, "order-executor"));

    // Log lines carry the round's trace id (the executor's fill, the agents'
    // signals); log batches arrive on their own schedule, so wait for them.
    let expected = [("order-executor", "filled"), ("technical-agent", "signal")];
    let in_round = |l: &ReceivedLog, (svc, body): (&str, &str)| {
        l.trace_id.as_deref() == Some(trace_id.as_str())
            && l.resource.str("service.name") == Some(svc)
            && l.body.as_deref() == Some(body)
    };
    let logs = receiver.wait_for_logs(Duration::from_secs(20), |logs| {
        expected
            .iter()
            .all(|e| logs.iter().any(|l| in_round(l, *e)))
    });
    for (svc, body) in expected {
        assert!(
            logs.iter()
                .any(|l| l.trace_id.as_deref() == Some(trace_id.as_str())
                    && l.resource.str("service.name") == Some(svc)
                    && l.body.as_deref() == Some(body)),
            "no {svc} log '{body}' in the round's trace"
        );
    }

    // Hostile input at a tool server's MCP endpoint: an oversized body and
    // malformed JSON-RPC are refused, and the server keeps serving.
    let mcp = format!("{}/mcp", desk.url("market-data"));
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_price","arguments":{{"symbol":"{}"}}}}}}"#,
        "A".repeat(600 * 1024)
    );
    for body in [
        huge.as_str(),
        "{not json",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_price","arguments":{"symbol":"NOPE"}}}"#,
    ] {
        let r = testkit::http_request("POST", &mcp, &headers, Some(body.as_bytes())).unwrap();
        let text = String::from_utf8_lossy(&r.body);
        // The oversized body never reaches the tool: refused as a request.
        let refused = if body.len() > cryptofunk::tools::MAX_MCP_BODY {
            r.status == 413
        } else {
            r.status >= 400 || text.contains("error")
        };
        assert!(
            refused,
            "{}: {}",
            r.status,
            text.chars().take(200).collect::<String>()
        );
    }
    let again = desk.round_where(Duration::from_secs(30), |r| {
        r["round"].as_u64() > round["round"].as_u64()
            && r["signals"].as_array().is_some_and(|s| s.len() == 7)
    });
    assert!(
        again["signals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.get("error").is_none()),
        "{again}"
    );

    // The API server answers from the executor, the second time from its cache.
    for _ in 0..2 {
        let portfolio =
            testkit::http_get_json(&format!("{}/api/portfolio", desk.url("api-server"))).unwrap();
        assert!(portfolio["value"].as_f64().unwrap() > 0.0, "{portfolio}");
    }
    let trades =
        testkit::http_get_json(&format!("{}/api/trades?limit=5", desk.url("api-server"))).unwrap();
    assert!(!trades["trades"].as_array().unwrap().is_empty(), "{trades}");

    // Every declared instrument of every component, with data.
    std::thread::sleep(Duration::from_secs(2));
    assert!(desk.interrupt().success(), "{}", desk.logs());
    let metrics = receiver.metrics();
    let exported = |svc: &str, name: &str| {
        metrics.iter().any(|m| {
            m.name == name && m.resource.str("service.name") == Some(svc) && m.points_len() > 0
        })
    };
    let mut missing = Vec::new();
    for c in Component::ALL {
        let mut names: Vec<&str> = cryptofunk::components::SystemInstruments::NAMES.to_vec();
        names.extend(["process.uptime", "service.build.info"]);
        if c.agent().is_some() {
            names.extend(cryptofunk::components::agent::AgentInstruments::NAMES);
            names.extend([
                "mcp.client.operation.duration",
                "gen_ai.client.operation.duration",
                "gen_ai.client.token.usage",
                "messaging.client.consumed.messages",
                "messaging.client.sent.messages",
            ]);
        }
        match c {
            Component::Orchestrator => {
                names.extend(cryptofunk::components::orchestrator::OrchestratorInstruments::NAMES);
                names.extend([
                    "mcp.client.operation.duration",
                    "messaging.client.sent.messages",
                    "messaging.client.consumed.messages",
                    "http.server.request.duration",
                ]);
            }
            Component::OrderExecutor => {
                names.extend(cryptofunk::components::tool_servers::ExecutorInstruments::NAMES);
                names.extend([
                    "mcp.server.operation.duration",
                    "mcp.client.operation.duration",
                ]);
            }
            Component::RiskAnalyzer => {
                names.extend(cryptofunk::components::tool_servers::RiskInstruments::NAMES);
                names.push("mcp.server.operation.duration");
            }
            Component::MarketData | Component::TechnicalIndicators => {
                names.push("mcp.server.operation.duration")
            }
            Component::ApiServer => names.extend([
                "http.server.request.duration",
                "cache.lookups",
                "mcp.client.operation.duration",
            ]),
            Component::LlmGateway => names.push("http.server.request.duration"),
            _ => {}
        }
        for name in names {
            if !exported(c.name(), name) {
                missing.push(format!("{}: {name}", c.name()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "declared but not exported with data: {missing:#?}"
    );
}
