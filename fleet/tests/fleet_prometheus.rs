//! The fleet on the pull path alone (`OTEL_METRICS_EXPORTER=prometheus`, no
//! collector, as the original DelTran set-up): the shipped Prometheus
//! configuration and rules scrape all eight engines, `up` is 1 for each, and
//! the Services Overview panels — read from the dashboard file Grafana loads
//! — show what each panel promises. The ledger is a real PostgreSQL here
//! (the other fleet tests use the SQLite default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Launcher;
use deltran_fleet::engines::EngineKind;
use monitoring::dashboard_queries::load;
use monitoring::generate::repo_root;
use monitoring::promql::expand_grafana;
use monitoring::staging::{PrometheusTargets, stage_prometheus};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

fn values(result: &Value) -> Vec<(Value, f64)> {
    result
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    let v: f64 = s["value"][1].as_str()?.parse().ok()?;
                    Some((s["metric"].clone(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn label_set(result: &Value, label: &str) -> BTreeSet<String> {
    values(result)
        .iter()
        .filter_map(|(m, _)| m[label].as_str().map(String::from))
        .collect()
}

#[test]
fn the_shipped_config_scrapes_every_engine_and_the_overview_panels_show_their_data() {
    let pg = testkit::Postgres::start().expect("start postgresql (apt-get install postgresql)");
    let pg_url = pg.url();
    let launcher = Launcher::start(
        &[
            "--database-url",
            &pg_url,
            "--rate",
            "10",
            "--websockets",
            "2",
            "--clearing-window-ms",
            "500",
            "--errors",
            "risk-engine=0.2",
        ],
        &[
            ("OTEL_METRICS_EXPORTER", "prometheus".into()),
            ("OTEL_TRACES_EXPORTER", "none".into()),
            ("OTEL_LOGS_EXPORTER", "none".into()),
        ],
    );
    let staged = stage_prometheus(
        &repo_root(),
        &PrometheusTargets {
            engines: launcher.scrape_targets(),
            // The shipped collector targets (none: no collector runs here).
            collectors: None,
            alertmanagers: Vec::new(),
            environment: "dev".into(),
        },
    )
    .unwrap();
    let prometheus = testkit::Prometheus::start_from_file(&staged.config, &[]).unwrap();

    let every_engine: BTreeSet<String> = EngineKind::ALL
        .iter()
        .map(|k| k.name().to_string())
        .collect();
    let overview =
        load(&repo_root().join("deploy/grafana/dashboards/services-overview.json")).unwrap();
    // Grafana with every service selected ("All").
    let vars = [("env", "demo"), ("namespace", "deltran"), ("service", ".*")];
    let panel = |title: &str| {
        let p = overview
            .panels
            .iter()
            .find(|p| p.title == title)
            .unwrap_or_else(|| panic!("no panel {title}"));
        expand_grafana(&p.targets[0].expr, &vars, "1m")
    };

    // The original scrape set-up: one job, labels `service` and `language`.
    let up = prometheus
        .wait_for(r#"up{job="deltran"}"#, WAIT, |r| {
            label_set(r, "service") == every_engine && values(r).iter().all(|(_, v)| *v == 1.0)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", launcher.logs()));
    assert!(values(&up).iter().all(|(m, _)| m["language"] == "rust"));
    prometheus
        .wait_for(&panel("Service health"), WAIT, |r| {
            label_set(r, "service_name") == every_engine && values(r).iter().all(|(_, v)| *v == 1.0)
        })
        .unwrap();
    // Throughput: every engine serves requests.
    prometheus
        .wait_for(&panel("Transaction throughput"), WAIT, |r| {
            label_set(r, "service_name") == every_engine && values(r).iter().all(|(_, v)| *v > 0.0)
        })
        .unwrap();
    // p95 for every engine, finite and under the top bucket.
    prometheus
        .wait_for(&panel("Request latency p95"), WAIT, |r| {
            label_set(r, "service_name") == every_engine
                && values(r)
                    .iter()
                    .all(|(_, v)| v.is_finite() && *v > 0.0 && *v <= 10.0)
        })
        .unwrap();
    // 5xx: risk-engine fails 20% on purpose and the gateway answers 502 for
    // those; the others show 0 rather than nothing.
    let errors = prometheus
        .wait_for(&panel("Error rate (5xx/s)"), WAIT, |r| {
            let v = values(r);
            label_set(r, "service_name") == every_engine
                && ["risk-engine", "gateway"]
                    .iter()
                    .all(|s| v.iter().any(|(m, x)| m["service_name"] == *s && *x > 0.0))
        })
        .unwrap();
    assert!(
        values(&errors)
            .iter()
            .any(|(m, v)| m["service_name"] == "compliance-engine" && *v == 0.0)
    );
    prometheus
        .wait_for(&panel("Active tokens"), WAIT, |r| {
            values(r).first().is_some_and(|(_, v)| *v >= 0.0)
        })
        .unwrap();
    prometheus
        .wait_for(&panel("WebSocket connections"), WAIT, |r| {
            values(r).first().is_some_and(|(_, v)| *v == 2.0)
        })
        .unwrap();
    // A share, neither 0 nor 1 with sanctioned, held and failed payments in the mix.
    prometheus
        .wait_for(&panel("Transaction success rate"), WAIT, |r| {
            values(r).first().is_some_and(|(_, v)| *v > 0.3 && *v < 1.0)
        })
        .unwrap();
    // The ledger writes, on PostgreSQL.
    prometheus
        .wait_for(&panel("Database query duration p95"), WAIT, |r| {
            label_set(r, "service_name") == BTreeSet::from(["settlement-engine".to_string()])
                && values(r).iter().all(|(_, v)| v.is_finite() && *v > 0.0)
        })
        .unwrap();
    // NATS publishes on every subject of the payment path.
    let subjects: BTreeSet<String> = [
        "deltran.obligations.created",
        "deltran.settlement.instructions",
        "deltran.payments.settled",
    ]
    .map(String::from)
    .into();
    prometheus
        .wait_for(&panel("NATS messages published/s"), WAIT, |r| {
            label_set(r, "messaging_destination_name").is_superset(&subjects)
                && values(r).iter().all(|(_, v)| *v > 0.0)
        })
        .unwrap();
    prometheus
        .wait_for(&panel("Cache hit rate"), WAIT, |r| {
            label_set(r, "cache_name")
                == BTreeSet::from(["fx_rates".to_string(), "sanctions".to_string()])
                && values(r).iter().all(|(_, v)| *v > 0.0 && *v <= 1.0)
        })
        .unwrap();
    // Every series carries the labels dashboards select on.
    let unlabeled = prometheus
        .query(r#"count({job="deltran", service_namespace!="deltran", __name__!~"up|scrape_.*"})"#)
        .unwrap();
    assert!(
        values(&unlabeled).is_empty(),
        "series without service_namespace: {unlabeled}"
    );
    let systems = prometheus
        .query(r#"count by (db_system_name) (db_client_operation_duration_seconds_count{service_name="settlement-engine"})"#)
        .unwrap();
    assert_eq!(
        label_set(&systems, "db_system_name"),
        BTreeSet::from(["postgresql".to_string()])
    );
    let settled: u64 = pg
        .psql("SELECT count(*) FROM settled_payments")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(settled > 0, "no settled payments in PostgreSQL");
    // Every /metrics passes the linter users run.
    for e in &launcher.fleet.engines {
        let (_, text) = testkit::http_get(&format!("http://127.0.0.1:{}/metrics", e.port)).unwrap();
        testkit::promtool_check_metrics(&text).unwrap_or_else(|err| panic!("{}: {err}", e.name));
    }
    drop(prometheus);
    drop(launcher);
    drop(pg);
}
