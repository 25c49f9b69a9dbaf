//! The API server the desk's UI reads: the portfolio (cached for a second,
//! in Redis when one is configured, else in process; either way with the
//! glue's cache metrics), recent trades, and the latest round.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use deadpool_redis::redis::cmd;
use deltran_fleet::ttl_cache::TtlCache;
use serde::Deserialize;
use serde_json::{Value, json};
use services_glue::cache::{CacheMetrics, InstrumentedCache};
use services_glue::redis::RedisTelemetry;
use services_glue::reqwest::TracedClient;

use super::{ComponentError, Host, always};
use crate::catalogue::Component;
use crate::tools::ToolClients;

/// How long a portfolio answer is served from the cache.
const PORTFOLIO_TTL: Duration = Duration::from_secs(1);
/// The Redis key of the cached portfolio.
const PORTFOLIO_KEY: &str = "cryptofunk:portfolio";

/// Where the portfolio is cached.
enum PortfolioCache {
    /// In this process.
    Local(InstrumentedCache<TtlCache<&'static str, Value>>),
    /// In Redis, shared by every API server replica.
    Redis {
        pool: deadpool_redis::Pool,
        redis: RedisTelemetry,
        lookups: CacheMetrics,
    },
}

impl PortfolioCache {
    async fn get(&self) -> Option<Value> {
        match self {
            PortfolioCache::Local(cache) => cache.get(&"portfolio"),
            PortfolioCache::Redis {
                pool,
                redis,
                lookups,
            } => {
                lookups
                    .lookup_async(async {
                        let mut conn = pool.get().await.ok()?;
                        let text: Option<String> = redis
                            .run("GET", cmd("GET").arg(PORTFOLIO_KEY).query_async(&mut conn))
                            .await
                            .ok()?;
                        serde_json::from_str(&text?).ok()
                    })
                    .await
            }
        }
    }

    async fn insert(&self, value: &Value) {
        match self {
            PortfolioCache::Local(cache) => cache.insert("portfolio", value.clone()),
            PortfolioCache::Redis { pool, redis, .. } => {
                let Ok(mut conn) = pool.get().await else {
                    return;
                };
                let ttl_ms = PORTFOLIO_TTL.as_millis() as u64;
                let stored: Result<(), _> = redis
                    .run(
                        "SET",
                        cmd("SET")
                            .arg(PORTFOLIO_KEY)
                            .arg(value.to_string())
                            .arg("PX")
                            .arg(ttl_ms)
                            .query_async(&mut conn),
                    )
                    .await;
                if let Err(e) = stored {
                    tracing::warn!(error = %e, "portfolio not cached");
                }
            }
        }
    }
}

struct Api {
    tools: Arc<ToolClients>,
    portfolio: PortfolioCache,
    http: TracedClient,
    orchestrator: String,
}

/// Serves the API until stopped.
pub async fn serve(host: Host<'_>) -> Result<(), ComponentError> {
    let meter = host.t.meter();
    let portfolio = match &host.env.redis_url {
        Some(url) => {
            let pool = deadpool_redis::Config::from_url(url.as_str())
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .map_err(|e| {
                    ComponentError::Io(std::io::Error::other(format!(
                        "Redis at {url}: {e}; set CRYPTOFUNK_REDIS_URL"
                    )))
                })?;
            let redis = RedisTelemetry::new(&meter);
            redis.observe_pool(&meter, "cache", pool.clone());
            PortfolioCache::Redis {
                pool,
                redis,
                lookups: CacheMetrics::new(&meter, "portfolio"),
            }
        }
        None => PortfolioCache::Local(InstrumentedCache::new(
            TtlCache::new(PORTFOLIO_TTL, NonZeroUsize::MIN),
            "portfolio",
            &meter,
        )),
    };
    let api = Arc::new(Api {
        tools: host.tool_clients(),
        portfolio,
        http: TracedClient::new(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            &meter,
        ),
        orchestrator: host.env.peer(Component::Orchestrator).to_string(),
    });
    let app = axum::Router::new()
        .route("/api/portfolio", axum::routing::get(portfolio_of))
        .route("/api/trades", axum::routing::get(trades))
        .route("/api/rounds/latest", axum::routing::get(latest_round))
        .with_state(Arc::clone(&api));
    let served = host.serve(app, None, always()).await;
    api.tools.close().await;
    served
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({ "error": e.to_string() })),
    )
        .into_response()
}

async fn portfolio_of(State(api): State<Arc<Api>>) -> Response {
    if let Some(cached) = api.portfolio.get().await {
        return Json(cached).into_response();
    }
    match api
        .tools
        .call(Component::OrderExecutor, "get_portfolio", json!({}))
        .await
    {
        Ok(v) => {
            api.portfolio.insert(&v).await;
            Json(v).into_response()
        }
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct TradesQuery {
    limit: Option<usize>,
}

async fn trades(State(api): State<Arc<Api>>, Query(q): Query<TradesQuery>) -> Response {
    let limit = q.limit.unwrap_or(20).clamp(1, 500);
    match api
        .tools
        .call(
            Component::OrderExecutor,
            "list_trades",
            json!({ "limit": limit }),
        )
        .await
    {
        Ok(v) => Json(v).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn latest_round(State(api): State<Arc<Api>>) -> Response {
    let url = format!("{}/api/rounds/latest", api.orchestrator);
    let request = match api.http.inner().get(url).build() {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    match api.http.execute(request).await {
        Ok(r) if r.status().is_success() => match r.json::<Value>().await {
            Ok(v) => Json(v).into_response(),
            Err(e) => unavailable(e),
        },
        Ok(r) => unavailable(format!("orchestrator answered {}", r.status())),
        Err(e) => unavailable(e),
    }
}
