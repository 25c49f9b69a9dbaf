//! Copies of the shipped Prometheus and Alertmanager files for a test run,
//! with exactly these changes, so a test sees in a minute what production
//! sees in an hour:
//!
//! - the `targets/` files name the servers the test started;
//! - Prometheus scrapes and evaluates every second instead of every 15 s,
//!   and resends firing alerts every second ([`PROMETHEUS_FLAGS`]);
//! - every `for:` and `keep_firing_for:` and Alertmanager's `group_wait`,
//!   `group_interval` and `repeat_interval` are divided by
//!   [`TIME_FACTOR`] (never below one second);
//! - the `environment` external label is the test's (routing depends on it);
//! - Alertmanager's secret files (under [`SECRETS_DIR`] in production) are
//!   files of the staged copy holding the test receiver's URLs, and its
//!   global `pagerduty_url` points at the test receiver.
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

/// What a staged Prometheus scrapes and where it alerts.
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
    /// Written to `secrets/slack-webhook-url` (the ticket receiver's Slack).
    pub slack_url: String,
    /// Set as `global.pagerduty_url` (the paging receiver's PagerDuty).
    pub pagerduty_url: String,
    /// Written to `secrets/pagerduty-routing-key`.
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

/// Points every `*_file` setting under [`SECRETS_DIR`] into `secrets`.
fn redirect_secret_files(value: &mut Value, secrets: &Path) {
    match value {
        Value::Mapping(map) => {
            for (key, v) in map.iter_mut() {
                let is_file = key.as_str().is_some_and(|k| k.ends_with("_file"));
                match v {
                    Value::String(path) if is_file => {
                        if let Some(name) = path.strip_prefix(SECRETS_DIR) {
                            *path = secrets.join(name).display().to_string();
                        }
                    }
                    other => redirect_secret_files(other, secrets),
                }
            }
        }
        Value::Sequence(items) => items
            .iter_mut()
            .for_each(|v| redirect_secret_files(v, secrets)),
        _ => {}
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
    redirect_secret_files(&mut cfg, &dir.path().join("secrets"));
    write_yaml(&config, &cfg)?;
    write(
        &dir.path().join("secrets/slack-webhook-url"),
        &receivers.slack_url,
    )?;
    write(
        &dir.path().join("secrets/pagerduty-routing-key"),
        &receivers.pagerduty_routing_key,
    )?;
    Ok(Staged { dir, config })
}
