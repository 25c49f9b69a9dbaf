//! rotel (PyPI `rotel`), a Rust OpenTelemetry collector, as a real collector hop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process::{
    ChildProcess, DEFAULT_READY_TIMEOUT, find_binary, free_ports, is_executable, run_command,
    tcp_connectable, temp_dir,
};

const INSTALL: &str = "pip install rotel";

/// Locates the `rotel-agent` binary shipped inside the `rotel` Python package.
///
/// Order: `$TESTKIT_ROTEL_AGENT`, then `<dirname(rotel.__file__)>/rotel-agent` as
/// reported by `python3`, then `rotel-agent` on PATH.
pub fn rotel_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TESTKIT_ROTEL_AGENT") {
        let p = PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    for python in ["python3", "python"] {
        let mut cmd = Command::new(python);
        cmd.args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ]);
        if let Ok(out) = run_command(cmd, None, Duration::from_secs(30))
            && out.status.success()
        {
            let p = PathBuf::from(out.stdout.trim());
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    find_binary("rotel-agent", &[], INSTALL).map_err(|e| match e {
        Error::MissingBinary {
            binary, searched, ..
        } => Error::MissingBinary {
            binary,
            searched: format!("$TESTKIT_ROTEL_AGENT, python3 `rotel` package, {searched}"),
            install: INSTALL.into(),
        },
        other => other,
    })
}

/// Protocol rotel uses to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (rotel's default).
    Grpc,
    /// OTLP/HTTP protobuf (POSTs to `<endpoint>/v1/{traces,metrics,logs}`).
    Http,
}

/// Configures and starts a [`Rotel`]; obtain with [`Rotel::builder`].
#[derive(Debug, Clone)]
pub struct RotelBuilder {
    endpoint: String,
    protocol: OtlpProtocol,
    batch_timeout: String,
    extra_args: Vec<String>,
    ready_timeout: Duration,
    ports: Option<(u16, u16)>,
}

impl RotelBuilder {
    /// Export protocol (default gRPC).
    pub fn protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Batch timeout in rotel's duration syntax (default `"100ms"`).
    pub fn batch_timeout(mut self, timeout: &str) -> Self {
        self.batch_timeout = timeout.to_string();
        self
    }

    /// Appends an extra `rotel-agent start` argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_string());
        self
    }

    /// Listens on these gRPC and HTTP ports instead of free ones (to start a
    /// collector again where the last one was).
    pub fn ports(mut self, grpc: u16, http: u16) -> Self {
        self.ports = Some((grpc, http));
        self
    }

    /// Sets the readiness timeout (default 20 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts rotel in the foreground and waits until both receiver ports accept connections.
    pub fn start(self) -> Result<Rotel> {
        crate::process::retry_on_port_clash(|| self.clone().start_once())
    }

    fn start_once(self) -> Result<Rotel> {
        let bin = rotel_binary()?;
        let dir = temp_dir("rotel")?;
        let (grpc_port, http_port) = match self.ports {
            Some(p) => p,
            None => {
                let ports = free_ports(2)?;
                (ports[0], ports[1])
            }
        };
        // What `kill` hands back: these settings, on these ports.
        let again = RotelBuilder {
            ports: Some((grpc_port, http_port)),
            ..self.clone()
        };
        let grpc = SocketAddr::from(([127, 0, 0, 1], grpc_port));
        let http = SocketAddr::from(([127, 0, 0, 1], http_port));
        let endpoint = if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else {
            format!("http://{}", self.endpoint)
        };
        let mut cmd = Command::new(bin);
        // rotel reads ROTEL_* variables as flag defaults; do not inherit any.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ROTEL_") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(dir.path())
            .env("NO_COLOR", "1")
            .arg("start")
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.path().join("rotel-daemon.log"))
            .arg("--otlp-grpc-endpoint")
            .arg(grpc.to_string())
            .arg("--otlp-http-endpoint")
            .arg(http.to_string())
            .args(["--exporter", "otlp", "--otlp-exporter-endpoint"])
            .arg(&endpoint)
            .arg("--otlp-exporter-protocol")
            .arg(match self.protocol {
                OtlpProtocol::Grpc => "grpc",
                OtlpProtocol::Http => "http",
            })
            .arg("--batch-timeout")
            .arg(&self.batch_timeout)
            .args([
                "--otlp-exporter-retry-initial-backoff",
                "100ms",
                "--otlp-exporter-retry-max-backoff",
                "1s",
                "--otlp-exporter-retry-max-elapsed-time",
                "30s",
            ])
            .args(&self.extra_args);
        let mut child = ChildProcess::spawn("rotel", cmd, dir)?;
        child.wait_ready(self.ready_timeout, || {
            tcp_connectable(grpc) && tcp_connectable(http)
        })?;
        Ok(Rotel {
            child,
            grpc,
            http,
            export_endpoint: endpoint,
            again,
        })
    }
}

/// A real rotel collector: OTLP gRPC + HTTP receivers on 127.0.0.1, exporting all
/// signals over OTLP to a caller-given endpoint; stopped by PID on drop.
///
/// Runs `rotel-agent start --otlp-grpc-endpoint 127.0.0.1:G --otlp-http-endpoint 127.0.0.1:H
/// --exporter otlp --otlp-exporter-endpoint <endpoint> --otlp-exporter-protocol grpc|http
/// --batch-timeout 100ms ...` (foreground, not `--daemon`). Exports are always
/// gzip-compressed (rotel 0.0.1-alpha10 ignores `--otlp-exporter-compression none`).
#[derive(Debug)]
pub struct Rotel {
    child: ChildProcess,
    grpc: SocketAddr,
    http: SocketAddr,
    export_endpoint: String,
    again: RotelBuilder,
}

impl Rotel {
    /// Starts rotel exporting traces, metrics and logs over OTLP/gRPC to `export_otlp_grpc_endpoint`
    /// (`host:port` or `http://host:port`).
    pub fn start(export_otlp_grpc_endpoint: &str) -> Result<Rotel> {
        Self::builder(export_otlp_grpc_endpoint).start()
    }

    /// Returns a builder (export protocol, batch timeout, extra args).
    pub fn builder(export_endpoint: &str) -> RotelBuilder {
        RotelBuilder {
            endpoint: export_endpoint.to_string(),
            protocol: OtlpProtocol::Grpc,
            batch_timeout: "100ms".into(),
            extra_args: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            ports: None,
        }
    }

    /// OTLP/gRPC receiver endpoint, `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// OTLP/HTTP receiver base endpoint, `http://127.0.0.1:PORT` (append `/v1/traces` etc.).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }

    /// OTLP/gRPC receiver address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// OTLP/HTTP receiver address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The endpoint rotel exports to.
    pub fn export_endpoint(&self) -> &str {
        &self.export_endpoint
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Last `n` lines of rotel's log.
    pub fn log_tail(&self, n: usize) -> String {
        self.child.log_tail(n)
    }

    /// Stops rotel by PID and removes its temporary directory.
    pub fn stop(mut self) -> Result<()> {
        self.child.stop()
    }

    /// Kills rotel with SIGKILL by PID, as a crash or an OOM kill would:
    /// whatever it had accepted but not yet forwarded is lost. Returns a
    /// builder with the same settings pinned to the same ports, so
    /// `start()` brings a collector back where senders expect it.
    pub fn kill(mut self) -> Result<RotelBuilder> {
        self.child.kill()?;
        Ok(self.again.clone())
    }
}
