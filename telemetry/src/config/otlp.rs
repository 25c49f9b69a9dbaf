//! OTLP settings per signal: endpoint, protocol, headers, compression,
//! timeout and TLS files, with the specification's fallbacks from the
//! signal's own variable to the generic one to the default.

use std::path::PathBuf;
use std::time::Duration;

use super::parse::{Parser, parse_key_values};
use super::types::Signal;
use crate::env::EnvSource;

/// OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/gRPC through tonic.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies (the OTLP/JSON mapping: hex ids, lowerCamelCase).
    HttpJson,
}

impl Protocol {
    /// Whether the transport is OTLP/HTTP (endpoints get `/v1/<signal>`).
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::HttpProtobuf | Protocol::HttpJson)
    }
}

/// OTLP payload compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// OTLP settings for one signal after the spec's fallbacks are applied.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// Full URL: for HTTP it includes `/v1/{signal}`.
    pub endpoint: String,
    /// Transport.
    pub protocol: Protocol,
    /// Extra request headers (authentication, tenant ids).
    pub headers: Vec<(String, String)>,
    /// Payload compression, if any.
    pub compression: Option<Compression>,
    /// Per-export deadline.
    pub timeout: Duration,
    /// PEM file with the CA certificate(s) to trust for the collector.
    pub certificate: Option<PathBuf>,
    /// PEM file with the client private key for mTLS.
    pub client_key: Option<PathBuf>,
    /// PEM file with the client certificate chain for mTLS.
    pub client_certificate: Option<PathBuf>,
}

/// What one compression variable says. `none` is a choice of its own: a
/// signal's `none` turns off the compression the generic variable asks for,
/// where an unset (or invalid) signal variable defers to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CompressionSetting {
    /// Not set, or set to something invalid (already reported): the next
    /// variable in the fallback chain decides.
    Unset,
    /// `none`: no compression, whatever the generic variable says.
    Off,
    /// `gzip` or `zstd`.
    On(Compression),
}

impl CompressionSetting {
    /// This setting, or `fallback` when this one says nothing.
    fn or(self, fallback: CompressionSetting) -> CompressionSetting {
        match self {
            CompressionSetting::Unset => fallback,
            set => set,
        }
    }

    /// The compression to use once the chain is resolved; unset means none,
    /// the specification's default.
    fn resolve(self) -> Option<Compression> {
        match self {
            CompressionSetting::On(c) => Some(c),
            CompressionSetting::Off | CompressionSetting::Unset => None,
        }
    }
}

/// The generic `OTEL_EXPORTER_OTLP_*` variables, read once and used as the
/// fallback of each signal's own.
pub(super) struct OtlpGeneric {
    endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: Option<Vec<(String, String)>>,
    compression: CompressionSetting,
    timeout: Option<Duration>,
    certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
}

impl<E: EnvSource + ?Sized> Parser<'_, E> {
    fn protocol(&mut self, var: &str) -> Option<Protocol> {
        let raw = self.env.var(var)?;
        match raw.trim() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" => Some(Protocol::HttpProtobuf),
            "http/json" => Some(Protocol::HttpJson),
            _ => {
                self.fail(var, &raw, "grpc, http/protobuf or http/json");
                None
            }
        }
    }

    fn compression(&mut self, var: &str) -> CompressionSetting {
        let Some(raw) = self.env.var(var) else {
            return CompressionSetting::Unset;
        };
        match raw.trim() {
            "gzip" => CompressionSetting::On(Compression::Gzip),
            "zstd" => CompressionSetting::On(Compression::Zstd),
            "none" => CompressionSetting::Off,
            _ => {
                self.fail(var, &raw, "gzip, zstd or none");
                CompressionSetting::Unset
            }
        }
    }

    fn endpoint(&mut self, var: &str) -> Option<String> {
        let raw = self.env.var(var)?;
        let trimmed = raw.trim();
        // Whatever comes before an `@` may be a password: never shown.
        let shown = without_userinfo(trimmed);
        match trimmed.parse::<http::Uri>() {
            Ok(uri) if uri.authority().is_some_and(|a| a.as_str().contains('@')) => {
                // Neither tonic nor hyper sends them, and the endpoint is
                // named in every export warning.
                self.fail(
                    var,
                    &shown,
                    "a URL without credentials (they would not be sent, and would be logged): \
                     put them in OTEL_EXPORTER_OTLP_HEADERS, e.g. authorization=Basic%20…",
                );
                None
            }
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http") | Some("https"))
                    && uri.authority().is_some() =>
            {
                Some(trimmed.to_string())
            }
            _ => {
                self.fail(
                    var,
                    &shown,
                    "an absolute http:// or https:// URL, e.g. http://localhost:4317",
                );
                None
            }
        }
    }

    fn headers(&mut self, var: &str) -> Option<Vec<(String, String)>> {
        let raw = self.env.var(var)?;
        // Header values are credentials: an error shows names only.
        let shown = without_values(&raw);
        match parse_key_values(&raw) {
            Ok(kvs) => {
                for (k, v) in &kvs {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                        || http::HeaderValue::from_str(v).is_err()
                    {
                        self.fail(
                            var,
                            &shown,
                            format!("valid HTTP header names and values (bad header: {k:?})"),
                        );
                        return None;
                    }
                }
                Some(kvs)
            }
            Err(bad) => {
                // The bad entry itself may be the credential (a token pasted
                // without its name, a value with a stray `%`): its name only.
                let which = match bad.split_once('=') {
                    Some((name, _)) if !name.trim().is_empty() => {
                        format!("the value of {:?}", name.trim())
                    }
                    Some(_) => "an entry without a name".to_string(),
                    None => "an entry without `=`".to_string(),
                };
                self.fail(
                    var,
                    &shown,
                    format!(
                        "comma-separated name=value pairs, values percent-encoded (bad: {which})"
                    ),
                );
                None
            }
        }
    }

    fn file(&mut self, var: &str) -> Option<PathBuf> {
        let raw = self.env.var(var)?;
        let path = PathBuf::from(raw.trim());
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Some(path),
            _ => {
                self.fail(var, &raw, "the path of a readable PEM file");
                None
            }
        }
    }

    pub(super) fn otlp_generic(&mut self) -> OtlpGeneric {
        OtlpGeneric {
            endpoint: self.endpoint("OTEL_EXPORTER_OTLP_ENDPOINT"),
            protocol: self.protocol("OTEL_EXPORTER_OTLP_PROTOCOL"),
            headers: self.headers("OTEL_EXPORTER_OTLP_HEADERS"),
            compression: self.compression("OTEL_EXPORTER_OTLP_COMPRESSION"),
            timeout: self
                .env
                .var("OTEL_EXPORTER_OTLP_TIMEOUT")
                .map(|_| self.millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, false)),
            certificate: self.file("OTEL_EXPORTER_OTLP_CERTIFICATE"),
            client_key: self.file("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
            client_certificate: self.file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        }
    }

    pub(super) fn otlp_signal(&mut self, signal: Signal, g: &OtlpGeneric) -> OtlpConfig {
        let s = signal.upper();
        let var = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{s}_{suffix}");
        let protocol = self
            .protocol(&var("PROTOCOL"))
            .or(g.protocol)
            .unwrap_or(Protocol::Grpc);
        let endpoint = match self.endpoint(&var("ENDPOINT")) {
            Some(e) => e,
            None => match (&g.endpoint, protocol) {
                (Some(base), Protocol::Grpc) => base.clone(),
                (Some(base), _) => {
                    format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str())
                }
                (None, Protocol::Grpc) => "http://localhost:4317".to_string(),
                (None, _) => format!("http://localhost:4318/v1/{}", signal.as_str()),
            },
        };
        let headers = self
            .headers(&var("HEADERS"))
            .or_else(|| g.headers.clone())
            .unwrap_or_default();
        let compression = self
            .compression(&var("COMPRESSION"))
            .or(g.compression)
            .resolve();
        let timeout = if self.env.var(&var("TIMEOUT")).is_some() {
            self.millis(&var("TIMEOUT"), 10_000, false)
        } else {
            g.timeout.unwrap_or(Duration::from_secs(10))
        };
        let certificate = self
            .file(&var("CERTIFICATE"))
            .or_else(|| g.certificate.clone());
        let client_key = self
            .file(&var("CLIENT_KEY"))
            .or_else(|| g.client_key.clone());
        let client_certificate = self
            .file(&var("CLIENT_CERTIFICATE"))
            .or_else(|| g.client_certificate.clone());
        if client_key.is_some() != client_certificate.is_some() {
            let (missing, present) = if client_key.is_some() {
                (var("CLIENT_CERTIFICATE"), var("CLIENT_KEY"))
            } else {
                (var("CLIENT_KEY"), var("CLIENT_CERTIFICATE"))
            };
            self.fail(
                &missing,
                "",
                format!("a PEM file too, because {present} (or its generic form) is set: mTLS needs both"),
            );
        }
        OtlpConfig {
            endpoint,
            protocol,
            headers,
            compression,
            timeout,
            certificate,
            client_key,
            client_certificate,
        }
    }
}

/// `name=value,…` with every value replaced by `…`, for error messages;
/// an entry without `=` (perhaps a token pasted without its name) is not
/// shown at all.
fn without_values(raw: &str) -> String {
    raw.split(',')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{}=…", name.trim()),
            None if pair.trim().is_empty() => String::new(),
            None => "…".to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A URL with whatever precedes its last `@` in the authority (user and
/// password) replaced by `…`, for error messages.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let host = &authority[at..];
    match scheme {
        Some(scheme) => format!("{scheme}://…{host}{path}"),
        None => format!("…{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::parse::{assert_positive_number, assert_rejected, invalid};

    #[test]
    fn http_endpoint_gets_signal_path_and_per_signal_endpoint_is_used_as_is() {
        let c = Config::from_env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "https://logs.example:443/custom",
            ),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ])
        .unwrap();
        assert_eq!(c.otlp_traces.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.otlp_traces.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.otlp_logs.endpoint, "https://logs.example:443/custom");
        assert_eq!(c.otlp_metrics.protocol, Protocol::Grpc);
        assert_eq!(c.otlp_metrics.endpoint, "http://collector:4318/");
    }

    #[test]
    fn headers_are_percent_decoded_and_per_signal_headers_replace_generic_ones() {
        let c = Config::from_env(&[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc, x-tenant=t1",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-only=traces"),
        ])
        .unwrap();
        assert_eq!(
            c.otlp_metrics.headers,
            vec![
                ("authorization".into(), "Bearer abc".into()),
                ("x-tenant".into(), "t1".into())
            ]
        );
        assert_eq!(
            c.otlp_traces.headers,
            vec![("x-only".into(), "traces".into())]
        );
    }

    #[test]
    fn signal_compression_overrides_generic_and_none_turns_it_off() {
        let c = Config::from_env(&[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd"),
        ])
        .unwrap();
        assert_eq!(c.otlp_traces.compression, None);
        assert_eq!(c.otlp_metrics.compression, Some(Compression::Gzip));
        assert_eq!(c.otlp_logs.compression, Some(Compression::Zstd));
        assert_eq!(Config::from_env(&[]).unwrap().otlp_logs.compression, None);
    }

    #[test]
    fn compression_setting_falls_back_only_when_unset() {
        use CompressionSetting::{Off, On, Unset};
        let gzip = On(Compression::Gzip);
        assert_eq!(Unset.or(gzip), gzip);
        assert_eq!(Off.or(gzip), Off);
        assert_eq!(On(Compression::Zstd).or(gzip), On(Compression::Zstd));
        assert_eq!(Unset.or(Unset).resolve(), None);
        assert_eq!(Off.resolve(), None);
        assert_eq!(gzip.resolve(), Some(Compression::Gzip));
    }

    #[test]
    fn protocol_and_compression_reject_unknown_values() {
        for (var, value, expected) in [
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "udp",
                "grpc, http/protobuf or http/json",
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/JSON",
                "grpc, http/protobuf or http/json",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "thrift",
                "grpc, http/protobuf or http/json",
            ),
            (
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "brotli",
                "gzip, zstd or none",
            ),
            (
                "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
                "lz4",
                "gzip, zstd or none",
            ),
        ] {
            assert_rejected(var, value, expected);
        }
    }

    #[test]
    fn timeouts_reject_garbage_and_zero() {
        for var in [
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
        ] {
            assert_positive_number(var);
        }
    }

    #[test]
    fn malformed_urls_headers_and_files_are_reported() {
        let errs = invalid(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer s3cret,novalue",
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ]);
        let vars: Vec<_> = errs.iter().map(|e| e.variable.as_str()).collect();
        for v in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ] {
            assert!(vars.contains(&v), "{v} missing from {vars:?}");
        }
        // The credential beside the bad entry is not repeated in the error.
        let shown: String = errs.iter().map(|e| e.to_string()).collect();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("authorization=…"), "{shown}");
    }

    /// A credential inside a malformed entry, or in an endpoint's URL,
    /// never reaches the error: for every headers variable and every
    /// endpoint variable.
    #[test]
    fn credentials_in_malformed_headers_and_endpoints_are_not_echoed() {
        // Each value, under each variable, is refused without the secret.
        let refused_unseen = |vars: [&str; 4], values: &[&str]| {
            for var in vars {
                for value in values {
                    let errs = invalid(&[(var, value)]);
                    assert_eq!(errs.len(), 1, "{var}={value}: {errs:?}");
                    let shown = format!("{} {:?}", errs[0], errs[0]);
                    assert!(!shown.contains("s3cret"), "{var}={value}: {shown}");
                    assert!(shown.contains(var), "{shown}");
                }
            }
        };
        refused_unseen(
            [
                "OTEL_EXPORTER_OTLP_HEADERS",
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
            ],
            &[
                "authorization=Bearer s3cret%zz",
                "Bearer s3cret",
                "=s3cret",
                "x-tenant=a, Bearer s3cret ,x-other=b",
                "authorization=Bearer%20s3cret%",
            ],
        );
        refused_unseen(
            [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            ],
            &[
                "http://user:s3cret@collector:4317",
                "https://s3cret@collector:4318/v1/traces",
                "user:s3cret@collector:4317",
                "http://user:s3cret@",
            ],
        );
        // What is shown still says which part is wrong.
        for (var, value, shown, expected) in [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://u:s3cret@collector:4317",
                "http://…@collector:4317",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-tenant=a,authorization=Bearer s3cret%",
                "x-tenant=…,authorization=…",
                "\"authorization\"",
            ),
        ] {
            let errs = invalid(&[(var, value)]);
            assert_eq!(errs[0].value, shown);
            assert!(errs[0].expected.contains(expected), "{}", errs[0]);
        }
    }

    #[test]
    fn mtls_needs_key_and_certificate_together() {
        let dir = std::env::temp_dir();
        let key = dir.join(format!("telemetry-test-key-{}.pem", std::process::id()));
        std::fs::write(&key, "x").unwrap();
        let key_s = key.to_string_lossy().to_string();
        let errs = invalid(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key_s)]);
        assert!(
            errs.iter()
                .any(|e| e.variable == "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE")
        );
        let _ = std::fs::remove_file(key);
    }
}
