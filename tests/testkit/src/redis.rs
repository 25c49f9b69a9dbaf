//! Redis server fixture.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::process::{ChildProcess, DEFAULT_READY_TIMEOUT, find_binary, free_port, temp_dir};

/// Locates `redis-server` (PATH, then /usr/bin and /usr/sbin).
pub fn redis_binary() -> Result<PathBuf> {
    find_binary(
        "redis-server",
        &["/usr/bin", "/usr/sbin"],
        "apt-get install redis-server",
    )
}

/// A real `redis-server` on 127.0.0.1, nothing persisted; stopped by PID
/// on drop.
///
/// Started with `--bind 127.0.0.1 --port <port> --save "" --appendonly no
/// --dir <tmp>`.
#[derive(Debug)]
pub struct Redis {
    child: ChildProcess,
    addr: SocketAddr,
}

/// Whether the server answers `PING` with `+PONG`.
fn pong(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

impl Redis {
    /// Starts redis-server and waits until it answers `PING`.
    pub fn start() -> Result<Redis> {
        crate::process::retry_on_port_clash(Self::start_once)
    }

    fn start_once() -> Result<Redis> {
        let bin = redis_binary()?;
        let dir = temp_dir("redis")?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path());
        let mut child = ChildProcess::spawn("redis-server", cmd, dir)?;
        child.wait_ready(DEFAULT_READY_TIMEOUT, || pong(addr))?;
        Ok(Redis { child, addr })
    }

    /// Client URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}
