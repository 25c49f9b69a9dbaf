//! Cache, JSON-RPC/MCP and LLM instrumentation through telemetry's
//! in-memory pipeline.
#![cfg(all(feature = "cache", feature = "jsonrpc", feature = "llm"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use services_glue::cache::{CacheBackend, InstrumentedCache};
use services_glue::jsonrpc::RpcServerTelemetry;
use services_glue::llm::GenAiTelemetry;
use telemetry::Telemetry;
use telemetry::testing::{InMemory, MetricData, ReceivedMetric, SpanKind, SpanStatus, find_metric};

struct MapCache(Mutex<HashMap<String, u32>>);
impl CacheBackend for MapCache {
    type Key = String;
    type Value = u32;
    fn get(&self, k: &String) -> Option<u32> {
        self.0.lock().unwrap().get(k).copied()
    }
    fn insert(&self, k: String, v: u32) {
        self.0.lock().unwrap().insert(k, v);
    }
}

/// (attribute set, count) for every point of histogram or counter `name`
/// in its latest export (none when it was not exported).
fn points(metrics: &[ReceivedMetric], name: &str) -> Vec<(String, u64)> {
    let Some(m) = find_metric(metrics, name) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u64)> = match &m.data {
        MetricData::Histogram { points, .. } => points
            .iter()
            .map(|p| (common::series_key(&p.attributes), p.count))
            .collect(),
        MetricData::Sum {
            monotonic: true,
            points,
            ..
        } => points
            .iter()
            .map(|p| {
                assert!(p.is_int, "{name} is an integer counter: {p:?}");
                // An integer counter's value, exported as an integer.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let count = p.value as u64;
                (common::series_key(&p.attributes), count)
            })
            .collect(),
        other => panic!("{name} is neither a histogram nor a counter: {other:?}"),
    };
    out.sort();
    out
}

#[test]
fn cache_rpc_and_llm_record_what_they_say() {
    let sink = InMemory::new();
    let t = Telemetry::builder("agent")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    let meter = t.meter();
    tracing::dispatcher::with_default(t.dispatch(), || {
        let cache =
            InstrumentedCache::new(MapCache(Mutex::new(HashMap::new())), "sanctions", &meter);
        assert_eq!(cache.get(&"alice".into()), None);
        cache.insert("alice".into(), 1);
        assert_eq!(cache.get(&"alice".into()), Some(1));
        assert_eq!(cache.get(&"alice".into()), Some(1));

        let rpc = RpcServerTelemetry::new(&meter, "risk-analyzer").with_tools(["var"]);
        assert_eq!(
            rpc.call("tools/call", || rpc.tool("var", || Ok::<_, String>(0.05)))
                .unwrap(),
            0.05
        );
        assert!(rpc.call("no/such", || Err::<(), i64>(-32601)).is_err());
        for i in 0..10_000 {
            let _ = rpc.call(&format!("random/{i}"), || Ok::<_, i64>(()));
            let _ = rpc.tool(&format!("tool{i}"), || Err::<(), _>("nope"));
        }

        let llm = GenAiTelemetry::new(&meter);
        llm.start("chat", "openai", "gpt-4o").finish_ok(800, 150);
        llm.start("chat", "openai", "gpt-4o")
            .finish_err("rate_limited");
        drop(llm.start("chat", "openai", "gpt-4o"));
    });
    t.shutdown().unwrap();

    let metrics = sink.metrics();
    assert!(!metrics.is_empty(), "metrics exported");
    assert_eq!(
        points(&metrics, "cache.lookups"),
        vec![
            ("cache.name=sanctions,cache.result=hit".to_string(), 2),
            ("cache.name=sanctions,cache.result=miss".to_string(), 1)
        ]
    );
    assert_eq!(
        points(&metrics, "cache.lookup.duration")
            .iter()
            .map(|p| p.1)
            .sum::<u64>(),
        3
    );

    let calls = points(&metrics, "rpc.server.call.duration");
    assert!(
        calls
            .iter()
            .any(|(a, n)| a.contains("rpc.method=tools/call") && *n == 1),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|(a, _)| a.contains("rpc.jsonrpc.error_code=-32601")),
        "{calls:?}"
    );
    assert!(calls.len() <= 103, "methods bounded: {}", calls.len());
    let tools = points(&metrics, "mcp.tool.call.duration");
    let names: HashSet<_> = tools.iter().map(|(a, _)| a.clone()).collect();
    assert!(names.iter().any(|a| a.contains("gen_ai.tool.name=var")));
    assert!(
        names
            .iter()
            .all(|a| a.contains("gen_ai.tool.name=var") || a.contains("gen_ai.tool.name=_OTHER")),
        "{names:?}"
    );

    let tokens = points(&metrics, "gen_ai.client.token.usage");
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(
        tokens
            .iter()
            .any(|(a, _)| a.contains("gen_ai.token.type=input"))
    );
    let durations = points(&metrics, "gen_ai.client.operation.duration");
    let kinds: Vec<_> = durations
        .iter()
        .map(|(a, _)| {
            a.split(',')
                .find(|p| p.starts_with("error.type"))
                .unwrap_or("ok")
                .to_string()
        })
        .collect();
    assert_eq!(kinds.len(), 3, "{durations:?}");
    assert!(kinds.contains(&"error.type=rate_limited".to_string()));
    assert!(kinds.contains(&"error.type=cancelled".to_string()));

    let spans = sink.spans();
    let chat: Vec<_> = spans.iter().filter(|s| s.name == "chat gpt-4o").collect();
    assert_eq!(chat.len(), 3);
    assert!(chat.iter().all(|s| s.kind == SpanKind::Client));
    assert_eq!(
        chat.iter()
            .filter(|s| matches!(s.status, SpanStatus::Error(_)))
            .count(),
        2
    );
    let call = spans.iter().find(|s| s.name == "tools/call").unwrap();
    let tool = spans.iter().find(|s| s.name == "execute_tool var").unwrap();
    assert_eq!(call.kind, SpanKind::Server);
    assert_eq!(
        tool.parent_span_id.as_deref(),
        Some(call.span_id.as_str()),
        "tool call inside its request"
    );
}

/// Both result series exist, at 0, before the first lookup: a hit-ratio
/// panel reads 0 instead of nothing.
#[test]
fn cache_series_exist_before_the_first_lookup() {
    let sink = InMemory::new();
    let t = Telemetry::builder("agent")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    let _metrics = services_glue::cache::CacheMetrics::new(&t.meter(), "prices");
    t.shutdown().unwrap();
    assert_eq!(
        points(&sink.metrics(), "cache.lookups"),
        vec![
            ("cache.name=prices,cache.result=hit".to_string(), 0),
            ("cache.name=prices,cache.result=miss".to_string(), 0)
        ]
    );
    // No lookup timed yet: no empty duration histogram.
    assert_eq!(points(&sink.metrics(), "cache.lookup.duration"), vec![]);
}
