//! The one command: starts NATS and the eight engines as child processes,
//! drives load with the fault knobs, shows a live view, and stops
//! everything in order on Ctrl-C (every engine flushing its telemetry).

mod clock;
pub mod external_load;
mod fleet;
mod load;
pub mod nats;
mod view;
pub mod viewer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalogue::EngineKind;
pub use clock::{Outage, OutageWindow, RunClock};
pub use fleet::{
    FleetFile, FleetFileEngine, free_port, free_ports, resource_attributes_with, terminate,
};
pub use load::LoadMix;
pub use viewer::{TraceArgs, ViewerMode};

/// How to pick ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Ports {
    /// The DelTran table (gateway 8080 … settlement-engine 8088; metrics +1400; NATS 4222).
    Default,
    /// Free ports chosen at start (tests, or when the defaults are taken).
    Auto,
}

/// Options of the fleet run (all have defaults).
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// The payments sent: rate, mix, WebSocket watchers.
    #[command(flatten)]
    pub mix: load::LoadMix,
    /// Stop after this long (`90s`, `5m`, `120`); default: run until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Added latency per engine, e.g. `--latency risk-engine=50` (milliseconds); repeatable.
    #[arg(long, value_name = "ENGINE=MS", value_parser = parse_latency)]
    pub latency: Vec<(EngineKind, u64)>,
    /// Injected error rate per engine, e.g. `--errors token-engine=0.05`; repeatable.
    #[arg(long, value_name = "ENGINE=SHARE", value_parser = parse_errors)]
    pub errors: Vec<(EngineKind, f64)>,
    /// Stop an engine mid-run and start it again, e.g. `--outage risk-engine=20-40` (seconds into the run); repeatable.
    #[arg(long, value_name = "ENGINE=FROM-TO", value_parser = parse_outage)]
    pub outage: Vec<(EngineKind, Duration, Duration)>,
    /// Port plan.
    #[arg(long, value_enum, default_value_t = Ports::Default)]
    pub ports: Ports,
    /// Use this NATS server instead of starting `nats-server`.
    #[arg(long, env = "DELTRAN_NATS_URL")]
    pub nats_url: Option<String>,
    /// settlement-engine's ledger (`postgres://…`); default an SQLite file in the run directory.
    #[arg(long, env = "DELTRAN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Clearing window length in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub clearing_window_ms: u64,
    /// Where logs, the ledger and `fleet.json` go (default: a new directory under the system temp dir).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Print a status line every 5 s instead of redrawing the terminal.
    #[arg(long)]
    pub no_view: bool,
    /// The embedded OTLP viewer (web page, `deltran trace`): `auto` runs it
    /// when no `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    #[arg(long, value_enum, default_value_t = ViewerMode::Auto)]
    pub viewer: ViewerMode,
    /// Port of the viewer's page on 127.0.0.1 (default 18888; with `--ports auto` a free one).
    #[arg(long)]
    pub viewer_port: Option<u16>,
}

/// A duration as the command lines take it: `90s`, `5m`, `1h`, `250ms`, or
/// plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; use e.g. 90s, 5m or 120"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "ms" => n / 1000.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// A share from 0 to 1 (`0.05` = 5 %).
pub fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a share; use a number from 0 to 1 (0.05 = 5%)"
        )),
    }
}

fn engine_and_value(s: &str) -> Result<(EngineKind, &str), String> {
    let (engine, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ENGINE=VALUE, e.g. risk-engine=50"))?;
    let kind = EngineKind::from_name(engine.trim()).ok_or_else(|| {
        let names: Vec<_> = EngineKind::ALL.iter().map(|k| k.name()).collect();
        format!(
            "{engine:?} is not an engine; use one of {}",
            names.join(", ")
        )
    })?;
    Ok((kind, value.trim()))
}

fn parse_latency(s: &str) -> Result<(EngineKind, u64), String> {
    let (kind, value) = engine_and_value(s)?;
    let ms = value.trim_end_matches("ms").parse().map_err(|_| {
        format!(
            "{value:?} is not a latency; use whole milliseconds, e.g. {}=50",
            kind.name()
        )
    })?;
    Ok((kind, ms))
}

fn parse_errors(s: &str) -> Result<(EngineKind, f64), String> {
    let (kind, value) = engine_and_value(s)?;
    Ok((kind, parse_share(value)?))
}

fn parse_outage(s: &str) -> Result<(EngineKind, Duration, Duration), String> {
    let (kind, value) = engine_and_value(s)?;
    let bad = || {
        format!(
            "{value:?} is not an outage; use FROM-TO in seconds, e.g. {}=20-40",
            kind.name()
        )
    };
    let (from, to) = value.split_once('-').ok_or_else(bad)?;
    let from: f64 = from.trim().parse().map_err(|_| bad())?;
    let to: f64 = to.trim().parse().map_err(|_| bad())?;
    if !(from >= 0.0 && to > from) {
        return Err(bad());
    }
    Ok((
        kind,
        Duration::from_secs_f64(from),
        Duration::from_secs_f64(to),
    ))
}

/// Runs the fleet until Ctrl-C (or `--duration`); the exit code is 0 when
/// every engine stopped cleanly.
pub fn run(args: RunArgs) -> ExitCode {
    run_launcher("deltran", ExitCode::FAILURE, run_async(args))
}

/// Runs a launcher's body on a two-worker runtime; an error is printed
/// after `name:` and ends with `failure`.
pub fn run_launcher(
    name: &str,
    failure: ExitCode,
    body: impl std::future::Future<Output = Result<ExitCode, String>>,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(body) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {e}");
            failure
        }
    }
}

async fn run_async(args: RunArgs) -> Result<ExitCode, String> {
    let run_dir = match &args.run_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("deltran-{}", crate::domain::now_ms())),
    };
    std::fs::create_dir_all(run_dir.join("logs"))
        .map_err(|e| format!("cannot create the run directory {}: {e}", run_dir.display()))?;
    let viewer = viewer::start(&args)?;
    let nats =
        nats::NatsServer::start_or_use(args.nats_url.as_deref(), args.ports, &run_dir).await?;
    let mut fleet = fleet::Fleet::plan(
        &args,
        &run_dir,
        nats.url(),
        nats.token_file(),
        viewer.as_ref().map(|v| v.otlp_grpc_endpoint()),
    )?;
    eprintln!(
        "deltran: starting 8 engines (logs in {})",
        run_dir.join("logs").display()
    );
    if let Err(e) = fleet.start_all().await {
        fleet.stop_all().await;
        nats.stop().await;
        return Err(e);
    }
    fleet.write_fleet_file(viewer.as_ref(), nats.pid())?;
    let started = Instant::now();
    let stats = Arc::new(load::LoadStats::default());
    let mut load = load::start(
        &args.mix,
        fleet.gateway_url(),
        Some(fleet.url(EngineKind::ClearingEngine)),
        Some(fleet.url(EngineKind::SettlementEngine)),
        stats.clone(),
    );
    let mut view = view::View::new(&args, &fleet, &run_dir, viewer.as_ref());
    let mut outages: Vec<OutageWindow<EngineKind>> = args
        .outage
        .iter()
        .map(|(k, f, t)| OutageWindow::new(*k, *f, *t))
        .collect();
    let mut clock = RunClock::start(args.duration);
    while let Some(elapsed) = clock.next().await {
        for w in outages.iter_mut() {
            match w.at(elapsed) {
                Some(Outage::Stop) => {
                    fleet.stop(w.target).await;
                }
                Some(Outage::Restart) => {
                    if let Err(e) = fleet.start(w.target).await {
                        eprintln!("deltran: restarting {}: {e}", w.target.name());
                    }
                }
                None => {}
            }
        }
        view.refresh(&mut fleet, &stats, elapsed, viewer.as_ref())
            .await;
    }
    eprintln!("\ndeltran: stopping (load first, then engines in order, then NATS)");
    let stopping = std::time::Instant::now();
    load.stop_sending().await;
    // Give in-flight payments a moment to reach the ledger.
    tokio::time::sleep(Duration::from_millis(
        args.clearing_window_ms.min(5000) + 500,
    ))
    .await;
    load.stop().await;
    // The last word of every engine's counters, for the summary.
    view.scrape(&mut fleet).await;
    let engines_clean = fleet.stop_all().await;
    let nats_clean = nats.stop().await;
    let clean = engines_clean && nats_clean;
    // The engines flushed on their way out: what the viewer holds is final.
    let kept = viewer.map(|v| {
        let path = run_dir.join(viewer::DUMP_FILE);
        let written = otlp_viewer::write_dump(v.store(), &path);
        let stats = v.store().stats();
        let forwarded = v.forwarded().cloned();
        // Stopping drains what is queued for the collector (bounded).
        v.shutdown();
        view::Kept {
            path,
            written: written.map_err(|e| e.to_string()),
            stats,
            forwarded: forwarded.map(|f| (f.forwarded(), f.failed(), f.dropped())),
        }
    });
    view.summary(
        &stats,
        started.elapsed(),
        &view::Ending {
            took: stopping.elapsed(),
            engines_clean,
            nats_clean,
        },
        kept.as_ref(),
    );
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_requested() {
    crate::shutdown::shutdown_signal().await
}
