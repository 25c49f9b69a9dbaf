//! `deltran probe`: an engine's readiness as an exit code, for container
//! health checks in an image with no shell and no HTTP client. It asks
//! `GET /ready` on loopback, as a kubelet or Docker would, and needs no
//! runtime: one blocking request with a deadline.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why an engine is not ready (the probe exits 1 with this message).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not `http://host:port/path`.
    #[error("probe URL {0:?}: expected http://host:port/path")]
    BadUrl(String),
    /// No `--url` and no `DELTRAN_PORT`.
    #[error("no engine to probe: set DELTRAN_PORT (as the engine has it) or pass --url")]
    NoPort,
    /// Nothing answered in time.
    #[error("{url}: {source}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// It answered, but not with 2xx.
    #[error("{url}: answered {status_line:?}")]
    NotReady {
        /// The URL.
        url: String,
        /// The HTTP status line received.
        status_line: String,
    },
}

/// The URL probed when none is given: this container's engine, on loopback.
pub fn default_url() -> Result<String, ProbeError> {
    let port = std::env::var("DELTRAN_PORT")
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .ok_or(ProbeError::NoPort)?;
    Ok(format!("http://127.0.0.1:{port}/ready"))
}

/// `Ok` when `url` answers 2xx within `timeout` (connect, write and read each).
///
/// ```
/// use deltran_fleet::probe::{ProbeError, ready};
/// let e = ready("https://127.0.0.1:1/ready", std::time::Duration::from_millis(100));
/// assert!(matches!(e, Err(ProbeError::BadUrl(_))));
/// ```
pub fn ready(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::BadUrl(url.to_string()))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    if authority.is_empty() || !authority.contains(':') {
        return Err(ProbeError::BadUrl(url.to_string()));
    }
    let unreachable = |source| ProbeError::Unreachable {
        url: url.to_string(),
        source,
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| ProbeError::BadUrl(url.to_string()))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(unreachable)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    // The status line is all that matters; read no more than a little.
    let mut head = [0u8; 256];
    let mut len = 0;
    while len < head.len() && !head[..len].contains(&b'\n') {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(unreachable(e)),
        }
    }
    let text = String::from_utf8_lossy(&head[..len]);
    let status_line = text.lines().next().unwrap_or_default().to_string();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(200..=299) if status_line.starts_with("HTTP/1.") => Ok(()),
        _ => Err(ProbeError::NotReady {
            url: url.to_string(),
            status_line,
        }),
    }
}
