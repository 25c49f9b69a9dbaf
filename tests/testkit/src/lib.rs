//! Real-server fixtures for tests.
//!
//! Each fixture starts a real server binary installed on the machine (see
//! `scripts/install-test-deps.sh`), waits until it is ready, and stops it again:
//!
//! | fixture | binary | ready when |
//! |---|---|---|
//! | [`Prometheus`] | `prometheus` (Debian `prometheus`) | `GET /-/ready` is 200 |
//! | [`promtool_check_metrics`] | `promtool` (Debian `prometheus`) | (one-shot command) |
//! | [`Alertmanager`] | `prometheus-alertmanager` | `GET /-/ready` is 200 |
//! | [`Nats`] | `nats-server` (JetStream on) | monitor `GET /healthz` is 200 |
//! | [`Postgres`] | `/usr/lib/postgresql/*/bin/{initdb,postgres}` | TCP connect + `pg_isready` |
//! | [`Redis`] | `redis-server` (Debian `redis-server`) | answers `PING` |
//! | [`Rotel`] | `rotel-agent` from PyPI `rotel` | both OTLP ports accept connections |
//! | [`WebhookReceiver`] | (in-process HTTP sink for notifications) | bound |
//! | [`Tarpit`] | (in-process: a collector that accepts and never answers) | bound |
//! | [`Launched`] | a demo system's launcher (`deltran`, `cryptofunk`) | its run file is written |
//! | [`ChromeDriver`] | `chromedriver` (Debian `chromium-driver`, drives `chromium`) | `GET /status` is 200 |
//!
//! # Discipline
//!
//! * Every server listens on **127.0.0.1 only**, on ports picked with [`free_port`]
//!   (bind `127.0.0.1:0`, read the port, drop the listener).
//! * Every server gets its **own [`tempfile::TempDir`]** for config, data and a log
//!   file that receives its stdout and stderr ([`ChildProcess::log_tail`]).
//! * Readiness is polled with a **bounded timeout** (default 20 s,
//!   [`DEFAULT_READY_TIMEOUT`]); on timeout or early exit the error carries the
//!   tail of the server's log.
//! * A fixture is **stopped by its PID** — on `Drop` or an explicit `stop()`: a
//!   stop signal via `kill -s TERM|INT <pid>`, a bounded wait (10 s), then
//!   SIGKILL, reaping the child, and finally removing the temporary directory.
//!   The child is signalled only while unreaped, so its PID cannot have been reused.
//!   Nothing is started as a system service and nothing is looked up by name.
//! * A missing binary is an [`Error::MissingBinary`] whose message says how to
//!   install it (e.g. `apt-get install prometheus`); nothing here panics.
//!
//! The crate is plain blocking `std` code (no async runtime, no HTTP client
//! dependency: see [`http_get`]).

mod alertmanager;
mod chromedriver;
mod error;
mod http;
mod launched;
mod nats;
mod postgres;
mod process;
mod prometheus;
mod redis;
mod rotel;
mod slowloris;
mod tarpit;
mod webhook;

pub use alertmanager::{Alertmanager, NULL_RECEIVER_CONFIG, alertmanager_binary};
pub use chromedriver::{ChromeDriver, chromedriver_binary, chromium_binary};
pub use error::{Error, Result};
pub use http::{
    HttpResponse, http_get, http_get_json, http_post, http_post_json, http_request, url_encode,
};
pub use launched::{Launched, launcher_command};
pub use nats::{Nats, nats_binary};
pub use postgres::{Postgres, postgres_bin_dir};
pub use process::{
    ChildProcess, CommandOutput, DEFAULT_READY_TIMEOUT, DEFAULT_STOP_TIMEOUT, StopSignal,
    file_tail, find_binary, free_port, free_ports, run_command, run_command_ok, tcp_connectable,
    temp_dir, wait_until,
};
pub use prometheus::{
    Prometheus, PrometheusBuilder, prometheus_binary, promtool_binary, promtool_check_metrics,
};
pub use redis::{Redis, redis_binary};
pub use rotel::{OtlpProtocol, Rotel, RotelBuilder, rotel_binary};
pub use slowloris::{
    H2_PREFACE, closed_by_server, closes_within, half_sent_request, stalled_connection,
};
pub use tarpit::Tarpit;
pub use webhook::{Received, WebhookReceiver};

/// True when a process with this PID exists (`kill -0 <pid>` succeeds).
pub fn pid_alive(pid: u32) -> bool {
    std::process::Command::new("kill")
        .arg("-0")
        .arg(pid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
