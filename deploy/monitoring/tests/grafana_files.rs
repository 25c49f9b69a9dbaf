//! The Grafana files as Grafana reads them: provisioning with fixed uids and
//! the links between signals, and dashboards held to the house rules (a
//! datasource variable, environment/namespace/service variables,
//! `$__rate_interval`, a unit and a description on every panel, every query
//! valid PromQL that selects on the labels both metric paths carry).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use monitoring::dashboard_queries::{DashboardModel, load_dir};
use monitoring::generate::repo_root;
use monitoring::promql::{expand_grafana, selectors};
use serde_yaml_ng::Value;

fn dashboards() -> Vec<DashboardModel> {
    load_dir(&repo_root().join("deploy/grafana/dashboards")).unwrap()
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(repo_root().join(path)).unwrap()).unwrap()
}

/// Series that come from the collector, not the engines: they carry no
/// deployment/namespace labels of the engines.
fn from_collector(name: &str) -> bool {
    name.starts_with("otelcol_") || name == "up"
}

/// Whether a dashboard is one of CryptoFunk's (else DelTran's).
fn is_cryptofunk(d: &DashboardModel) -> bool {
    d.uid.starts_with("cryptofunk-")
}

#[test]
fn eight_dashboards_with_fixed_uids_and_the_scope_variables() {
    let all = dashboards();
    let uids: BTreeSet<&str> = all.iter().map(|d| d.uid.as_str()).collect();
    assert_eq!(
        uids,
        BTreeSet::from([
            "deltran-services-overview",
            "deltran-engine",
            "deltran-payments",
            "deltran-telemetry-pipeline",
            "cryptofunk-system",
            "cryptofunk-trading",
            "cryptofunk-agents",
            "cryptofunk-risk",
        ])
    );
    // Each system's dashboards open on its own namespace (one Prometheus
    // holds both; Grafana would otherwise pick "cryptofunk" for DelTran's,
    // the first alphabetically) and link to each other by its tag.
    for d in &all {
        let (namespace, tag) = if is_cryptofunk(d) {
            ("cryptofunk", "cryptofunk")
        } else {
            ("deltran", "deltran")
        };
        let var = &d.json["templating"]["list"][2];
        assert_eq!(var["name"], "namespace", "{}", d.title);
        assert_eq!(var["current"]["value"], namespace, "{}", d.title);
        assert_eq!(d.json["tags"], serde_json::json!([tag]), "{}", d.title);
        assert_eq!(
            d.json["links"][0]["tags"],
            serde_json::json!([tag]),
            "{}",
            d.title
        );
        assert_eq!(
            d.title.starts_with("CryptoFunk / "),
            is_cryptofunk(d),
            "{}",
            d.title
        );
    }
    for d in &all {
        let names: Vec<&str> = d.variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            &names[..3],
            ["datasource", "env", "namespace"],
            "{}",
            d.title
        );
        assert_eq!(d.variables[0].kind, "datasource");
        assert!(
            d.json["description"].as_str().is_some_and(|s| s.len() > 40),
            "{}",
            d.title
        );
        if d.uid != "deltran-payments" {
            assert_eq!(names.get(3), Some(&"service"), "{}", d.title);
        }
        for v in d.variables.iter().skip(1) {
            let (series, label) = v
                .label_values
                .clone()
                .unwrap_or_else(|| panic!("{}: ${} is not label_values()", d.title, v.name));
            assert!(selectors(&series).is_ok(), "{series}");
            assert!(
                [
                    "deployment_environment_name",
                    "service_namespace",
                    "service_name"
                ]
                .contains(&label.as_str()),
                "{}: ${} reads {label}",
                d.title,
                v.name
            );
        }
    }
}

#[test]
fn every_panel_has_a_description_a_unit_and_valid_scoped_queries() {
    let vars = [
        ("datasource", "prometheus"),
        ("env", "prod"),
        ("namespace", "deltran"),
        ("service", "gateway"),
    ];
    let mut ids = BTreeSet::new();
    for d in dashboards() {
        ids.clear();
        for p in d.json["panels"].as_array().unwrap() {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{}: duplicate panel id",
                d.title
            );
            let pos = &p["gridPos"];
            assert!(
                pos["x"].as_u64().unwrap() + pos["w"].as_u64().unwrap() <= 24,
                "{}: {}",
                d.title,
                p["title"]
            );
        }
        for p in &d.panels {
            let at = format!("{} / {}", d.title, p.title);
            assert!(p.description.len() >= 20, "{at}: no description");
            assert!(
                p.unit.as_deref().is_some_and(|u| !u.is_empty()),
                "{at}: no unit"
            );
            assert_eq!(p.datasource_uid, "${datasource}", "{at}");
            assert!(!p.targets.is_empty(), "{at}: no query");
            for t in &p.targets {
                assert_eq!(t.datasource_uid, "${datasource}", "{at}");
                // A distinctive stand-in for $__rate_interval: every range
                // window must be it (recorded series carry theirs in their name).
                let expanded = expand_grafana(&t.expr, &vars, "123s");
                assert!(
                    !expanded.contains('$'),
                    "{at}: unknown variable in {}",
                    t.expr
                );
                let found = selectors(&expanded).unwrap_or_else(|e| panic!("{at}: {e}"));
                for w in monitoring::promql::range_windows(&expanded).unwrap() {
                    assert_eq!(
                        w,
                        std::time::Duration::from_secs(123),
                        "{at}: a fixed range window instead of $__rate_interval in {}",
                        t.expr
                    );
                }
                for s in found {
                    let name = s.name.clone().unwrap();
                    // The collector's series, and the SLO constants (one
                    // per objective, no deployment labels).
                    if from_collector(&name) || name == "slo:error_budget:ratio" {
                        continue;
                    }
                    let labels: BTreeSet<&str> =
                        s.matchers.iter().map(|m| m.label.as_str()).collect();
                    for needed in ["deployment_environment_name", "service_namespace"] {
                        assert!(
                            labels.contains(needed),
                            "{at}: {name} not filtered by {needed}"
                        );
                    }
                    assert!(
                        !labels.iter().any(|l| ["job", "instance"].contains(l) || l.starts_with("otel_scope")),
                        "{at}: {name} selects on a label only one metric path has"
                    );
                }
            }
        }
    }
}

#[test]
fn the_overview_has_the_ten_panels_of_the_original_dashboard() {
    let overview = dashboards()
        .into_iter()
        .find(|d| d.uid == "deltran-services-overview")
        .unwrap();
    let titles: Vec<&str> = overview.panels.iter().map(|p| p.title.as_str()).collect();
    for t in [
        "Transaction throughput",
        "Service health",
        "Request latency p95",
        "Error rate (5xx/s)",
        "Active tokens",
        "WebSocket connections",
        "Transaction success rate",
        "Database query duration p95",
        "NATS messages published/s",
        "Cache hit rate",
    ] {
        assert!(titles.contains(&t), "missing panel {t}: {titles:?}");
    }
}

#[test]
fn datasources_have_fixed_uids_and_link_metrics_traces_and_logs() {
    let ds = yaml("deploy/grafana/provisioning/datasources/datasources.yaml");
    assert_eq!(ds["apiVersion"], 1);
    let list = ds["datasources"].as_sequence().unwrap();
    let by_uid = |uid: &str| {
        list.iter()
            .find(|d| d["uid"] == uid)
            .unwrap_or_else(|| panic!("no datasource {uid}"))
            .clone()
    };
    let prometheus = by_uid("prometheus");
    let tempo = by_uid("tempo");
    let loki = by_uid("loki");
    assert_eq!(prometheus["type"], "prometheus");
    assert_eq!(prometheus["isDefault"], true);
    assert_eq!(tempo["type"], "tempo");
    assert_eq!(loki["type"], "loki");
    // The dashboards' datasource variable defaults to the provisioned uid.
    for d in dashboards() {
        assert_eq!(
            d.json["templating"]["list"][0]["current"]["value"], "prometheus",
            "{}",
            d.title
        );
    }
    // exemplar -> trace
    let exemplar = &prometheus["jsonData"]["exemplarTraceIdDestinations"][0];
    assert_eq!(exemplar["datasourceUid"], "tempo");
    assert_eq!(exemplar["name"], "trace_id");
    // trace -> logs, by trace id and service
    let to_logs = &tempo["jsonData"]["tracesToLogsV2"];
    assert_eq!(to_logs["datasourceUid"], "loki");
    assert_eq!(to_logs["filterByTraceID"], true);
    assert!(to_logs["query"].as_str().unwrap().contains("trace_id"));
    assert_eq!(to_logs["tags"][0]["key"], "service.name");
    assert_eq!(to_logs["tags"][0]["value"], "service_name");
    assert_eq!(
        tempo["jsonData"]["tracesToMetrics"]["datasourceUid"],
        "prometheus"
    );
    // log line -> trace
    let derived = &loki["jsonData"]["derivedFields"][0];
    assert_eq!(derived["datasourceUid"], "tempo");
    assert_eq!(derived["matcherRegex"], "trace_id");
    // Span-metric queries in the Tempo links use series the collector list documents.
    let documented = monitoring::rules::collector_metrics(&repo_root()).unwrap();
    for q in tempo["jsonData"]["tracesToMetrics"]["queries"]
        .as_sequence()
        .unwrap()
    {
        let expanded = q["query"]
            .as_str()
            .unwrap()
            .replace("$$__tags", r#"service_name="x""#);
        for s in selectors(&expanded).unwrap() {
            assert!(
                documented.contains(s.name.as_deref().unwrap()),
                "{expanded}"
            );
        }
    }
}

#[test]
fn the_dashboard_provider_loads_the_dashboards_folder() {
    let p = yaml("deploy/grafana/provisioning/dashboards/deltran.yaml");
    let provider = &p["providers"][0];
    assert_eq!(provider["type"], "file");
    assert_eq!(provider["folder"], "DelTran");
    assert_eq!(provider["allowUiUpdates"], false);
    assert!(
        provider["options"]["path"]
            .as_str()
            .unwrap()
            .starts_with('/')
    );
}

/// What the trading desk asked each CryptoFunk dashboard to show.
const CRYPTOFUNK_PANELS: [(&str, &[&str]); 4] = [
    (
        "cryptofunk-system",
        &[
            "Component up",
            "Uptime",
            "HTTP requests/s",
            "HTTP 5xx/s",
            "HTTP latency p95",
            "MCP operations/s by method",
            "Failed MCP operations/s",
            "Tool call p95 by tool",
            "Published/s by subject",
            "Received/s by subject",
            "Database connections",
            "Cache hit ratio",
            "Component healthy",
        ],
    ),
    (
        "cryptofunk-trading",
        &[
            "Portfolio value",
            "P&L",
            "Trades/min by status",
            "Trades/min by side",
            "Trades/min by symbol",
            "Trade value p50 / p95 by symbol",
            "Open positions",
            "Win rate",
            "Sharpe ratio",
        ],
    ),
    (
        "cryptofunk-agents",
        &[
            "Signals/min by agent and type",
            "Analysis duration p95 by agent",
            "Signal confidence distribution",
            "Agent healthy",
            "LLM calls/s by agent",
            "LLM failed calls/s by error",
            "LLM latency p50 / p95 by model",
            "Tokens/s by agent and type",
            "Tool calls/s by tool and status",
        ],
    ),
    (
        "cryptofunk-risk",
        &[
            "Drawdown from peak",
            "Circuit breaker state",
            "Value at risk",
            "Limit breaches/min by type",
        ],
    ),
];

#[test]
fn the_cryptofunk_dashboards_show_what_the_trading_desk_asked_for() {
    let all = dashboards();
    for (uid, titles) in CRYPTOFUNK_PANELS {
        let d = all.iter().find(|d| d.uid == uid).unwrap();
        let have: Vec<&str> = d.panels.iter().map(|p| p.title.as_str()).collect();
        let unique: BTreeSet<&str> = have.iter().copied().collect();
        assert_eq!(unique.len(), have.len(), "{uid}: two panels share a title");
        for t in titles {
            assert!(have.contains(t), "{uid}: missing panel {t}: {have:?}");
        }
        let names: Vec<&str> = d.variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            ["datasource", "env", "namespace", "service"],
            "{uid}"
        );
    }
    let panel = |uid: &str, title: &str| {
        all.iter()
            .find(|d| d.uid == uid)
            .and_then(|d| d.panels.iter().find(|p| p.title == title))
            .unwrap()
            .clone()
    };
    // The drawdown is drawn against the 15% the breaker and the alert use.
    let drawdown = all
        .iter()
        .find(|d| d.uid == "cryptofunk-risk")
        .unwrap()
        .json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Drawdown from peak")
        .unwrap()
        .clone();
    let defaults = &drawdown["fieldConfig"]["defaults"];
    assert_eq!(defaults["thresholds"]["steps"][1]["value"], 0.15);
    assert_eq!(defaults["custom"]["thresholdsStyle"]["mode"], "line");
    assert_eq!(defaults["unit"], "percentunit");
    // The confidence distribution is a heatmap of the histogram's buckets.
    let confidence = panel("cryptofunk-agents", "Signal confidence distribution");
    assert_eq!(confidence.kind, "heatmap");
    assert!(
        confidence.targets[0]
            .expr
            .contains("cryptofunk_agent_signal_confidence_ratio_bucket")
    );
    // The error panel reads exactly the recorded series its alert sums.
    let errors = panel(
        "cryptofunk-system",
        "Server errors/s (HTTP 5xx + failed MCP)",
    );
    for recorded in [
        "service_name:http_server_errors:rate5m",
        "service_name:mcp_server_errors:rate5m",
    ] {
        assert!(errors.targets[0].expr.contains(recorded), "{recorded}");
    }
}

#[test]
fn cryptofunk_panels_read_only_its_contract_and_show_every_family_of_it() {
    let root = repo_root();
    let contract = monitoring::rules::cryptofunk_metrics(&root).unwrap();
    let recorded: BTreeSet<String> =
        monitoring::rules::load_rules(&root.join("deploy/prometheus/rules"))
            .unwrap()
            .into_iter()
            .filter_map(|(_, r)| r.record)
            .collect();
    let vars = [
        ("datasource", "prometheus"),
        ("env", "prod"),
        ("namespace", "cryptofunk"),
        ("service", ".*"),
    ];
    let mut shown = BTreeSet::new();
    for d in dashboards().iter().filter(|d| is_cryptofunk(d)) {
        let mut queries: Vec<(String, String)> = d
            .panels
            .iter()
            .flat_map(|p| {
                p.targets
                    .iter()
                    .map(move |t| (format!("{} / {}", d.title, p.title), t.expr.clone()))
            })
            .collect();
        queries.extend(d.variables.iter().filter_map(|v| {
            v.label_values
                .as_ref()
                .map(|(series, _)| (format!("{} ${}", d.title, v.name), series.clone()))
        }));
        for (at, expr) in queries {
            let expanded = expand_grafana(&expr, &vars, "1m");
            for s in selectors(&expanded).unwrap() {
                let name = s.name.clone().unwrap();
                let own: BTreeSet<String> = if recorded.contains(&name) {
                    BTreeSet::from(["quantile".to_string()])
                } else {
                    contract
                        .get(&name)
                        .unwrap_or_else(|| {
                            panic!("{at}: {name} is neither in cryptofunk-metrics.txt nor recorded")
                        })
                        .clone()
                };
                for m in &s.matchers {
                    assert!(
                        [
                            "__name__",
                            "deployment_environment_name",
                            "service_namespace",
                            "service_name"
                        ]
                        .contains(&m.label.as_str())
                            || own.contains(&m.label),
                        "{at}: {name} has no label {} in the contract",
                        m.label
                    );
                }
                shown.insert(name);
            }
        }
    }
    // Every series family of the contract is on a CryptoFunk dashboard
    // (a histogram through any of its series).
    let family = |n: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| n.strip_suffix(suffix))
            .unwrap_or(n)
            .to_string()
    };
    let shown_families: BTreeSet<String> = shown.iter().map(|n| family(n)).collect();
    let missing: BTreeSet<String> = contract
        .keys()
        .map(|n| family(n))
        .filter(|f| !shown_families.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "contract series on no dashboard: {missing:?}"
    );
}
