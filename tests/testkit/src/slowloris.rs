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
