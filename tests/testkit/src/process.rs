//! Process plumbing shared by all fixtures: binary lookup, free ports, the
//! [`ChildProcess`] guard and bounded helper-command execution.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, IoContext, Result};

/// Default bound for a server to become ready.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Default bound for a server to exit after the stop signal before it is SIGKILLed.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Returns a currently free TCP port on 127.0.0.1 (bind to port 0, read it, drop the listener).
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).ctx(|| "binding 127.0.0.1:0 to pick a port".into())?;
    let port = listener
        .local_addr()
        .ctx(|| "reading the local address of a 127.0.0.1:0 listener".into())?
        .port();
    drop(listener);
    Ok(port)
}

/// Returns `n` distinct free loopback ports.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    // Hold all listeners until every port is picked so they are distinct.
    let mut listeners = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        let l = TcpListener::bind(("127.0.0.1", 0))
            .ctx(|| "binding 127.0.0.1:0 to pick a port".into())?;
        ports.push(
            l.local_addr()
                .ctx(|| "reading the local address of a 127.0.0.1:0 listener".into())?
                .port(),
        );
        listeners.push(l);
    }
    Ok(ports)
}

/// True when a TCP connection to `addr` succeeds within 500 ms.
pub fn tcp_connectable(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Finds `name` on `PATH` or in one of `extra_dirs`; the error names `install`.
pub fn find_binary(name: &str, extra_dirs: &[&str], install: &str) -> Result<PathBuf> {
    let mut searched = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
            searched.push(dir.display().to_string());
        }
    }
    for dir in extra_dirs {
        let candidate = Path::new(dir).join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        searched.push((*dir).to_string());
    }
    Err(Error::MissingBinary {
        binary: name.to_string(),
        searched: if searched.is_empty() {
            "(PATH unset)".into()
        } else {
            searched.join(":")
        },
        install: install.to_string(),
    })
}

/// True when `path` is a regular file with an execute bit.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Creates a fresh temporary directory with a recognizable prefix.
pub fn temp_dir(prefix: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("testkit-{prefix}-"))
        .tempdir()
        .ctx(|| format!("creating a temporary directory for {prefix}"))
}

/// Last `n` lines of the file at `path` (empty string if it cannot be read).
pub fn file_tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Polls `probe` every 100 ms until it returns `Ok(true)` or `timeout` passes.
///
/// The error is [`Error::Timeout`] carrying the last probe error, if any.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match probe() {
            Ok(true) => return Ok(()),
            Ok(false) => last = String::from("condition false"),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_string(),
                timeout,
                last,
            });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Renders a command line for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Output of a bounded helper command.
#[derive(Debug)]
pub struct CommandOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl CommandOutput {
    /// stdout followed by stderr.
    pub fn combined(&self) -> String {
        let mut s = self.stdout.clone();
        if !s.is_empty() && !self.stderr.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&self.stderr);
        s
    }
}

/// Runs a short-lived helper command with optional stdin, killing it after `timeout`.
///
/// Returns the output whatever the exit status; spawn failures and timeouts are errors.
pub fn run_command(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<CommandOutput> {
    let line = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().ctx(|| format!("spawning `{line}`"))?;

    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(thread::spawn(move || {
                // A broken pipe just means the tool stopped reading; its output tells why.
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let out_reader = child.stdout.take().map(spawn_reader);
    let err_reader = child.stderr.take().map(spawn_reader);

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().ctx(|| format!("waiting for `{line}`"))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let output = join_reader(out_reader) + &join_reader(err_reader);
                return Err(Error::Command {
                    command: line,
                    status: format!("timed out after {timeout:?}"),
                    output,
                });
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok(CommandOutput {
        status,
        stdout: join_reader(out_reader),
        stderr: join_reader(err_reader),
    })
}

/// Like [`run_command`] but a non-zero exit is an [`Error::Command`] carrying the output.
pub fn run_command_ok(cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<String> {
    let line = describe(&cmd);
    let out = run_command(cmd, stdin, timeout)?;
    if out.status.success() {
        Ok(out.combined())
    } else {
        Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            output: out.combined(),
        })
    }
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn join_reader(h: Option<thread::JoinHandle<String>>) -> String {
    h.and_then(|h| h.join().ok()).unwrap_or_default()
}

/// Signal used to ask a server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM (graceful shutdown for most servers).
    Term,
    /// SIGINT (PostgreSQL "fast" shutdown).
    Int,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "TERM",
            StopSignal::Int => "INT",
        }
    }
}

/// A spawned server process that owns its temporary directory.
///
/// stdout and stderr go to `<tempdir>/<name>.log`. Dropping it (or calling
/// [`ChildProcess::stop`]) signals the process by PID, waits a bounded time,
/// SIGKILLs it if needed, reaps it and removes the temporary directory.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    pid: u32,
    log_path: PathBuf,
    dir: Option<TempDir>,
    stop_signal: StopSignal,
    stop_timeout: Duration,
    exit_status: Option<ExitStatus>,
}

impl ChildProcess {
    /// Spawns `cmd` with stdout/stderr appended to `<dir>/<name>.log`; takes ownership of `dir`.
    pub fn spawn(name: &str, mut cmd: Command, dir: TempDir) -> Result<Self> {
        let log_path = dir.path().join(format!("{name}.log"));
        let log =
            File::create(&log_path).ctx(|| format!("creating log file {}", log_path.display()))?;
        let log2 = log
            .try_clone()
            .ctx(|| format!("duplicating log file handle {}", log_path.display()))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let line = describe(&cmd);
        let child = cmd.spawn().ctx(|| format!("spawning {name}: `{line}`"))?;
        let pid = child.id();
        Ok(ChildProcess {
            name: name.to_string(),
            child,
            pid,
            log_path,
            dir: Some(dir),
            stop_signal: StopSignal::Term,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            exit_status: None,
        })
    }

    /// Sets the signal sent on stop (default SIGTERM).
    pub fn set_stop_signal(&mut self, signal: StopSignal) {
        self.stop_signal = signal;
    }

    /// Sets how long to wait after the stop signal before SIGKILL (default 10 s).
    pub fn set_stop_timeout(&mut self, timeout: Duration) {
        self.stop_timeout = timeout;
    }

    /// The fixture name used for the log file and messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// OS process id of the server.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temporary directory (data, config, log). Empty path after [`ChildProcess::stop`].
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    /// Path of the log file holding the child's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Last `n` lines of the child's log.
    pub fn log_tail(&self, n: usize) -> String {
        file_tail(&self.log_path, n)
    }

    /// Returns the exit status if the child has exited (reaping it), `None` while it runs.
    pub fn try_exit_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .child
                .try_wait()
                .ctx(|| format!("checking whether {} (pid {}) exited", self.name, self.pid))?;
        }
        Ok(self.exit_status)
    }

    /// True while the child is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_exit_status(), Ok(None))
    }

    /// Polls `probe` until it returns true; fails early if the child exits, and
    /// after `timeout` with the tail of the log.
    pub fn wait_ready(&mut self, timeout: Duration, mut probe: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status()? {
                return Err(Error::Exited {
                    what: format!("{} (pid {})", self.name, self.pid),
                    status,
                    log_path: self.log_path.clone(),
                    log_tail: self.log_tail(40),
                });
            }
            if probe() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    what: format!("{} (pid {})", self.name, self.pid),
                    timeout,
                    log_path: self.log_path.clone(),
                    log_tail: self.log_tail(40),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Stops the child by PID (stop signal, bounded wait, then SIGKILL), reaps it
    /// and removes the temporary directory. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        let mut first_err = None;
        if self.try_exit_status()?.is_none() {
            // The child is not reaped yet, so its PID cannot have been reused.
            let sent = Command::new("kill")
                .arg("-s")
                .arg(self.stop_signal.name())
                .arg(self.pid.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            let deadline = Instant::now()
                + if sent {
                    self.stop_timeout
                } else {
                    Duration::ZERO
                };
            while self.try_exit_status()?.is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if self.try_exit_status()?.is_none() {
                // SIGKILL via std, then a blocking reap: SIGKILL cannot be ignored.
                if let Err(e) = self.child.kill() {
                    first_err = Some(Error::io(
                        format!("killing {} (pid {})", self.name, self.pid),
                        e,
                    ));
                }
                match self.child.wait() {
                    Ok(status) => self.exit_status = Some(status),
                    Err(e) => {
                        first_err.get_or_insert(Error::io(
                            format!("reaping {} (pid {})", self.name, self.pid),
                            e,
                        ));
                    }
                }
            }
        }
        if let Err(e) = self.remove_dir() {
            first_err.get_or_insert(e);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Kills the child at once with SIGKILL by PID — a crash: it gets no
    /// chance to flush or clean up — reaps it and removes the temporary
    /// directory. Idempotent.
    pub fn kill(&mut self) -> Result<()> {
        if self.try_exit_status()?.is_none() {
            // Not reaped yet, so the PID is still this child's. std's kill is SIGKILL.
            self.child
                .kill()
                .ctx(|| format!("killing {} (pid {})", self.name, self.pid))?;
            let status = self
                .child
                .wait()
                .ctx(|| format!("reaping {} (pid {})", self.name, self.pid))?;
            self.exit_status = Some(status);
        }
        self.remove_dir()
    }

    fn remove_dir(&mut self) -> Result<()> {
        match self.dir.take() {
            Some(dir) => {
                let path = dir.path().display().to_string();
                dir.close().ctx(|| format!("removing {path}"))
            }
            None => Ok(()),
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Starts a server, retrying with fresh ports when it lost a port race:
/// [`free_port`] releases the port before the server binds it, so a
/// parallel test can take it in between. Other failures are returned as-is.
pub fn retry_on_port_clash<T>(mut start: impl FnMut() -> Result<T>) -> Result<T> {
    const ATTEMPTS: usize = 5;
    let mut attempt = 1;
    loop {
        match start() {
            Err(e) if attempt < ATTEMPTS && is_port_clash(&e) => attempt += 1,
            other => return other,
        }
    }
}

fn is_port_clash(e: &Error) -> bool {
    match e {
        Error::Exited { log_tail, .. } | Error::NotReady { log_tail, .. } => {
            let t = log_tail.to_ascii_lowercase();
            t.contains("address already in use") || t.contains("addrinuse")
        }
        _ => false,
    }
}
