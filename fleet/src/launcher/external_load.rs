//! `deltran load`: the launcher's load generator aimed at a fleet this
//! process did not start (a compose stack, a cluster), with the same mix
//! of valid, invalid, sanctioned and watch-listed payments.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{self, LoadMix, LoadStats};
use super::parse_duration;

/// Where to send payments, how many, for how long.
#[derive(Clone, Debug, clap::Args)]
pub struct ExternalLoadArgs {
    /// The gateway's base URL, e.g. `http://gateway:8080`.
    #[arg(long, env = "DELTRAN_GATEWAY_URL")]
    pub gateway: String,
    /// clearing-engine's base URL: poll its open window, as a treasury desk does.
    #[arg(long, env = "DELTRAN_CLEARING_ENGINE_URL")]
    pub clearing: Option<String>,
    /// settlement-engine's base URL: poll the ledger balances.
    #[arg(long, env = "DELTRAN_SETTLEMENT_ENGINE_URL")]
    pub settlement: Option<String>,
    /// The payments sent: rate, mix, WebSocket watchers.
    #[command(flatten)]
    pub mix: LoadMix,
    /// Stop after this long (`90s`, `5m`); default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

/// Sends load until the duration ends or the process is told to stop,
/// printing the outcomes every 5 s and once at the end. Exit 2 on a URL it
/// cannot use.
pub fn run(args: ExternalLoadArgs) -> ExitCode {
    for (flag, url) in [
        ("--gateway", Some(&args.gateway)),
        ("--clearing", args.clearing.as_ref()),
        ("--settlement", args.settlement.as_ref()),
    ] {
        if let Some(url) = url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            eprintln!("deltran load: {flag} {url:?}: expected an http:// or https:// base URL");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("deltran load: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(send(args));
    ExitCode::SUCCESS
}

async fn send(args: ExternalLoadArgs) {
    let gateway = args.gateway.trim_end_matches('/').to_string();
    let trim = |u: Option<String>| u.map(|u| u.trim_end_matches('/').to_string());
    println!(
        "deltran load: {} payments/s to {gateway}/payments (invalid {:.0}%, sanctioned {:.0}%)",
        args.mix.rate,
        args.mix.invalid * 100.0,
        args.mix.sanctioned * 100.0
    );
    let stats = Arc::new(LoadStats::default());
    let handle = load::start(
        &args.mix,
        gateway,
        trim(args.clearing),
        trim(args.settlement),
        stats.clone(),
    );
    let started = Instant::now();
    let stop = super::shutdown_requested();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        let remaining = args
            .duration
            .map(|d| d.saturating_sub(started.elapsed()))
            .unwrap_or(Duration::MAX);
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(remaining) => break,
            _ = tick.tick() => println!("deltran load: {}", stats.summary()),
        }
    }
    handle.stop().await;
    println!(
        "deltran load: done after {:.0?}: {}",
        started.elapsed(),
        stats.summary()
    );
}
