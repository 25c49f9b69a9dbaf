//! Runs the real `cryptofunk` launcher (a real nats-server and the fourteen
//! component processes) and stops it the way a user does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use cryptofunk::launcher::RunFile;

/// A running desk.
pub struct Desk {
    inner: testkit::Launched,
    pub run: RunFile,
}

impl Desk {
    /// Starts the launcher with `args` and `env` (nothing else of the
    /// test's own `OTEL_*`/`CRYPTOFUNK_*`), and waits for every component.
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Desk {
        let mut inner = testkit::Launched::start(
            Path::new(env!("CARGO_BIN_EXE_cryptofunk")),
            args,
            env,
            &["OTEL_", "CRYPTOFUNK_", "RUST_LOG"],
            "cryptofunk.json",
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let run: RunFile = serde_json::from_str(inner.run_file()).unwrap();
        // Killed should the launcher not stop them: the components, and the
        // NATS server it started.
        let started = run.components.iter().map(|c| c.pid).chain(run.nats_pid);
        inner.watch_pids(started.collect());
        Desk { inner, run }
    }

    /// A component's port.
    pub fn port(&self, name: &str) -> u16 {
        self.run
            .components
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no component {name}"))
            .port
    }

    /// `http://127.0.0.1:<port>` of a component.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.port(name))
    }

    /// The last lines of the launcher's and every component's log.
    pub fn logs(&self) -> String {
        self.inner
            .logs(self.run.components.iter().map(|c| c.name.as_str()))
    }

    /// Ctrl-C, and the launcher's exit status.
    pub fn interrupt(&mut self) -> ExitStatus {
        let logs = self.logs();
        self.inner
            .interrupt(Duration::from_secs(90))
            .unwrap_or_else(|e| panic!("after SIGINT: {e}\n{logs}"))
    }

    /// The components as Prometheus file_sd target groups, labelled
    /// `service` as `deploy/prometheus/targets/cryptofunk.yml` does.
    pub fn scrape_targets(&self) -> Vec<monitoring::staging::TargetGroup> {
        self.run
            .components
            .iter()
            .map(|c| monitoring::staging::TargetGroup {
                targets: vec![format!("127.0.0.1:{}", c.port)],
                labels: vec![("service".into(), c.name.clone())],
            })
            .collect()
    }

    /// The orchestrator's latest round once `accept` takes it (≤ `within`).
    pub fn round_where(
        &self,
        within: Duration,
        accept: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let url = format!("{}/api/rounds/latest", self.url("orchestrator"));
        let deadline = Instant::now() + within;
        loop {
            if let Ok(round) = testkit::http_get_json(&url)
                && accept(&round)
            {
                return round;
            }
            assert!(
                Instant::now() < deadline,
                "no such round in {within:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
