//! What an engine reads from its environment (besides the `OTEL_*`
//! variables `telemetry` reads), with errors that name the variable.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::engines::EngineKind;

/// A variable that is set but unusable.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is invalid: expected {expected}")]
pub struct EnvError {
    /// The variable.
    pub name: String,
    /// What it holds.
    pub value: String,
    /// What it should hold.
    pub expected: &'static str,
}

fn parsed<T: FromStr>(name: &str, default: T, expected: &'static str) -> Result<T, EnvError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map_err(|_| EnvError {
            name: name.to_string(),
            value,
            expected,
        }),
        _ => Ok(default),
    }
}

fn text(name: &str, default: impl Into<String>) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.into())
}

/// Base URL of a peer engine: `DELTRAN_<ENGINE>_URL`, default its table port on loopback.
pub fn peer_url(kind: EngineKind) -> String {
    text(
        &kind.url_variable(),
        format!("http://127.0.0.1:{}", kind.default_port()),
    )
}

/// Settings common to every engine.
#[derive(Clone, Debug)]
pub struct EngineEnv {
    /// `DELTRAN_HOST` to listen on (default `127.0.0.1`; `0.0.0.0` in containers).
    pub host: String,
    /// `DELTRAN_PORT` (default: the engine's port in the DelTran table).
    pub port: u16,
    /// `DELTRAN_NATS_URL` (default `nats://127.0.0.1:4222`; `tls://` for TLS).
    pub nats_url: String,
    /// The NATS token: the contents of `DELTRAN_NATS_TOKEN_FILE`, else
    /// `DELTRAN_NATS_TOKEN`. Never logged.
    pub nats_token: Option<String>,
    /// `DELTRAN_NATS_CA_FILE`: a PEM CA bundle; set, the connection must use TLS.
    pub nats_ca_file: Option<PathBuf>,
    /// `DELTRAN_FAULT_LATENCY_MS`: added to every business request.
    pub fault_latency: Duration,
    /// `DELTRAN_FAULT_ERROR_RATE` (0..1): share of business requests failed on purpose.
    pub fault_error_rate: f64,
    /// `DELTRAN_CLEARING_WINDOW_MS` (clearing-engine, default 1000).
    pub clearing_window: Duration,
    /// `DELTRAN_DATABASE_URL` (settlement-engine): `postgres://…` or `sqlite://…`;
    /// default an SQLite file in `DELTRAN_DATA_DIR`.
    pub database_url: Option<String>,
    /// `DELTRAN_DATA_DIR` (default the system temp dir).
    pub data_dir: PathBuf,
    /// `DELTRAN_RISK_PAYMENT_LIMIT` (risk-engine, default 1,000,000).
    pub risk_payment_limit: f64,
    /// `DELTRAN_RISK_BREAKER_THRESHOLD`: limit breaches within 10 s that trip the breaker (default 5).
    pub risk_breaker_threshold: u32,
    /// `DELTRAN_RISK_BREAKER_COOLDOWN_MS`: how long the breaker stays open (default 5000).
    pub risk_breaker_cooldown: Duration,
    /// `DELTRAN_GATEWAY_MAX_IN_FLIGHT` (gateway): payments processed at once
    /// before new ones are shed with 503 (default 32; 0 = no limit).
    pub gateway_max_in_flight: usize,
}

impl EngineEnv {
    /// Reads the environment for `kind`, naming the first bad variable.
    pub fn from_env(kind: EngineKind) -> Result<EngineEnv, EnvError> {
        let error_rate: f64 = parsed("DELTRAN_FAULT_ERROR_RATE", 0.0, "a number from 0 to 1")?;
        if !(0.0..=1.0).contains(&error_rate) {
            return Err(EnvError {
                name: "DELTRAN_FAULT_ERROR_RATE".into(),
                value: error_rate.to_string(),
                expected: "a number from 0 to 1",
            });
        }
        let database_url = std::env::var("DELTRAN_DATABASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty());
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return Err(EnvError {
                name: "DELTRAN_DATABASE_URL".into(),
                value: url.clone(),
                expected: "a postgres://, postgresql:// or sqlite: URL",
            });
        }
        let nats_token = match std::env::var_os("DELTRAN_NATS_TOKEN_FILE") {
            Some(path) if !path.is_empty() => {
                let token = std::fs::read_to_string(&path).map_err(|e| EnvError {
                    name: "DELTRAN_NATS_TOKEN_FILE".into(),
                    value: format!("{} ({e})", path.to_string_lossy()),
                    expected: "a readable file holding the NATS token",
                })?;
                Some(token.trim().to_string()).filter(|t| !t.is_empty())
            }
            _ => std::env::var("DELTRAN_NATS_TOKEN")
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        };
        let nats_ca_file = std::env::var_os("DELTRAN_NATS_CA_FILE")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        if let Some(ca) = &nats_ca_file
            && !ca.is_file()
        {
            return Err(EnvError {
                name: "DELTRAN_NATS_CA_FILE".into(),
                value: ca.display().to_string(),
                expected: "a readable PEM file",
            });
        }
        Ok(EngineEnv {
            host: text("DELTRAN_HOST", "127.0.0.1"),
            nats_token,
            nats_ca_file,
            port: parsed("DELTRAN_PORT", kind.default_port(), "a TCP port (1-65535)")?,
            nats_url: text("DELTRAN_NATS_URL", "nats://127.0.0.1:4222"),
            fault_latency: Duration::from_millis(parsed(
                "DELTRAN_FAULT_LATENCY_MS",
                0,
                "milliseconds (a whole number)",
            )?),
            fault_error_rate: error_rate,
            clearing_window: Duration::from_millis(parsed(
                "DELTRAN_CLEARING_WINDOW_MS",
                1000,
                "milliseconds (a whole number)",
            )?),
            database_url,
            data_dir: std::env::var_os("DELTRAN_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            risk_payment_limit: parsed(
                "DELTRAN_RISK_PAYMENT_LIMIT",
                1_000_000.0,
                "an amount (a number)",
            )?,
            risk_breaker_threshold: parsed(
                "DELTRAN_RISK_BREAKER_THRESHOLD",
                5,
                "a whole number of breaches",
            )?,
            risk_breaker_cooldown: Duration::from_millis(parsed(
                "DELTRAN_RISK_BREAKER_COOLDOWN_MS",
                5000,
                "milliseconds (a whole number)",
            )?),
            gateway_max_in_flight: parsed(
                "DELTRAN_GATEWAY_MAX_IN_FLIGHT",
                32,
                "a whole number of payments (0 for no limit)",
            )?,
        })
    }
}
