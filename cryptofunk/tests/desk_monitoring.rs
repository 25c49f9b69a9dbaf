//! The production dry run of CryptoFunk: the desk with its fault knobs
//! (a tool server down, a failing LLM, a market crash), the shipped
//! Prometheus configuration scraping every component, the shipped rules,
//! Alertmanager routing to a webhook receiver, and the four dashboards.
//! Timings are shortened as `monitoring::staging` documents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use monitoring::dashboard_queries::{empty_targets, is_of_system, load_dir};
use monitoring::generate::repo_root;
use monitoring::promql::selectors;
use monitoring::staging::{PrometheusTargets, Receivers, stage_alertmanager, stage_prometheus};
use serde_json::Value;

const RATE_INTERVAL: &str = "1m";
const WAIT: Duration = Duration::from_secs(90);

/// The matcher of failed operations in the dashboards' queries.
const FAILED: &str = r#"error_type!="""#;

fn results(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// Metric names `service_name` has series of right now.
fn names_of(prometheus: &testkit::Prometheus, service: &str) -> BTreeSet<String> {
    results(
        &prometheus
            .query(&format!(
                r#"group by (__name__) ({{service_name="{service}"}})"#
            ))
            .unwrap(),
    )
    .iter()
    .filter_map(|s| s["metric"]["__name__"].as_str().map(String::from))
    .collect()
}

#[test]
fn dry_run_every_panel_shows_data_and_the_crash_and_an_outage_page_the_trading_desk() {
    let root = repo_root();
    let postgres = testkit::Postgres::start().unwrap();
    let redis = testkit::Redis::start().unwrap();
    let sink = testkit::WebhookReceiver::start().unwrap();
    let am_files = stage_alertmanager(
        &root,
        &Receivers {
            slack_url: sink.url("/slack"),
            pagerduty_url: sink.url("/pagerduty"),
            pagerduty_routing_key: "dry-run-key".into(),
        },
    )
    .unwrap();
    let alertmanager = testkit::Alertmanager::start_from_file(&am_files.config, &[]).unwrap();

    // The desk with every knob: technical-indicators down for a while,
    // one LLM call in six failing, the market crashing at 30 s.
    let mut desk = common::Desk::start(
        &[
            "--round",
            "1s",
            "--crash-at",
            "30s",
            "--llm-errors",
            "0.15",
            "--outage",
            "technical-indicators=12-22",
            "--database-url",
            &postgres.url(),
            "--redis-url",
            &redis.url(),
        ],
        &[],
    );
    let prom_files = stage_prometheus(
        &root,
        &PrometheusTargets {
            engines: Vec::new(),
            collectors: None,
            alertmanagers: vec![alertmanager.host_port()],
            environment: "prod".into(),
        },
    )
    .unwrap();
    prom_files
        .set_targets("cryptofunk.yml", &desk.scrape_targets())
        .unwrap();
    let prometheus = testkit::Prometheus::start_from_file(
        &prom_files.config,
        monitoring::staging::PROMETHEUS_FLAGS,
    )
    .unwrap();
    prometheus
        .wait_for(r#"count(up{job="cryptofunk"} == 1)"#, WAIT, |r| {
            results(r).first().and_then(|s| s["value"][1].as_str()) == Some("14")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", desk.logs()));

    // Every /metrics passes promtool.
    for c in &desk.run.components {
        let (code, text) =
            testkit::http_get(&format!("http://127.0.0.1:{}/metrics", c.port)).unwrap();
        assert_eq!(code, 200, "{}", c.name);
        testkit::promtool_check_metrics(&text).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    }

    // The API server's cache is in Redis: two quick reads, a miss then a
    // hit; its pool and the ledger's are measured.
    for _ in 0..2 {
        let (code, _) =
            testkit::http_get(&format!("{}/api/portfolio", desk.url("api-server"))).unwrap();
        assert_eq!(code, 200);
    }
    for (query, what) in [
        (
            r#"sum(cache_lookups_total{service_name="api-server", cache_result="hit"}) > 0"#,
            "a cache hit",
        ),
        (
            r#"db_client_connections_usage{service_name="api-server", pool_name="cache"}"#,
            "the Redis pool",
        ),
        (
            r#"db_client_connections_usage{service_name="order-executor", pool_name="ledger"}"#,
            "the ledger's pool",
        ),
        (
            r#"db_client_operation_duration_seconds_count{service_name="api-server", db_system_name="redis", db_operation_name="SET"}"#,
            "Redis commands",
        ),
    ] {
        prometheus
            .wait_for(query, WAIT, |r| !results(r).is_empty())
            .unwrap_or_else(|e| panic!("{what}: {e}\n{}", desk.logs()));
    }

    // The stopped tool server pages the trading desk.
    let down = sink
        .wait_for(WAIT, |r| {
            r.path == "/pagerduty"
                && r.json["payload"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("technical-indicators is down"))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", desk.logs()));
    assert_eq!(down.json["routing_key"], "dry-run-key");
    assert_eq!(down.json["payload"]["severity"], "critical");

    // The crash: drawdown past 15 % and the breaker trips; the breaker
    // pages, and the drawdown alert reaches Alertmanager held back behind
    // it (one page for one crash).
    let breaker = sink
        .wait_for(WAIT, |r| {
            r.path == "/pagerduty"
                && r.json["payload"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("circuit breaker has tripped"))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", desk.logs()));
    assert_eq!(breaker.json["payload"]["severity"], "critical");
    let drawdown = (0..60)
        .find_map(|_| {
            let found = alertmanager
                .alerts()
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["alertname"] == "CryptoFunkDrawdownHigh")
                .cloned();
            if found.is_none() {
                std::thread::sleep(Duration::from_secs(1));
            }
            found
        })
        .expect("the drawdown alert reaches Alertmanager");
    assert_eq!(drawdown["labels"]["team"], "trading-desk");
    assert!(
        !drawdown["status"]["inhibitedBy"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the breaker holds the drawdown page back: {drawdown}"
    );
    let firing: BTreeSet<String> = results(&prometheus.alerts().unwrap()["alerts"])
        .iter()
        .filter(|a| a["state"] == "firing")
        .filter_map(|a| a["labels"]["alertname"].as_str().map(String::from))
        .collect();
    for alert in ["CryptoFunkDrawdownHigh", "CryptoFunkCircuitBreakerTripped"] {
        assert!(firing.contains(alert), "{alert} not firing: {firing:?}");
    }

    // Every panel of the four dashboards shows data, under every value of
    // its variables — or its metric is not one the selected component has.
    let mut failures = Vec::new();
    let dashboards = load_dir(&root.join("deploy/grafana/dashboards")).unwrap();
    let ours: Vec<_> = dashboards
        .iter()
        .filter(|d| is_of_system(d, "cryptofunk"))
        .collect();
    assert_eq!(ours.len(), 4);
    for d in ours {
        let empty = empty_targets(
            d,
            RATE_INTERVAL,
            |series, label| {
                prometheus
                    .label_values(series, label)
                    .map_err(|e| e.to_string())
            },
            |expr| prometheus.has_data(expr).map_err(|e| e.to_string()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for e in empty {
            // A panel of failures only is empty when nothing failed: the
            // same query over every outcome must show data.
            if e.expr.contains(FAILED) {
                let all = e
                    .expr
                    .replace(&format!(", {FAILED}"), "")
                    .replace(&format!("{FAILED}, "), "");
                if prometheus.has_data(&all).unwrap() {
                    continue;
                }
            }
            // A series the selected component does not have at all.
            let names: Vec<String> = selectors(&e.expr)
                .unwrap()
                .into_iter()
                .filter_map(|s| s.name)
                .collect();
            let not_its = e.service().is_some_and(|s| {
                let has = names_of(&prometheus, s);
                !names.iter().any(|n| has.contains(n))
            });
            if !not_its {
                failures.push(format!(
                    "{} / {} ({:?}): no data for {}",
                    d.title, e.panel.title, e.vars, e.expr
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "dashboards without data:\n{}",
        failures.join("\n")
    );

    // The metrics contract the rules and dashboards are held to is what
    // the desk exports.
    let exported: BTreeSet<String> = prometheus.metric_names().unwrap().into_iter().collect();
    let contract = monitoring::rules::cryptofunk_metrics(&root).unwrap();
    let missing: Vec<&String> = contract.keys().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "in cryptofunk-metrics.txt but never exported: {missing:?}"
    );

    assert!(desk.interrupt().success(), "{}", desk.logs());
    drop(prometheus);
    drop(alertmanager);
}
