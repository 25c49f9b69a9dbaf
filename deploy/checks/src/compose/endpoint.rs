//! URLs and `host:port` strings as written in environment variables and
//! configuration files, split into the parts the checks compare (host,
//! port, user, database); compose's `${…}` is allowed only where it cannot
//! hide the host or port, which must be literal to be checked.

use std::sync::LazyLock;

use regex::Regex;

/// A URL or `host:port` as the checks need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `http`, `nats`, … (`None` for a bare `host:port`).
    pub scheme: Option<String>,
    /// The user name in the URL, if any.
    pub user: Option<String>,
    /// The password in the URL as written, if any.
    pub password: Option<String>,
    /// The host.
    pub host: String,
    /// The port (stated or the scheme's default).
    pub port: u16,
    /// The path (`""` when none).
    pub path: String,
}

/// A compose interpolation (`${…}`), masked while the URL is split.
static INTERPOLATION: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"\$\{[^}]*\}"));

impl Endpoint {
    /// Parses `text`; compose `${…}` interpolations are allowed in the user
    /// information (passwords), not in the host or port, which must be
    /// literal to be checked.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let masked = match &*INTERPOLATION {
            Ok(re) => re.replace_all(text, "\u{1}").into_owned(),
            Err(e) => return Err(e.to_string()),
        };
        let originals: Vec<&str> = match &*INTERPOLATION {
            Ok(re) => re.find_iter(text).map(|m| m.as_str()).collect(),
            Err(_) => Vec::new(),
        };
        let (scheme, rest) = match masked.split_once("://") {
            Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
            None => (None, masked.as_str()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hostport.contains('\u{1}') {
            return Err("the host or port comes from a variable; write them literally".into());
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("{p:?} is not a port number"))?,
                ),
            ),
            None => (hostport, None),
        };
        let default_port = match scheme.as_deref() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            Some("nats") => Some(4222),
            Some("postgres" | "postgresql") => Some(5432),
            _ => None,
        };
        let Some(port) = port.or(default_port) else {
            return Err("no port; write host:port".into());
        };
        let mut next = originals.into_iter();
        let mut unmask = |s: &str| {
            let mut out = String::new();
            for c in s.chars() {
                if c == '\u{1}' {
                    out.push_str(next.next().unwrap_or_default());
                } else {
                    out.push(c);
                }
            }
            out
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, password)) => (Some(unmask(user)), Some(unmask(password))),
                None => (Some(unmask(u)), None),
            },
            None => (None, None),
        };
        Ok(Endpoint {
            scheme,
            user,
            password,
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() -> Result<(), String> {
        let e = Endpoint::parse(
            "postgres://deltran:${POSTGRES_PASSWORD:?set it in deploy/compose/.env}@postgres:5432/deltran",
        )?;
        assert_eq!(e.host, "postgres");
        assert_eq!(e.port, 5432);
        assert_eq!(e.user.as_deref(), Some("deltran"));
        assert_eq!(
            e.password.as_deref(),
            Some("${POSTGRES_PASSWORD:?set it in deploy/compose/.env}")
        );
        assert_eq!(e.path, "/deltran");
        let e = Endpoint::parse("tempo:4317")?;
        assert_eq!((e.host.as_str(), e.port, e.scheme), ("tempo", 4317, None));
        assert!(Endpoint::parse("http://${HOST}:80").is_err());
        assert!(Endpoint::parse("tempo").is_err());
        Ok(())
    }
}
