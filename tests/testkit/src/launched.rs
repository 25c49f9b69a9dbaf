//! A demo system's launcher (`deltran`, `cryptofunk`), run the way a user
//! runs it: free ports, no live view, a run directory of its own, then
//! stopped with Ctrl-C (SIGINT) or at the end of its `--duration`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, Result};

/// A running launcher, its run directory, and what it wrote once ready.
#[derive(Debug)]
pub struct Launched {
    child: Option<Child>,
    dir: TempDir,
    run_file: String,
    /// Processes the launcher started, killed if it is killed.
    pids: Vec<u32>,
}

/// The launcher's command: `binary --ports auto --no-view --run-dir <run>
/// args…`, with every variable of the test's own environment that starts
/// with one of `clear` removed, so only what the test says reaches it.
pub fn launcher_command(
    binary: &Path,
    args: &[&str],
    env: &[(&str, String)],
    clear: &[&str],
    run_dir: &Path,
) -> Command {
    let mut cmd = Command::new(binary);
    for (k, _) in std::env::vars() {
        if clear.iter().any(|prefix| k.starts_with(prefix)) {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--ports", "auto", "--no-view", "--run-dir"])
        .arg(run_dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Launched {
    /// Starts the launcher and waits (≤ `timeout`) for `run_file` in its
    /// run directory, which it writes once every component is ready.
    pub fn start(
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
        clear: &[&str],
        run_file: &str,
        timeout: Duration,
    ) -> Result<Launched> {
        let dir = crate::temp_dir("launcher")?;
        let run_dir = dir.path().join("run");
        let log_path = dir.path().join("launcher.log");
        let log = std::fs::File::create(&log_path).map_err(|e| Error::io("launcher log", e))?;
        let err = log.try_clone().map_err(|e| Error::io("launcher log", e))?;
        let mut child = launcher_command(binary, args, env, clear, &run_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::io("starting the launcher", e))?;
        let path = run_dir.join(run_file);
        let deadline = Instant::now() + timeout;
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && !text.is_empty()
            {
                break text;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Exited {
                    what: "launcher".into(),
                    status,
                    log_tail: crate::file_tail(&log_path, 40),
                    log_path,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::NotReady {
                    what: "launcher".into(),
                    timeout,
                    log_tail: crate::file_tail(&log_path, 40),
                    log_path,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        Ok(Launched {
            child: Some(child),
            dir,
            run_file: text,
            pids: Vec::new(),
        })
    }

    /// What the launcher wrote once ready.
    pub fn run_file(&self) -> &str {
        &self.run_file
    }

    /// The processes it started, killed should it be killed.
    pub fn watch_pids(&mut self, pids: Vec<u32>) {
        self.pids = pids;
    }

    /// The run directory (logs and the run file).
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The last 40 lines of the launcher's own output.
    pub fn launcher_log(&self) -> String {
        crate::file_tail(&self.dir.path().join("launcher.log"), 40)
    }

    /// The last 40 lines of `<run>/logs/<name>.log`.
    pub fn component_log(&self, name: &str) -> String {
        crate::file_tail(&self.run_dir().join("logs").join(format!("{name}.log")), 40)
    }

    /// The last lines of the launcher's log and of each named component's.
    pub fn logs<'a>(&self, components: impl IntoIterator<Item = &'a str>) -> String {
        let mut out = format!("launcher:\n{}\n", self.launcher_log());
        for name in components {
            out.push_str(&format!("{name}:\n{}\n", self.component_log(name)));
        }
        out
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

    /// Ctrl-C: SIGINT, then waits (≤ `timeout`) for the launcher to stop
    /// everything; its exit status.
    pub fn interrupt(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(child) = &self.child {
            signal(child.id(), "INT");
        }
        self.wait_exit(timeout)
    }

    /// Waits (≤ `timeout`) for a run with `--duration` to end; its exit
    /// status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let log_path = self.dir.path().join("launcher.log");
        let Some(mut child) = self.child.take() else {
            return Err(Error::io(
                "waiting for the launcher",
                std::io::Error::other("it was already stopped"),
            ));
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.kill_started();
                return Err(Error::NotReady {
                    what: "launcher's stop".into(),
                    timeout,
                    log_tail: self.launcher_log(),
                    log_path,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill_started(&self) {
        for pid in &self.pids {
            if *pid > 0 {
                signal(*pid, "KILL");
            }
        }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            self.kill_started();
        }
    }
}
