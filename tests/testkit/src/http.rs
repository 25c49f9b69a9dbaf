//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream` (plain `http://` only).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::{Error, Result};

/// Connect/read/write timeout of every request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header (name lower-cased, value) pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes (chunked encoding already removed).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// First header value with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET url`, returning `(status, body)`.
pub fn http_get(url: &str) -> Result<(u16, String)> {
    let r = http_request("GET", url, &[], None)?;
    Ok((r.status, r.text()))
}

/// `POST url` with a body of the given content type, returning `(status, body)`.
pub fn http_post(url: &str, content_type: &str, body: &[u8]) -> Result<(u16, String)> {
    let r = http_request("POST", url, &[("Content-Type", content_type)], Some(body))?;
    Ok((r.status, r.text()))
}

/// `GET url` and parse the body as JSON; a non-2xx status is an error.
pub fn http_get_json(url: &str) -> Result<serde_json::Value> {
    let r = http_request("GET", url, &[], None)?;
    json_body("GET", url, &r)
}

/// `POST url` with a JSON body; a non-2xx status is an error. Returns the body text.
pub fn http_post_json(url: &str, body: &serde_json::Value) -> Result<String> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| Error::Invalid(format!("serializing JSON for {url}: {e}")))?;
    let r = http_request(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(&bytes),
    )?;
    if !(200..300).contains(&r.status) {
        return Err(Error::Http {
            method: "POST".into(),
            url: url.into(),
            message: format!("status {}: {}", r.status, excerpt(&r.text())),
        });
    }
    Ok(r.text())
}

pub(crate) fn json_body(method: &str, url: &str, r: &HttpResponse) -> Result<serde_json::Value> {
    if !(200..300).contains(&r.status) {
        return Err(Error::Http {
            method: method.into(),
            url: url.into(),
            message: format!("status {}: {}", r.status, excerpt(&r.text())),
        });
    }
    serde_json::from_slice(&r.body).map_err(|e| Error::Http {
        method: method.into(),
        url: url.into(),
        message: format!("invalid JSON ({e}): {}", excerpt(&r.text())),
    })
}

fn excerpt(s: &str) -> String {
    if s.len() > 500 {
        let mut end = 500;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

/// Splits `http://host:port/path?query` into (`host:port`, `/path?query`).
fn split_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Error::Invalid(format!("only http:// URLs are supported, got {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(Error::Invalid(format!("URL without host: {url}")));
    }
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// Sends one request (with `Connection: close`) and reads the full response.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpResponse> {
    let err = |message: String| Error::Http {
        method: method.into(),
        url: url.into(),
        message,
    };
    let (authority, path) = split_url(url)?;
    let addrs: Vec<SocketAddr> = authority
        .to_socket_addrs()
        .map_err(|e| err(format!("resolving {authority}: {e}")))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| err(format!("{authority} resolved to no address")))?;
    let mut stream = TcpStream::connect_timeout(addr, IO_TIMEOUT)
        .map_err(|e| err(format!("connecting to {addr}: {e}")))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| err(format!("setting socket timeouts: {e}")))?;

    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: testkit\r\n"
    );
    // The caller's Accept replaces the default (servers read the first).
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
    {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    } else if method != "GET" && method != "HEAD" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    // A server may answer before reading the whole body (413 Payload Too
    // Large) and close: then writing fails, yet its answer is readable, as
    // curl reads it.
    let written = stream.write_all(&bytes);

    let raw_and_read = read_response(&mut stream);
    let (raw, read) = raw_and_read;
    match (written, read) {
        (_, Ok(_)) if !raw.is_empty() => parse_response(&raw).map_err(err),
        (Err(e), _) => Err(err(format!("sending request: {e}"))),
        (Ok(()), Err(e)) => Err(err(format!("reading response: {e}"))),
        (Ok(()), Ok(_)) => parse_response(&raw).map_err(err),
    }
}

/// Reads until the response is complete by its own framing (Content-Length
/// or the last chunk), or the server closes: some servers (ChromeDriver)
/// keep the connection open whatever `Connection: close` asks.
fn read_response(stream: &mut impl Read) -> (Vec<u8>, std::io::Result<()>) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (raw, Ok(())),
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if response_complete(&raw) {
                    return (raw, Ok(()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (raw, Err(e)),
        }
    }
}

fn response_complete(raw: &[u8]) -> bool {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let rest = &raw[head_end + 4..];
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return rest.ends_with(b"0\r\n\r\n");
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => rest.len() >= len,
        None => false,
    }
}

fn parse_response(raw: &[u8]) -> std::result::Result<HttpResponse, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete header in {} response bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest.get(..len)
            .ok_or_else(|| format!("body shorter than Content-Length {len}"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size line")?;
        let size_str = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_str.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|e| format!("bad chunk size {size_hex:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("truncated chunk terminator")?;
    }
}

/// Percent-encodes `s` for use in a query string (`application/x-www-form-urlencoded` safe).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {

    #[test]
    fn a_server_that_keeps_the_connection_open_is_read_by_its_content_length() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/status", listener.local_addr().unwrap());
        let (answered, released) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length:2\r\n\r\nok")
                .unwrap();
            // Held open, as ChromeDriver does, until the client has its
            // answer; a client waiting for the close only gets it at the timeout.
            released
                .recv_timeout(std::time::Duration::from_secs(10))
                .is_ok()
        });
        assert_eq!(http_get(&url).unwrap(), (200, "ok".to_string()));
        let _ = answered.send(());
        assert!(
            server.join().unwrap(),
            "the client waited for the server to close"
        );
    }

    use super::*;

    #[test]
    fn parses_chunked_and_plain() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nnoEXTRA";
        let r = parse_response(raw).unwrap();
        assert_eq!((r.status, r.text().as_str()), (404, "no"));
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(url_encode(r#"up{job="self"}"#), "up%7Bjob%3D%22self%22%7D");
        assert_eq!(
            split_url("http://127.0.0.1:9/a?b=c").unwrap(),
            ("127.0.0.1:9".into(), "/a?b=c".into())
        );
    }
}
