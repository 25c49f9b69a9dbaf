//! The components: each its own process, started with one line of
//! telemetry and hosted like every demo service (`/health`, `/ready`,
//! `/metrics`, the glue's HTTP layer), its MCP endpoint beside.

pub mod agent;
pub mod api;
pub mod llm;
pub mod orchestrator;
pub mod tool_servers;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use services_glue::health::Readiness;
use services_glue::mcp::McpTelemetry;
use telemetry::{ProcessEnv, Telemetry};

use crate::catalogue::Component;
use crate::env::ComponentEnv;
use crate::tools::ToolClients;

services_glue::instruments! {
    /// What every component reports about itself.
    pub struct SystemInstruments {
        /// 1 while every readiness check passes.
        healthy: gauge("cryptofunk.component.healthy", "{component}",
            "1 while the component's readiness checks all pass, else 0", []),
    }
}

/// Why a component stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// Unusable `CRYPTOFUNK_*` / `OTEL_*` variables.
    #[error(transparent)]
    Env(#[from] telemetry::ConfigErrors),
    /// telemetry refused to start.
    #[error("telemetry: {0}")]
    Telemetry(#[from] telemetry::InitError),
    /// Listening, NATS or the server.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The trade ledger.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Largest request body any component accepts.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Runs `component` until SIGINT/SIGTERM.
pub fn run(component: Component) -> ExitCode {
    let result = ComponentEnv::from_env(component, &ProcessEnv)
        .map_err(ComponentError::from)
        .and_then(|env| {
            let t = Telemetry::builder(component.name())
                .with_version(env!("CARGO_PKG_VERSION"))
                .try_init()?;
            deltran_fleet::hosting::block_on(main(component, &t, env))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", component.name());
            ExitCode::from(2)
        }
    }
}

async fn main(
    component: Component,
    t: &Telemetry,
    env: ComponentEnv,
) -> Result<(), ComponentError> {
    let host = Host::new(component, t, env);
    match component {
        Component::LlmGateway => llm::serve(host).await,
        Component::MarketData
        | Component::TechnicalIndicators
        | Component::RiskAnalyzer
        | Component::OrderExecutor => tool_servers::serve(host).await,
        Component::Orchestrator => orchestrator::serve(host).await,
        Component::ApiServer => api::serve(host).await,
        _ => agent::serve(host).await,
    }
}

/// What a component's code needs from its process.
pub struct Host<'a> {
    /// Which component.
    pub component: Component,
    /// Its telemetry.
    pub t: &'a Telemetry,
    /// Its settings.
    pub env: ComponentEnv,
    /// MCP instruments (client and server).
    pub mcp: McpTelemetry,
}

impl std::fmt::Debug for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("component", &self.component)
            .finish()
    }
}

impl<'a> Host<'a> {
    fn new(component: Component, t: &'a Telemetry, env: ComponentEnv) -> Host<'a> {
        Host {
            component,
            mcp: McpTelemetry::new(&t.meter()),
            t,
            env,
        }
    }

    /// Sessions to the tool servers.
    pub fn tool_clients(&self) -> Arc<ToolClients> {
        let urls = Component::ALL
            .into_iter()
            .filter(|c| c.is_tool_server())
            .map(|c| (c, self.env.peer(c).to_string()))
            .collect();
        Arc::new(ToolClients::new(self.mcp.clone(), urls))
    }

    /// Connects to NATS with the component's credentials.
    pub async fn nats(&self) -> Result<async_nats::Client, ComponentError> {
        let settings = deltran_fleet::hosting::NatsSettings {
            url: &self.env.nats_url,
            token: self.env.nats_token.as_deref(),
            ca_file: None,
            url_variable: "CRYPTOFUNK_NATS_URL",
            token_variable: "CRYPTOFUNK_NATS_TOKEN_FILE (or CRYPTOFUNK_NATS_TOKEN)",
            ca_variable: "CRYPTOFUNK_NATS_URL",
        };
        deltran_fleet::hosting::connect_nats(&settings, self.component.name())
            .await
            .map_err(|e| ComponentError::Io(std::io::Error::other(e)))
    }

    /// Serves `app` (plus `/health`, `/ready`, `/metrics`) and, outside the
    /// HTTP layer, `mcp` (an `/mcp` endpoint, whose spans follow the MCP
    /// conventions); `ready` gates `/ready` and drives the healthy gauge.
    pub async fn serve(
        &self,
        app: axum::Router,
        mcp: Option<axum::Router>,
        ready: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> Result<(), ComponentError> {
        let gate = Arc::clone(&ready);
        let readiness = Readiness::new().check("dependencies", move || gate());
        let mut router =
            deltran_fleet::hosting::instrumented(self.t, app, readiness, MAX_BODY_BYTES);
        if let Some(mcp) = mcp {
            router = router.merge(mcp);
        }
        let system = SystemInstruments::new(&self.t.meter());
        let gauge = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                system.healthy.record(if ready() { 1.0 } else { 0.0 }, []);
            }
        });
        let served =
            deltran_fleet::hosting::serve(router, &self.env.host, self.env.port, "CRYPTOFUNK_PORT")
                .await;
        gauge.abort();
        Ok(served?)
    }
}

/// Always ready.
pub fn always() -> Arc<dyn Fn() -> bool + Send + Sync> {
    Arc::new(|| true)
}
