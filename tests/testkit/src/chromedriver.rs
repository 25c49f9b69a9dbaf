//! ChromeDriver fixture: Debian's `chromedriver` on 127.0.0.1, for browser
//! tests that drive Debian's headless Chromium through the W3C WebDriver
//! protocol (any WebDriver client: the tests use fantoccini).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::http::http_get;
use crate::process::{ChildProcess, find_binary, free_port, tcp_connectable, temp_dir};

/// Locates `chromedriver` (PATH, then /usr/bin).
pub fn chromedriver_binary() -> Result<PathBuf> {
    find_binary(
        "chromedriver",
        &["/usr/bin", "/usr/lib/chromium"],
        "apt-get install chromium chromium-driver",
    )
}

/// Locates the Chromium browser ChromeDriver starts.
pub fn chromium_binary() -> Result<PathBuf> {
    find_binary(
        "chromium",
        &["/usr/bin", "/usr/lib/chromium"],
        "apt-get install chromium",
    )
}

/// A running `chromedriver`, stopped by PID on drop.
#[derive(Debug)]
pub struct ChromeDriver {
    child: ChildProcess,
    addr: SocketAddr,
    chromium: PathBuf,
    profile_dir: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port and waits for `GET /status`.
    pub fn start() -> Result<ChromeDriver> {
        crate::process::retry_on_port_clash(Self::start_once)
    }

    fn start_once() -> Result<ChromeDriver> {
        let bin = chromedriver_binary()?;
        let chromium = chromium_binary()?;
        let dir = temp_dir("chromedriver")?;
        let profile_dir = dir.path().join("profile");
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!(
                "--log-path={}",
                dir.path().join("driver.log").display()
            ));
        let mut child = ChildProcess::spawn("chromedriver", cmd, dir)?;
        let status = format!("http://{addr}/status");
        child.wait_ready(Duration::from_secs(20), || {
            tcp_connectable(addr) && matches!(http_get(&status), Ok((200, _)))
        })?;
        Ok(ChromeDriver {
            child,
            addr,
            chromium,
            profile_dir,
        })
    }

    /// The WebDriver URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `goog:chromeOptions` for a headless Chromium with its profile in the
    /// fixture's temporary directory (removed on drop).
    pub fn capabilities(&self) -> serde_json::Value {
        serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium.display().to_string(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", self.profile_dir.display()),
                ],
            },
        })
    }

    /// The driver's log (the browser's errors land there).
    pub fn log_tail(&self, n: usize) -> String {
        crate::process::file_tail(&self.child.dir().join("driver.log"), n)
    }
}
