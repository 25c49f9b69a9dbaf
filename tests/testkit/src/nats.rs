//! NATS server fixture (JetStream enabled).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::http::http_get;
use crate::process::{
    ChildProcess, DEFAULT_READY_TIMEOUT, find_binary, free_ports, tcp_connectable, temp_dir,
};

/// Locates `nats-server` (PATH, then /usr/sbin and /usr/bin).
pub fn nats_binary() -> Result<PathBuf> {
    find_binary(
        "nats-server",
        &["/usr/sbin", "/usr/bin"],
        "apt-get install nats-server",
    )
}

/// A real `nats-server` with JetStream on 127.0.0.1; stopped by PID on drop.
///
/// Started with `-a 127.0.0.1 -p <port> -js -sd <tmp>/jetstream -m <monitor port>`.
#[derive(Debug)]
pub struct Nats {
    child: ChildProcess,
    addr: SocketAddr,
    monitor_addr: SocketAddr,
}

impl Nats {
    /// Starts nats-server and waits until the monitor's `/healthz` is 200.
    pub fn start() -> Result<Nats> {
        Self::start_with(&[], DEFAULT_READY_TIMEOUT)
    }

    /// Like [`Nats::start`] with extra flags and a readiness timeout.
    pub fn start_with(extra_flags: &[&str], ready_timeout: Duration) -> Result<Nats> {
        crate::process::retry_on_port_clash(|| Self::start_once(extra_flags, ready_timeout))
    }

    fn start_once(extra_flags: &[&str], ready_timeout: Duration) -> Result<Nats> {
        let bin = nats_binary()?;
        let dir = temp_dir("nats")?;
        let ports = free_ports(2)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
        let monitor_addr = SocketAddr::from(([127, 0, 0, 1], ports[1]));
        let store = dir.path().join("jetstream");
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .args(["-a", "127.0.0.1", "-p"])
            .arg(ports[0].to_string())
            .arg("-js")
            .arg("-sd")
            .arg(&store)
            .arg("-m")
            .arg(ports[1].to_string())
            .args(extra_flags);
        let mut child = ChildProcess::spawn("nats-server", cmd, dir)?;
        let healthz = format!("http://{monitor_addr}/healthz");
        child.wait_ready(ready_timeout, || {
            tcp_connectable(monitor_addr) && matches!(http_get(&healthz), Ok((200, _)))
        })?;
        Ok(Nats {
            child,
            addr,
            monitor_addr,
        })
    }

    /// Client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Client listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Monitoring base URL, `http://127.0.0.1:MONITOR_PORT`.
    pub fn monitor_url(&self) -> String {
        format!("http://{}", self.monitor_addr)
    }

    /// Monitoring listen address.
    pub fn monitor_addr(&self) -> SocketAddr {
        self.monitor_addr
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        self.child.log_tail(n)
    }

    /// Stops the server by PID and removes its temporary directory.
    pub fn stop(mut self) -> Result<()> {
        self.child.stop()
    }
}
