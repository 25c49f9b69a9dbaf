//! The ports each service listens on, read from the file, flag or variable
//! that decides them (or the image's documented default), with what each
//! speaks. A URL elsewhere in the stack is checked against these, so a
//! port that changes in one file and not in another is found.

use std::fmt;

use serde_yaml_ng::Value;

use super::Finding;
use super::findings::finding;
use super::flags::flag;
use super::read::get_path;
use super::service::{Kind, Service};
use super::stack::Stack;

/// What a port speaks, so a URL can be checked against the right listener
/// (an OTLP/gRPC exporter pointed at an OTLP/HTTP port fails at run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Plain HTTP (APIs, UIs, `/metrics`).
    Http,
    /// OTLP over gRPC.
    OtlpGrpc,
    /// OTLP over HTTP.
    OtlpHttp,
    /// Some other gRPC API.
    Grpc,
    /// The NATS client protocol.
    Nats,
    /// The PostgreSQL wire protocol.
    Postgres,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http => "HTTP",
            Protocol::OtlpGrpc => "OTLP/gRPC",
            Protocol::OtlpHttp => "OTLP/HTTP",
            Protocol::Grpc => "gRPC",
            Protocol::Nats => "NATS",
            Protocol::Postgres => "PostgreSQL",
        })
    }
}

/// A port a service listens on, reachable from other containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// The container port.
    pub port: u16,
    /// What it speaks.
    pub protocol: Protocol,
    /// Where this was read (a file and key, a flag, or the image's default).
    pub source: String,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.port, self.protocol, self.source)
    }
}

impl Listener {
    /// A listener on `port` speaking `protocol`, read from `source`.
    pub(super) fn new(port: u16, protocol: Protocol, source: impl Into<String>) -> Listener {
        Listener {
            port,
            protocol,
            source: source.into(),
        }
    }
}

/// The two OTLP transports an `otlp` receiver's `protocols:` may list, and
/// where each listens when it names no endpoint (loopback: unreachable).
const OTLP_PROTOCOLS: [(&str, Protocol, &str); 2] = [
    ("grpc", Protocol::OtlpGrpc, "localhost:4317"),
    ("http", Protocol::OtlpHttp, "localhost:4318"),
];

/// The port of a listen address other containers can reach (`0.0.0.0:p`,
/// `:p`, `[::]:p`); `None` for loopback or an unparsable address.
pub(super) fn reachable_port(address: &str) -> Option<u16> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    matches!(host, "" | "0.0.0.0" | "[::]" | "::").then_some(port)
}

/// The reachable listeners of an OTLP receiver's `protocols:` block (the
/// collector's and Tempo's share the layout): each endpoint passed through
/// `resolve` (variables), each listener's source named by `source(key)`.
pub(super) fn otlp_listeners(
    protocols: Option<&Value>,
    resolve: impl Fn(&str) -> String,
    source: impl Fn(&str) -> String,
) -> Vec<Listener> {
    OTLP_PROTOCOLS
        .iter()
        .filter_map(|(key, protocol, default)| {
            let settings = protocols?.get(*key)?;
            let endpoint = settings
                .get("endpoint")
                .and_then(Value::as_str)
                .map(&resolve)
                .unwrap_or_else(|| (*default).to_string());
            let port = reachable_port(&endpoint)?;
            Some(Listener::new(port, *protocol, source(key)))
        })
        .collect()
}

/// Whether `service` may listen on `port`: one of `listeners`, or anything
/// for a service of a kind whose ports these checks do not know.
pub(super) fn may_listen_on(service: &Service, listeners: &[Listener], port: u16) -> bool {
    service.kind() == Kind::Other || listeners.iter().any(|l| l.port == port)
}

impl Stack {
    /// The ports `service` listens on for other containers, read from the
    /// configuration that decides each (problems reading it are findings).
    pub fn listeners(&self, service: &Service, findings: &mut Vec<Finding>) -> Vec<Listener> {
        match service.kind() {
            Kind::Engine(_) => self.engine_listeners(service, findings),
            Kind::Collector => self.collector_listeners(service, findings),
            Kind::Tempo => self.tempo_listeners(service, findings),
            Kind::Loki => self.loki_listeners(service, findings),
            Kind::Prometheus => self.web_listeners(service, 9090, findings),
            Kind::Alertmanager => self.web_listeners(service, 9093, findings),
            Kind::Grafana => grafana_listeners(service),
            Kind::Nats => nats_listeners(service),
            Kind::Postgres => postgres_listeners(service),
            Kind::Other => Vec::new(),
        }
    }

    /// An engine listens on `DELTRAN_PORT`, which must be stated so that
    /// its peers' URLs can be checked against it.
    fn engine_listeners(&self, service: &Service, findings: &mut Vec<Finding>) -> Vec<Listener> {
        let Some(port) = service.environment.get("DELTRAN_PORT") else {
            findings.push(finding(
                &self.path,
                format!(
                    "service {}: set DELTRAN_PORT, so the engine's port is stated where its peers' URLs are",
                    service.name
                ),
            ));
            return Vec::new();
        };
        match port.parse() {
            Ok(port) => vec![Listener::new(port, Protocol::Http, "DELTRAN_PORT")],
            Err(_) => {
                findings.push(finding(
                    &self.path,
                    format!(
                        "service {}: DELTRAN_PORT={port:?} is not a port number",
                        service.name
                    ),
                ));
                Vec::new()
            }
        }
    }

    /// Tempo: its server block and the OTLP receivers of its distributor,
    /// from the file `-config.file` names.
    fn tempo_listeners(&self, service: &Service, findings: &mut Vec<Finding>) -> Vec<Listener> {
        let Some((path, config)) = self.config_file(service, "config.file", findings) else {
            return Vec::new();
        };
        let file = path.display().to_string();
        let mut out = server_listeners(&file, &config, 3200);
        out.extend(otlp_listeners(
            get_path(&config, &["distributor", "receivers", "otlp", "protocols"]),
            str::to_string,
            |key| format!("{file} distributor.receivers.otlp.protocols.{key}.endpoint"),
        ));
        out
    }

    /// Loki: its server block, from the file `-config.file` names.
    fn loki_listeners(&self, service: &Service, findings: &mut Vec<Finding>) -> Vec<Listener> {
        match self.config_file(service, "config.file", findings) {
            Some((path, config)) => server_listeners(&path.display().to_string(), &config, 3100),
            None => Vec::new(),
        }
    }

    /// Prometheus and Alertmanager: `--web.listen-address`, or the image's
    /// `default` port.
    fn web_listeners(
        &self,
        service: &Service,
        default: u16,
        findings: &mut Vec<Finding>,
    ) -> Vec<Listener> {
        let Some(address) = flag(&service.args(), "web.listen-address") else {
            return vec![Listener::new(
                default,
                Protocol::Http,
                "the image's default",
            )];
        };
        match reachable_port(&address) {
            Some(port) => vec![Listener::new(port, Protocol::Http, "--web.listen-address")],
            None => {
                findings.push(finding(
                    &self.path,
                    format!(
                        "service {}: --web.listen-address={address} is not reachable from other containers; use 0.0.0.0:<port>",
                        service.name
                    ),
                ));
                Vec::new()
            }
        }
    }
}

/// The HTTP and gRPC ports of the `server:` block Tempo and Loki share
/// (`http_default` and 9095 where unset), sourced to `file`.
fn server_listeners(file: &str, config: &Value, http_default: u16) -> Vec<Listener> {
    [
        ("http_listen_port", Protocol::Http, http_default),
        ("grpc_listen_port", Protocol::Grpc, 9095),
    ]
    .into_iter()
    .map(|(key, protocol, default)| {
        let port = get_path(config, &["server", key])
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default);
        Listener::new(port, protocol, format!("{file} server.{key}"))
    })
    .collect()
}

/// Grafana: `GF_SERVER_HTTP_PORT`, or 3000.
fn grafana_listeners(service: &Service) -> Vec<Listener> {
    let port = service
        .environment
        .get("GF_SERVER_HTTP_PORT")
        .and_then(|p| p.parse().ok());
    vec![match port {
        Some(port) => Listener::new(port, Protocol::Http, "GF_SERVER_HTTP_PORT"),
        None => Listener::new(3000, Protocol::Http, "Grafana's default"),
    }]
}

/// NATS: the client port (`--port`/`-p`, 4222) and, when enabled, the
/// monitoring port (`--http_port`/`-m`).
fn nats_listeners(service: &Service) -> Vec<Listener> {
    let args = service.args();
    let port_flag = |long: &str, short: &str| {
        flag(&args, long)
            .or_else(|| flag(&args, short))
            .and_then(|p| p.parse().ok())
    };
    let mut out = vec![Listener::new(
        port_flag("port", "p").unwrap_or(4222),
        Protocol::Nats,
        "--port",
    )];
    if let Some(port) = port_flag("http_port", "m") {
        out.push(Listener::new(port, Protocol::Http, "--http_port"));
    }
    out
}

/// PostgreSQL: `PGPORT`, or 5432.
fn postgres_listeners(service: &Service) -> Vec<Listener> {
    let port = service
        .environment
        .get("PGPORT")
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    vec![Listener::new(
        port,
        Protocol::Postgres,
        "PostgreSQL's default",
    )]
}
