//! What an engine reads from its environment besides the `OTEL_*` variables
//! `telemetry` reads.
//!
//! It reads through [`telemetry::EnvSource`], as telemetry does: the process
//! environment in production ([`telemetry::ProcessEnv`]), a map in tests, so
//! tests never mutate the environment every test thread shares. Every
//! variable is checked in one pass and every unusable one is reported at
//! once, in telemetry's own error type ([`ConfigErrors`]) so an engine
//! reports its `DELTRAN_*` and `OTEL_*` mistakes in one list: an operator
//! fixes a deployment in one round instead of one restart per variable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use telemetry::{ConfigError, ConfigErrors, EnvSource};

use crate::catalogue::EngineKind;

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
    /// Every peer's base URL, from `DELTRAN_<ENGINE>_URL`: read with the rest
    /// so the whole environment comes from one source.
    peers: HashMap<EngineKind, String>,
}

const MILLIS: &str = "milliseconds (a whole number)";
const SHARE: &str = "a number from 0 to 1";
const DATABASE_URL: &str = "a postgres://, postgresql:// or sqlite: URL";

impl EngineEnv {
    /// Reads the environment for `kind` from `env`, naming every unusable
    /// variable if there is any.
    pub fn from_env(
        kind: EngineKind,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<EngineEnv, ConfigErrors> {
        let mut r = Reader {
            env,
            errors: Vec::new(),
        };
        let settings = EngineEnv {
            host: r.text("DELTRAN_HOST", "127.0.0.1"),
            port: r.parsed("DELTRAN_PORT", kind.default_port(), "a TCP port (1-65535)"),
            nats_url: r.text("DELTRAN_NATS_URL", "nats://127.0.0.1:4222"),
            nats_token: r.nats_token(),
            nats_ca_file: r.nats_ca_file(),
            fault_latency: r.millis("DELTRAN_FAULT_LATENCY_MS", 0),
            fault_error_rate: r.share("DELTRAN_FAULT_ERROR_RATE"),
            clearing_window: r.millis("DELTRAN_CLEARING_WINDOW_MS", 1000),
            database_url: r.database_url(),
            data_dir: env
                .var("DELTRAN_DATA_DIR")
                .map_or_else(std::env::temp_dir, PathBuf::from),
            risk_payment_limit: r.parsed(
                "DELTRAN_RISK_PAYMENT_LIMIT",
                1_000_000.0,
                "an amount (a number)",
            ),
            risk_breaker_threshold: r.parsed(
                "DELTRAN_RISK_BREAKER_THRESHOLD",
                5,
                "a whole number of breaches",
            ),
            risk_breaker_cooldown: r.millis("DELTRAN_RISK_BREAKER_COOLDOWN_MS", 5000),
            gateway_max_in_flight: r.parsed(
                "DELTRAN_GATEWAY_MAX_IN_FLIGHT",
                32,
                "a whole number of payments (0 for no limit)",
            ),
            peers: EngineKind::ALL
                .into_iter()
                .map(|peer| (peer, r.text(&peer.url_variable(), peer.default_url())))
                .collect(),
        };
        if r.errors.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigErrors::from(r.errors))
        }
    }

    /// Base URL of a peer engine: `DELTRAN_<ENGINE>_URL`, default its table
    /// port on loopback.
    pub fn peer_url(&self, kind: EngineKind) -> String {
        self.peers
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| kind.default_url())
    }
}

/// One pass over the environment that keeps going past a bad variable
/// (using its default) and remembers every problem.
struct Reader<'a, E: EnvSource + ?Sized> {
    env: &'a E,
    errors: Vec<ConfigError>,
}

impl<E: EnvSource + ?Sized> Reader<'_, E> {
    fn fail(&mut self, variable: &str, value: impl Into<String>, expected: &str) {
        self.errors
            .push(ConfigError::new(variable, &value.into(), expected));
    }

    fn text(&self, name: &str, default: impl Into<String>) -> String {
        self.env.var(name).unwrap_or_else(|| default.into())
    }

    fn parsed<T: FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        let Some(value) = self.env.var(name) else {
            return default;
        };
        match value.trim().parse() {
            Ok(parsed) => parsed,
            Err(_) => {
                self.fail(name, value, expected);
                default
            }
        }
    }

    fn millis(&mut self, name: &str, default: u64) -> Duration {
        Duration::from_millis(self.parsed(name, default, MILLIS))
    }

    /// A share of requests: parsed, then checked to lie in 0..=1.
    fn share(&mut self, name: &str) -> f64 {
        let share: f64 = self.parsed(name, 0.0, SHARE);
        if (0.0..=1.0).contains(&share) {
            share
        } else {
            let value = self.env.var(name).unwrap_or_else(|| share.to_string());
            self.fail(name, value, SHARE);
            0.0
        }
    }

    /// Only the schemes the ledger can open, so a typo stops the engine at
    /// start rather than at its first settlement.
    fn database_url(&mut self) -> Option<String> {
        let url = self.env.var("DELTRAN_DATABASE_URL")?;
        if ["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            Some(url)
        } else {
            self.fail("DELTRAN_DATABASE_URL", url, DATABASE_URL);
            None
        }
    }

    /// The file wins over the plain variable, as a mounted secret should;
    /// the token itself never appears in an error.
    fn nats_token(&mut self) -> Option<String> {
        let token = match self.env.var("DELTRAN_NATS_TOKEN_FILE") {
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(token) => token,
                Err(e) => {
                    self.fail(
                        "DELTRAN_NATS_TOKEN_FILE",
                        format!("{path} ({e})"),
                        "a readable file holding the NATS token",
                    );
                    return None;
                }
            },
            None => self.env.var("DELTRAN_NATS_TOKEN")?,
        };
        Some(token.trim().to_string()).filter(|t| !t.is_empty())
    }

    /// Checked here so a missing bundle is named at start, not hidden in a
    /// TLS handshake failure later.
    fn nats_ca_file(&mut self) -> Option<PathBuf> {
        let ca = PathBuf::from(self.env.var("DELTRAN_NATS_CA_FILE")?);
        if ca.is_file() {
            Some(ca)
        } else {
            self.fail(
                "DELTRAN_NATS_CA_FILE",
                ca.display().to_string(),
                "a readable PEM file",
            );
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn read(kind: EngineKind, vars: &[(&str, &str)]) -> Result<EngineEnv, ConfigErrors> {
        let env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        EngineEnv::from_env(kind, &env)
    }

    fn variables(e: &ConfigErrors) -> Vec<&str> {
        e.0.iter().map(|e| e.variable.as_str()).collect()
    }

    #[test]
    fn an_empty_environment_gives_the_table_defaults() {
        let env = read(EngineKind::RiskEngine, &[]).unwrap();
        assert_eq!(env.host, "127.0.0.1");
        assert_eq!(env.port, 8084);
        assert_eq!(env.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(env.nats_token, None);
        assert_eq!(env.nats_ca_file, None);
        assert_eq!(env.fault_latency, Duration::ZERO);
        assert!(env.fault_error_rate.abs() < f64::EPSILON);
        assert_eq!(env.clearing_window, Duration::from_millis(1000));
        assert_eq!(env.database_url, None);
        assert_eq!(env.data_dir, std::env::temp_dir());
        assert!((env.risk_payment_limit - 1_000_000.0).abs() < f64::EPSILON);
        assert_eq!(env.risk_breaker_threshold, 5);
        assert_eq!(env.risk_breaker_cooldown, Duration::from_millis(5000));
        assert_eq!(env.gateway_max_in_flight, 32);
        assert_eq!(
            env.peer_url(EngineKind::LiquidityRouter),
            "http://127.0.0.1:8083"
        );
    }

    #[test]
    fn set_variables_are_used_and_blank_ones_count_as_unset() {
        let env = read(
            EngineKind::Gateway,
            &[
                ("DELTRAN_HOST", "0.0.0.0"),
                ("DELTRAN_PORT", " 9000 "),
                ("DELTRAN_FAULT_LATENCY_MS", "25"),
                ("DELTRAN_FAULT_ERROR_RATE", "0.5"),
                ("DELTRAN_CLEARING_WINDOW_MS", "  "),
                ("DELTRAN_DATABASE_URL", "sqlite::memory:"),
                ("DELTRAN_DATA_DIR", "/var/lib/deltran"),
                ("DELTRAN_GATEWAY_MAX_IN_FLIGHT", "0"),
                ("DELTRAN_NATS_TOKEN", " s3cret "),
                ("DELTRAN_RISK_ENGINE_URL", "http://risk:8084"),
            ],
        )
        .unwrap();
        assert_eq!(env.host, "0.0.0.0");
        assert_eq!(env.port, 9000);
        assert_eq!(env.fault_latency, Duration::from_millis(25));
        assert!((env.fault_error_rate - 0.5).abs() < f64::EPSILON);
        assert_eq!(env.clearing_window, Duration::from_millis(1000));
        assert_eq!(env.database_url.as_deref(), Some("sqlite::memory:"));
        assert_eq!(env.data_dir, PathBuf::from("/var/lib/deltran"));
        assert_eq!(env.gateway_max_in_flight, 0);
        assert_eq!(env.nats_token.as_deref(), Some("s3cret"));
        assert_eq!(env.peer_url(EngineKind::RiskEngine), "http://risk:8084");
        assert_eq!(
            env.peer_url(EngineKind::TokenEngine),
            "http://127.0.0.1:8081"
        );
    }

    #[test]
    fn every_bad_variable_is_reported_at_once_with_what_it_expects() {
        let e = read(
            EngineKind::RiskEngine,
            &[
                ("DELTRAN_PORT", "http"),
                ("DELTRAN_FAULT_ERROR_RATE", "2"),
                ("DELTRAN_CLEARING_WINDOW_MS", "1s"),
                ("DELTRAN_DATABASE_URL", "mysql://x"),
                ("DELTRAN_RISK_BREAKER_THRESHOLD", "-1"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            variables(&e),
            [
                "DELTRAN_PORT",
                "DELTRAN_FAULT_ERROR_RATE",
                "DELTRAN_CLEARING_WINDOW_MS",
                "DELTRAN_DATABASE_URL",
                "DELTRAN_RISK_BREAKER_THRESHOLD",
            ]
        );
        let message = e.to_string();
        for expected in [
            r#"DELTRAN_PORT="http" is invalid: expected a TCP port (1-65535)"#,
            r#"DELTRAN_FAULT_ERROR_RATE="2" is invalid: expected a number from 0 to 1"#,
            r#"DELTRAN_CLEARING_WINDOW_MS="1s" is invalid: expected milliseconds"#,
            r#"DELTRAN_DATABASE_URL="mysql://x" is invalid: expected a postgres://"#,
            r#"DELTRAN_RISK_BREAKER_THRESHOLD="-1" is invalid: expected a whole number"#,
        ] {
            assert!(message.contains(expected), "{expected} in {message}");
        }
        assert!(message.starts_with("invalid configuration: "));
    }

    #[test]
    fn an_error_rate_outside_zero_to_one_is_refused_whether_or_not_it_parses() {
        for value in ["1.5", "-0.1", "NaN", "half"] {
            let e = read(EngineKind::Gateway, &[("DELTRAN_FAULT_ERROR_RATE", value)]).unwrap_err();
            assert_eq!(e.0.len(), 1, "{value}: {e}");
            assert_eq!(e.0[0].variable, "DELTRAN_FAULT_ERROR_RATE");
            assert_eq!(e.0[0].value, value);
            assert_eq!(e.0[0].expected, SHARE);
        }
        for value in ["0", "1", "0.25"] {
            assert!(read(EngineKind::Gateway, &[("DELTRAN_FAULT_ERROR_RATE", value)]).is_ok());
        }
    }

    #[test]
    fn the_token_file_wins_and_an_unreadable_one_is_named_without_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nats.token");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.display().to_string();
        let env = read(
            EngineKind::ObligationEngine,
            &[
                ("DELTRAN_NATS_TOKEN_FILE", &path),
                ("DELTRAN_NATS_TOKEN", "from-variable"),
            ],
        )
        .unwrap();
        assert_eq!(env.nats_token.as_deref(), Some("from-file"));

        let missing = dir.path().join("absent.token").display().to_string();
        let e = read(
            EngineKind::ObligationEngine,
            &[
                ("DELTRAN_NATS_TOKEN_FILE", &missing),
                ("DELTRAN_NATS_TOKEN", "from-variable"),
            ],
        )
        .unwrap_err();
        assert_eq!(variables(&e), ["DELTRAN_NATS_TOKEN_FILE"]);
        assert!(e.0[0].value.starts_with(&missing), "{e}");
        assert!(!e.to_string().contains("from-variable"), "{e}");
    }

    #[test]
    fn a_ca_bundle_that_is_not_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(
            EngineKind::Gateway,
            &[("DELTRAN_NATS_CA_FILE", &dir.path().display().to_string())],
        )
        .unwrap_err();
        assert_eq!(variables(&e), ["DELTRAN_NATS_CA_FILE"]);
        assert_eq!(e.0[0].expected, "a readable PEM file");

        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let env = read(
            EngineKind::Gateway,
            &[("DELTRAN_NATS_CA_FILE", &ca.display().to_string())],
        )
        .unwrap();
        assert_eq!(env.nats_ca_file, Some(ca));
    }
}
