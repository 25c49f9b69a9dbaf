//! Alertmanager fixture.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::error::{IoContext, Result};
use crate::http::{http_get, http_get_json, http_post_json};
use crate::process::{
    ChildProcess, DEFAULT_READY_TIMEOUT, find_binary, free_port, tcp_connectable, temp_dir,
};

/// A minimal valid configuration: everything routed to a receiver that does nothing.
pub const NULL_RECEIVER_CONFIG: &str = "route:\n  receiver: 'null'\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: 'null'\n";

/// Where a fixture's configuration comes from.
enum Config<'a> {
    /// Written into the fixture's temporary directory.
    Yaml(&'a str),
    /// The caller's file, used in place.
    File(&'a Path),
}

/// Locates the Alertmanager binary (`prometheus-alertmanager` or `alertmanager`).
pub fn alertmanager_binary() -> Result<PathBuf> {
    const INSTALL: &str = "apt-get install prometheus-alertmanager";
    find_binary("prometheus-alertmanager", &["/usr/bin"], INSTALL)
        .or_else(|e| find_binary("alertmanager", &["/usr/bin"], INSTALL).map_err(|_| e))
}

/// A real Alertmanager on 127.0.0.1 with clustering disabled; stopped by PID on drop.
///
/// Started with `--config.file <tmp>/alertmanager.yml --storage.path <tmp>/data
/// --web.listen-address 127.0.0.1:<free port> --cluster.listen-address=`.
#[derive(Debug)]
pub struct Alertmanager {
    child: ChildProcess,
    addr: SocketAddr,
    url: String,
}

impl Alertmanager {
    /// Starts Alertmanager with `config_yaml` (empty means [`NULL_RECEIVER_CONFIG`]).
    pub fn start(config_yaml: &str) -> Result<Alertmanager> {
        Self::start_with(config_yaml, &[], DEFAULT_READY_TIMEOUT)
    }

    /// Like [`Alertmanager::start`] with extra flags and a readiness timeout.
    pub fn start_with(
        config_yaml: &str,
        extra_flags: &[&str],
        ready_timeout: Duration,
    ) -> Result<Alertmanager> {
        crate::process::retry_on_port_clash(|| {
            Self::start_once(Config::Yaml(config_yaml), extra_flags, ready_timeout)
        })
    }

    /// Starts Alertmanager with a configuration file the caller wrote
    /// (templates resolve relative to it; `*_file` secrets relative to the
    /// working directory, a temporary one).
    pub fn start_from_file(config: &Path, extra_flags: &[&str]) -> Result<Alertmanager> {
        crate::process::retry_on_port_clash(|| {
            Self::start_once(Config::File(config), extra_flags, DEFAULT_READY_TIMEOUT)
        })
    }

    fn start_once(
        config: Config<'_>,
        extra_flags: &[&str],
        ready_timeout: Duration,
    ) -> Result<Alertmanager> {
        let bin = alertmanager_binary()?;
        let dir = temp_dir("alertmanager")?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config_path = match config {
            Config::File(path) => path.to_path_buf(),
            Config::Yaml(yaml) => {
                let path = dir.path().join("alertmanager.yml");
                let yaml = if yaml.trim().is_empty() {
                    NULL_RECEIVER_CONFIG
                } else {
                    yaml
                };
                std::fs::write(&path, yaml).ctx(|| format!("writing {}", path.display()))?;
                path
            }
        };
        let data = dir.path().join("data");
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .args(extra_flags);
        let mut child = ChildProcess::spawn("alertmanager", cmd, dir)?;
        let url = format!("http://{addr}");
        let ready = format!("{url}/-/ready");
        child.wait_ready(ready_timeout, || {
            tcp_connectable(addr) && matches!(http_get(&ready), Ok((200, _)))
        })?;
        Ok(Alertmanager { child, addr, url })
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, the form Prometheus' `alertmanagers.static_configs` expects.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        self.child.log_tail(n)
    }

    /// `GET /api/v2/alerts`: the JSON array of current alerts.
    pub fn alerts(&self) -> Result<Value> {
        http_get_json(&format!("{}/api/v2/alerts", self.url))
    }

    /// `POST /api/v2/alerts` with a JSON array of postable alerts.
    pub fn post_alerts(&self, alerts: &Value) -> Result<()> {
        http_post_json(&format!("{}/api/v2/alerts", self.url), alerts).map(|_| ())
    }

    /// Stops the server by PID and removes its temporary directory.
    pub fn stop(mut self) -> Result<()> {
        self.child.stop()
    }
}
