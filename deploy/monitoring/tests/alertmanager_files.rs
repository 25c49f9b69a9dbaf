//! The shipped Alertmanager configuration: amtool's checks, a routing case
//! for every alert and severity, and a real Alertmanager that inhibits and
//! renders notifications to a Slack and a PagerDuty endpoint run by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
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

/// Every (alert, severity) of the rule files, with its static labels, and
/// the receiver the routing policy promises: critical pages, warning opens
/// a ticket — the trading desk's own for CryptoFunk's alerts (team
/// trading-desk), DelTran's for the others —, the watchdog goes to the dead
/// man's switch, and nothing from a dev stack notifies.
#[test]
fn every_alert_and_severity_routes_to_its_receiver() {
    let alerts: BTreeSet<(String, String, BTreeMap<String, String>)> =
        load_rules(&repo_root().join("deploy/prometheus/rules"))
            .unwrap()
            .into_iter()
            .filter_map(|(_, r)| {
                let severity = r.labels.get("severity")?.clone();
                Some((r.alert?, severity, r.labels))
            })
            .collect();
    assert!(alerts.len() >= 31, "{alerts:?}");
    let trading_desk = alerts
        .iter()
        .filter(|(_, _, l)| l.get("team").map(String::as_str) == Some("trading-desk"))
        .count();
    assert_eq!(trading_desk, 9, "CryptoFunk's alerts");
    for (alert, severity, static_labels) in &alerts {
        let team = static_labels.get("team").map(String::as_str);
        for environment in ["prod", "staging", "dev"] {
            let expected = match (environment, alert.as_str(), team, severity.as_str()) {
                ("dev", ..) => "dev-null",
                (_, "Watchdog", ..) => "deadmans-switch",
                (_, _, Some("trading-desk"), "critical") => "trading-desk-pager",
                (_, _, Some("trading-desk"), "warning") => "trading-desk-ticket",
                (_, _, None, "critical") => "pager",
                (_, _, None, "warning") => "ticket",
                other => panic!("no routing policy for {other:?}"),
            };
            // The labels the alert fires with: its rule's static ones, and
            // those Prometheus adds.
            let mut labels: BTreeMap<String, String> = BTreeMap::from([
                ("environment".to_string(), environment.to_string()),
                ("cluster".to_string(), "eu-1".to_string()),
                ("service_name".to_string(), "gateway".to_string()),
            ]);
            labels.extend(static_labels.clone());
            labels.insert("alertname".into(), alert.clone());
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut args = vec!["config", "routes", "test", "--config.file=alertmanager.yml"];
            let verify = format!("--verify.receivers={expected}");
            args.push(&verify);
            args.extend(labels.iter().map(String::as_str));
            let out = amtool(&args);
            assert!(
                out.status.success(),
                "{alert} ({severity}, {team:?}, {environment}) should reach {expected}:\n{}",
                out.combined()
            );
        }
    }
    // An alert without a severity still reaches people: its team's, or
    // DelTran's ticket channel.
    for (team, expected) in [
        (None, "ticket"),
        (Some("trading-desk"), "trading-desk-ticket"),
    ] {
        let verify = format!("--verify.receivers={expected}");
        let team = team.map(|t| format!("team={t}"));
        let mut args = vec![
            "config",
            "routes",
            "test",
            "--config.file=alertmanager.yml",
            &verify,
            "alertname=Unknown",
            "environment=prod",
        ];
        args.extend(team.as_deref());
        let out = amtool(&args);
        assert!(out.status.success(), "{team:?}: {}", out.combined());
    }
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

/// The first notification on `path` whose body holds every one of `texts`,
/// within 30 s; failing that, the test fails with Alertmanager's log.
fn notification(
    sink: &testkit::WebhookReceiver,
    am: &testkit::Alertmanager,
    path: &str,
    texts: &[&str],
) -> testkit::Received {
    sink.wait_for(Duration::from_secs(30), |r| {
        r.path == path && texts.iter().all(|t| r.body.contains(t))
    })
    .unwrap_or_else(|e| panic!("{e}\nalertmanager:\n{}", am.log_tail(30)))
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
    let page = notification(&sink, &am, "/pagerduty", &["EngineDown", "risk-engine"]);
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
    let ticket = notification(&sink, &am, "/slack", &["EngineHighErrorRatio on gateway"]);
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
        text.contains("Service: gateway | Severity: warning"),
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

/// CryptoFunk's alerts through a real Alertmanager with the shipped file:
/// the trading desk's pager and channel, and its inhibitions.
#[test]
fn a_real_alertmanager_pages_the_trading_desk_and_inhibits_the_symptoms() {
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
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        [
            ("environment", "prod"),
            ("cluster", "eu-1"),
            ("team", "trading-desk"),
        ]
        .iter()
        .chain(extra)
        .copied()
        .collect()
    };
    let runbook = "https://runbooks.example/cryptofunk-components.md#cryptofunkcomponentdown";
    am.post_alerts(&json!([
        // market-data is down: its own errors, the agents' failing tool
        // calls and unhealthy agents are inhibited …
        alert(&with(&[("alertname", "CryptoFunkComponentDown"), ("severity", "critical"), ("service_name", "market-data")]),
              "CryptoFunk market-data is down", "Prometheus has not been able to scrape market-data for 2 minutes.", runbook),
        alert(&with(&[("alertname", "CryptoFunkHighErrorRate"), ("severity", "warning"), ("service_name", "market-data")]),
              "CryptoFunk market-data fails 3.00 requests/s", "…", "https://runbooks.example/e"),
        alert(&with(&[("alertname", "CryptoFunkMCPToolCallFailures"), ("severity", "warning"), ("service_name", "technical-agent"), ("gen_ai_tool_name", "get_price")]),
              "100% of technical-agent's get_price tool calls fail", "…", "https://runbooks.example/m"),
        alert(&with(&[("alertname", "CryptoFunkAgentUnhealthy"), ("severity", "warning"), ("service_name", "technical-agent"), ("agent", "technical")]),
              "CryptoFunk technical agent is unhealthy", "…", "https://runbooks.example/a"),
        // … order-executor's errors are not.
        alert(&with(&[("alertname", "CryptoFunkHighErrorRate"), ("severity", "warning"), ("service_name", "order-executor")]),
              "CryptoFunk order-executor fails 0.15 requests/s",
              "order-executor answered 0.15 requests/s with an HTTP 5xx or a failed MCP operation over the last 5 minutes (threshold 0.1/s).",
              "https://runbooks.example/cryptofunk-components.md#cryptofunkhigherrorrate"),
        // The crash: the breaker pages, the drawdown behind it is the same page.
        alert(&with(&[("alertname", "CryptoFunkCircuitBreakerTripped"), ("severity", "critical"), ("service_name", "order-executor")]),
              "CryptoFunk's risk circuit breaker has tripped", "…", "https://runbooks.example/r"),
        alert(&with(&[("alertname", "CryptoFunkDrawdownHigh"), ("severity", "critical"), ("service_name", "order-executor")]),
              "Portfolio drawdown is 22%", "…", "https://runbooks.example/d"),
        // A DelTran alert in the same environment: not inhibited, DelTran's channel.
        alert(&[("environment", "prod"), ("cluster", "eu-1"), ("alertname", "EngineHighErrorRatio"), ("severity", "warning"), ("service_name", "gateway")],
              "gateway answers 12.5% of requests with 5xx", "…", "https://runbooks.example/engine-errors.md"),
    ]))
    .unwrap();

    // The page for market-data, on the trading desk's PagerDuty integration.
    let page = notification(
        &sink,
        &am,
        "/pagerduty",
        &["CryptoFunkComponentDown", "market-data"],
    );
    let p = &page.json;
    assert_eq!(p["client"], "CryptoFunk Alertmanager");
    assert_eq!(p["routing_key"], "test-routing-key");
    assert_eq!(
        p["payload"]["summary"],
        "[FIRING:1] CryptoFunkComponentDown on market-data (prod): CryptoFunk market-data is down"
    );
    assert_eq!(p["payload"]["severity"], "critical");
    assert_eq!(p["payload"]["custom_details"]["team"], "trading-desk");
    assert_eq!(p["payload"]["custom_details"]["runbook_url"], runbook);
    assert_eq!(p["links"][0]["href"], runbook);
    // The ticket, in #cryptofunk-alerts.
    let ticket = notification(
        &sink,
        &am,
        "/slack",
        &["CryptoFunkHighErrorRate on order-executor"],
    );
    assert_eq!(ticket.json["channel"], "#cryptofunk-alerts");
    let attachment = &ticket.json["attachments"][0];
    assert_eq!(attachment["color"], "warning");
    assert!(
        attachment["text"]
            .as_str()
            .unwrap()
            .contains("0.15 requests/s"),
        "{attachment}"
    );
    // The breaker's page.
    notification(
        &sink,
        &am,
        "/pagerduty",
        &["CryptoFunkCircuitBreakerTripped"],
    );
    // DelTran's ticket, in DelTran's channel.
    let deltran = notification(&sink, &am, "/slack", &["EngineHighErrorRatio on gateway"]);
    assert_eq!(deltran.json["channel"], "#deltran-alerts");

    // Inhibitions and receivers, as Alertmanager reports them.
    let suppressed = |name, service| {
        let s = state_of(&am, name, service);
        s["state"] == "suppressed" && !s["inhibitedBy"].as_array().unwrap().is_empty()
    };
    for (name, service) in [
        ("CryptoFunkHighErrorRate", "market-data"),
        ("CryptoFunkMCPToolCallFailures", "technical-agent"),
        ("CryptoFunkAgentUnhealthy", "technical-agent"),
        ("CryptoFunkDrawdownHigh", "order-executor"),
    ] {
        assert!(
            suppressed(name, service),
            "{name} {service}: {}",
            state_of(&am, name, service)
        );
    }
    for (name, service) in [
        ("CryptoFunkHighErrorRate", "order-executor"),
        ("CryptoFunkComponentDown", "market-data"),
        ("CryptoFunkCircuitBreakerTripped", "order-executor"),
        ("EngineHighErrorRatio", "gateway"),
    ] {
        assert_eq!(
            state_of(&am, name, service)["state"],
            "active",
            "{name} {service}"
        );
    }
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
    assert_eq!(
        receivers_of("CryptoFunkComponentDown", "market-data"),
        ["trading-desk-pager"]
    );
    assert_eq!(
        receivers_of("CryptoFunkHighErrorRate", "order-executor"),
        ["trading-desk-ticket"]
    );
    assert_eq!(receivers_of("EngineHighErrorRatio", "gateway"), ["ticket"]);

    // Nothing of CryptoFunk's reached DelTran's pager or channel, nor any
    // inhibited alert anyone.
    std::thread::sleep(Duration::from_secs(3));
    for r in sink.received() {
        if r.body.contains("CryptoFunk") {
            assert!(
                r.json["client"] == "CryptoFunk Alertmanager"
                    || r.json["channel"] == "#cryptofunk-alerts",
                "a CryptoFunk alert reached DelTran's receivers: {}",
                r.body
            );
        }
        for inhibited in [
            "CryptoFunkMCPToolCallFailures",
            "CryptoFunkAgentUnhealthy",
            "CryptoFunkDrawdownHigh",
            "CryptoFunkHighErrorRate on market-data",
        ] {
            assert!(
                !r.body.contains(inhibited),
                "an inhibited alert was delivered: {}",
                r.body
            );
        }
    }
}
