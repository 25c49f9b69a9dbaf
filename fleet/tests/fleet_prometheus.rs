//! The fleet on the pull path (`OTEL_METRICS_EXPORTER=prometheus`, as the
//! original DelTran set-up): a real Prometheus scrapes all eight engines,
//! `up` is 1 for each, and every "Services Overview" panel query in
//! `deltran_fleet::panels` returns the data the dashboard shows. The ledger
//! is a real PostgreSQL here (the OTLP test covers the SQLite default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Launcher;
use deltran_fleet::engines::EngineKind;
use deltran_fleet::panels::SERVICES_OVERVIEW;
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
fn prometheus_scrapes_every_engine_and_computes_the_overview_panels() {
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
    // The seed's scrape set-up: one job, labels `service` and `language`.
    let mut config = String::from("- job_name: deltran\n  static_configs:\n");
    for e in &launcher.fleet.engines {
        config.push_str(&format!(
            "    - targets: ['127.0.0.1:{}']\n      labels: {{service: '{}', language: rust}}\n",
            e.port, e.name
        ));
    }
    let prometheus = testkit::Prometheus::builder(&config)
        .scrape_interval("1s")
        .start()
        .expect("start prometheus (apt-get install prometheus)");

    let every_engine: BTreeSet<String> = EngineKind::ALL
        .iter()
        .map(|k| k.name().to_string())
        .collect();
    let by_title = |t: &str| {
        SERVICES_OVERVIEW
            .iter()
            .find(|p| p.title.starts_with(t))
            .unwrap()
            .promql
    };
    let up = prometheus
        .wait_for(by_title("Service health"), WAIT, |r| {
            label_set(r, "service") == every_engine && values(r).iter().all(|(_, v)| *v == 1.0)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", launcher.logs()));
    assert_eq!(values(&up).len(), 8);

    // Throughput: every engine serves requests.
    prometheus
        .wait_for(by_title("Transaction throughput"), WAIT, |r| {
            label_set(r, "service_name") == every_engine && values(r).iter().all(|(_, v)| *v > 0.0)
        })
        .unwrap();
    // p95 for every engine, finite and under the top bucket.
    prometheus
        .wait_for(by_title("Request latency p95"), WAIT, |r| {
            label_set(r, "service_name") == every_engine
                && values(r)
                    .iter()
                    .all(|(_, v)| v.is_finite() && *v > 0.0 && *v <= 10.0)
        })
        .unwrap();
    // 5xx: risk-engine fails 20% on purpose and the gateway answers 502 for
    // those; the others show 0 rather than nothing.
    let errors = prometheus
        .wait_for(by_title("Error rate"), WAIT, |r| {
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
    // Active tokens and WebSocket connections: gauges with live values.
    prometheus
        .wait_for(by_title("Active tokens"), WAIT, |r| {
            values(r).first().is_some_and(|(_, v)| *v >= 0.0)
        })
        .unwrap();
    prometheus
        .wait_for(by_title("WebSocket connections"), WAIT, |r| {
            values(r).first().is_some_and(|(_, v)| *v == 2.0)
        })
        .unwrap();
    // Success rate: a share, neither 0 nor 1 with invalid/sanctioned/failed payments in the mix.
    prometheus
        .wait_for(by_title("Transaction success rate"), WAIT, |r| {
            values(r).first().is_some_and(|(_, v)| *v > 0.3 && *v < 1.0)
        })
        .unwrap();
    // DB p95 from the ledger writes.
    prometheus
        .wait_for(by_title("Database query duration p95"), WAIT, |r| {
            values(r)
                .first()
                .is_some_and(|(_, v)| v.is_finite() && *v > 0.0)
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
        .wait_for(by_title("NATS messages published"), WAIT, |r| {
            label_set(r, "messaging_destination_name").is_superset(&subjects)
                && values(r).iter().all(|(_, v)| *v > 0.0)
        })
        .unwrap();
    // Cache hit rate for both caches, a share.
    prometheus
        .wait_for(by_title("Cache hit rate"), WAIT, |r| {
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
    assert_eq!(SERVICES_OVERVIEW.len(), 10);
    // The DB panel measured PostgreSQL, and the ledger is really there.
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
    drop(prometheus);
    drop(launcher);
    drop(pg);
}
