//! The API server the desk's UI reads: the portfolio (cached for a second,
//! with the glue's cache metrics), recent trades, and the latest round.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use deltran_fleet::ttl_cache::TtlCache;
use serde::Deserialize;
use serde_json::{Value, json};
use services_glue::cache::InstrumentedCache;
use services_glue::reqwest::TracedClient;

use super::{ComponentError, Host, always};
use crate::catalogue::Component;
use crate::tools::ToolClients;

struct Api {
    tools: Arc<ToolClients>,
    portfolio: InstrumentedCache<TtlCache<&'static str, Value>>,
    http: TracedClient,
    orchestrator: String,
}

/// Serves the API until stopped.
pub async fn serve(host: Host<'_>) -> Result<(), ComponentError> {
    let meter = host.t.meter();
    let capacity = NonZeroUsize::MIN;
    let api = Arc::new(Api {
        tools: host.tool_clients(),
        portfolio: InstrumentedCache::new(
            TtlCache::new(Duration::from_secs(1), capacity),
            "portfolio",
            &meter,
        ),
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
        .route("/api/portfolio", axum::routing::get(portfolio))
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

async fn portfolio(State(api): State<Arc<Api>>) -> Response {
    if let Some(cached) = api.portfolio.get(&"portfolio") {
        return Json(cached).into_response();
    }
    match api
        .tools
        .call(Component::OrderExecutor, "get_portfolio", json!({}))
        .await
    {
        Ok(v) => {
            api.portfolio.insert("portfolio", v.clone());
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
