//! `deltran`: runs the DelTran demo fleet (NATS, eight engines, load and a
//! live view and the embedded viewer), prints a trace (`deltran trace <id>`), or one engine (`deltran engine <name>`, as the launcher
//! starts them), or probes one engine's readiness (`deltran probe`).

use std::process::ExitCode;

use clap::Parser;
use deltran_fleet::catalogue::EngineKind;
use deltran_fleet::engines;
use deltran_fleet::launcher::{self, RunArgs};
use deltran_fleet::probe;

/// Telemetry allocates a span's and a log record's data on the request's
/// thread and frees it on the exporter's; mimalloc returns such memory to
/// its owner's free list, where glibc malloc's arenas and consolidation
/// made allocation about a fifth of the engines' CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "deltran",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Runs one engine in this process (what the launcher starts eight times).
    Engine {
        /// Which engine.
        #[arg(value_enum)]
        kind: EngineKind,
    },
    /// Prints one trace as a waterfall across the engines, with its log
    /// lines: from the running fleet's viewer, or a finished run's directory.
    Trace(launcher::TraceArgs),
    /// Sends the launcher's load (same mix) to a fleet started elsewhere.
    Load(launcher::external_load::ExternalLoadArgs),
    /// Exits 0 when an engine answers `GET /ready` with 2xx, 1 otherwise:
    /// a container health check for images without a shell.
    Probe {
        /// What to ask (default `http://127.0.0.1:$DELTRAN_PORT/ready`).
        #[arg(long)]
        url: Option<String>,
        /// Deadline for connecting, and for the answer, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    // One TLS backend for the whole process, chosen here rather than left to
    // whichever rustls features the dependency graph enables.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Engine { kind }) => engines::run(kind),
        Some(Command::Load(args)) => launcher::external_load::run(args),
        Some(Command::Trace(args)) => launcher::viewer::run_trace(args),
        Some(Command::Probe { url, timeout_ms }) => {
            let checked = url
                .map_or_else(probe::default_url, Ok)
                .and_then(|url| probe::ready(&url, std::time::Duration::from_millis(timeout_ms)));
            match checked {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("deltran probe: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => launcher::run(cli.run),
    }
}
