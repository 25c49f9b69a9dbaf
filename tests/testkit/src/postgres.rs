//! PostgreSQL fixture: `initdb` into a temporary directory, then `postgres` on 127.0.0.1.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::process::{
    ChildProcess, DEFAULT_READY_TIMEOUT, StopSignal, find_binary, free_port, is_executable,
    run_command, run_command_ok, tcp_connectable, temp_dir,
};

const INSTALL: &str = "apt-get install postgresql";
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Directory holding `postgres` and `initdb`: PATH first, then the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn postgres_bin_dir() -> Result<PathBuf> {
    if let (Ok(pg), Ok(_)) = (
        find_binary("postgres", &[], INSTALL),
        find_binary("initdb", &[], INSTALL),
    ) && let Some(dir) = pg.parent()
        && is_executable(&dir.join("initdb"))
    {
        return Ok(dir.to_path_buf());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let v: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    (is_executable(&bin.join("postgres")) && is_executable(&bin.join("initdb")))
                        .then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| Error::MissingBinary {
            binary: "postgres/initdb".into(),
            searched: format!("PATH:{DEBIAN_ROOT}/*/bin"),
            install: INSTALL.into(),
        })
}

/// Effective uid of this process (owner of `/proc/self`).
fn current_uid() -> Result<u32> {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .ctx(|| "reading /proc/self to find the current uid".into())
}

/// uid and gid of the `postgres` OS user (via `getent passwd postgres`, then /etc/passwd).
fn postgres_user() -> Result<(u32, u32)> {
    let parse = |line: &str| -> Option<(u32, u32)> {
        let f: Vec<&str> = line.trim().split(':').collect();
        (f.len() >= 4 && f[0] == "postgres").then_some((f[2].parse().ok()?, f[3].parse().ok()?))
    };
    let mut cmd = Command::new("getent");
    cmd.args(["passwd", "postgres"]);
    if let Ok(out) = run_command(cmd, None, Duration::from_secs(5))
        && let Some(ids) = out.stdout.lines().find_map(parse)
    {
        return Ok(ids);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd.lines().find_map(parse).ok_or_else(|| {
        Error::Invalid(format!(
            "running as root but there is no `postgres` OS user to run PostgreSQL as \
             (PostgreSQL refuses to run as root); {INSTALL} creates it"
        ))
    })
}

/// A real PostgreSQL server (trust auth, superuser `postgres`) on 127.0.0.1; stopped by PID on drop.
///
/// `initdb -D <tmp>/data -U postgres -A trust -E UTF8 --locale=C --no-sync`, then
/// `postgres -D <tmp>/data -k <tmp>/sock -c listen_addresses=127.0.0.1 -p <port>`
/// (plus `fsync=off`). When running as root both run as the `postgres` OS user
/// (setuid/setgid in the child, so [`Postgres::pid`] is the postmaster itself) and
/// the temp dir is chowned to it. Stopped with SIGINT (fast shutdown).
#[derive(Debug)]
pub struct Postgres {
    child: ChildProcess,
    addr: SocketAddr,
    bin_dir: PathBuf,
    socket_dir: PathBuf,
}

impl Postgres {
    /// Initializes a cluster in a temp dir, starts it and waits until `pg_isready` succeeds.
    pub fn start() -> Result<Postgres> {
        Self::start_with(&[], DEFAULT_READY_TIMEOUT)
    }

    /// Like [`Postgres::start`] with extra `postgres` arguments (e.g. `["-c", "max_connections=50"]`).
    pub fn start_with(extra_args: &[&str], ready_timeout: Duration) -> Result<Postgres> {
        crate::process::retry_on_port_clash(|| Self::start_once(extra_args, ready_timeout))
    }

    fn start_once(extra_args: &[&str], ready_timeout: Duration) -> Result<Postgres> {
        let bin_dir = postgres_bin_dir()?;
        let run_as = if current_uid()? == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        let dir = temp_dir("postgres")?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        std::fs::create_dir(&socket_dir).ctx(|| format!("creating {}", socket_dir.display()))?;
        if let Some((uid, gid)) = run_as {
            for p in [dir.path(), socket_dir.as_path()] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .ctx(|| format!("chown {} to postgres ({uid}:{gid})", p.display()))?;
            }
        }
        let as_user = |cmd: &mut Command| {
            if let Some((uid, gid)) = run_as {
                cmd.gid(gid).uid(uid);
            }
            cmd.current_dir(dir.path()).env("LC_ALL", "C");
        };

        let mut initdb = Command::new(bin_dir.join("initdb"));
        as_user(&mut initdb);
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]);
        run_command_ok(initdb, None, Duration::from_secs(120))?;

        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(bin_dir.join("postgres"));
        as_user(&mut cmd);
        cmd.arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(extra_args);
        let mut child = ChildProcess::spawn("postgres", cmd, dir)?;
        child.set_stop_signal(StopSignal::Int);
        let pg_isready = bin_dir.join("pg_isready");
        child.wait_ready(ready_timeout, || {
            tcp_connectable(addr) && pg_isready_ok(&pg_isready, port)
        })?;
        Ok(Postgres {
            child,
            addr,
            bin_dir,
            socket_dir,
        })
    }

    /// Connection URL, `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@{}/postgres", self.addr)
    }

    /// Listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Directory holding the PostgreSQL binaries used (`psql`, `pg_isready`, ...).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Process id of the postmaster.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        self.child.log_tail(n)
    }

    /// True when `pg_isready -h 127.0.0.1 -p PORT` exits 0.
    pub fn is_ready(&self) -> bool {
        pg_isready_ok(&self.bin_dir.join("pg_isready"), self.port())
    }

    /// Runs `psql -X -A -t -v ON_ERROR_STOP=1 -c <sql>` over TCP as `postgres`; returns its output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let psql = if is_executable(&self.bin_dir.join("psql")) {
            self.bin_dir.join("psql")
        } else {
            find_binary("psql", &[], "apt-get install postgresql-client")?
        };
        let mut cmd = Command::new(psql);
        cmd.args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
        ])
        .arg(self.port().to_string())
        .args(["-U", "postgres", "-d", "postgres", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "5");
        run_command_ok(cmd, None, Duration::from_secs(30))
    }

    /// Stops the server by PID (fast shutdown) and removes its temporary directory.
    pub fn stop(mut self) -> Result<()> {
        self.child.stop()
    }
}

fn pg_isready_ok(bin: &Path, port: u16) -> bool {
    let mut cmd = if is_executable(bin) {
        Command::new(bin)
    } else {
        Command::new("pg_isready")
    };
    cmd.args(["-h", "127.0.0.1", "-t", "2", "-p"])
        .arg(port.to_string());
    run_command(cmd, None, Duration::from_secs(5))
        .map(|o| o.status.success())
        .unwrap_or(false)
}
