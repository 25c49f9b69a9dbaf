//! `deltran`: runs the DelTran demo fleet (NATS, eight engines, load and a
//! live view), or one engine (`deltran engine <name>`, as the launcher
//! starts them).

use std::process::ExitCode;

use clap::Parser;
use deltran_fleet::engines::{self, EngineKind};
use deltran_fleet::launcher::{self, RunArgs};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Engine { kind }) => engines::run(kind),
        None => launcher::run(cli.run),
    }
}
