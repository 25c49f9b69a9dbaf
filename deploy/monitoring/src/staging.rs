//! Copies of the shipped Prometheus and Alertmanager files for a test run,
//! with exactly these changes, so a test sees in a minute what production
//! sees in an hour:
//!
//! - the `targets/` files name the servers the test started, and the
//!   targets files of systems the test does not run (`cryptofunk.yml` in a
//!   DelTran test) are empty: a target nobody listens on would fire its
//!   system's down alert, and a shipped default port may be another
//!   system's (CryptoFunk's api-server and DelTran's gateway share 8080);
//! - Prometheus scrapes and evaluates every second instead of every 15 s,
//!   and resends firing alerts every second ([`PROMETHEUS_FLAGS`]);
//! - every `for:` and `keep_firing_for:` and Alertmanager's `group_wait`,
//!   `group_interval` and `repeat_interval` are divided by
//!   [`TIME_FACTOR`] (never below one second);
//! - the `environment` external label is the test's (routing depends on it);
//! - Alertmanager's secret files (under [`SECRETS_DIR`] in production) are
//!   files of the staged copy holding the test receiver's URLs — every
//!   Slack webhook file the Slack URL, every PagerDuty routing-key file the
//!   test's key (the receivers tell their notifications apart by channel
//!   and client) — and its global `pagerduty_url` points at the test
//!   receiver.
//!
//! Expressions, thresholds, range windows, labels, annotations, routes,
//! receivers, inhibitions and templates stay byte-for-byte what ships;
//! `promtool test rules` covers the real timings.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::duration::PromDuration;

/// Flags a staged Prometheus runs with: alerts that fired before
/// Alertmanager was discovered are resent within a second, not a minute.
pub const PROMETHEUS_FLAGS: &[&str] = &["--rules.alert.resend-delay=1s"];

/// Where the shipped Alertmanager configuration reads its secret files.
pub const SECRETS_DIR: &str = "/etc/alertmanager/secrets/";

/// What every `for:` and Alertmanager wait is divided by in live tests.
pub const TIME_FACTOR: u64 = 30;

/// A staging failure.
#[derive(Debug, thiserror::Error)]
#[error("staging {path}: {message}")]
pub struct StageError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

fn err(path: &Path, message: impl ToString) -> StageError {
    StageError {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn read_yaml(path: &Path) -> Result<Value, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, e))?;
    serde_yaml_ng::from_str(&text).map_err(|e| err(path, e))
}

fn write_yaml(path: &Path, value: &Value) -> Result<(), StageError> {
    let text = serde_yaml_ng::to_string(value).map_err(|e| err(path, e))?;
    write(path, &text)
}

fn write(path: &Path, text: &str) -> Result<(), StageError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    }
    std::fs::write(path, text).map_err(|e| err(path, e))
}

/// Divides the duration stored under `key` (if any) by `factor`.
fn shorten(map: &mut Mapping, key: &str, factor: u64, path: &Path) -> Result<(), StageError> {
    if let Some(v) = map.get_mut(key) {
        let text = v
            .as_str()
            .ok_or_else(|| err(path, format!("{key} is not a duration")))?;
        let d = PromDuration::parse(text).map_err(|e| err(path, e))?;
        *v = Value::String(d.shortened(factor).to_string());
    }
    Ok(())
}

/// A file_sd target group.
#[derive(Clone, Debug)]
pub struct TargetGroup {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels every target gets.
    pub labels: Vec<(String, String)>,
}

/// What a staged Prometheus scrapes and where it alerts. Every other
/// targets file is staged empty; a test running another system names its
/// targets with [`Staged::set_targets`].
#[derive(Clone, Debug, Default)]
pub struct PrometheusTargets {
    /// `targets/deltran-engines.yml`.
    pub engines: Vec<TargetGroup>,
    /// `targets/otel-collector.yml`; `None` keeps the shipped file.
    pub collectors: Option<Vec<TargetGroup>>,
    /// `targets/alertmanager.yml` (`host:port`).
    pub alertmanagers: Vec<String>,
    /// The `environment` external label.
    pub environment: String,
}

fn target_groups(groups: &[TargetGroup]) -> Value {
    Value::Sequence(
        groups
            .iter()
            .map(|g| {
                let mut m = Mapping::new();
                m.insert(
                    "targets".into(),
                    Value::Sequence(g.targets.iter().map(|t| Value::String(t.clone())).collect()),
                );
                let labels: Mapping = g
                    .labels
                    .iter()
                    .map(|(k, v)| (Value::String(k.clone()), Value::String(v.clone())))
                    .collect();
                m.insert("labels".into(), Value::Mapping(labels));
                Value::Mapping(m)
            })
            .collect(),
    )
}

/// A staged copy: its directory and the file to start the server with.
#[derive(Debug)]
pub struct Staged {
    /// Removed on drop.
    pub dir: tempfile::TempDir,
    /// `prometheus.yml` or `alertmanager.yml` inside it.
    pub config: PathBuf,
}

impl Staged {
    /// Rewrites one file_sd targets file of a staged Prometheus (it
    /// notices within seconds).
    pub fn set_targets(&self, file: &str, groups: &[TargetGroup]) -> Result<(), StageError> {
        let path = self.dir.path().join("targets").join(file);
        // Write then rename, so Prometheus never reads half a file.
        let tmp = path.with_extension("tmp");
        write_yaml(&tmp, &target_groups(groups))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(&path, e))
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), StageError> {
    std::fs::create_dir_all(to).map_err(|e| err(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| err(from, e))? {
        let entry = entry.map_err(|e| err(from, e))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| err(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// A temporary copy of `deploy/<part>`, its configuration file's path and
/// parsed content.
fn staged_copy(
    root: &Path,
    part: &str,
    config_name: &str,
) -> Result<(tempfile::TempDir, PathBuf, Value), StageError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("staged-{part}"))
        .tempdir()
        .map_err(|e| err(Path::new("/tmp"), e))?;
    copy_dir(&root.join("deploy").join(part), dir.path())?;
    let config = dir.path().join(config_name);
    let cfg = read_yaml(&config)?;
    Ok((dir, config, cfg))
}

/// Stages `deploy/prometheus` under `root` for a test run.
pub fn stage_prometheus(root: &Path, targets: &PrometheusTargets) -> Result<Staged, StageError> {
    let (dir, config, mut cfg) = staged_copy(root, "prometheus", "prometheus.yml")?;
    let global = cfg
        .get_mut("global")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| err(&config, "no global section"))?;
    for key in ["scrape_interval", "evaluation_interval"] {
        global.insert(key.into(), "1s".into());
    }
    global.insert("scrape_timeout".into(), "1s".into());
    global
        .get_mut("external_labels")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| err(&config, "no global.external_labels"))?
        .insert(
            "environment".into(),
            Value::String(targets.environment.clone()),
        );
    // Scrape jobs may set their own intervals; the test's second wins.
    if let Some(jobs) = cfg
        .get_mut("scrape_configs")
        .and_then(Value::as_sequence_mut)
    {
        for job in jobs.iter_mut().filter_map(Value::as_mapping_mut) {
            for key in ["scrape_interval", "scrape_timeout"] {
                if job.contains_key(key) {
                    job.insert(key.into(), "1s".into());
                }
            }
        }
    }
    write_yaml(&config, &cfg)?;
    for path in
        crate::rules::yaml_files(&dir.path().join("rules")).map_err(|e| err(&e.path, e.message))?
    {
        let mut rules = read_yaml(&path)?;
        for group in rules
            .get_mut("groups")
            .and_then(Value::as_sequence_mut)
            .into_iter()
            .flatten()
        {
            for rule in group
                .get_mut("rules")
                .and_then(Value::as_sequence_mut)
                .into_iter()
                .flatten()
                .filter_map(Value::as_mapping_mut)
            {
                shorten(rule, "for", TIME_FACTOR, &path)?;
                shorten(rule, "keep_firing_for", TIME_FACTOR, &path)?;
            }
        }
        write_yaml(&path, &rules)?;
    }
    let staged = Staged { dir, config };
    let named = [
        "deltran-engines.yml",
        "otel-collector.yml",
        "alertmanager.yml",
    ];
    for path in crate::rules::yaml_files(&staged.dir.path().join("targets"))
        .map_err(|e| err(&e.path, e.message))?
    {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !named.contains(&file) {
            staged.set_targets(file, &[])?;
        }
    }
    staged.set_targets("deltran-engines.yml", &targets.engines)?;
    if let Some(collectors) = &targets.collectors {
        staged.set_targets("otel-collector.yml", collectors)?;
    }
    staged.set_targets(
        "alertmanager.yml",
        &[TargetGroup {
            targets: targets.alertmanagers.clone(),
            labels: Vec::new(),
        }],
    )?;
    Ok(staged)
}

/// Where a staged Alertmanager sends notifications.
#[derive(Clone, Debug)]
pub struct Receivers {
    /// Written to every Slack webhook file (`secrets/slack-webhook-url`,
    /// `secrets/trading-desk-slack-webhook-url`: the ticket receivers).
    pub slack_url: String,
    /// Set as `global.pagerduty_url` (the paging receivers' PagerDuty).
    pub pagerduty_url: String,
    /// Written to every PagerDuty routing-key file
    /// (`secrets/pagerduty-routing-key`, `secrets/trading-desk-pagerduty-routing-key`).
    pub pagerduty_routing_key: String,
}

fn shorten_route(route: &mut Mapping, path: &Path) -> Result<(), StageError> {
    for key in ["group_wait", "group_interval", "repeat_interval"] {
        shorten(route, key, TIME_FACTOR, path)?;
    }
    if let Some(children) = route.get_mut("routes").and_then(Value::as_sequence_mut) {
        for child in children.iter_mut().filter_map(Value::as_mapping_mut) {
            shorten_route(child, path)?;
        }
    }
    Ok(())
}

/// Points every `*_file` setting under [`SECRETS_DIR`] into `secrets`;
/// collects (setting, file name) of each.
fn redirect_secret_files(value: &mut Value, secrets: &Path, found: &mut Vec<(String, String)>) {
    match value {
        Value::Mapping(map) => {
            for (key, v) in map.iter_mut() {
                let file_key = key.as_str().filter(|k| k.ends_with("_file"));
                match (file_key, v) {
                    (Some(key), Value::String(path)) => {
                        if let Some(name) = path.strip_prefix(SECRETS_DIR) {
                            found.push((key.to_string(), name.to_string()));
                            *path = secrets.join(name).display().to_string();
                        }
                    }
                    (_, other) => redirect_secret_files(other, secrets, found),
                }
            }
        }
        Value::Sequence(items) => items
            .iter_mut()
            .for_each(|v| redirect_secret_files(v, secrets, found)),
        _ => {}
    }
}

/// What the test writes into a secret file read by the setting `key`.
fn secret_value<'a>(key: &str, receivers: &'a Receivers) -> Option<&'a str> {
    match key {
        // Slack's incoming-webhook URL.
        "api_url_file" => Some(&receivers.slack_url),
        // PagerDuty Events API v2.
        "routing_key_file" => Some(&receivers.pagerduty_routing_key),
        _ => None,
    }
}

/// Stages `deploy/alertmanager` under `root` for a test run.
pub fn stage_alertmanager(root: &Path, receivers: &Receivers) -> Result<Staged, StageError> {
    let (dir, config, mut cfg) = staged_copy(root, "alertmanager", "alertmanager.yml")?;
    let route = cfg
        .get_mut("route")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| err(&config, "no route"))?;
    shorten_route(route, &config)?;
    cfg.get_mut("global")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| err(&config, "no global section"))?
        .insert(
            "pagerduty_url".into(),
            Value::String(receivers.pagerduty_url.clone()),
        );
    let secrets = dir.path().join("secrets");
    let mut found = Vec::new();
    redirect_secret_files(&mut cfg, &secrets, &mut found);
    write_yaml(&config, &cfg)?;
    for (key, name) in found {
        let value = secret_value(&key, receivers).ok_or_else(|| {
            err(
                &config,
                format!("{key}: {SECRETS_DIR}{name} has no test value (a receiver the tests cannot stand in for)"),
            )
        })?;
        write(&secrets.join(&name), value)?;
    }
    Ok(Staged { dir, config })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        crate::generate::repo_root()
    }

    #[test]
    fn targets_of_systems_the_test_does_not_run_are_staged_empty() {
        let engines = vec![TargetGroup {
            targets: vec!["127.0.0.1:18080".into()],
            labels: vec![("service".into(), "gateway".into())],
        }];
        let staged = stage_prometheus(
            &root(),
            &PrometheusTargets {
                engines,
                collectors: None,
                alertmanagers: vec!["127.0.0.1:19093".into()],
                environment: "prod".into(),
            },
        )
        .unwrap();
        let targets = |file: &str| -> Value {
            read_yaml(&staged.dir.path().join("targets").join(file)).unwrap()
        };
        // The shipped CryptoFunk file names localhost:8080, DelTran's gateway port.
        let shipped = read_yaml(&root().join("deploy/prometheus/targets/cryptofunk.yml")).unwrap();
        assert_eq!(shipped.as_sequence().unwrap().len(), 14);
        assert_eq!(targets("cryptofunk.yml"), Value::Sequence(Vec::new()));
        assert_eq!(
            targets("deltran-engines.yml")[0]["targets"][0],
            "127.0.0.1:18080"
        );
        assert_eq!(
            targets("alertmanager.yml")[0]["targets"][0],
            "127.0.0.1:19093"
        );
        // `collectors: None` keeps the shipped file.
        assert_eq!(
            targets("otel-collector.yml"),
            read_yaml(&root().join("deploy/prometheus/targets/otel-collector.yml")).unwrap()
        );
    }

    #[test]
    fn every_secret_file_the_configuration_reads_holds_the_test_value() {
        let receivers = Receivers {
            slack_url: "http://127.0.0.1:1/slack".into(),
            pagerduty_url: "http://127.0.0.1:1/pagerduty".into(),
            pagerduty_routing_key: "test-key".into(),
        };
        let staged = stage_alertmanager(&root(), &receivers).unwrap();
        let cfg = read_yaml(&staged.config).unwrap();
        let mut files = Vec::new();
        for r in cfg["receivers"].as_sequence().unwrap() {
            for (kind, key) in [
                ("slack_configs", "api_url_file"),
                ("pagerduty_configs", "routing_key_file"),
            ] {
                for c in r[kind].as_sequence().into_iter().flatten() {
                    let path = PathBuf::from(c[key].as_str().unwrap());
                    assert!(path.starts_with(staged.dir.path()), "{}", path.display());
                    let expected = if kind == "slack_configs" {
                        &receivers.slack_url
                    } else {
                        &receivers.pagerduty_routing_key
                    };
                    assert_eq!(&std::fs::read_to_string(&path).unwrap(), expected);
                    files.push(path.file_name().unwrap().to_string_lossy().to_string());
                }
            }
        }
        files.sort();
        assert_eq!(
            files,
            [
                "pagerduty-routing-key",
                "slack-webhook-url",
                "trading-desk-pagerduty-routing-key",
                "trading-desk-slack-webhook-url"
            ]
        );
    }

    #[test]
    fn a_secret_the_tests_cannot_stand_in_for_is_refused() {
        let mut cfg: Value = serde_yaml_ng::from_str(
            "receivers: [{name: x, opsgenie_configs: [{api_key_file: /etc/alertmanager/secrets/opsgenie-key}]}]",
        )
        .unwrap();
        let mut found = Vec::new();
        redirect_secret_files(&mut cfg, Path::new("/tmp/s"), &mut found);
        assert_eq!(
            found,
            [("api_key_file".to_string(), "opsgenie-key".to_string())]
        );
        let receivers = Receivers {
            slack_url: String::new(),
            pagerduty_url: String::new(),
            pagerduty_routing_key: String::new(),
        };
        assert_eq!(secret_value("api_key_file", &receivers), None);
        assert_eq!(
            cfg["receivers"][0]["opsgenie_configs"][0]["api_key_file"],
            "/tmp/s/opsgenie-key"
        );
    }
}
