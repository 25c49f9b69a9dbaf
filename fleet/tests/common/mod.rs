//! Runs the real `deltran` launcher (which starts a real nats-server and
//! the eight engine processes) for the fleet tests, and stops it the way a
//! user does: SIGINT.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod traces;
pub mod viewer;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use deltran_fleet::launcher::FleetFile;

/// A running launcher with its run directory.
pub struct Launcher {
    inner: testkit::Launched,
    pub fleet: FleetFile,
}

/// Variables of the test's own environment the fleet never sees.
const CLEARED: &[&str] = &["OTEL_", "DELTRAN_"];

/// Every `OTEL_*`/`DELTRAN_*` variable of the test's own environment is
/// removed, so only what the test says reaches the fleet.
pub fn launcher_command(args: &[&str], env: &[(&str, String)], run_dir: &Path) -> Command {
    testkit::launcher_command(
        Path::new(env!("CARGO_BIN_EXE_deltran")),
        args,
        env,
        CLEARED,
        run_dir,
    )
}

/// Held while a fleet starts. The launcher picks free ports and releases
/// them for its engines to bind; two fleets of one test binary starting at
/// once can pick the same port in that gap. One at a time, each picks while
/// the others' engines hold theirs.
static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Launcher {
    /// Starts the launcher and waits (≤ 120 s) for `fleet.json`, which it
    /// writes once every engine answers `/ready`.
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Launcher {
        let starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let mut inner = testkit::Launched::start(
            Path::new(env!("CARGO_BIN_EXE_deltran")),
            args,
            env,
            CLEARED,
            "fleet.json",
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        drop(starting);
        let fleet: FleetFile = serde_json::from_str(inner.run_file()).unwrap();
        // Killed should the launcher not stop them: the engines, and the
        // NATS server it started.
        let started = fleet.engines.iter().map(|e| e.pid).chain(fleet.nats_pid);
        inner.watch_pids(started.collect());
        Launcher { inner, fleet }
    }

    /// The engines as Prometheus file_sd target groups, labelled `service`
    /// and `language` as the original set-up and `deploy/prometheus` do.
    pub fn scrape_targets(&self) -> Vec<monitoring::staging::TargetGroup> {
        self.fleet
            .engines
            .iter()
            .map(|e| monitoring::staging::TargetGroup {
                targets: vec![format!("127.0.0.1:{}", e.port)],
                labels: vec![
                    ("service".into(), e.name.clone()),
                    ("language".into(), "rust".into()),
                ],
            })
            .collect()
    }

    /// The run directory (logs, ledger, fleet.json).
    pub fn run_dir(&self) -> PathBuf {
        self.inner.run_dir()
    }

    /// The last lines of the launcher's and every engine's log.
    pub fn logs(&self) -> String {
        self.inner
            .logs(self.fleet.engines.iter().map(|e| e.name.as_str()))
    }

    /// Ctrl-C: SIGINT to the launcher, then wait (≤ 90 s) for it to stop
    /// everything; its exit status.
    pub fn interrupt(&mut self) -> ExitStatus {
        let logs = self.logs();
        self.inner
            .interrupt(Duration::from_secs(90))
            .unwrap_or_else(|e| panic!("after SIGINT: {e}\n{logs}"))
    }

    /// Waits (≤ `timeout`) for a launcher started with `--duration` to end
    /// the run and stop everything; its exit status.
    pub fn wait_for_end(&mut self, timeout: Duration) -> ExitStatus {
        let logs = self.logs();
        self.inner
            .wait_exit(timeout)
            .unwrap_or_else(|e| panic!("at the end of its --duration: {e}\n{logs}"))
    }

    /// The launcher's final line, `deltran: ran N s | sent … unreachable …`
    /// (the load generator's outcome counts), once it has exited.
    pub fn summary(&self) -> Option<String> {
        self.last_line_starting("deltran: ran ")
    }

    /// The launcher's last output line that starts with `prefix`.
    pub fn last_line_starting(&self, prefix: &str) -> Option<String> {
        self.inner.last_line_starting(prefix)
    }
}

/// The last 40 lines of a file.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A payment body from `from` to `to`.
pub fn payment(
    from: &str,
    to: &str,
    amount: f64,
    debtor: &str,
    creditor: &str,
) -> serde_json::Value {
    serde_json::json!({
        "from_bank": from, "to_bank": to, "amount": amount, "currency": "EUR",
        "debtor": debtor, "creditor": creditor,
    })
}

/// A payment above risk-engine's default limit (1,000,000): a limit breach;
/// a few in a row trip its circuit breaker.
pub fn over_limit_payment() -> serde_json::Value {
    payment(
        "DEUTDEFF",
        "BNPAFRPP",
        5_000_000.0,
        "Acme Manufacturing",
        "Globex Retail",
    )
}

/// POSTs a payment; status and the gateway's JSON answer.
pub fn post_payment(gateway: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let (code, text) = testkit::http_post(
        &format!("{gateway}/payments"),
        "application/json",
        body.to_string().as_bytes(),
    )
    .unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}
