//! The components of CryptoFunk: names, default ports and how peers find
//! each other. Plain data, so the launcher, the environment reader and the
//! tests name components alike.

/// The seven analysis agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentKind {
    /// RSI and MACD on recent candles.
    Technical,
    /// Bid/ask imbalance of the order book.
    Orderbook,
    /// News sentiment.
    Sentiment,
    /// EMA crossover confirmed by ADX.
    Trend,
    /// Bollinger-band mean reversion.
    Reversion,
    /// The spread between two venues.
    Arbitrage,
    /// Value at risk and the Kelly fraction.
    Risk,
}

impl AgentKind {
    /// Every agent.
    pub const ALL: [AgentKind; 7] = [
        AgentKind::Technical,
        AgentKind::Orderbook,
        AgentKind::Sentiment,
        AgentKind::Trend,
        AgentKind::Reversion,
        AgentKind::Arbitrage,
        AgentKind::Risk,
    ];

    /// The `agent` label.
    pub fn label(self) -> &'static str {
        match self {
            AgentKind::Technical => "technical",
            AgentKind::Orderbook => "orderbook",
            AgentKind::Sentiment => "sentiment",
            AgentKind::Trend => "trend",
            AgentKind::Reversion => "reversion",
            AgentKind::Arbitrage => "arbitrage",
            AgentKind::Risk => "risk",
        }
    }
}

/// The processes of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Component {
    /// Answers the UI: portfolio and trades (axum).
    ApiServer,
    /// Runs trading rounds: asks the agents, decides, orders.
    Orchestrator,
    /// MCP: prices, candles, order book, sentiment (seeded generator).
    MarketData,
    /// MCP: RSI, MACD, Bollinger, EMA, ADX.
    TechnicalIndicators,
    /// MCP: value at risk, limit checks, Kelly criterion.
    RiskAnalyzer,
    /// MCP: paper trading — market and limit orders, cancel, portfolio.
    OrderExecutor,
    /// Agent: RSI and MACD.
    TechnicalAgent,
    /// Agent: order-book imbalance.
    OrderbookAgent,
    /// Agent: news sentiment.
    SentimentAgent,
    /// Agent: trend following.
    TrendAgent,
    /// Agent: mean reversion.
    ReversionAgent,
    /// Agent: cross-venue arbitrage.
    ArbitrageAgent,
    /// Agent: portfolio risk.
    RiskAgent,
    /// The simulated LLM provider (OpenAI-compatible chat API).
    LlmGateway,
}

impl Component {
    /// Every component, in start-up order (what others call first).
    pub const ALL: [Component; 14] = [
        Component::LlmGateway,
        Component::MarketData,
        Component::TechnicalIndicators,
        Component::RiskAnalyzer,
        Component::OrderExecutor,
        Component::TechnicalAgent,
        Component::OrderbookAgent,
        Component::SentimentAgent,
        Component::TrendAgent,
        Component::ReversionAgent,
        Component::ArbitrageAgent,
        Component::RiskAgent,
        Component::Orchestrator,
        Component::ApiServer,
    ];

    /// The service name (`service.name`, the `service_name` label).
    pub fn name(self) -> &'static str {
        match self {
            Component::ApiServer => "api-server",
            Component::Orchestrator => "orchestrator",
            Component::MarketData => "market-data",
            Component::TechnicalIndicators => "technical-indicators",
            Component::RiskAnalyzer => "risk-analyzer",
            Component::OrderExecutor => "order-executor",
            Component::TechnicalAgent => "technical-agent",
            Component::OrderbookAgent => "orderbook-agent",
            Component::SentimentAgent => "sentiment-agent",
            Component::TrendAgent => "trend-agent",
            Component::ReversionAgent => "reversion-agent",
            Component::ArbitrageAgent => "arbitrage-agent",
            Component::RiskAgent => "risk-agent",
            Component::LlmGateway => "llm-gateway",
        }
    }

    /// The port of the original set-up.
    pub fn default_port(self) -> u16 {
        match self {
            Component::ApiServer => 8080,
            Component::Orchestrator => 8081,
            Component::MarketData => 9201,
            Component::TechnicalIndicators => 9202,
            Component::RiskAnalyzer => 9203,
            Component::OrderExecutor => 9204,
            Component::TechnicalAgent => 9101,
            Component::OrderbookAgent => 9102,
            Component::SentimentAgent => 9103,
            Component::TrendAgent => 9104,
            Component::ReversionAgent => 9105,
            Component::ArbitrageAgent => 9106,
            Component::RiskAgent => 9107,
            Component::LlmGateway => 9300,
        }
    }

    /// The agent this component runs, if it is one.
    pub fn agent(self) -> Option<AgentKind> {
        Some(match self {
            Component::TechnicalAgent => AgentKind::Technical,
            Component::OrderbookAgent => AgentKind::Orderbook,
            Component::SentimentAgent => AgentKind::Sentiment,
            Component::TrendAgent => AgentKind::Trend,
            Component::ReversionAgent => AgentKind::Reversion,
            Component::ArbitrageAgent => AgentKind::Arbitrage,
            Component::RiskAgent => AgentKind::Risk,
            _ => return None,
        })
    }

    /// Whether it serves MCP tools on `/mcp`.
    pub fn is_tool_server(self) -> bool {
        matches!(
            self,
            Component::MarketData
                | Component::TechnicalIndicators
                | Component::RiskAnalyzer
                | Component::OrderExecutor
        )
    }

    /// The variable a peer's base URL is read from
    /// (`CRYPTOFUNK_MARKET_DATA_URL`).
    pub fn url_variable(self) -> String {
        format!(
            "CRYPTOFUNK_{}_URL",
            self.name().to_ascii_uppercase().replace('-', "_")
        )
    }

    /// The component called `name`.
    pub fn from_name(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// `http://127.0.0.1:{port}`.
pub fn loopback_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The NATS subject rounds are asked on.
pub const ANALYSIS_SUBJECT: &str = "cryptofunk.analysis.requests";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ports_and_variables_are_distinct() {
        let names: std::collections::HashSet<_> = Component::ALL.iter().map(|c| c.name()).collect();
        let ports: std::collections::HashSet<_> =
            Component::ALL.iter().map(|c| c.default_port()).collect();
        assert_eq!(names.len(), 14);
        assert_eq!(ports.len(), 14);
        assert_eq!(
            Component::MarketData.url_variable(),
            "CRYPTOFUNK_MARKET_DATA_URL"
        );
        assert_eq!(
            Component::ALL
                .iter()
                .filter(|c| c.agent().is_some())
                .count(),
            7
        );
        assert_eq!(
            Component::from_name("risk-agent"),
            Some(Component::RiskAgent)
        );
    }
}
