//! Hosting an axum service the way every demo service is hosted: its
//! routes plus `/health`, `/ready` (telemetry's export state as
//! information) and `/metrics`, a body limit, the glue's HTTP server layer,
//! a bind error naming the variable to change, and a graceful stop on
//! SIGINT/SIGTERM. DelTran's engines and CryptoFunk's components share it.

use std::future::Future;

use services_glue::health::Readiness;
use services_glue::http::HttpServerConfig;
use telemetry::Telemetry;

use crate::shutdown::shutdown_signal;

/// A multi-threaded runtime for a service (telemetry exports on its own
/// threads, so two workers are plenty for the demos).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Runs a service to completion on its own runtime, which is gone before
/// the caller's telemetry guard flushes (no export work is left on a
/// runtime that is shutting down).
pub fn block_on<T, E: From<std::io::Error>>(
    service: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let rt = runtime()?;
    let result = rt.block_on(service);
    drop(rt);
    result
}

/// Adds the `telemetry` export state to `/ready` as information (a down
/// collector never takes a service out of rotation).
pub fn with_telemetry_info(readiness: Readiness, t: &Telemetry) -> Readiness {
    let health = t.health();
    readiness.info("telemetry", move || health.is_healthy())
}

/// The HTTP server instrumentation every service uses, plus the uptime and
/// build-info series.
pub fn http_config(t: &Telemetry) -> HttpServerConfig {
    let meter = t.meter();
    services_glue::health::register_process_metrics(&meter, env!("CARGO_PKG_VERSION"));
    HttpServerConfig::new(&meter).with_traceresponse(true)
}

/// `app` plus `/health`, `/ready` and `/metrics`, bodies limited to
/// `body_limit` bytes, behind the glue's HTTP server layer. Routes merged
/// into the result afterwards are outside the layer (an MCP endpoint, whose
/// own spans follow the MCP conventions).
pub fn instrumented(
    t: &Telemetry,
    app: axum::Router,
    readiness: Readiness,
    body_limit: usize,
) -> axum::Router {
    let mut app = app.merge(services_glue::health::axum_routes(with_telemetry_info(
        readiness, t,
    )));
    if let Some(prometheus) = t.prometheus() {
        app = app.route(
            "/metrics",
            axum::routing::get(move || {
                let p = prometheus.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, p.content_type())],
                        p.render(),
                    )
                }
            }),
        );
    }
    app.layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(services_glue::axum::HttpServerLayer::new(http_config(t)))
}

/// Serves `app` on `host:port` until SIGINT/SIGTERM; `port_variable` is
/// named when the port is taken.
pub async fn serve(
    app: axum::Router,
    host: &str,
    port: u16,
    port_variable: &str,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| bind_error(host, port, port_variable, e))?;
    tracing::info!(host = %host, port, "listening");
    serve_on(listener, app, shutdown_signal()).await;
    Ok(())
}

/// Serves `app` on `listener` until `stop` completes, then lets the requests
/// in flight finish, with the workspace's connection bound and header
/// deadline (`bounded_serve::Limits::default()`: 1,024 connections, 10 s).
async fn serve_on(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: impl Future<Output = ()>,
) {
    let service = move || hyper_util::service::TowerToHyperService::new(app.clone());
    bounded_serve::serve(listener, service, bounded_serve::Limits::default(), stop).await;
}

/// Why a service could not listen, and what to set.
pub fn bind_error(host: &str, port: u16, port_variable: &str, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("cannot listen on {host}:{port} ({e}); set {port_variable} to a free port"),
    )
}

/// Where a service's NATS is and how it authenticates, with the names of
/// the variables that set each (for messages that say what to change).
#[derive(Debug, Clone, Copy)]
pub struct NatsSettings<'a> {
    /// `nats://` or `tls://` URL.
    pub url: &'a str,
    /// The server's token, if it wants one.
    pub token: Option<&'a str>,
    /// CA certificate for TLS.
    pub ca_file: Option<&'a std::path::Path>,
    /// The variable that sets `url`.
    pub url_variable: &'a str,
    /// The variable(s) that set `token`.
    pub token_variable: &'a str,
    /// The variable that sets `ca_file`.
    pub ca_variable: &'a str,
}

/// Connects to NATS with the service's credentials (and TLS when a CA is
/// given). A server that refuses the credentials or the certificate is an
/// error naming what to set; one that is not up yet is retried in the
/// background.
pub async fn connect_nats(
    settings: &NatsSettings<'_>,
    name: &str,
) -> Result<async_nats::Client, String> {
    let s = settings;
    let options = || {
        let mut o = async_nats::ConnectOptions::new().name(name);
        if let Some(token) = s.token {
            o = o.token(token.to_string());
        }
        if let Some(ca) = s.ca_file {
            o = o.require_tls(true).add_root_certificates(ca.to_path_buf());
        }
        o
    };
    match options().connect(s.url).await {
        Ok(client) => Ok(client),
        Err(e) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => Err(format!(
            "NATS at {} refused this service's credentials ({}); set {} to the server's token",
            s.url,
            if s.token.is_some() {
                "a token was given"
            } else {
                "none was given"
            },
            s.token_variable
        )),
        // A refused certificate surfaces as an I/O error of the handshake.
        Err(e)
            if matches!(e.kind(), async_nats::ConnectErrorKind::Tls)
                || (tls_wanted(s) && tls_handshake_failed(&e)) =>
        {
            Err(format!(
                "NATS at {}: TLS failed ({e}); check {} and {}",
                s.url, s.url_variable, s.ca_variable
            ))
        }
        Err(_) => options()
            .retry_on_initial_connect()
            .connect(s.url)
            .await
            .map_err(|e| format!("NATS at {} ({e}); set {}", s.url, s.url_variable)),
    }
}

/// Whether the service asked for TLS to NATS.
fn tls_wanted(s: &NatsSettings<'_>) -> bool {
    s.ca_file.is_some() || s.url.starts_with("tls://")
}

/// Whether a connection failed in the TLS handshake (certificate refused,
/// protocol mismatch) rather than in reaching the server.
fn tls_handshake_failed(e: &async_nats::ConnectError) -> bool {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    let text = text.to_ascii_lowercase();
    ["certificate", "handshake", "tls", "unknownissuer"]
        .iter()
        .any(|w| text.contains(w))
}

/// A readiness check that NATS is connected.
pub fn nats_ready(client: &async_nats::Client) -> impl Fn() -> bool + Send + Sync + 'static {
    let client = client.clone();
    move || client.connection_state() == async_nats::connection::State::Connected
}
