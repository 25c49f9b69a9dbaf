//! What a component reads from its environment (`CRYPTOFUNK_*`), checked
//! together with telemetry's `OTEL_*`: every bad variable in one report.

use std::collections::HashMap;
use std::time::Duration;

use telemetry::{ConfigError, ConfigErrors, EnvSource};

use crate::catalogue::{Component, loopback_url};

/// A component's settings.
#[derive(Debug, Clone)]
pub struct ComponentEnv {
    /// `CRYPTOFUNK_HOST`: where to listen (default 127.0.0.1).
    pub host: String,
    /// `CRYPTOFUNK_PORT`: the port (default: the component's own).
    pub port: u16,
    /// `CRYPTOFUNK_NATS_URL`.
    pub nats_url: String,
    /// From `CRYPTOFUNK_NATS_TOKEN_FILE` (or `CRYPTOFUNK_NATS_TOKEN`).
    pub nats_token: Option<String>,
    /// Base URL of every peer (`CRYPTOFUNK_<NAME>_URL`).
    pub peers: HashMap<Component, String>,
    /// `CRYPTOFUNK_SEED`: the market's seed.
    pub seed: u64,
    /// `CRYPTOFUNK_TICK_MS`: one market tick.
    pub tick: Duration,
    /// `CRYPTOFUNK_CRASH_AT_MS`: when the market crashes (none by default).
    pub crash_at: Option<Duration>,
    /// `CRYPTOFUNK_ROUND_MS`: one trading round.
    pub round: Duration,
    /// `CRYPTOFUNK_LLM_LATENCY_MS`: added to every LLM answer.
    pub llm_latency: Duration,
    /// `CRYPTOFUNK_LLM_ERROR_RATE`: share of LLM calls answered 503.
    pub llm_error_rate: f64,
    /// `CRYPTOFUNK_DATABASE_URL`: the order executor's trade ledger
    /// (PostgreSQL); in memory only without it.
    pub database_url: Option<String>,
    /// `CRYPTOFUNK_REDIS_URL`: the API server's cache (Redis); in process
    /// without it.
    pub redis_url: Option<String>,
}

struct Reader<'a, E: EnvSource + ?Sized> {
    env: &'a E,
    errors: Vec<ConfigError>,
}

impl<E: EnvSource + ?Sized> Reader<'_, E> {
    fn number<T: std::str::FromStr>(&mut self, var: &str, default: T, what: &str) -> T {
        match self.env.var(var) {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|_| {
                self.errors.push(ConfigError::new(var, &raw, what));
                default
            }),
        }
    }

    fn millis(&mut self, var: &str, default: u64, allow_zero: bool) -> Duration {
        let ms: u64 = self.number(var, default, "a whole number of milliseconds");
        if ms == 0 && !allow_zero {
            self.errors.push(ConfigError::new(
                var,
                "0",
                "a positive number of milliseconds",
            ));
            return Duration::from_millis(default);
        }
        Duration::from_millis(ms)
    }
}

impl ComponentEnv {
    /// Reads `component`'s settings.
    pub fn from_env(
        component: Component,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<ComponentEnv, ConfigErrors> {
        let mut r = Reader {
            env,
            errors: Vec::new(),
        };
        let host = env
            .var("CRYPTOFUNK_HOST")
            .unwrap_or_else(|| "127.0.0.1".to_string());
        let port = r.number(
            "CRYPTOFUNK_PORT",
            component.default_port(),
            "a TCP port number 1-65535",
        );
        let nats_url = env
            .var("CRYPTOFUNK_NATS_URL")
            .unwrap_or_else(|| "nats://127.0.0.1:4222".to_string());
        let nats_token = match env.var("CRYPTOFUNK_NATS_TOKEN_FILE") {
            Some(path) => match std::fs::read_to_string(path.trim()) {
                Ok(token) => Some(token.trim().to_string()),
                Err(e) => {
                    r.errors.push(ConfigError::new(
                        "CRYPTOFUNK_NATS_TOKEN_FILE",
                        &path,
                        format!("a readable file holding the NATS token ({e})"),
                    ));
                    None
                }
            },
            None => env.var("CRYPTOFUNK_NATS_TOKEN"),
        };
        let mut peers = HashMap::new();
        for peer in Component::ALL {
            let var = peer.url_variable();
            let url = env
                .var(&var)
                .unwrap_or_else(|| loopback_url(peer.default_port()));
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                r.errors.push(ConfigError::new(
                    &var,
                    &url,
                    "an http:// or https:// base URL, e.g. http://127.0.0.1:9201",
                ));
            }
            peers.insert(peer, url.trim_end_matches('/').to_string());
        }
        let seed = r.number("CRYPTOFUNK_SEED", 42, "a non-negative integer");
        let tick = r.millis("CRYPTOFUNK_TICK_MS", 250, false);
        let crash_at = env
            .var("CRYPTOFUNK_CRASH_AT_MS")
            .map(|_| r.millis("CRYPTOFUNK_CRASH_AT_MS", 0, true));
        let round = r.millis("CRYPTOFUNK_ROUND_MS", 1_000, false);
        let llm_latency = r.millis("CRYPTOFUNK_LLM_LATENCY_MS", 0, true);
        let llm_error_rate: f64 =
            r.number("CRYPTOFUNK_LLM_ERROR_RATE", 0.0, "a share between 0 and 1");
        if !(0.0..=1.0).contains(&llm_error_rate) {
            r.errors.push(ConfigError::new(
                "CRYPTOFUNK_LLM_ERROR_RATE",
                &llm_error_rate.to_string(),
                "a share between 0 and 1",
            ));
        }
        let settings = ComponentEnv {
            host,
            port,
            nats_url,
            nats_token,
            peers,
            seed,
            tick,
            crash_at,
            round,
            llm_latency,
            llm_error_rate: llm_error_rate.clamp(0.0, 1.0),
            database_url: env.var("CRYPTOFUNK_DATABASE_URL"),
            redis_url: env.var("CRYPTOFUNK_REDIS_URL"),
        };
        if let Some(url) = &settings.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            r.errors.push(ConfigError::new(
                "CRYPTOFUNK_REDIS_URL",
                url,
                "a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379",
            ));
        }
        // telemetry's own variables, in the same report.
        if let Err(e) = telemetry::Config::from_env(env) {
            r.errors.extend(e.0);
        }
        if r.errors.is_empty() {
            Ok(settings)
        } else {
            Err(r.errors.into())
        }
    }

    /// A peer's base URL.
    pub fn peer(&self, component: Component) -> &str {
        self.peers
            .get(&component)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_every_bad_variable_at_once() {
        let env =
            ComponentEnv::from_env(Component::MarketData, &[("CRYPTOFUNK_SEED", "7")]).unwrap();
        assert_eq!((env.port, env.seed, env.crash_at), (9201, 7, None));
        assert_eq!(env.peer(Component::LlmGateway), "http://127.0.0.1:9300");
        let err = ComponentEnv::from_env(
            Component::MarketData,
            &[
                ("CRYPTOFUNK_PORT", "high"),
                ("CRYPTOFUNK_ROUND_MS", "0"),
                ("CRYPTOFUNK_LLM_ERROR_RATE", "2"),
                ("CRYPTOFUNK_MARKET_DATA_URL", "market:9201"),
                ("OTEL_TRACES_SAMPLER", "sometimes"),
            ],
        )
        .unwrap_err()
        .to_string();
        for var in [
            "CRYPTOFUNK_PORT",
            "CRYPTOFUNK_ROUND_MS",
            "CRYPTOFUNK_LLM_ERROR_RATE",
            "CRYPTOFUNK_MARKET_DATA_URL",
            "OTEL_TRACES_SAMPLER",
        ] {
            assert!(err.contains(var), "{var} missing from {err}");
        }
    }
}
