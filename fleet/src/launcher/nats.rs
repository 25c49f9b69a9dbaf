//! The NATS server the fleet talks through: a `nats-server` child on
//! loopback with its data in the run directory, or one the user names.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Ports;

/// Where to get `nats-server` when it is missing.
pub const INSTALL_HINT: &str = "nats-server was not found on PATH. Install it: \
    `sudo apt-get install nats-server` (Debian/Ubuntu), `brew install nats-server` (macOS), \
    or download a release from https://github.com/nats-io/nats-server/releases and put it on PATH; \
    or pass --nats-url nats://HOST:PORT to use a running server";

/// A started (or borrowed) NATS server.
#[derive(Debug)]
pub struct NatsServer {
    url: String,
    child: Option<std::process::Child>,
    /// The token file engines authenticate with (a server this run started).
    token_file: Option<PathBuf>,
}

/// A fresh random token (two v4 UUIDs: 244 random bits from the OS).
fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Writes `text` to `path` readable by this user only.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn find_nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/bin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

impl NatsServer {
    /// Uses `nats_url` if given, else starts `nats-server` on 127.0.0.1
    /// (port 4222, or a free one with [`Ports::Auto`]) with a fresh token,
    /// its log in `run_dir/logs/nats-server.log`.
    pub async fn start_or_use(
        nats_url: Option<&str>,
        ports: Ports,
        run_dir: &Path,
    ) -> Result<NatsServer, String> {
        if let Some(url) = nats_url {
            // Its credentials, if any, come from the services' own token
            // variables, which they inherit.
            return Ok(NatsServer {
                url: url.to_string(),
                child: None,
                token_file: None,
            });
        }
        let binary = find_nats_server().ok_or_else(|| INSTALL_HINT.to_string())?;
        let port = match ports {
            Ports::Default => 4222,
            Ports::Auto => super::fleet::free_port()?,
        };
        let log = std::fs::File::create(run_dir.join("logs/nats-server.log"))
            .map_err(|e| format!("cannot create the NATS log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        // Nobody on the bus without this run's token: the token is in a
        // file only this user reads, never on a command line.
        let token = new_token();
        let token_file = run_dir.join("nats.token");
        write_private(&token_file, &token)?;
        let config = run_dir.join("nats.conf");
        write_private(
            &config,
            &format!("listen: \"127.0.0.1:{port}\"\nauthorization {{\n  token: \"{token}\"\n}}\n"),
        )?;
        let mut cmd = std::process::Command::new(&binary);
        cmd.arg("-c")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "nats-server exited ({status}) before listening on 127.0.0.1:{port} (is the port taken? try --ports auto); see {}",
                    run_dir.join("logs/nats-server.log").display()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "nats-server did not listen on 127.0.0.1:{port} within 10 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(NatsServer {
            url: format!("nats://127.0.0.1:{port}"),
            child: Some(child),
            token_file: Some(token_file),
        })
    }

    /// The URL engines connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The process id of a server this run started (none for one it uses).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// The file holding the token of a server this run started.
    pub fn token_file(&self) -> Option<&Path> {
        self.token_file.as_deref()
    }

    /// Stops the server if this run started it.
    /// Stops a server this run started; whether it exited on its own
    /// after SIGTERM (a borrowed server is left alone and counts as clean).
    pub async fn stop(mut self) -> bool {
        match self.child.take() {
            Some(child) => super::fleet::terminate(child, Duration::from_secs(5))
                .await
                .is_some(),
            None => true,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
