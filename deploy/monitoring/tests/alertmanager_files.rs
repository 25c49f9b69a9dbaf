//! The shipped Alertmanager configuration: amtool's checks, a routing case
//! for every alert and severity, and a real Alertmanager that inhibits and
//! renders notifications to a Slack and a PagerDuty endpoint run by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use monitoring::generate::repo_root;
use monitoring::rules::load_rules;
use monitoring::staging::{Receivers, stage_alertmanager};
use serde_json::{Value, json};

fn alertmanager_dir() -> PathBuf {
    repo_root().join("deploy/alertmanager")
}

fn amtool(args: &[&str]) -> testkit::CommandOutput {
    let bin = testkit::find_binary(
        "amtool",
        &["/usr/bin"],
        "apt-get install prometheus-alertmanager",
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.current_dir(alertmanager_dir()).args(args);
    testkit::run_command(cmd, None, Duration::from_secs(60)).unwrap()
}

#[test]
fn amtool_accepts_the_config() {
    let out = amtool(&["check-config", "alertmanager.yml"]);
    assert!(out.status.success(), "{}", out.combined());
    assert!(out.combined().contains("1 templates"), "{}", out.combined());
}

/// Every (alert, severity) of the rule files, with the receiver the routing
/// policy promises: critical pages, warning opens a ticket, the watchdog
/// goes to the dead man's switch, and nothing from a dev stack notifies.
#[test]
fn every_alert_and_severity_routes_to_its_receiver() {
    let pairs: BTreeSet<(String, String)> =
        load_rules(&repo_root().join("deploy/prometheus/rules"))
            .unwrap()
            .into_iter()
            .filter_map(|(_, r)| Some((r.alert?, r.labels.get("severity")?.clone())))
            .collect();
    assert!(pairs.len() >= 22, "{pairs:?}");
    for (alert, severity) in &pairs {
        for environment in ["prod", "staging", "dev"] {
            let expected = match (environment, alert.as_str(), severity.as_str()) {
                ("dev", ..) => "dev-null",
                (_, "Watchdog", _) => "deadmans-switch",
                (_, _, "critical") => "pager",
                (_, _, "warning") => "ticket",
                other => panic!("no routing policy for {other:?}"),
            };
            let labels = [
                format!("alertname={alert}"),
                format!("severity={severity}"),
                format!("environment={environment}"),
                "cluster=eu-1".to_string(),
                "service_name=gateway".to_string(),
            ];
            let mut args = vec!["config", "routes", "test", "--config.file=alertmanager.yml"];
            let verify = format!("--verify.receivers={expected}");
            args.push(&verify);
            args.extend(labels.iter().map(String::as_str));
            let out = amtool(&args);
            assert!(
                out.status.success(),
                "{alert} ({severity}, {environment}) should reach {expected}:\n{}",
                out.combined()
            );
        }
    }
    // An alert without a severity still reaches people.
    let out = amtool(&[
        "config",
        "routes",
        "test",
        "--config.file=alertmanager.yml",
        "--verify.receivers=ticket",
        "alertname=Unknown",
        "environment=prod",
    ]);
    assert!(out.status.success(), "{}", out.combined());
}

#[test]
fn amtool_renders_every_template() {
    for (name, expected) in [
        ("deltran.title", "] "),
        ("deltran.text", "Runbook: "),
        ("deltran.runbook", ""),
    ] {
        let text = format!("{{{{ template \"{name}\" . }}}}");
        let out = amtool(&[
            "template",
            "render",
            "--template.glob=templates/*.tmpl",
            &format!("--template.text={text}"),
        ]);
        assert!(out.status.success(), "{name}: {}", out.combined());
        assert!(out.stdout.contains(expected), "{name}: {}", out.combined());
    }
}

fn alert(labels: &[(&str, &str)], summary: &str, description: &str, runbook: &str) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "labels": labels,
        "annotations": { "summary": summary, "description": description, "runbook_url": runbook },
    })
}

fn state_of(am: &testkit::Alertmanager, alertname: &str, service: &str) -> Value {
    am.alerts()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname && a["labels"]["service_name"] == service)
        .map(|a| a["status"].clone())
        .unwrap_or(Value::Null)
}

/// A real Alertmanager with the shipped routes, inhibitions, receivers and
/// templates (timings shortened, endpoints pointed at the test).
#[test]
fn a_real_alertmanager_inhibits_and_notifies_as_configured() {
    let sink = testkit::WebhookReceiver::start().unwrap();
    let staged = stage_alertmanager(
        &repo_root(),
        &Receivers {
            slack_url: sink.url("/slack"),
            pagerduty_url: sink.url("/pagerduty"),
            pagerduty_routing_key: "test-routing-key".into(),
        },
    )
    .unwrap();
    let am = testkit::Alertmanager::start_from_file(&staged.config, &[]).unwrap();
    let prod = [("environment", "prod"), ("cluster", "eu-1")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        prod.iter().chain(extra).copied().collect()
    };
    let runbook = "https://runbooks.example/engine-down.md#enginedown";
    am.post_alerts(&json!([
        // risk-engine is down: its own error alert is inhibited …
        alert(&with(&[("alertname", "EngineDown"), ("severity", "critical"), ("service_name", "risk-engine")]),
              "risk-engine is down", "Prometheus has not been able to scrape risk-engine for 2 minutes.", runbook),
        alert(&with(&[("alertname", "EngineHighErrorRatio"), ("severity", "warning"), ("service_name", "risk-engine")]),
              "risk-engine answers 40% of requests with 5xx", "risk-engine answered 40% …", "https://runbooks.example/engine-errors.md"),
        // … the gateway's is not.
        alert(&with(&[("alertname", "EngineHighErrorRatio"), ("severity", "warning"), ("service_name", "gateway")]),
              "gateway answers 12.5% of requests with 5xx",
              "gateway answered 12.5% of its HTTP requests with a server error over the last 5 minutes.",
              "https://runbooks.example/engine-errors.md#enginehigherrorratio"),
        // A page silences the ticket of the same SLO alert.
        alert(&with(&[("alertname", "GatewayPaymentsLatencyErrorBudgetBurn"), ("severity", "critical"), ("service_name", "gateway"), ("slo", "gateway-payments-latency")]),
              "burning (page)", "fast", "https://runbooks.example/slo.md"),
        alert(&with(&[("alertname", "GatewayPaymentsLatencyErrorBudgetBurn"), ("severity", "warning"), ("service_name", "gateway"), ("slo", "gateway-payments-latency")]),
              "burning (ticket)", "slow", "https://runbooks.example/slo.md"),
        // The payments it fails are the same incident.
        alert(&with(&[("alertname", "PaymentAcceptanceRatioLow"), ("severity", "critical"), ("service_name", "gateway")]),
              "Only 60% of payments are accepted", "…", "https://runbooks.example/payments-acceptance.md"),
        // A dev stack notifies nobody.
        alert(&[("environment", "dev"), ("cluster", "laptop"), ("alertname", "EngineDown"), ("severity", "critical"), ("service_name", "token-engine")],
              "token-engine is down", "on a laptop", runbook),
    ]))
    .unwrap();

    // The PagerDuty page for risk-engine, rendered by the shipped templates.
    let page = sink
        .wait_for(Duration::from_secs(30), |r| {
            r.path == "/pagerduty"
                && r.body.contains("EngineDown")
                && r.body.contains("risk-engine")
        })
        .unwrap_or_else(|e| panic!("{e}\nalertmanager:\n{}", am.log_tail(30)));
    let p = &page.json;
    assert_eq!(p["routing_key"], "test-routing-key");
    assert_eq!(p["event_action"], "trigger");
    // The incident title names the engine and the summary (with the value).
    assert_eq!(
        p["payload"]["summary"],
        "[FIRING:1] EngineDown on risk-engine (prod): risk-engine is down"
    );
    assert_eq!(p["payload"]["severity"], "critical");
    assert_eq!(p["payload"]["custom_details"]["runbook_url"], runbook);
    assert_eq!(
        p["payload"]["custom_details"]["service_name"],
        "risk-engine"
    );
    let details = p["payload"]["custom_details"]["summary"].as_str().unwrap();
    assert!(details.contains("FIRING: risk-engine is down"), "{details}");
    assert!(
        details.contains("scrape risk-engine for 2 minutes"),
        "{details}"
    );
    assert!(
        details.contains(&format!("Runbook: {runbook}")),
        "{details}"
    );
    assert_eq!(p["links"][0]["href"], runbook);

    // The ticket for the gateway: engine, value and runbook in the Slack text.
    let ticket = sink
        .wait_for(Duration::from_secs(30), |r| {
            r.path == "/slack" && r.body.contains("EngineHighErrorRatio on gateway")
        })
        .unwrap_or_else(|e| panic!("{e}\nalertmanager:\n{}", am.log_tail(30)));
    let attachment = &ticket.json["attachments"][0];
    assert_eq!(ticket.json["channel"], "#deltran-alerts");
    assert_eq!(
        attachment["title"],
        "[FIRING:1] EngineHighErrorRatio on gateway (prod)"
    );
    assert_eq!(attachment["color"], "warning");
    assert_eq!(
        attachment["title_link"],
        "https://runbooks.example/engine-errors.md#enginehigherrorratio"
    );
    let text = attachment["text"].as_str().unwrap();
    assert!(
        text.contains("Engine: gateway | Severity: warning"),
        "{text}"
    );
    assert!(text.contains("12.5%"), "the value: {text}");
    assert!(
        text.contains("Runbook: https://runbooks.example/engine-errors.md#enginehigherrorratio"),
        "{text}"
    );

    // Inhibitions, as Alertmanager reports them.
    let suppressed = |name, service| {
        let s = state_of(&am, name, service);
        s["state"] == "suppressed" && !s["inhibitedBy"].as_array().unwrap().is_empty()
    };
    assert!(
        suppressed("EngineHighErrorRatio", "risk-engine"),
        "{}",
        state_of(&am, "EngineHighErrorRatio", "risk-engine")
    );
    assert_eq!(
        state_of(&am, "EngineHighErrorRatio", "gateway")["state"],
        "active"
    );
    assert!(
        suppressed("PaymentAcceptanceRatioLow", "gateway"),
        "{}",
        state_of(&am, "PaymentAcceptanceRatioLow", "gateway")
    );
    let slo: Vec<Value> = am
        .alerts()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "GatewayPaymentsLatencyErrorBudgetBurn")
        .cloned()
        .collect();
    assert_eq!(slo.len(), 2);
    for a in &slo {
        let inhibited = a["status"]["state"] == "suppressed";
        assert_eq!(inhibited, a["labels"]["severity"] == "warning", "{a}");
    }
    // Routing as Alertmanager applied it.
    let receivers_of = |name: &str, service: &str| -> Vec<String> {
        am.alerts()
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"]["service_name"] == service)
            .map(|a| {
                a["receivers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(receivers_of("EngineDown", "token-engine"), ["dev-null"]);
    assert_eq!(receivers_of("EngineDown", "risk-engine"), ["pager"]);

    // Nothing reached anyone for the inhibited alerts or the dev stack.
    std::thread::sleep(Duration::from_secs(3));
    for r in sink.received() {
        assert!(
            !r.body.contains("token-engine"),
            "a dev alert was delivered: {}",
            r.body
        );
        assert!(
            !(r.path == "/slack" && r.body.contains("risk-engine")),
            "an inhibited ticket was delivered: {}",
            r.body
        );
        assert!(
            !r.body.contains("burning (ticket)"),
            "an inhibited SLO ticket was delivered: {}",
            r.body
        );
    }
}
