//! Runs the real `deltran` launcher (which starts a real nats-server and
//! the eight engine processes) for the fleet tests, and stops it the way a
//! user does: SIGINT.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod traces;
pub mod viewer;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use deltran_fleet::launcher::FleetFile;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A running launcher with its run directory.
pub struct Launcher {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub fleet: FleetFile,
}

/// Every `OTEL_*`/`DELTRAN_*` variable of the test's own environment is
/// removed, so only what the test says reaches the fleet.
pub fn launcher_command(args: &[&str], env: &[(&str, String)], run_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deltran"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k.starts_with("DELTRAN_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--ports", "auto", "--no-view", "--run-dir"])
        .arg(run_dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

impl Launcher {
    /// Starts the launcher and waits (≤ 120 s) for `fleet.json`, which it
    /// writes once every engine answers `/ready`.
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Launcher {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("run");
        let log = std::fs::File::create(dir.path().join("launcher.log")).unwrap();
        let mut cmd = launcher_command(args, env, &run_dir);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = cmd.spawn().unwrap();
        let fleet_file = run_dir.join("fleet.json");
        let deadline = Instant::now() + Duration::from_secs(120);
        let fleet = loop {
            if let Ok(text) = std::fs::read_to_string(&fleet_file) {
                break serde_json::from_str::<FleetFile>(&text).unwrap();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "launcher exited ({status}) before the fleet was ready:\n{}",
                    tail(&dir.path().join("launcher.log"))
                );
            }
            assert!(
                Instant::now() < deadline,
                "fleet not ready in 120 s:\n{}",
                tail(&dir.path().join("launcher.log"))
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        Launcher {
            child: Some(child),
            dir,
            fleet,
        }
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
        self.dir.path().join("run")
    }

    /// The last lines of the launcher's and every engine's log.
    pub fn logs(&self) -> String {
        let mut out = format!(
            "launcher:\n{}\n",
            tail(&self.dir.path().join("launcher.log"))
        );
        for e in &self.fleet.engines {
            out.push_str(&format!(
                "{}:\n{}\n",
                e.name,
                tail(&self.run_dir().join("logs").join(format!("{}.log", e.name)))
            ));
        }
        out
    }

    /// Ctrl-C: SIGINT to the launcher, then wait (≤ 90 s) for it to stop
    /// everything; its exit status.
    pub fn interrupt(&mut self) -> ExitStatus {
        let child = self.child.as_ref().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
        self.wait_exit(Duration::from_secs(90), "SIGINT")
    }

    /// Waits (≤ `timeout`) for a launcher started with `--duration` to end
    /// the run and stop everything; its exit status.
    pub fn wait_for_end(&mut self, timeout: Duration) -> ExitStatus {
        self.wait_exit(timeout, "the end of its --duration")
    }

    fn wait_exit(&mut self, timeout: Duration, after: &str) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.kill_engines();
                panic!(
                    "launcher did not stop within {timeout:?} of {after}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The launcher's final line, `deltran: ran N s | sent … unreachable …`
    /// (the load generator's outcome counts), once it has exited.
    pub fn summary(&self) -> Option<String> {
        self.last_line_starting("deltran: ran ")
    }

    /// The launcher's last output line that starts with `prefix`.
    pub fn last_line_starting(&self, prefix: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("launcher.log"))
            .unwrap_or_default()
            .lines()
            .rev()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    }

    fn kill_engines(&self) {
        for e in &self.fleet.engines {
            if e.pid > 0 {
                let _ = kill(Pid::from_raw(e.pid as i32), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            self.kill_engines();
        }
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
