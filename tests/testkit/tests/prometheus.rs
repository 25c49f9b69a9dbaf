//! Real Prometheus, promtool and Alertmanager.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{Alertmanager, Error, Prometheus, http_get, pid_alive, promtool_check_metrics};

fn has_sample_value(result: &Value, want: &str) -> bool {
    result
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s["value"][1] == want))
}

#[test]
fn prometheus_scrapes_itself() {
    let prom = Prometheus::builder("").scrape_self().start().unwrap();
    let pid = prom.pid();
    assert!(pid_alive(pid));
    assert!(prom.url().starts_with("http://127.0.0.1:"));

    let res = prom
        .wait_for(r#"up{job="self"}"#, Duration::from_secs(30), |r| {
            has_sample_value(r, "1")
        })
        .unwrap();
    assert_eq!(res[0]["metric"]["job"], "self");

    let targets = prom.targets().unwrap();
    let active = targets["activeTargets"].as_array().unwrap();
    assert!(
        active
            .iter()
            .any(|t| t["labels"]["job"] == "self" && t["health"] == "up"),
        "{targets}"
    );
    assert!(!prom.log_tail(5).is_empty());

    drop(prom);
    assert!(!pid_alive(pid), "prometheus pid {pid} alive after drop");
}

#[test]
fn prometheus_with_flags_rules_and_alertmanager() {
    let am = Alertmanager::start("").unwrap();
    let am_pid = am.pid();
    let scrape = format!(
        "- job_name: alertmanager\n  static_configs:\n    - targets: ['{}']\n",
        am.host_port()
    );
    let rules = "groups:\n  - name: testkit\n    rules:\n      - alert: TestkitAlwaysFiring\n        expr: vector(1)\n        labels:\n          severity: none\n";
    let mut prom = Prometheus::builder(&scrape)
        .flag("--enable-feature=exemplar-storage")
        .flag("--web.enable-remote-write-receiver")
        .rule_file("testkit.rules.yml", rules)
        .alertmanager(&am.host_port())
        .start()
        .unwrap();
    let prom_pid = prom.pid();

    // The caller's scrape config is in effect.
    prom.wait_for(r#"up{job="alertmanager"}"#, Duration::from_secs(30), |r| {
        has_sample_value(r, "1")
    })
    .unwrap();

    // The rule fires in Prometheus and reaches the Alertmanager.
    let mut last = Value::Null;
    testkit::wait_until("alert in alertmanager", Duration::from_secs(30), || {
        last = am.alerts()?;
        Ok(last.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == "TestkitAlwaysFiring")
        }))
    })
    .unwrap_or_else(|e| panic!("{e}; last alerts {last}; prom log:\n{}", prom.log_tail(20)));
    let rules = prom.rules().unwrap();
    assert!(rules.to_string().contains("TestkitAlwaysFiring"));

    // Remote-write receiver is enabled: an empty body is rejected as bad input, not 404.
    let (status, _) =
        testkit::http_post(&prom.remote_write_url(), "application/x-protobuf", b"").unwrap();
    assert_ne!(status, 404, "remote write receiver not enabled");

    // Reload with a different scrape config through /-/reload.
    prom.reload_scrape_configs("").unwrap();
    let cfg = std::fs::read_to_string(prom.config_path()).unwrap();
    assert!(cfg.contains("scrape_configs: []"), "{cfg}");
    assert!(cfg.contains("testkit.rules.yml"), "{cfg}");

    prom.stop().unwrap();
    assert!(!pid_alive(prom_pid));
    am.stop().unwrap();
    assert!(!pid_alive(am_pid));
}

#[test]
fn prometheus_bad_config_fails_fast_with_log() {
    let err = Prometheus::start("this is: [not a list").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Exited { .. }), "{msg}");
    assert!(msg.to_lowercase().contains("config"), "{msg}");
}

#[test]
fn promtool_accepts_valid_and_rejects_invalid() {
    let valid = "# HELP http_requests_total Total HTTP requests.\n# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 3\n";
    promtool_check_metrics(valid).unwrap();

    let invalid = "# TYPE broken counter\nbroken{ 1\n";
    let err = promtool_check_metrics(invalid).unwrap_err();
    assert!(matches!(err, Error::Command { .. }), "{err}");

    // Lint problem (counter without _total suffix, no HELP) is reported too.
    let lint = "# TYPE requests counter\nrequests 1\n";
    let err = promtool_check_metrics(lint).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("requests"), "{msg}");
}

#[test]
fn alertmanager_accepts_and_lists_an_alert() {
    let am = Alertmanager::start("").unwrap();
    let pid = am.pid();
    let (status, _) = http_get(&format!("{}/-/healthy", am.url())).unwrap();
    assert_eq!(status, 200);
    am.post_alerts(&json!([{
        "labels": {"alertname": "TestkitManual", "severity": "none"},
        "annotations": {"summary": "posted by testkit"}
    }]))
    .unwrap();
    let mut last = Value::Null;
    testkit::wait_until("posted alert listed", Duration::from_secs(15), || {
        last = am.alerts()?;
        Ok(last.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == "TestkitManual")
        }))
    })
    .unwrap_or_else(|e| panic!("{e}; last {last}"));
    assert_eq!(
        last[0]["annotations"]["summary"], "posted by testkit",
        "{last}"
    );
    drop(am);
    assert!(!pid_alive(pid));
}
