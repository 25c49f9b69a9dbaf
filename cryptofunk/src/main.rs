//! `cryptofunk`: runs the CryptoFunk desk (NATS and fourteen components with
//! a live view), or one component (`cryptofunk component <name>`, as the
//! launcher starts them).

use std::process::ExitCode;

use clap::Parser;
use cryptofunk::catalogue::Component;
use cryptofunk::launcher::{self, RunArgs};

/// Telemetry builds spans and log records on request threads and frees them
/// on the exporters' threads, which mimalloc handles far better than glibc
/// malloc (BENCHMARKS.md, *The fleet's CPU per payment*).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "cryptofunk",
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
    /// Runs one component in this process.
    Component {
        /// Which component.
        #[arg(value_enum)]
        component: Component,
    },
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Component { component }) => cryptofunk::components::run(component),
        None => launcher::run(cli.run),
    }
}
