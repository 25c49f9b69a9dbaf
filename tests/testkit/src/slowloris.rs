//! Clients that send half an HTTP request and wait: what a server must not
//! let hold its connections.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connects to `addr` and sends the start of a `GET path` whose headers
/// never end.
pub fn half_sent_request(addr: impl ToSocketAddrs, path: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n").as_bytes())?;
    Ok(stream)
}

/// Whether the server has closed `stream` (end of file or a reset),
/// waiting at most `wait` for it to say so.
pub fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    if stream
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .is_err()
    {
        return true;
    }
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Whether the server closes `stream` within `wait`, reading and discarding
/// whatever it sends first (an HTTP/2 server answers a preface with its
/// settings, then a GOAWAY).
pub fn closes_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// The HTTP/2 connection preface, without the SETTINGS frame that must
/// follow it: a client that sends this and stops has started no request.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Connects to `addr` and sends `bytes`, then nothing.
pub fn stalled_connection(addr: impl ToSocketAddrs, bytes: &[u8]) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(bytes)?;
    Ok(stream)
}
