//! The engine catalogue: which engines the fleet has, what they are called,
//! where they listen by default and how peers find them.
//!
//! It is plain data with no server code, so the launcher, the environment
//! reader and the tools that check deployment files can all name engines
//! without pulling in the engines themselves.

/// The engines of the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum EngineKind {
    /// Accepts payments, streams their status over WebSocket (axum).
    Gateway,
    /// Mints, transfers and burns payment tokens (actix-web).
    TokenEngine,
    /// Records obligations and publishes them on NATS (axum).
    ObligationEngine,
    /// Picks a corridor and liquidity source per net position (axum).
    LiquidityRouter,
    /// Scores payments, enforces limits, trips a circuit breaker (axum).
    RiskEngine,
    /// Nets obligations in clearing windows (axum).
    ClearingEngine,
    /// Screens parties against the sanctions list (axum).
    ComplianceEngine,
    /// Settles net positions into the ledger database (actix-web).
    SettlementEngine,
}

/// How far above its business port an engine serves Prometheus metrics in
/// the DelTran table (gateway 8080 → 9480), so the two never collide.
pub const METRICS_PORT_OFFSET: u16 = 1400;

/// The host every default URL points at: the launcher runs the whole fleet
/// on one machine.
const LOOPBACK: &str = "127.0.0.1";

impl EngineKind {
    /// Every engine, in start-up order (dependencies first).
    pub const ALL: [EngineKind; 8] = [
        EngineKind::SettlementEngine,
        EngineKind::LiquidityRouter,
        EngineKind::ClearingEngine,
        EngineKind::ObligationEngine,
        EngineKind::TokenEngine,
        EngineKind::RiskEngine,
        EngineKind::ComplianceEngine,
        EngineKind::Gateway,
    ];

    /// The service name (`service.name`, the `service_name` label).
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Gateway => "gateway",
            EngineKind::TokenEngine => "token-engine",
            EngineKind::ObligationEngine => "obligation-engine",
            EngineKind::LiquidityRouter => "liquidity-router",
            EngineKind::RiskEngine => "risk-engine",
            EngineKind::ClearingEngine => "clearing-engine",
            EngineKind::ComplianceEngine => "compliance-engine",
            EngineKind::SettlementEngine => "settlement-engine",
        }
    }

    /// The engine for a service name.
    pub fn from_name(name: &str) -> Option<EngineKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Its port in the DelTran table.
    pub fn default_port(self) -> u16 {
        match self {
            EngineKind::Gateway => 8080,
            EngineKind::TokenEngine => 8081,
            EngineKind::ObligationEngine => 8082,
            EngineKind::LiquidityRouter => 8083,
            EngineKind::RiskEngine => 8084,
            EngineKind::ClearingEngine => 8085,
            EngineKind::ComplianceEngine => 8086,
            EngineKind::SettlementEngine => 8088,
        }
    }

    /// Its Prometheus port in the DelTran table (business port +
    /// [`METRICS_PORT_OFFSET`]).
    pub fn default_metrics_port(self) -> u16 {
        self.default_port() + METRICS_PORT_OFFSET
    }

    /// Where peers reach it when nothing else is configured: its table port
    /// on loopback.
    pub fn default_url(self) -> String {
        loopback_url(self.default_port())
    }

    /// The variable other engines read its URL from (`DELTRAN_RISK_ENGINE_URL`).
    pub fn url_variable(self) -> String {
        format!(
            "DELTRAN_{}_URL",
            self.name().to_ascii_uppercase().replace('-', "_")
        )
    }

    /// The HTTP framework it runs on.
    pub fn framework(self) -> &'static str {
        match self {
            EngineKind::TokenEngine | EngineKind::SettlementEngine => "actix-web",
            _ => "axum",
        }
    }
}

/// The base URL of whatever listens on `port` on loopback.
pub fn loopback_url(port: u16) -> String {
    format!("http://{LOOPBACK}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ports_and_variables_are_unique() {
        let mut names: Vec<_> = EngineKind::ALL.iter().map(|k| k.name()).collect();
        let mut ports: Vec<_> = EngineKind::ALL
            .iter()
            .flat_map(|k| [k.default_port(), k.default_metrics_port()])
            .collect();
        let mut variables: Vec<_> = EngineKind::ALL.iter().map(|k| k.url_variable()).collect();
        names.sort_unstable();
        names.dedup();
        ports.sort_unstable();
        ports.dedup();
        variables.sort_unstable();
        variables.dedup();
        assert_eq!(names.len(), 8);
        assert_eq!(ports.len(), 16);
        assert_eq!(variables.len(), 8);
    }

    #[test]
    fn every_name_maps_back_to_its_engine() {
        for kind in EngineKind::ALL {
            assert_eq!(EngineKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EngineKind::from_name("ledger-engine"), None);
    }

    #[test]
    fn the_table_matches_the_documented_ports_and_variables() {
        assert_eq!(EngineKind::Gateway.default_url(), "http://127.0.0.1:8080");
        assert_eq!(EngineKind::Gateway.default_metrics_port(), 9480);
        assert_eq!(
            EngineKind::RiskEngine.url_variable(),
            "DELTRAN_RISK_ENGINE_URL"
        );
        assert_eq!(EngineKind::SettlementEngine.framework(), "actix-web");
        assert_eq!(EngineKind::ClearingEngine.framework(), "axum");
    }
}
