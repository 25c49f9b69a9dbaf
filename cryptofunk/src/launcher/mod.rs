//! The one command: starts NATS and the fourteen components as child
//! processes, shows the desk live, turns the fault knobs (a slow or failing
//! LLM, a tool server down, a market crash), and stops everything in order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use deltran_fleet::launcher::nats::NatsServer;
use deltran_fleet::launcher::{
    Outage, OutageWindow, Ports, RunClock, free_ports, parse_duration, parse_share,
    resource_attributes_with, terminate,
};
use serde::Serialize;

use crate::catalogue::{Component, loopback_url};

/// Options of a run (all have defaults).
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Port plan: the original set-up's table, or free ports.
    #[arg(long, value_enum, default_value_t = Ports::Default)]
    pub ports: Ports,
    /// Stop after this long (`90s`, `5m`); default: until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// One trading round every this long.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub round: Duration,
    /// One market tick every this long.
    #[arg(long, value_parser = parse_duration, default_value = "250ms")]
    pub tick: Duration,
    /// The market's seed (same seed, same prices).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The market crashes (about 45 % in ten ticks) this long after the start.
    #[arg(long, value_parser = parse_duration)]
    pub crash_at: Option<Duration>,
    /// Added to every LLM answer.
    #[arg(long, value_parser = parse_duration)]
    pub llm_latency: Option<Duration>,
    /// Share of LLM calls answered 503 (0–1).
    #[arg(long, value_parser = parse_share)]
    pub llm_errors: Option<f64>,
    /// Stop a component mid-run and start it again, e.g.
    /// `--outage market-data=20-40` (seconds into the run); repeatable.
    #[arg(long, value_name = "COMPONENT=FROM-TO", value_parser = parse_outage)]
    pub outage: Vec<(Component, Duration, Duration)>,
    /// Use this NATS server instead of starting `nats-server`.
    #[arg(long, env = "CRYPTOFUNK_NATS_URL")]
    pub nats_url: Option<String>,
    /// The order executor's trade ledger (`postgres://…`); in memory without.
    #[arg(long, env = "CRYPTOFUNK_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The API server's cache (`redis://…`); in process without.
    #[arg(long, env = "CRYPTOFUNK_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Where logs and `cryptofunk.json` go (default: a new temporary directory).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Print a status line every few seconds instead of redrawing.
    #[arg(long)]
    pub no_view: bool,
}

fn parse_outage(s: &str) -> Result<(Component, Duration, Duration), String> {
    let (name, window) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: use COMPONENT=FROM-TO, e.g. market-data=20-40"))?;
    let component = Component::from_name(name.trim())
        .ok_or_else(|| format!("{name:?} is not a component; one of {}", names()))?;
    let (from, to) = window
        .split_once('-')
        .ok_or_else(|| format!("{window:?}: use FROM-TO in seconds, e.g. 20-40"))?;
    let (from, to) = (parse_duration(from)?, parse_duration(to)?);
    if to <= from {
        return Err(format!("{window:?}: the outage must end after it starts"));
    }
    Ok((component, from, to))
}

fn names() -> String {
    Component::ALL.map(Component::name).join(", ")
}

/// `cryptofunk.json` in the run directory: where everything listens.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct RunFile {
    /// NATS.
    pub nats_url: String,
    /// Its process id, when this run started it (a supervisor that must
    /// clean up after a killed launcher stops it by this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_pid: Option<u32>,
    /// Every component.
    pub components: Vec<RunFileComponent>,
}

/// One component in `cryptofunk.json`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct RunFileComponent {
    /// Service name.
    pub name: String,
    /// HTTP port (`/health`, `/ready`, `/metrics`, and `/mcp` on tool servers).
    pub port: u16,
    /// Process id.
    pub pid: u32,
}

struct Slot {
    component: Component,
    port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

/// Runs the desk until Ctrl-C or `--duration`.
pub fn run(args: RunArgs) -> ExitCode {
    deltran_fleet::launcher::run_launcher("cryptofunk", ExitCode::from(2), run_async(args))
}

async fn run_async(args: RunArgs) -> Result<ExitCode, String> {
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cryptofunk-{}", std::process::id())));
    std::fs::create_dir_all(run_dir.join("logs"))
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
    let nats = NatsServer::start_or_use(args.nats_url.as_deref(), args.ports, &run_dir).await?;
    let mut slots = plan(&args, nats.url(), nats.token_file())?;
    eprintln!(
        "cryptofunk: starting {} components (logs in {})",
        slots.len(),
        run_dir.join("logs").display()
    );
    for i in 0..slots.len() {
        if let Err(e) = start(&mut slots[i], &run_dir).await {
            stop_all(&mut slots).await;
            nats.stop().await;
            return Err(e);
        }
    }
    write_run_file(&run_dir, &nats, &slots)?;
    let api = loopback_url(port_of(&slots, Component::ApiServer));
    let mut outages: Vec<OutageWindow<Component>> = args
        .outage
        .iter()
        .map(|(c, f, t)| OutageWindow::new(*c, *f, *t))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let tty = !args.no_view && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut clock = RunClock::start(args.duration);
    while let Some(elapsed) = clock.next().await {
        for w in outages.iter_mut() {
            let Some(step) = w.at(elapsed) else { continue };
            let Some(slot) = slots.iter_mut().find(|s| s.component == w.target) else {
                continue;
            };
            match step {
                Outage::Stop => {
                    if let Some(child) = slot.child.take() {
                        terminate(child, Duration::from_secs(5)).await;
                    }
                    eprintln!("cryptofunk: {} stopped (outage)", w.target.name());
                }
                Outage::Restart => {
                    if let Err(e) = start(slot, &run_dir).await {
                        eprintln!("cryptofunk: restarting {}: {e}", w.target.name());
                    }
                }
            }
        }
        if elapsed.as_secs().is_multiple_of(2) {
            show(&client, &api, elapsed, tty).await;
        }
    }
    eprintln!("\ncryptofunk: stopping (orchestrator first, then agents, tools, NATS)");
    let took = Instant::now();
    let clean = stop_all(&mut slots).await;
    let nats_clean = nats.stop().await;
    eprintln!(
        "cryptofunk: stopped in {:.1} s | components {} | nats-server {} | run directory {}",
        took.elapsed().as_secs_f64(),
        if clean {
            "all exited cleanly"
        } else {
            "some had to be killed"
        },
        if nats_clean {
            "exited cleanly"
        } else {
            "killed"
        },
        run_dir.display()
    );
    Ok(if clean && nats_clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn port_of(slots: &[Slot], component: Component) -> u16 {
    slots
        .iter()
        .find(|s| s.component == component)
        .map(|s| s.port)
        .unwrap_or_default()
}

/// Telemetry for every component: OTLP when a collector is named, else
/// Prometheus on each `/metrics` only.
fn otel_defaults() -> Vec<(String, String)> {
    let has = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let mut env = Vec::new();
    let mut default = |name: &str, value: &str| {
        if !has(name) {
            env.push((name.to_string(), value.to_string()));
        }
    };
    if has("OTEL_EXPORTER_OTLP_ENDPOINT") || has("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        default("OTEL_TRACES_EXPORTER", "otlp");
        default("OTEL_METRICS_EXPORTER", "otlp,prometheus");
        default("OTEL_LOGS_EXPORTER", "otlp");
        default("OTEL_METRIC_EXPORT_INTERVAL", "5000");
    } else {
        default("OTEL_TRACES_EXPORTER", "none");
        default("OTEL_METRICS_EXPORTER", "prometheus");
        default("OTEL_LOGS_EXPORTER", "none");
    }
    // The MCP SDK narrates every session at info.
    default("RUST_LOG", "info,rmcp=warn");
    // Served on each business port's /metrics; telemetry's own endpoint
    // takes any free port.
    default("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1");
    default("OTEL_EXPORTER_PROMETHEUS_PORT", "0");
    env.push((
        "OTEL_RESOURCE_ATTRIBUTES".into(),
        resource_attributes_with(&[
            ("service.namespace", "cryptofunk"),
            ("deployment.environment.name", "demo"),
        ]),
    ));
    env
}

fn plan(args: &RunArgs, nats_url: &str, token_file: Option<&Path>) -> Result<Vec<Slot>, String> {
    let ports: Vec<u16> = match args.ports {
        Ports::Default => Component::ALL.iter().map(|c| c.default_port()).collect(),
        Ports::Auto => free_ports(Component::ALL.len())?,
    };
    let mut common = vec![
        ("CRYPTOFUNK_HOST".to_string(), "127.0.0.1".to_string()),
        ("CRYPTOFUNK_NATS_URL".into(), nats_url.to_string()),
        ("CRYPTOFUNK_SEED".into(), args.seed.to_string()),
        (
            "CRYPTOFUNK_TICK_MS".into(),
            args.tick.as_millis().max(1).to_string(),
        ),
        (
            "CRYPTOFUNK_ROUND_MS".into(),
            args.round.as_millis().max(1).to_string(),
        ),
    ];
    if let Some(file) = token_file {
        common.push((
            "CRYPTOFUNK_NATS_TOKEN_FILE".into(),
            file.display().to_string(),
        ));
    }
    if let Some(at) = args.crash_at {
        common.push(("CRYPTOFUNK_CRASH_AT_MS".into(), at.as_millis().to_string()));
    }
    if let Some(latency) = args.llm_latency {
        common.push((
            "CRYPTOFUNK_LLM_LATENCY_MS".into(),
            latency.as_millis().to_string(),
        ));
    }
    if let Some(share) = args.llm_errors {
        common.push(("CRYPTOFUNK_LLM_ERROR_RATE".into(), share.to_string()));
    }
    if let Some(url) = &args.database_url {
        common.push(("CRYPTOFUNK_DATABASE_URL".into(), url.clone()));
    }
    if let Some(url) = &args.redis_url {
        common.push(("CRYPTOFUNK_REDIS_URL".into(), url.clone()));
    }
    for (c, port) in Component::ALL.iter().zip(&ports) {
        common.push((c.url_variable(), loopback_url(*port)));
    }
    common.extend(otel_defaults());
    Ok(Component::ALL
        .iter()
        .zip(ports)
        .map(|(&component, port)| {
            let mut env = common.clone();
            env.push(("CRYPTOFUNK_PORT".into(), port.to_string()));
            Slot {
                component,
                port,
                env,
                child: None,
            }
        })
        .collect())
}

/// Starts a component and waits for its `/ready`.
async fn start(slot: &mut Slot, run_dir: &Path) -> Result<(), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the cryptofunk binary: {e}"))?;
    let name = slot.component.name();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join("logs").join(format!("{name}.log")))
        .map_err(|e| format!("cannot open {name}'s log: {e}"))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.arg("component")
        .arg(name)
        .envs(slot.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let ready = format!("{}/ready", loopback_url(slot.port));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{name} exited ({status}) before it was ready; see {}",
                run_dir.join("logs").join(format!("{name}.log")).display()
            ));
        }
        if client
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{name} was not ready on port {} within 60 s",
                slot.port
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slot.child = Some(child);
    Ok(())
}

/// Stops the callers first (api, orchestrator), then the agents, the tool
/// servers and the LLM; whether every one exited on SIGTERM.
async fn stop_all(slots: &mut [Slot]) -> bool {
    let mut clean = true;
    for slot in slots.iter_mut().rev() {
        if let Some(child) = slot.child.take() {
            clean &= terminate(child, Duration::from_secs(7)).await.is_some();
        }
    }
    clean
}

fn write_run_file(run_dir: &Path, nats: &NatsServer, slots: &[Slot]) -> Result<(), String> {
    let file = RunFile {
        nats_url: nats.url().to_string(),
        nats_pid: nats.pid(),
        components: slots
            .iter()
            .map(|s| RunFileComponent {
                name: s.component.name().to_string(),
                port: s.port,
                pid: s.child.as_ref().map(Child::id).unwrap_or_default(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    std::fs::write(run_dir.join("cryptofunk.json"), text)
        .map_err(|e| format!("cannot write cryptofunk.json: {e}"))
}

/// The desk now: portfolio and the latest round, from the API server.
async fn show(client: &reqwest::Client, api: &str, elapsed: Duration, tty: bool) {
    let get = |path: &str| {
        let url = format!("{api}{path}");
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .ok()?
                .json::<serde_json::Value>()
                .await
                .ok()
        }
    };
    let (portfolio, round) = (get("/api/portfolio").await, get("/api/rounds/latest").await);
    let money = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_default();
    let line = match (&portfolio, &round) {
        (Some(p), r) => format!(
            "{:>5.0}s | value {:>10.0} USD | P&L {:>+9.0} | drawdown {:>5.1} % | positions {} | breaker {} | last round {} {} (score {:+.2})",
            elapsed.as_secs_f64(),
            money(p, "value"),
            money(p, "pnl"),
            money(p, "drawdown") * 100.0,
            p["positions_open"],
            if p["breaker_tripped"] == serde_json::Value::Bool(true) {
                "TRIPPED"
            } else {
                "ok"
            },
            r.as_ref()
                .map(|r| r["symbol"].as_str().unwrap_or("-").to_string())
                .unwrap_or_default(),
            r.as_ref()
                .map(|r| r["decision"].as_str().unwrap_or("-").to_string())
                .unwrap_or_default(),
            r.as_ref().map(|r| money(r, "score")).unwrap_or_default(),
        ),
        (None, _) => format!(
            "{:>5.0}s | the API server does not answer",
            elapsed.as_secs_f64()
        ),
    };
    if tty {
        print!("\x1b[2K\r{line}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
    } else {
        println!("{line}");
    }
}
