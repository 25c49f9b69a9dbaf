//! Prometheus server fixture and `promtool check metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::http::{http_get, http_get_json, http_post, url_encode};
use crate::process::{
    ChildProcess, DEFAULT_READY_TIMEOUT, find_binary, free_port, run_command, tcp_connectable,
    temp_dir, wait_until,
};

const INSTALL: &str = "apt-get install prometheus";

/// Locates the `prometheus` binary (PATH, then /usr/bin).
pub fn prometheus_binary() -> Result<PathBuf> {
    find_binary("prometheus", &["/usr/bin"], INSTALL)
}

/// Locates the `promtool` binary (PATH, then /usr/bin).
pub fn promtool_binary() -> Result<PathBuf> {
    find_binary("promtool", &["/usr/bin"], INSTALL)
}

/// Runs `promtool check metrics` on exposition `text`; lint problems and parse errors
/// are returned as [`Error::Command`] carrying promtool's output.
pub fn promtool_check_metrics(text: &str) -> Result<()> {
    let bin = promtool_binary()?;
    let mut cmd = Command::new(&bin);
    cmd.arg("check").arg("metrics");
    let out = run_command(cmd, Some(text.as_bytes()), Duration::from_secs(30))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("{} check metrics", bin.display()),
            status: out.status.to_string(),
            output: out.combined(),
        })
    }
}

/// Configures and starts a [`Prometheus`]; obtain with [`Prometheus::builder`].
#[derive(Debug, Clone)]
pub struct PrometheusBuilder {
    scrape_configs: String,
    scrape_self: bool,
    scrape_interval: String,
    rule_files: Vec<(String, String)>,
    alertmanagers: Vec<String>,
    extra_flags: Vec<String>,
    ready_timeout: Duration,
}

impl PrometheusBuilder {
    /// Adds a scrape job `self` targeting this Prometheus' own listen address.
    pub fn scrape_self(mut self) -> Self {
        self.scrape_self = true;
        self
    }

    /// Sets the global scrape and evaluation interval (default `"1s"`).
    pub fn scrape_interval(mut self, interval: &str) -> Self {
        self.scrape_interval = interval.to_string();
        self
    }

    /// Adds a rule file (written into the temp dir as `file_name`) with the given YAML content.
    pub fn rule_file(mut self, file_name: &str, yaml: &str) -> Self {
        self.rule_files
            .push((file_name.to_string(), yaml.to_string()));
        self
    }

    /// Sends alerts to an Alertmanager at `host:port` (e.g. [`crate::Alertmanager::host_port`]).
    ///
    /// Also passes `--rules.alert.resend-delay=1s` (unless given via [`PrometheusBuilder::flag`]):
    /// Prometheus drops the first notification if it fires before the Alertmanager is
    /// discovered, and the default 1 m resend delay would stall tests.
    pub fn alertmanager(mut self, host_port: &str) -> Self {
        let hp = host_port
            .trim_start_matches("http://")
            .trim_end_matches('/');
        self.alertmanagers.push(hp.to_string());
        self
    }

    /// Appends one extra command-line flag, e.g. `--enable-feature=exemplar-storage`.
    pub fn flag(mut self, flag: &str) -> Self {
        self.extra_flags.push(flag.to_string());
        self
    }

    /// Appends several extra command-line flags.
    pub fn flags<I, S>(mut self, flags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.extra_flags
            .extend(flags.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// Sets the readiness timeout (default 20 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    fn render_config(&self, addr: SocketAddr, scrape_configs: &str) -> String {
        let mut y = format!(
            "global:\n  scrape_interval: {i}\n  scrape_timeout: {i}\n  evaluation_interval: {i}\n",
            i = self.scrape_interval
        );
        if !self.rule_files.is_empty() {
            y.push_str("rule_files:\n");
            for (name, _) in &self.rule_files {
                y.push_str(&format!("  - '{name}'\n"));
            }
        }
        if !self.alertmanagers.is_empty() {
            y.push_str("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets:\n");
            for am in &self.alertmanagers {
                y.push_str(&format!("            - '{am}'\n"));
            }
        }
        y.push_str(&render_scrape_configs(
            scrape_configs,
            self.scrape_self.then_some(addr),
        ));
        y
    }

    /// Writes the configuration, starts Prometheus and waits until `/-/ready` is 200.
    pub fn start(self) -> Result<Prometheus> {
        crate::process::retry_on_port_clash(|| self.clone().start_once())
    }

    fn start_once(self) -> Result<Prometheus> {
        let bin = prometheus_binary()?;
        let dir = temp_dir("prometheus")?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config_path = dir.path().join("prometheus.yml");
        for (name, content) in &self.rule_files {
            let p = dir.path().join(name);
            std::fs::write(&p, content).ctx(|| format!("writing rule file {}", p.display()))?;
        }
        std::fs::write(&config_path, self.render_config(addr, &self.scrape_configs))
            .ctx(|| format!("writing {}", config_path.display()))?;

        let mut flags = self.extra_flags.clone();
        if !self.alertmanagers.is_empty()
            && !flags
                .iter()
                .any(|f| f.starts_with("--rules.alert.resend-delay"))
        {
            flags.insert(0, "--rules.alert.resend-delay=1s".into());
        }
        let (child, url) = spawn(bin, dir, &config_path, addr, &flags, self.ready_timeout)?;
        Ok(Prometheus {
            child,
            addr,
            url,
            config_path,
            builder: Some(self),
        })
    }
}

/// Starts Prometheus on `addr` with `config`, its TSDB in `dir`, and waits
/// until `/-/ready` answers 200; the child and its base URL.
fn spawn(
    bin: PathBuf,
    dir: tempfile::TempDir,
    config: &std::path::Path,
    addr: SocketAddr,
    flags: &[String],
    ready_timeout: Duration,
) -> Result<(ChildProcess, String)> {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir.path())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--web.enable-lifecycle")
        .args(flags);
    let mut child = ChildProcess::spawn("prometheus", cmd, dir)?;
    let url = format!("http://{addr}");
    let ready_url = format!("{url}/-/ready");
    child.wait_ready(ready_timeout, || {
        tcp_connectable(addr) && matches!(http_get(&ready_url), Ok((200, _)))
    })?;
    Ok((child, url))
}

/// The strings of a JSON array (label values, metric names).
fn strings(data: &Value) -> Vec<String> {
    data.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the `scrape_configs:` section from caller YAML (a list, or a full
/// `scrape_configs:` section) plus an optional self-scrape job.
fn render_scrape_configs(user: &str, self_addr: Option<SocketAddr>) -> String {
    let trimmed = user.trim();
    let body = trimmed
        .strip_prefix("scrape_configs:")
        .map(str::trim)
        .unwrap_or(trimmed);
    let mut y = String::new();
    if body.is_empty() && self_addr.is_none() {
        return "scrape_configs: []\n".into();
    }
    y.push_str("scrape_configs:\n");
    if let Some(addr) = self_addr {
        y.push_str(&format!(
            "- job_name: 'self'\n  static_configs:\n  - targets: ['{addr}']\n"
        ));
    }
    if !body.is_empty() {
        // Re-indent the caller's list by its own minimal indentation so it sits at column 0.
        let min_indent = user
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("scrape_configs:"))
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        for line in user.lines() {
            if line.trim_start().starts_with("scrape_configs:") {
                continue;
            }
            y.push_str(line.get(min_indent..).unwrap_or(line.trim_start()));
            y.push('\n');
        }
    }
    y
}

/// A real Prometheus server on 127.0.0.1 with a temporary TSDB; stopped by PID on drop.
///
/// Started with `--config.file <tmp>/prometheus.yml --storage.tsdb.path <tmp>/data
/// --web.listen-address 127.0.0.1:<free port> --web.enable-lifecycle` plus any extra flags.
#[derive(Debug)]
pub struct Prometheus {
    child: ChildProcess,
    addr: SocketAddr,
    url: String,
    config_path: PathBuf,
    /// `None` when started from a configuration file the caller owns.
    builder: Option<PrometheusBuilder>,
}

impl Prometheus {
    /// Starts Prometheus with a configuration file the caller wrote (rule
    /// files and file_sd targets resolve relative to it), a temporary TSDB
    /// and `extra_flags`; waits until `/-/ready` is 200.
    pub fn start_from_file(config: &std::path::Path, extra_flags: &[&str]) -> Result<Prometheus> {
        crate::process::retry_on_port_clash(|| Self::start_from_file_once(config, extra_flags))
    }

    fn start_from_file_once(config: &std::path::Path, extra_flags: &[&str]) -> Result<Prometheus> {
        let dir = temp_dir("prometheus")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let flags: Vec<String> = extra_flags.iter().map(|f| f.to_string()).collect();
        let (child, url) = spawn(
            prometheus_binary()?,
            dir,
            config,
            addr,
            &flags,
            DEFAULT_READY_TIMEOUT,
        )?;
        Ok(Prometheus {
            child,
            addr,
            url,
            config_path: config.to_path_buf(),
            builder: None,
        })
    }

    /// Starts Prometheus (scrape interval 1 s) with the given `scrape_configs` YAML list.
    pub fn start(scrape_configs_yaml: &str) -> Result<Prometheus> {
        Self::builder(scrape_configs_yaml).start()
    }

    /// Returns a builder for extra flags, rule files, Alertmanager and self-scrape.
    pub fn builder(scrape_configs_yaml: &str) -> PrometheusBuilder {
        PrometheusBuilder {
            scrape_configs: scrape_configs_yaml.to_string(),
            scrape_self: false,
            scrape_interval: "1s".into(),
            rule_files: Vec::new(),
            alertmanagers: Vec::new(),
            extra_flags: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Remote-write endpoint (needs `--web.enable-remote-write-receiver`).
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        self.child.log_tail(n)
    }

    /// Path of the generated prometheus.yml.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Instant query via `/api/v1/query`; returns `data.result` (an array for vector results).
    pub fn query(&self, promql: &str) -> Result<Value> {
        let url = format!("{}/api/v1/query?query={}", self.url, url_encode(promql));
        let v = http_get_json(&url)?;
        api_data(&url, v).map(|mut d| d["result"].take())
    }

    /// Whether an instant query of `promql` returns any series now.
    pub fn has_data(&self, promql: &str) -> Result<bool> {
        Ok(self
            .query(promql)?
            .as_array()
            .is_some_and(|series| !series.is_empty()))
    }

    /// Polls `query(promql)` until `pred(data.result)` holds; returns that result.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let mut found = None;
        let mut last = Value::Null;
        let r = wait_until(&format!("PromQL `{promql}`"), timeout, || {
            let v = self.query(promql)?;
            if pred(&v) {
                found = Some(v);
                Ok(true)
            } else {
                last = v;
                Ok(false)
            }
        });
        match (r, found) {
            (Ok(()), Some(v)) => Ok(v),
            (Err(Error::Timeout { what, timeout, .. }), _) => Err(Error::Timeout {
                what,
                timeout,
                last: format!("result {last}; log tail:\n{}", self.log_tail(10)),
            }),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(Error::Invalid("wait_for finished without a result".into())),
        }
    }

    /// Every metric name Prometheus holds (`/api/v1/label/__name__/values`).
    pub fn metric_names(&self) -> Result<Vec<String>> {
        let url = format!("{}/api/v1/label/__name__/values", self.url);
        Ok(strings(&api_data(&url, http_get_json(&url)?)?))
    }

    /// The values of `label` on series matching `selector`
    /// (`/api/v1/label/<label>/values?match[]=`), as Grafana's `label_values()`.
    pub fn label_values(&self, selector: &str, label: &str) -> Result<Vec<String>> {
        let url = format!(
            "{}/api/v1/label/{}/values?match[]={}",
            self.url,
            url_encode(label),
            url_encode(selector)
        );
        Ok(strings(&api_data(&url, http_get_json(&url)?)?))
    }

    /// `GET /api/v1/targets`; returns `data` (with `activeTargets` and `droppedTargets`).
    pub fn targets(&self) -> Result<Value> {
        let url = format!("{}/api/v1/targets", self.url);
        api_data(&url, http_get_json(&url)?)
    }

    /// `GET /api/v1/rules`; returns `data` (with `groups`).
    pub fn rules(&self) -> Result<Value> {
        let url = format!("{}/api/v1/rules", self.url);
        api_data(&url, http_get_json(&url)?)
    }

    /// `GET /api/v1/alerts`; returns `data` (with `alerts`).
    pub fn alerts(&self) -> Result<Value> {
        let url = format!("{}/api/v1/alerts", self.url);
        api_data(&url, http_get_json(&url)?)
    }

    /// Replaces the `scrape_configs` (keeping rules, Alertmanager and self-scrape) and
    /// reloads via `POST /-/reload`.
    pub fn reload_scrape_configs(&mut self, scrape_configs_yaml: &str) -> Result<()> {
        let Some(builder) = self.builder.as_mut() else {
            return Err(Error::Invalid(
                "started from a configuration file: edit that file and POST /-/reload".into(),
            ));
        };
        let cfg = builder.render_config(self.addr, scrape_configs_yaml);
        std::fs::write(&self.config_path, cfg)
            .ctx(|| format!("writing {}", self.config_path.display()))?;
        let url = format!("{}/-/reload", self.url);
        match http_post(&url, "text/plain", b"")? {
            (200, _) => {
                if let Some(b) = self.builder.as_mut() {
                    b.scrape_configs = scrape_configs_yaml.to_string();
                }
                Ok(())
            }
            (status, body) => Err(Error::Http {
                method: "POST".into(),
                url,
                message: format!("status {status}: {body}"),
            }),
        }
    }

    /// Stops the server by PID and removes its temporary directory.
    pub fn stop(mut self) -> Result<()> {
        self.child.stop()
    }
}

fn api_data(url: &str, mut v: Value) -> Result<Value> {
    if v["status"] != "success" {
        return Err(Error::Http {
            method: "GET".into(),
            url: url.into(),
            message: format!("API status not success: {v}"),
        });
    }
    Ok(v["data"].take())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn scrape_config_rendering() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(render_scrape_configs("", None), "scrape_configs: []\n");
        let r = render_scrape_configs(
            "\n    - job_name: x\n      static_configs:\n        - targets: ['a:1']\n",
            Some(a),
        );
        assert!(r.starts_with("scrape_configs:\n- job_name: 'self'"), "{r}");
        assert!(
            r.contains("\n- job_name: x\n  static_configs:\n    - targets: ['a:1']\n"),
            "{r}"
        );
        let r = render_scrape_configs("scrape_configs:\n  - job_name: y\n", None);
        assert_eq!(r, "scrape_configs:\n- job_name: y\n");
    }
}
