//! The production dry run: the shipped Prometheus configuration, rules and
//! Alertmanager routing (deploy/), against the real fleet.
//!
//! 1. A healthy fleet: Prometheus scrapes all eight engines with the shipped
//!    config; for longer than the longest `for:` no alert but the watchdog
//!    fires, and nobody is notified.
//! 2. A fleet with faults (token-engine fails 30% of its requests,
//!    risk-engine is stopped for 12 s, then its circuit breaker is tripped):
//!    the page for the stopped engine and for the breaker reach the test's
//!    PagerDuty endpoint, the 5xx ticket reaches its Slack endpoint, each with
//!    the right receiver, labels and runbook.
//! 3. On that data, every target of every dashboard, read from the JSON
//!    files with each template variable set to each of its real values,
//!    returns data, or the panel explains why it cannot (an engine without a
//!    database, no collector); every metric a panel or rule names exists;
//!    every engine's /metrics passes `promtool check metrics`; and the names
//!    and labels the push path gives the same OTLP metrics are the ones the
//!    dashboards select.
//!
//! Timings are shortened as `monitoring::staging` documents (scrape and
//! evaluation every second, `for:` and Alertmanager waits ÷ 30); the files on
//! disk are what production runs, and promtool tests cover their timings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Launcher, over_limit_payment, post_payment};
use deltran_fleet::engines::EngineKind;
use monitoring::dashboard_queries::{empty_targets, is_of_system, load_dir};
use monitoring::generate::repo_root;
use monitoring::promql::selectors;
use monitoring::push_path::{Kind, label_name, prometheus_names};
use monitoring::staging::{PrometheusTargets, Receivers, stage_alertmanager, stage_prometheus};
use serde_json::Value;
use telemetry::testing::{MetricData, OtlpReceiver, ReceivedMetric};

const WAIT: Duration = Duration::from_secs(90);
/// Longer than the longest shortened `for:` (15 m ÷ 30 = 30 s).
const HEALTHY_OBSERVATION: Duration = Duration::from_secs(40);
/// What Grafana's `$__rate_interval` is with a 15 s scrape interval.
const RATE_INTERVAL: &str = "1m";

fn results(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn collector_metrics() -> BTreeSet<String> {
    monitoring::rules::collector_metrics(&repo_root()).unwrap()
}

/// Every query deploy/ ships, variables filled with a placeholder.
fn shipped_queries() -> Vec<String> {
    monitoring::dashboard_queries::shipped_queries(&repo_root(), "x", RATE_INTERVAL).unwrap()
}

fn wait_all_up(prometheus: &testkit::Prometheus, launcher: &Launcher) {
    let instances: BTreeSet<String> = launcher
        .fleet
        .engines
        .iter()
        .map(|e| format!("127.0.0.1:{}", e.port))
        .collect();
    prometheus
        .wait_for(r#"up{job="deltran"} == 1"#, WAIT, |r| {
            results(r)
                .iter()
                .filter_map(|s| s["metric"]["instance"].as_str().map(String::from))
                .collect::<BTreeSet<_>>()
                == instances
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", launcher.logs()));
}

/// The firing alerts other than the watchdog. (Pending ones are normal for
/// the first seconds: a rate over a counter that has one sample is not
/// there yet; one that stays true fires within the observation.)
fn non_watchdog_alerts(prometheus: &testkit::Prometheus) -> Vec<Value> {
    prometheus.alerts().unwrap()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] != "Watchdog" && a["state"] == "firing")
        .cloned()
        .collect()
}

#[test]
fn the_shipped_scrape_targets_are_the_fleets_default_ports() {
    let text =
        std::fs::read_to_string(repo_root().join("deploy/prometheus/targets/deltran-engines.yml"))
            .unwrap();
    let groups: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&text).unwrap();
    let shipped: BTreeMap<String, String> = groups
        .iter()
        .map(|g| {
            (
                g["labels"]["service"].as_str().unwrap().to_string(),
                g["targets"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let fleet: BTreeMap<String, String> = EngineKind::ALL
        .iter()
        .map(|k| {
            (
                k.name().to_string(),
                format!("localhost:{}", k.default_port()),
            )
        })
        .collect();
    assert_eq!(shipped, fleet);
}

#[test]
fn production_dry_run_alerts_fire_and_route_and_every_dashboard_shows_data() {
    let root = repo_root();
    let receiver = OtlpReceiver::start().unwrap();
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
    let otlp = [("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())];

    // 1. Healthy.
    let mut healthy = Launcher::start(&["--rate", "10", "--clearing-window-ms", "500"], &otlp);
    let prom_files = stage_prometheus(
        &root,
        &PrometheusTargets {
            engines: healthy.scrape_targets(),
            // The shipped collector targets (none: no collector runs here).
            collectors: None,
            alertmanagers: vec![alertmanager.host_port()],
            environment: "prod".into(),
        },
    )
    .unwrap();
    let prometheus = testkit::Prometheus::start_from_file(
        &prom_files.config,
        monitoring::staging::PROMETHEUS_FLAGS,
    )
    .unwrap();
    wait_all_up(&prometheus, &healthy);
    let until = Instant::now() + HEALTHY_OBSERVATION;
    while Instant::now() < until {
        let alerts = non_watchdog_alerts(&prometheus);
        assert!(
            alerts.is_empty(),
            "a healthy fleet raised alerts: {alerts:#?}\n{}",
            healthy.logs()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // Prometheus spreads each group's first evaluation across its interval
    // (1 m for the SLO groups): a rule not yet evaluated reports "unknown".
    let evaluated_by = Instant::now() + Duration::from_secs(90);
    let rules = loop {
        let rules = prometheus.rules().unwrap();
        let every_rule_evaluated = rules["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .all(|r| r["health"] != "unknown");
        if every_rule_evaluated || Instant::now() > evaluated_by {
            break rules;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "rule evaluation failed: {rule}");
        }
    }
    // The heartbeat made it to Alertmanager and its receiver; nobody was notified.
    let watchdog = alertmanager
        .alerts()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "Watchdog")
        .cloned()
        .expect("the watchdog reaches Alertmanager");
    assert_eq!(watchdog["receivers"][0]["name"], "deadmans-switch");
    assert_eq!(watchdog["labels"]["environment"], "prod");
    assert!(
        sink.received().is_empty(),
        "notified while healthy: {:?}",
        sink.received()
    );

    // Swap fleets without Prometheus seeing targets fail.
    prom_files.set_targets("deltran-engines.yml", &[]).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(healthy.interrupt().success(), "{}", healthy.logs());

    // 2. Faults.
    let mut env = otlp.to_vec();
    env.push(("DELTRAN_RISK_BREAKER_THRESHOLD", "3".into()));
    env.push(("DELTRAN_RISK_BREAKER_COOLDOWN_MS", "30000".into()));
    let mut faulty = Launcher::start(
        &[
            "--rate",
            "10",
            "--clearing-window-ms",
            "500",
            "--errors",
            "token-engine=0.3",
            "--outage",
            "risk-engine=10-22",
        ],
        &env,
    );
    prom_files
        .set_targets("deltran-engines.yml", &faulty.scrape_targets())
        .unwrap();
    let logs = || {
        format!(
            "{}\nprometheus:\n{}\nalertmanager:\n{}",
            faulty.logs(),
            prometheus.log_tail(20),
            alertmanager.log_tail(20)
        )
    };

    // The stopped engine pages.
    let page = sink
        .wait_for(WAIT, |r| {
            r.path == "/pagerduty"
                && r.json["payload"]["summary"]
                    == "[FIRING:1] EngineDown on risk-engine (prod): risk-engine is down"
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let details = &page.json["payload"]["custom_details"];
    assert_eq!(page.json["routing_key"], "dry-run-key");
    assert_eq!(page.json["payload"]["severity"], "critical");
    assert_eq!(details["service_name"], "risk-engine");
    assert_eq!(details["environment"], "prod");
    assert_eq!(
        details["runbook_url"],
        format!(
            "{}engine-down.md#enginedown",
            monitoring::generate::RUNBOOK_BASE
        )
    );
    assert!(
        details["summary"]
            .as_str()
            .unwrap()
            .contains("Prometheus has not been able to scrape risk-engine"),
        "{details}"
    );
    let in_alertmanager = |name: &str, service: &str| -> Value {
        alertmanager
            .alerts()
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"]["service_name"] == service)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let down = in_alertmanager("EngineDown", "risk-engine");
    assert_eq!(down["receivers"][0]["name"], "pager", "{down}");
    for (label, value) in [
        ("severity", "critical"),
        ("environment", "prod"),
        ("cluster", "local"),
        ("job", "deltran"),
        ("service", "risk-engine"),
    ] {
        assert_eq!(down["labels"][label], value, "{down}");
    }

    // Injected 5xx: a ticket, naming the engine, the value and the runbook.
    let ticket = sink
        .wait_for(WAIT, |r| {
            r.path == "/slack"
                && r.json["attachments"][0]["title"]
                    == "[FIRING:1] EngineHighErrorRatio on token-engine (prod)"
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let text = ticket.json["attachments"][0]["text"].as_str().unwrap();
    assert!(text.contains("token-engine answered"), "{text}");
    assert!(
        text.contains("% of its HTTP requests with a server error"),
        "the value: {text}"
    );
    assert!(
        text.contains(&format!(
            "Runbook: {}engine-errors.md#enginehigherrorratio",
            monitoring::generate::RUNBOOK_BASE
        )),
        "{text}"
    );
    assert_eq!(
        in_alertmanager("EngineHighErrorRatio", "token-engine")["receivers"][0]["name"],
        "ticket"
    );

    // risk-engine is back: trip its circuit breaker, which pages.
    let risk = faulty.fleet.engine("risk-engine").unwrap().port;
    let back = Instant::now() + WAIT;
    while !matches!(
        testkit::http_get(&format!("http://127.0.0.1:{risk}/ready")),
        Ok((200, _))
    ) {
        assert!(
            Instant::now() < back,
            "risk-engine did not come back\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let gateway = faulty.fleet.gateway_url.clone();
    let breaker_deadline = Instant::now() + WAIT;
    loop {
        let (code, view) = post_payment(&gateway, &over_limit_payment());
        if view["reason"]
            .as_str()
            .is_some_and(|r| r.contains("circuit_breaker_open"))
        {
            break;
        }
        assert!(
            Instant::now() < breaker_deadline,
            "breaker never opened: {code} {view}"
        );
    }
    sink.wait_for(WAIT, |r| {
        r.path == "/pagerduty"
            && r.json["payload"]["summary"]
                == "[FIRING:1] RiskCircuitBreakerOpen on risk-engine (prod): risk-engine's circuit breaker is open"
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    // Every notification so far went to the receiver its severity names.
    for r in sink.received() {
        let title = r.json["payload"]["summary"]
            .as_str()
            .or(r.json["attachments"][0]["title"].as_str())
            .unwrap_or_default()
            .to_string();
        assert!(
            !title.contains("Watchdog"),
            "the watchdog was delivered: {title}"
        );
    }

    // 3. Dashboards, names, lint and the push path, on this data.
    std::thread::sleep(Duration::from_secs(3));
    report_costs(&prometheus);
    let failures = check_dashboards(&prometheus);
    assert!(failures.is_empty(), "dashboards:\n{}", failures.join("\n"));
    let unknown = unknown_metric_names(&prometheus);
    assert!(
        unknown.is_empty(),
        "panels and rules name series nothing exports: {unknown:?}"
    );
    for e in &faulty.fleet.engines {
        let (code, text) =
            testkit::http_get(&format!("http://127.0.0.1:{}/metrics", e.port)).unwrap();
        assert_eq!(code, 200);
        testkit::promtool_check_metrics(&text).unwrap_or_else(|err| panic!("{}: {err}", e.name));
    }
    let parity = push_path_differences(&prometheus, &receiver.metrics());
    assert!(
        parity.is_empty(),
        "pull and push paths differ:\n{}",
        parity.join("\n")
    );

    assert!(faulty.interrupt().success(), "{}", faulty.logs());
    drop(prometheus);
    drop(alertmanager);
}

/// What the monitoring costs Prometheus, for the record (`-- --nocapture`):
/// series per engine, recorded series, rule evaluation time per round.
fn report_costs(prometheus: &testkit::Prometheus) {
    let number = |q: &str| -> f64 {
        results(&prometheus.query(q).unwrap())
            .first()
            .and_then(|s| s["value"][1].as_str()?.parse().ok())
            .unwrap_or(0.0)
    };
    let per_engine = prometheus
        .query(r#"count by (service_name) ({job="deltran", service_name!=""})"#)
        .unwrap();
    let per_engine: Vec<String> = results(&per_engine)
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["metric"]["service_name"].as_str().unwrap_or("?"),
                s["value"][1].as_str().unwrap_or("?")
            )
        })
        .collect();
    let recorded = number(r#"count({__name__=~".+:.+"})"#);
    let rules = prometheus.rules().unwrap();
    let evaluation: f64 = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["evaluationTime"].as_f64())
        .sum();
    let groups = rules["groups"].as_array().map_or(0, Vec::len);
    eprintln!(
        "monitoring cost: scraped series per engine: {}; total {}; recorded series {recorded}; {groups} rule groups evaluated in {:.1} ms per round",
        per_engine.join(", "),
        number(r#"count({job="deltran"})"#),
        evaluation * 1000.0
    );
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

/// Every target of every dashboard under every combination of variable
/// values: data, or a panel that explains why there cannot be any.
fn check_dashboards(prometheus: &testkit::Prometheus) -> Vec<String> {
    let collector = collector_metrics();
    let mut failures = Vec::new();
    let mut per_service: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let dashboards = load_dir(&repo_root().join("deploy/grafana/dashboards")).unwrap();
    // CryptoFunk's dashboards are proven against CryptoFunk (its own dry
    // run in cryptofunk/tests); this fleet exports none of their series.
    for d in dashboards.iter().filter(|d| !is_of_system(d, "cryptofunk")) {
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
            let names: Vec<String> = selectors(&e.expr)
                .unwrap()
                .into_iter()
                .filter_map(|s| {
                    let collector_scoped = s.equals("job") == Some("otel-collector");
                    s.name.filter(|_| !collector_scoped)
                })
                .collect();
            // Nothing but the collector's series: no collector runs here.
            let collector_only = names.iter().all(|n| collector.contains(n));
            // A single engine that does not export one of the series.
            let not_exported = e.service().is_some_and(|s| {
                let exported = per_service
                    .entry(s.to_string())
                    .or_insert_with(|| names_of(prometheus, s));
                names.iter().any(|n| !exported.contains(n))
            });
            let explained = e.panel.no_value.is_some() && (collector_only || not_exported);
            if !explained {
                failures.push(format!(
                    "{} / {} [{}] with {:?}: no data and no reason\n    {}",
                    d.title, e.panel.title, e.target.ref_id, e.vars, e.expr
                ));
            }
        }
    }
    failures
}

/// Names that panels and rules select but neither the fleet, the rules nor
/// the documented collector export.
fn unknown_metric_names(prometheus: &testkit::Prometheus) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = prometheus.metric_names().unwrap().into_iter().collect();
    known.extend(collector_metrics());
    // What CryptoFunk exports, which its own dry run proves on its series.
    known.extend(
        monitoring::rules::cryptofunk_metrics(&repo_root())
            .unwrap()
            .into_keys(),
    );
    // And what is recorded from CryptoFunk's series alone (its MCP rates).
    let rules =
        monitoring::rules::load_rules(&repo_root().join("deploy/prometheus/rules")).unwrap();
    loop {
        let before = known.len();
        for (_, rule) in &rules {
            let Some(record) = &rule.record else { continue };
            let names: Vec<String> = selectors(&rule.expr)
                .unwrap()
                .into_iter()
                .filter_map(|s| s.name)
                .collect();
            if !names.is_empty() && names.iter().all(|n| known.contains(n)) {
                known.insert(record.clone());
            }
        }
        if known.len() == before {
            break;
        }
    }
    let exprs = shipped_queries();
    let known_list: Vec<&str> = known.iter().map(String::as_str).collect();
    let mut unknown = BTreeSet::new();
    for e in exprs {
        for s in selectors(&e).unwrap() {
            match &s.name {
                Some(n) if !known.contains(n) => {
                    unknown.insert(n.clone());
                }
                None if !known_list.iter().any(|k| s.selects_name(k)) => {
                    unknown.insert(format!("{:?}", s.matchers));
                }
                _ => {}
            }
        }
    }
    unknown
}

fn kind(m: &ReceivedMetric) -> Option<Kind> {
    match &m.data {
        MetricData::Sum {
            monotonic: true, ..
        } => Some(Kind::MonotonicSum),
        MetricData::Sum { .. } => Some(Kind::Sum),
        MetricData::Gauge { .. } => Some(Kind::Gauge),
        MetricData::Histogram { .. } => Some(Kind::Histogram),
        _ => None,
    }
}

/// The push path, computed from the OTLP the engines sent (Prometheus 3's
/// translation, the resource attributes otlp.yml promotes), against what
/// Prometheus scraped: the same series names per engine, and every label a
/// panel or rule selects on present on both.
fn push_path_differences(
    prometheus: &testkit::Prometheus,
    metrics: &[ReceivedMetric],
) -> Vec<String> {
    let otlp_cfg: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/prometheus/otlp.yml")).unwrap(),
    )
    .unwrap();
    let promoted: Vec<String> = otlp_cfg["otlp"]["promote_resource_attributes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // The current process of each engine: its last instance id.
    let mut latest_instance: BTreeMap<String, String> = BTreeMap::new();
    for m in metrics {
        if let (Some(s), Some(i)) = (
            m.resource.str("service.name"),
            m.resource.str("service.instance.id"),
        ) {
            latest_instance.insert(s.to_string(), i.to_string());
        }
    }
    let mut push: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for m in metrics {
        let (Some(service), Some(instance)) = (
            m.resource.str("service.name"),
            m.resource.str("service.instance.id"),
        ) else {
            continue;
        };
        if latest_instance.get(service).map(String::as_str) != Some(instance) || m.points_len() == 0
        {
            continue;
        }
        let Some(kind) = kind(m) else { continue };
        let mut labels: BTreeSet<String> = ["job", "instance"].map(String::from).into();
        labels.extend(
            promoted
                .iter()
                .filter(|a| m.resource.contains_key(a))
                .map(|a| label_name(a)),
        );
        let attribute_keys: Vec<String> = match &m.data {
            MetricData::Histogram { points, .. } => points
                .iter()
                .flat_map(|p| p.attributes.iter().map(|(k, _)| k.to_string()))
                .collect(),
            _ => m
                .number_points()
                .iter()
                .flat_map(|p| p.attributes.iter().map(|(k, _)| k.to_string()))
                .collect(),
        };
        labels.extend(attribute_keys.iter().map(|k| label_name(k)));
        for name in prometheus_names(&m.name, &m.unit, kind) {
            let mut l = labels.clone();
            if name.ends_with("_bucket") {
                l.insert("le".into());
            }
            push.entry(service.to_string())
                .or_default()
                .entry(name)
                .or_default()
                .extend(l);
        }
    }
    let mut diffs = Vec::new();
    for (service, series) in &push {
        // What the engine's /metrics gave (no recorded or synthetic series).
        let pull: BTreeSet<String> = results(
            &prometheus
                .query(&format!(
                    r#"group by (__name__) ({{job="deltran", service_name="{service}"}})"#
                ))
                .unwrap(),
        )
        .iter()
        .filter_map(|s| s["metric"]["__name__"].as_str().map(String::from))
        .filter(|n| n != "target_info")
        .collect();
        let pushed: BTreeSet<String> = series.keys().cloned().collect();
        for n in pushed.difference(&pull) {
            diffs.push(format!("{service}: {n} on the push path only"));
        }
        for n in pull.difference(&pushed) {
            diffs.push(format!("{service}: {n} on the pull path only"));
        }
    }
    // Labels the dashboards and rules select on, on both paths.
    let mut pull_labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let all_push: BTreeMap<String, BTreeSet<String>> =
        push.values()
            .flat_map(|m| m.iter())
            .fold(BTreeMap::new(), |mut acc, (n, l)| {
                acc.entry(n.clone())
                    .or_insert_with(BTreeSet::new)
                    .extend(l.iter().cloned());
                acc
            });
    let exprs = shipped_queries();
    for e in exprs {
        for s in selectors(&e).unwrap() {
            let Some(name) = s.name.clone() else { continue };
            let Some(pushed) = all_push.get(&name) else {
                continue;
            };
            let pulled = pull_labels.entry(name.clone()).or_insert_with(|| {
                results(&prometheus.query(&name).unwrap())
                    .iter()
                    .flat_map(|r| {
                        r["metric"]
                            .as_object()
                            .map(|o| o.keys().cloned().collect::<Vec<_>>())
                            .unwrap_or_default()
                    })
                    .collect()
            });
            for m in &s.matchers {
                if m.label == "__name__" || (m.op == "=" && m.value.is_empty()) {
                    continue;
                }
                // A label only some data carries (error.type once something
                // failed) proves nothing while neither path has it yet.
                match (pushed.contains(&m.label), pulled.contains(&m.label)) {
                    (true, false) => diffs.push(format!(
                        "{name}: label {} selected but missing on the pull path",
                        m.label
                    )),
                    (false, true) => diffs.push(format!(
                        "{name}: label {} selected but missing on the push path",
                        m.label
                    )),
                    (false, false) if !(m.op == "!=" && m.value.is_empty()) => diffs.push(format!(
                        "{name}: label {} selected but on neither path",
                        m.label
                    )),
                    _ => {}
                }
            }
        }
    }
    diffs.sort();
    diffs.dedup();
    diffs
}
