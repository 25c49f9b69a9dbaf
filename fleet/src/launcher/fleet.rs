//! The eight engine processes: their ports and environment, starting them
//! and waiting for `/ready`, stopping them in order with SIGTERM (each
//! flushes its telemetry on the way out), and `fleet.json` for tools.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{Ports, RunArgs};
use crate::catalogue::{EngineKind, loopback_url};

/// How long an engine gets to become ready, and to stop after SIGTERM.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The whole fleet's stop: an engine's telemetry flush deadline (5 s,
/// `TELEMETRY_SHUTDOWN_TIMEOUT`) plus a margin for the stages before it.
pub const STOP_BUDGET: Duration = Duration::from_secs(7);

/// Longest wait for one stage to stop serving before the next is told.
const STAGE_WAIT: Duration = Duration::from_secs(2);

/// Who is told to stop before whom (see [`Fleet::stop_all`]).
const STOP_STAGES: [&[EngineKind]; 3] = [
    &[
        EngineKind::Gateway,
        EngineKind::ComplianceEngine,
        EngineKind::RiskEngine,
        EngineKind::TokenEngine,
        EngineKind::ObligationEngine,
    ],
    &[EngineKind::ClearingEngine],
    &[EngineKind::LiquidityRouter, EngineKind::SettlementEngine],
];

/// Whether something still accepts connections on this loopback port.
fn still_serving(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(100),
    )
    .is_ok()
}

/// `fleet.json` in the run directory: where everything listens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetFile {
    /// The gateway's base URL.
    pub gateway_url: String,
    /// The NATS server.
    pub nats_url: String,
    /// Its process id, when this run started it (a supervisor that must
    /// clean up after a killed launcher stops it by this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_pid: Option<u32>,
    /// Every engine.
    pub engines: Vec<FleetFileEngine>,
    /// The embedded viewer's page, when it runs (`deltran trace --viewer` takes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer_url: Option<String>,
    /// The viewer's OTLP/gRPC and OTLP/HTTP endpoints, for your own
    /// services to export beside the engines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer_otlp_grpc: Option<String>,
    /// See `viewer_otlp_grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer_otlp_http: Option<String>,
}

impl FleetFile {
    /// The engine called `name`, if the fleet runs one.
    ///
    /// ```
    /// use deltran_fleet::launcher::FleetFile;
    ///
    /// let fleet: FleetFile = serde_json::from_str(
    ///     r#"{"gateway_url": "http://127.0.0.1:8080", "nats_url": "nats://127.0.0.1:4222",
    ///         "engines": [{"name": "risk-engine", "framework": "axum",
    ///                      "port": 8081, "metrics_port": 9464, "pid": 42}]}"#,
    /// ).unwrap();
    /// assert_eq!(fleet.engine("risk-engine").map(|e| e.port), Some(8081));
    /// assert!(fleet.engine("no-such-engine").is_none());
    /// ```
    pub fn engine(&self, name: &str) -> Option<&FleetFileEngine> {
        self.engines.iter().find(|e| e.name == name)
    }
}

/// One engine in `fleet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetFileEngine {
    /// Service name.
    pub name: String,
    /// HTTP framework.
    pub framework: String,
    /// HTTP port (`/health`, `/ready`, `/metrics` too).
    pub port: u16,
    /// The telemetry crate's own Prometheus endpoint port.
    pub metrics_port: u16,
    /// Process id.
    pub pid: u32,
}

/// A free TCP port on loopback (released for the child to bind).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// `n` distinct free ports for engines to listen on. They are chosen below
/// the kernel's ephemeral range (`ip_local_port_range`), from which every
/// outgoing connection on the machine takes its local port: a port picked
/// there can be taken by someone's connection before the engine binds it.
/// Each candidate is bound while the others are chosen, so no port is
/// handed out twice; where the range cannot be read, the kernel picks.
pub fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = match below_ephemeral_range() {
        Some(range) => bind_in(range, n),
        None => None,
    };
    let listeners = match listeners {
        Some(l) => l,
        None => (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot find free ports: {e}"))?,
    };
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find free ports: {e}"))
}

/// Ports from 10000 up to the start of the ephemeral range, if it is read
/// and leaves at least a thousand.
fn below_ephemeral_range() -> Option<std::ops::Range<u16>> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let low: u16 = text.split_whitespace().next()?.parse().ok()?;
    (low >= 11_000).then_some(10_000..low)
}

/// `n` listeners on random free ports of `range`; `None` after too many misses.
fn bind_in(range: std::ops::Range<u16>, n: usize) -> Option<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(n);
    for _ in 0..n * 50 {
        if listeners.len() == n {
            break;
        }
        let port = fastrand::u16(range.clone());
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(l);
        }
    }
    (listeners.len() == n).then_some(listeners)
}

/// SIGTERM, then SIGKILL after `timeout`; the exit status if it exited.
pub async fn terminate(mut child: Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// One engine's plan and process.
#[derive(Debug)]
pub struct Slot {
    /// Which engine.
    pub kind: EngineKind,
    /// HTTP port.
    pub port: u16,
    /// Prometheus endpoint port.
    pub metrics_port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Stopped on purpose (an outage knob).
    pub stopped: bool,
}

impl Slot {
    /// Whether the process is alive.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// The engines of one run.
#[derive(Debug)]
pub struct Fleet {
    /// Every engine, in start-up order.
    pub slots: Vec<Slot>,
    exe: PathBuf,
    run_dir: PathBuf,
    nats_url: String,
    http: reqwest::Client,
}

fn has(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// `OTEL_*` defaults the engines get unless the user set them: with a
/// collector or the embedded viewer, everything over OTLP plus `/metrics`
/// for the view; with neither, metrics on `/metrics`, traces to the console
/// (each engine's log).
fn otel_defaults(viewer_endpoint: Option<&str>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(endpoint) = viewer_endpoint {
        env.push((
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            endpoint.to_string(),
        ));
        env.push((
            "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
            "grpc".to_string(),
        ));
    }
    let collector = viewer_endpoint.is_some()
        || has("OTEL_EXPORTER_OTLP_ENDPOINT")
        || has("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let mut default = |name: &str, value: &str| {
        if !has(name) {
            env.push((name.to_string(), value.to_string()));
        }
    };
    if collector {
        default("OTEL_TRACES_EXPORTER", "otlp");
        default("OTEL_METRICS_EXPORTER", "otlp,prometheus");
        default("OTEL_LOGS_EXPORTER", "otlp");
        default("OTEL_METRIC_EXPORT_INTERVAL", "5000");
    } else {
        default("OTEL_TRACES_EXPORTER", "console");
        default("OTEL_METRICS_EXPORTER", "prometheus");
        default("OTEL_LOGS_EXPORTER", "none");
    }
    env.push((
        "OTEL_RESOURCE_ATTRIBUTES".into(),
        resource_attributes_with(&[
            ("service.namespace", "deltran"),
            ("deployment.environment.name", "demo"),
        ]),
    ));
    env
}

/// The launcher's `OTEL_RESOURCE_ATTRIBUTES` with `defaults` added for the
/// keys it does not set: the operator's values win.
pub fn resource_attributes_with(defaults: &[(&str, &str)]) -> String {
    let mut resource = std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    for (key, value) in defaults {
        if !resource
            .split(',')
            .any(|kv| kv.trim_start().starts_with(&format!("{key}=")))
        {
            if !resource.is_empty() {
                resource.push(',');
            }
            resource.push_str(&format!("{key}={value}"));
        }
    }
    resource
}

impl Fleet {
    /// Ports and environment for every engine.
    pub fn plan(
        args: &RunArgs,
        run_dir: &Path,
        nats_url: &str,
        nats_token_file: Option<&Path>,
        viewer_endpoint: Option<String>,
    ) -> Result<Fleet, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find the deltran binary: {e}"))?;
        let ports: Vec<(u16, u16)> = match args.ports {
            Ports::Default => EngineKind::ALL
                .iter()
                .map(|k| (k.default_port(), k.default_metrics_port()))
                .collect(),
            Ports::Auto => free_ports(2 * EngineKind::ALL.len())?
                .chunks(2)
                .map(|p| (p[0], p[1]))
                .collect(),
        };
        let data_dir = run_dir.join("data");
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let mut common = vec![
            ("DELTRAN_HOST".to_string(), "127.0.0.1".to_string()),
            ("DELTRAN_NATS_URL".into(), nats_url.to_string()),
            ("DELTRAN_DATA_DIR".into(), data_dir.display().to_string()),
            (
                "DELTRAN_CLEARING_WINDOW_MS".into(),
                args.clearing_window_ms.to_string(),
            ),
            ("OTEL_EXPORTER_PROMETHEUS_HOST".into(), "127.0.0.1".into()),
        ];
        if let Some(file) = nats_token_file {
            common.push(("DELTRAN_NATS_TOKEN_FILE".into(), file.display().to_string()));
        }
        if let Some(url) = &args.database_url {
            common.push(("DELTRAN_DATABASE_URL".into(), url.clone()));
        }
        for (kind, (port, _)) in EngineKind::ALL.iter().zip(&ports) {
            common.push((kind.url_variable(), loopback_url(*port)));
        }
        common.extend(otel_defaults(viewer_endpoint.as_deref()));
        let slots = EngineKind::ALL
            .iter()
            .zip(ports)
            .map(|(&kind, (port, metrics_port))| {
                let mut env = common.clone();
                env.push(("DELTRAN_PORT".into(), port.to_string()));
                env.push((
                    "OTEL_EXPORTER_PROMETHEUS_PORT".into(),
                    metrics_port.to_string(),
                ));
                if let Some((_, ms)) = args.latency.iter().rev().find(|(k, _)| *k == kind) {
                    env.push(("DELTRAN_FAULT_LATENCY_MS".into(), ms.to_string()));
                }
                if let Some((_, share)) = args.errors.iter().rev().find(|(k, _)| *k == kind) {
                    env.push(("DELTRAN_FAULT_ERROR_RATE".into(), share.to_string()));
                }
                Slot {
                    kind,
                    port,
                    metrics_port,
                    env,
                    child: None,
                    stopped: false,
                }
            })
            .collect();
        Ok(Fleet {
            slots,
            exe,
            run_dir: run_dir.to_path_buf(),
            nats_url: nats_url.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| e.to_string())?,
        })
    }

    fn slot(&mut self, kind: EngineKind) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.kind == kind)
    }

    /// The engine's log file.
    pub fn log_path(&self, kind: EngineKind) -> PathBuf {
        self.run_dir
            .join("logs")
            .join(format!("{}.log", kind.name()))
    }

    /// The base URL of an engine.
    pub fn url(&self, kind: EngineKind) -> String {
        let port = self
            .slots
            .iter()
            .find(|s| s.kind == kind)
            .map_or(kind.default_port(), |s| s.port);
        loopback_url(port)
    }

    /// The gateway's base URL.
    pub fn gateway_url(&self) -> String {
        self.url(EngineKind::Gateway)
    }

    fn spawn(&mut self, kind: EngineKind) -> Result<(), String> {
        let log_path = self.log_path(kind);
        let exe = self.exe.clone();
        let Some(slot) = self.slot(kind) else {
            return Err(format!("{} is not in the plan", kind.name()));
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.arg("engine")
            .arg(kind.name())
            .envs(slot.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // Its own process group: Ctrl-C reaches the launcher, which stops the
        // engines in order instead of all at once.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kind.name()))?;
        slot.child = Some(child);
        slot.stopped = false;
        Ok(())
    }

    async fn wait_ready(&mut self, kind: EngineKind) -> Result<(), String> {
        let log_path = self.log_path(kind);
        let http = self.http.clone();
        let Some(slot) = self.slot(kind) else {
            return Err(format!("{} is not in the plan", kind.name()));
        };
        let url = format!("http://127.0.0.1:{}/ready", slot.port);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = slot.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!(
                    "{} exited ({status}) during start-up; last lines of {}:\n{}",
                    kind.name(),
                    log_path.display(),
                    tail(&log_path, 15)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} was not ready at {url} within {} s; see {}",
                    kind.name(),
                    READY_TIMEOUT.as_secs(),
                    log_path.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts every engine and waits until each answers `/ready`.
    pub async fn start_all(&mut self) -> Result<(), String> {
        for kind in EngineKind::ALL {
            self.spawn(kind)?;
        }
        for kind in EngineKind::ALL {
            self.wait_ready(kind).await?;
        }
        Ok(())
    }

    /// Starts one engine (after an outage) and waits for `/ready`.
    pub async fn start(&mut self, kind: EngineKind) -> Result<(), String> {
        self.spawn(kind)?;
        self.wait_ready(kind).await
    }

    /// Stops one engine with SIGTERM; whether it exited cleanly.
    pub async fn stop(&mut self, kind: EngineKind) -> bool {
        let Some(slot) = self.slot(kind) else {
            return false;
        };
        slot.stopped = true;
        match slot.child.take() {
            Some(child) => terminate(child, STOP_TIMEOUT)
                .await
                .is_some_and(|s| s.success()),
            None => true,
        }
    }

    /// Stops every engine; whether all exited cleanly.
    ///
    /// Work drains towards the ledger: the entry-side engines are told
    /// first, clearing-engine once they no longer serve (it nets its last
    /// window on the way out), liquidity-router and settlement-engine last,
    /// so that window still settles. A stage only waits for the previous one
    /// to stop *serving*; the engines flush their telemetry meanwhile, all at
    /// once, so one [`STOP_BUDGET`] covers the fleet whatever the collector
    /// does (a collector that never answers costs each engine its full
    /// telemetry deadline, in parallel rather than one after another).
    pub async fn stop_all(&mut self) -> bool {
        let deadline = Instant::now() + STOP_BUDGET;
        let mut stopping: Vec<(EngineKind, Child)> = Vec::new();
        for stage in STOP_STAGES {
            let mut ports = Vec::new();
            for &kind in stage {
                let Some(slot) = self.slot(kind) else {
                    continue;
                };
                slot.stopped = true;
                if let Some(child) = slot.child.take() {
                    if let Ok(pid) = i32::try_from(child.id()) {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                    }
                    ports.push(slot.port);
                    stopping.push((kind, child));
                }
            }
            let stage_deadline = deadline.min(Instant::now() + STAGE_WAIT);
            while Instant::now() < stage_deadline && ports.iter().any(|p| still_serving(*p)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if stage.contains(&EngineKind::ClearingEngine) {
                // Its last window is on its way to settlement.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let mut clean = true;
        let mut left: Vec<(EngineKind, Child)> = stopping;
        while !left.is_empty() {
            let mut still = Vec::new();
            for (kind, mut child) in left {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            clean = false;
                            self.report_unclean(kind, &format!("exited with {status}"));
                        }
                    }
                    Ok(None) if Instant::now() < deadline => still.push((kind, child)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        clean = false;
                        self.report_unclean(
                            kind,
                            &format!(
                                "did not stop within {} s and was killed",
                                STOP_BUDGET.as_secs()
                            ),
                        );
                    }
                }
            }
            left = still;
            if !left.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        clean
    }

    fn report_unclean(&self, kind: EngineKind, what: &str) {
        eprintln!(
            "deltran: {} {what}; see {}",
            kind.name(),
            self.log_path(kind).display()
        );
    }

    /// Writes `fleet.json` into the run directory.
    pub fn write_fleet_file(
        &self,
        viewer: Option<&otlp_viewer::Viewer>,
        nats_pid: Option<u32>,
    ) -> Result<(), String> {
        let file = FleetFile {
            nats_pid,
            viewer_url: viewer.map(otlp_viewer::Viewer::url),
            viewer_otlp_grpc: viewer.map(otlp_viewer::Viewer::otlp_grpc_endpoint),
            viewer_otlp_http: viewer.map(otlp_viewer::Viewer::otlp_http_endpoint),
            gateway_url: self.gateway_url(),
            nats_url: self.nats_url.clone(),
            engines: self
                .slots
                .iter()
                .map(|s| FleetFileEngine {
                    name: s.kind.name().into(),
                    framework: s.kind.framework().into(),
                    port: s.port,
                    metrics_port: s.metrics_port,
                    pid: s.child.as_ref().map_or(0, |c| c.id()),
                })
                .collect(),
        };
        let path = self.run_dir.join("fleet.json");
        let json = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        // Write then rename, so readers never see half a file.
        let tmp = self.run_dir.join("fleet.json.tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod stop_order_tests {
    use super::*;

    #[test]
    fn every_engine_is_in_exactly_one_stop_stage() {
        let mut staged: Vec<EngineKind> =
            STOP_STAGES.iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(staged.len(), EngineKind::ALL.len());
        staged.dedup();
        for kind in EngineKind::ALL {
            assert!(staged.contains(&kind), "{} is never stopped", kind.name());
        }
        // Clearing nets its last window after the entry side and before
        // the engines that route and settle it.
        let stage_of = |k: EngineKind| STOP_STAGES.iter().position(|s| s.contains(&k));
        assert!(stage_of(EngineKind::Gateway) < stage_of(EngineKind::ClearingEngine));
        assert!(stage_of(EngineKind::ClearingEngine) < stage_of(EngineKind::SettlementEngine));
        assert!(stage_of(EngineKind::ClearingEngine) < stage_of(EngineKind::LiquidityRouter));
    }
}

#[cfg(test)]
mod free_port_tests {
    use super::*;

    #[test]
    fn auto_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports = free_ports(16).expect("free ports");
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 16, "{ports:?}");
        for port in &ports {
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok(),
                "{port} was handed out but cannot be bound"
            );
        }
        // On Linux the range is readable: outgoing connections never take these.
        #[cfg(target_os = "linux")]
        {
            let range = below_ephemeral_range().expect("ip_local_port_range is readable");
            assert!(
                ports.iter().all(|p| range.contains(p)),
                "{ports:?} not in {range:?}"
            );
        }
    }
}
