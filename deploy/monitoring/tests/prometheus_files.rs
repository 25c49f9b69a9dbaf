//! The shipped Prometheus files, checked by the tools users run on them
//! (promtool check config, check rules with lint, test rules) and held to
//! the house rules: every alert has a severity, summary, description and a
//! runbook section that exists, and a unit test where it fires and one where
//! it stays quiet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use monitoring::generate::{RUNBOOK_BASE, repo_root};
use monitoring::rules::{Rule, load_rules, test_coverage, yaml_files};

fn prometheus_dir() -> PathBuf {
    repo_root().join("deploy/prometheus")
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let mut cmd = Command::new(testkit::promtool_binary().expect("apt-get install prometheus"));
    cmd.current_dir(dir).args(args);
    testkit::run_command_ok(cmd, None, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("promtool {args:?} failed:\n{e}"))
}

/// The YAML files of `deploy/prometheus/<sub>`, as promtool arguments.
fn yaml_paths(sub: &str) -> Vec<String> {
    yaml_files(&prometheus_dir().join(sub))
        .unwrap()
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

fn alerts() -> Vec<(PathBuf, Rule)> {
    load_rules(&prometheus_dir().join("rules"))
        .unwrap()
        .into_iter()
        .filter(|(_, r)| r.alert.is_some())
        .collect()
}

#[test]
fn promtool_accepts_the_config_its_rules_and_its_targets() {
    let out = promtool(&["check", "config", "prometheus.yml"], &prometheus_dir());
    assert!(out.contains("SUCCESS: prometheus.yml is valid"), "{out}");
    // Every rule file is found through rule_files.
    let files = yaml_files(&prometheus_dir().join("rules")).unwrap();
    assert!(
        out.contains(&format!("SUCCESS: {} rule files found", files.len())),
        "{out}"
    );
}

#[test]
fn promtool_lints_every_rule_file_clean() {
    let files = yaml_paths("rules");
    let mut args = vec!["check", "rules", "--lint=duplicate-rules", "--lint-fatal"];
    args.extend(files.iter().map(String::as_str));
    promtool(&args, &prometheus_dir());
}

#[test]
fn promtool_unit_tests_pass_at_production_timings() {
    let files = yaml_paths("tests");
    assert!(!files.is_empty());
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    let out = promtool(&args, &prometheus_dir().join("tests"));
    assert_eq!(out.matches("SUCCESS").count(), files.len(), "{out}");
}

#[test]
fn prometheus_2_refuses_the_otlp_block_which_is_why_it_lives_apart() {
    let mut cmd = Command::new(testkit::promtool_binary().unwrap());
    cmd.current_dir(prometheus_dir())
        .args(["check", "config", "prometheus-otlp.yml"]);
    let out = testkit::run_command(cmd, None, Duration::from_secs(60)).unwrap();
    assert!(!out.status.success());
    assert!(
        out.combined().contains("field otlp not found"),
        "{}",
        out.combined()
    );
}

/// The `otlp:` keys Prometheus 3 accepts (config/config.go, OTLPConfig).
const PROMETHEUS_3_OTLP_KEYS: [&str; 9] = [
    "promote_all_resource_attributes",
    "promote_resource_attributes",
    "ignore_resource_attributes",
    "translation_strategy",
    "keep_identifying_resource_attributes",
    "convert_histograms_to_nhcb",
    "promote_scope_metadata",
    "label_name_underscore_sanitization",
    "label_name_preserve_multiple_underscores",
];

#[test]
fn the_prometheus_3_config_promotes_the_labels_dashboards_select_on() {
    let text = std::fs::read_to_string(prometheus_dir().join("prometheus-otlp.yml")).unwrap();
    let cfg: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let otlp = cfg["otlp"].as_mapping().expect("an otlp block");
    for key in otlp.keys() {
        let key = key.as_str().unwrap();
        assert!(
            PROMETHEUS_3_OTLP_KEYS.contains(&key),
            "Prometheus 3 has no otlp.{key}"
        );
    }
    let promoted: BTreeSet<&str> = otlp["promote_resource_attributes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for attr in [
        "service.name",
        "service.namespace",
        "service.instance.id",
        "deployment.environment.name",
        "k8s.namespace.name",
        "k8s.pod.name",
    ] {
        assert!(promoted.contains(attr), "{attr} is not promoted");
    }
    assert!(
        promoted.iter().all(|a| !a.is_empty()),
        "empty names are refused"
    );
    assert_eq!(
        otlp["translation_strategy"],
        "UnderscoreEscapingWithSuffixes"
    );
    assert!(
        cfg["storage"]["tsdb"]["out_of_order_time_window"].is_string(),
        "pushed samples need an out-of-order window"
    );
    // Everything else is the base file, which promtool checked.
    let base: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(prometheus_dir().join("prometheus.yml")).unwrap(),
    )
    .unwrap();
    for (key, value) in base.as_mapping().unwrap() {
        assert_eq!(
            &cfg[key.as_str().unwrap()],
            value,
            "{key:?} differs from prometheus.yml"
        );
    }
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook_section() {
    let runbooks = repo_root().join("deploy/runbooks");
    let dashboards: Vec<String> = monitoring::dashboards::all()
        .iter()
        .map(|d| d.dashboard.to_json()["title"].as_str().unwrap().to_string())
        .collect();
    let all = alerts();
    assert!(all.len() >= 20, "{} alerts", all.len());
    for (file, rule) in &all {
        let name = rule.alert.as_deref().unwrap();
        let at = format!("{name} in {}", file.display());
        let severity = rule.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("critical" | "warning" | "none")),
            "{at}: severity {severity:?}"
        );
        assert_eq!(
            severity == Some("none"),
            name == "Watchdog",
            "{at}: only the watchdog pages nobody"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                rule.annotations
                    .get(key)
                    .is_some_and(|v| !v.trim().is_empty()),
                "{at}: no {key}"
            );
        }
        let url = &rule.annotations["runbook_url"];
        let rest = url
            .strip_prefix(RUNBOOK_BASE)
            .unwrap_or_else(|| panic!("{at}: runbook_url {url} is not under {RUNBOOK_BASE}"));
        let (file_name, anchor) = rest
            .split_once('#')
            .unwrap_or_else(|| panic!("{at}: no #section"));
        assert_eq!(
            anchor,
            name.to_lowercase(),
            "{at}: the anchor is the alert name"
        );
        let text = std::fs::read_to_string(runbooks.join(file_name))
            .unwrap_or_else(|_| panic!("{at}: runbook {file_name} does not exist"));
        let section = text
            .split("\n## ")
            .find(|s| s.lines().next().map(str::trim) == Some(name))
            .unwrap_or_else(|| panic!("{at}: {file_name} has no `## {name}` section"));
        // What to look at first, in the alert's own section: a dashboard
        // that exists, and a trace query where traces can help.
        assert!(section.contains("**Look first**"), "{at}: no 'Look first'");
        if name != "Watchdog" {
            assert!(
                dashboards.iter().any(|d| section.contains(d.as_str())),
                "{at}: its section in {file_name} names no dashboard"
            );
        }
        if name.starts_with("Engine")
            || name.starts_with("Settlement")
            || name.contains("Payment")
            || name.starts_with("CryptoFunk")
        {
            assert!(
                section.contains("in Tempo") && section.contains("resource.service.name"),
                "{at}: its section in {file_name} gives no trace query"
            );
        }
    }
}

#[test]
fn every_alert_has_a_unit_test_where_it_fires_and_one_where_it_stays_quiet() {
    let coverage = test_coverage(&prometheus_dir().join("tests")).unwrap();
    let defined: BTreeSet<(String, String)> = alerts()
        .iter()
        .map(|(_, r)| (r.alert.clone().unwrap(), r.labels["severity"].clone()))
        .collect();
    let mut missing = BTreeMap::new();
    for (name, severity) in &defined {
        let fires = coverage.fires.contains(&(name.clone(), severity.clone()));
        // The watchdog fires from the first evaluation on: it has no quiet case.
        let quiet = name == "Watchdog" || coverage.quiet.contains(name);
        if !fires || !quiet {
            missing.insert(format!("{name} ({severity})"), (fires, quiet));
        }
    }
    assert!(
        missing.is_empty(),
        "alerts without a firing (per severity) and a quiet unit test, as (fires, quiet): {missing:?}"
    );
    let names: BTreeSet<&String> = defined.iter().map(|(n, _)| n).collect();
    for (tested, _) in &coverage.fires {
        assert!(
            names.contains(tested),
            "tests name {tested}, which no rule defines"
        );
    }
}

#[test]
fn rules_name_only_recorded_or_documented_series() {
    let rules = load_rules(&prometheus_dir().join("rules")).unwrap();
    let recorded: BTreeSet<String> = rules.iter().filter_map(|(_, r)| r.record.clone()).collect();
    let collector = monitoring::rules::collector_metrics(&repo_root()).unwrap();
    for (file, rule) in &rules {
        for s in monitoring::promql::selectors(&rule.expr).unwrap() {
            let name = s.name.clone().expect("every selector names its metric");
            if name.contains(':') {
                assert!(
                    recorded.contains(&name),
                    "{}: {name} is recorded nowhere",
                    file.display()
                );
            }
            if name.starts_with("otelcol_") || name.starts_with("traces_span_metrics_") {
                assert!(
                    collector.contains(&name),
                    "{}: {name} is not in collector-metrics.txt",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn the_shipped_targets_label_each_engine_service_and_language() {
    let text =
        std::fs::read_to_string(prometheus_dir().join("targets/deltran-engines.yml")).unwrap();
    let groups: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&text).unwrap();
    let services: BTreeSet<&str> = groups
        .iter()
        .map(|g| g["labels"]["service"].as_str().unwrap())
        .collect();
    assert_eq!(services.len(), 8);
    for g in &groups {
        assert_eq!(g["labels"]["language"], "rust");
        assert_eq!(g["targets"].as_sequence().unwrap().len(), 1);
    }
}

/// CryptoFunk's components and their default ports, from its metrics
/// contract.
const CRYPTOFUNK_COMPONENTS: [(&str, u16); 14] = [
    ("api-server", 8080),
    ("orchestrator", 8081),
    ("market-data", 9201),
    ("technical-indicators", 9202),
    ("risk-analyzer", 9203),
    ("order-executor", 9204),
    ("technical-agent", 9101),
    ("orderbook-agent", 9102),
    ("sentiment-agent", 9103),
    ("trend-agent", 9104),
    ("reversion-agent", 9105),
    ("arbitrage-agent", 9106),
    ("risk-agent", 9107),
    ("llm-gateway", 9300),
];

#[test]
fn the_shipped_cryptofunk_targets_are_its_fourteen_components_on_their_default_ports() {
    let text = std::fs::read_to_string(prometheus_dir().join("targets/cryptofunk.yml")).unwrap();
    let groups: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&text).unwrap();
    let shipped: BTreeMap<String, String> = groups
        .iter()
        .map(|g| {
            assert_eq!(g["targets"].as_sequence().unwrap().len(), 1, "{g:?}");
            (
                g["labels"]["service"].as_str().unwrap().to_string(),
                g["targets"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let contract: BTreeMap<String, String> = CRYPTOFUNK_COMPONENTS
        .iter()
        .map(|(name, port)| (name.to_string(), format!("localhost:{port}")))
        .collect();
    assert_eq!(shipped, contract);
    assert_eq!(groups.len(), 14, "a component listed twice");
    // The job that reads them, and the target file promtool checked.
    let cfg: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(prometheus_dir().join("prometheus.yml")).unwrap(),
    )
    .unwrap();
    let job = cfg["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "cryptofunk")
        .expect("a cryptofunk job");
    assert_eq!(
        job["file_sd_configs"][0]["files"][0],
        "targets/cryptofunk.yml"
    );
    assert_eq!(job["metrics_path"], "/metrics");
}

/// The labels every CryptoFunk series carries besides its own.
const RESOURCE_LABELS: [&str; 3] = [
    "deployment_environment_name",
    "service_namespace",
    "service_name",
];

#[test]
fn cryptofunk_alerts_go_to_the_trading_desk_and_read_only_its_contract() {
    let contract = monitoring::rules::cryptofunk_metrics(&repo_root()).unwrap();
    let file = prometheus_dir().join("rules/cryptofunk.alerts.yml");
    let rules = load_rules(&prometheus_dir().join("rules")).unwrap();
    let mut names = BTreeSet::new();
    for (path, rule) in &rules {
        let Some(name) = rule.alert.as_deref() else {
            continue;
        };
        let ours = path == &file;
        // Routing keys on the team label: CryptoFunk's alerts all carry it,
        // nothing else does (DelTran's routes stay as they are).
        assert_eq!(
            rule.labels.get("team").map(String::as_str),
            ours.then_some("trading-desk"),
            "{name} in {}",
            path.display()
        );
        assert_eq!(name.starts_with("CryptoFunk"), ours, "{name}");
        if !ours {
            continue;
        }
        names.insert(name.to_string());
        for s in monitoring::promql::selectors(&rule.expr).unwrap() {
            let metric = s.name.clone().unwrap();
            let labels: BTreeSet<&str> = s
                .matchers
                .iter()
                .map(|m| m.label.as_str())
                .filter(|l| *l != "__name__")
                .collect();
            let allowed: BTreeSet<&str> = if metric == "up" {
                assert_eq!(s.equals("job"), Some("cryptofunk"), "{name}: {metric}");
                BTreeSet::from(["job", "instance", "service"])
            } else if metric.contains(':') {
                // Recorded from the contract's series (recording.rules.yml).
                RESOURCE_LABELS.into_iter().chain(["quantile"]).collect()
            } else {
                let own = contract
                    .get(&metric)
                    .unwrap_or_else(|| panic!("{name}: {metric} is not in cryptofunk-metrics.txt"));
                RESOURCE_LABELS
                    .into_iter()
                    .chain(own.iter().map(String::as_str))
                    .collect()
            };
            for l in &labels {
                assert!(
                    allowed.contains(l),
                    "{name}: {metric} has no label {l} in the contract"
                );
            }
            // Series every system exports (HTTP, MCP, LLM, liveness) are
            // CryptoFunk's only in its namespace.
            if metric != "up" && !metric.starts_with("cryptofunk_") {
                assert_eq!(
                    s.equals("service_namespace"),
                    Some("cryptofunk"),
                    "{name}: {metric} is not scoped to CryptoFunk"
                );
            }
        }
    }
    assert_eq!(
        names,
        BTreeSet::from(
            [
                "CryptoFunkComponentDown",
                "CryptoFunkComponentNotReporting",
                "CryptoFunkHighErrorRate",
                "CryptoFunkAgentUnhealthy",
                "CryptoFunkLLMErrorRatio",
                "CryptoFunkLLMLatencyHigh",
                "CryptoFunkMCPToolCallFailures",
                "CryptoFunkDrawdownHigh",
                "CryptoFunkCircuitBreakerTripped",
            ]
            .map(String::from)
        )
    );
}
