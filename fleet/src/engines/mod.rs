//! The eight engines and what they share: how each is hosted (axum or
//! actix-web, `/health`, `/ready`, `/metrics`, graceful shutdown), JSON calls
//! between engines, and NATS consumers.

pub mod clearing;
pub mod compliance;
pub mod gateway;
pub mod liquidity;
pub mod obligation;
pub mod risk;
pub mod settlement;
pub mod token;

use std::future::Future;
use std::process::ExitCode;

use serde::Serialize;
use serde::de::DeserializeOwned;
use services_glue::health::Readiness;
use services_glue::nats::NatsTelemetry;
use services_glue::reqwest::TracedClient;
use telemetry::{ProcessEnv, Telemetry};

use crate::env::EngineEnv;
use crate::faults::Faults;
use crate::shutdown::shutdown_signal;
use crate::validation::{Rejected, Validate, decode, limits::MAX_BODY_BYTES};

services_glue::instruments! {
    /// What every NATS consumer counts besides the glue's messaging metrics.
    pub struct MessageInstruments {
        /// Messages refused before anything was applied.
        rejected: counter("deltran.messages.rejected", "{message}",
            "NATS messages refused (too large, undecodable or failing validation) and never applied",
            ["messaging.destination.name", "error.type"]),
    }
}

/// A JSON body that passed [`Validate`]; anything else is answered 413 (too
/// large) or 422 with a short reason that quotes input only masked.
#[derive(Debug)]
pub(crate) struct Valid<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Validate> axum::extract::FromRequest<S> for Valid<T> {
    type Rejection = axum::response::Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| refusal(&body_rejected(&e)))?;
        decode(&bytes).map(Valid).map_err(|r| refusal(&r))
    }
}

/// An unreadable or oversized body, as a [`Rejected`] (axum's own text
/// never quotes the body).
pub(crate) fn body_rejected(e: &axum::extract::rejection::BytesRejection) -> Rejected {
    Rejected {
        status: e.status().as_u16(),
        reason: e.body_text(),
    }
}

/// The answer to a refused body: its status and `{"error": reason}`.
pub(crate) fn refusal(r: &Rejected) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = axum::http::StatusCode::from_u16(r.status)
        .unwrap_or(axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    (status, axum::Json(serde_json::json!({ "error": r.reason }))).into_response()
}

/// Re-exported so engine code and its callers name engines as
/// `engines::EngineKind`, the catalogue's type.
pub use crate::catalogue::EngineKind;

/// The instruments live with the servers that record them, so this part of
/// an engine's description is here rather than in the catalogue.
impl EngineKind {
    /// Its declared business instruments.
    pub fn instrument_names(self) -> &'static [&'static str] {
        match self {
            EngineKind::Gateway => gateway::GatewayInstruments::NAMES,
            EngineKind::TokenEngine => token::TokenInstruments::NAMES,
            EngineKind::ObligationEngine => obligation::ObligationInstruments::NAMES,
            EngineKind::LiquidityRouter => liquidity::LiquidityInstruments::NAMES,
            EngineKind::RiskEngine => risk::RiskInstruments::NAMES,
            EngineKind::ClearingEngine => clearing::ClearingInstruments::NAMES,
            EngineKind::ComplianceEngine => compliance::ComplianceInstruments::NAMES,
            EngineKind::SettlementEngine => settlement::SettlementInstruments::NAMES,
        }
    }
}

/// Why an engine stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// One or more variables (`DELTRAN_*`, `OTEL_*`, `RUST_LOG`) are unusable.
    #[error(transparent)]
    Env(#[from] telemetry::ConfigErrors),
    /// `telemetry` refused its configuration (an `OTEL_*` variable).
    #[error("telemetry: {0}")]
    Telemetry(#[from] telemetry::InitError),
    /// Could not listen, or the server failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The ledger database.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Runs `kind` until SIGINT/SIGTERM; the exit code says how it ended.
pub fn run(kind: EngineKind) -> ExitCode {
    let result = read_env(kind, &ProcessEnv)
        .map_err(EngineError::from)
        .and_then(|env| match kind {
            EngineKind::Gateway => gateway::main(env),
            EngineKind::TokenEngine => token::main(env),
            EngineKind::ObligationEngine => obligation::main(env),
            EngineKind::LiquidityRouter => liquidity::main(env),
            EngineKind::RiskEngine => risk::main(env),
            EngineKind::ClearingEngine => clearing::main(env),
            EngineKind::ComplianceEngine => compliance::main(env),
            EngineKind::SettlementEngine => settlement::main(env),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", kind.name());
            ExitCode::from(2)
        }
    }
}

/// The engine's settings, checked together with telemetry's: every bad
/// `DELTRAN_*` and `OTEL_*` variable in one report.
fn read_env(
    kind: EngineKind,
    env: &(impl telemetry::EnvSource + ?Sized),
) -> Result<EngineEnv, telemetry::ConfigErrors> {
    match (
        EngineEnv::from_env(kind, env),
        telemetry::Config::from_env(env),
    ) {
        (Ok(settings), Ok(_)) => Ok(settings),
        (engine, otel) => {
            let mut all = Vec::new();
            all.extend(engine.err().map(|e| e.0).unwrap_or_default());
            all.extend(otel.err().map(|e| e.0).unwrap_or_default());
            Err(all.into())
        }
    }
}

pub(crate) use crate::hosting::block_on;
use crate::hosting::{http_config, with_telemetry_info};

/// Serves `app` (plus `/health`, `/ready`, `/metrics`) behind the glue's
/// axum layer until SIGINT/SIGTERM.
pub(crate) async fn serve_axum(
    t: &Telemetry,
    env: &EngineEnv,
    app: axum::Router,
    readiness: Readiness,
) -> Result<(), EngineError> {
    let app = crate::hosting::instrumented(t, app, readiness, MAX_BODY_BYTES);
    crate::hosting::serve(app, &env.host, env.port, "DELTRAN_PORT").await?;
    Ok(())
}

fn bind_error(env: &EngineEnv, e: std::io::Error) -> std::io::Error {
    crate::hosting::bind_error(&env.host, env.port, "DELTRAN_PORT", e)
}

/// Serves the routes `configure` adds (plus `/health`, `/ready`, `/metrics`)
/// on actix-web behind the glue's middleware; actix stops on SIGINT/SIGTERM.
pub(crate) async fn serve_actix<F>(
    t: &Telemetry,
    env: &EngineEnv,
    readiness: Readiness,
    configure: F,
) -> Result<(), EngineError>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    use actix_web::{App, HttpResponse, HttpServer, web};
    let config = http_config(t);
    let health = services_glue::health::actix_configure(with_telemetry_info(readiness, t));
    let prometheus = t.prometheus();
    let server = HttpServer::new(move || {
        let prometheus = prometheus.clone();
        App::new()
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            // Inside the glue's middleware, so a request cut short is
            // traced and counted as a 408.
            .wrap(actix_web::middleware::from_fn(request_deadline))
            .wrap(services_glue::actix::HttpServerMiddleware::new(
                config.clone(),
            ))
            .configure(health.clone())
            .route(
                "/metrics",
                web::get().to(move || {
                    let prometheus = prometheus.clone();
                    async move {
                        match prometheus {
                            Some(p) => HttpResponse::Ok()
                                .content_type(p.content_type())
                                .body(p.render()),
                            None => HttpResponse::NotFound().body(
                                "Prometheus pull is off: set OTEL_METRICS_EXPORTER=prometheus\n",
                            ),
                        }
                    }
                }),
            )
            .configure(configure.clone())
    })
    .workers(ACTIX_WORKERS)
    // The same bound and deadlines as the axum engines' accept loop, where
    // actix has them: connections per worker, the request head (actix's
    // default 5 s), and the whole request (`request_deadline`).
    .max_connections(bounded_serve::MAX_CONNECTIONS / ACTIX_WORKERS)
    .shutdown_timeout(bounded_serve::DRAIN_TIMEOUT.as_secs())
    .bind((env.host.as_str(), env.port))
    .map_err(|e| bind_error(env, e))?;
    tracing::info!(host = %env.host, port = env.port, "listening");
    server.run().await?;
    Ok(())
}

/// Worker threads of an actix engine.
const ACTIX_WORKERS: usize = 2;

/// Ends a request that has not been answered within
/// `bounded_serve::REQUEST_TIMEOUT` with a 408, reading no more of its
/// body: actix times a request's head but not its body, so a body sent a
/// byte at a time would hold its connection and worker task for good.
async fn request_deadline(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    match tokio::time::timeout(bounded_serve::REQUEST_TIMEOUT, next.call(req)).await {
        Ok(response) => response.map(actix_web::dev::ServiceResponse::map_into_boxed_body),
        Err(_) => Err(actix_web::error::ErrorRequestTimeout(format!(
            "no answer within {} s: the request's body came too slowly or its handler hung",
            bounded_serve::REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

/// Connects to NATS with the engine's credentials (and TLS when a CA is
/// given); see [`crate::hosting::connect_nats`].
pub(crate) async fn connect_nats(
    env: &EngineEnv,
    name: &str,
) -> Result<async_nats::Client, EngineError> {
    let settings = crate::hosting::NatsSettings {
        url: &env.nats_url,
        token: env.nats_token.as_deref(),
        ca_file: env.nats_ca_file.as_deref(),
        url_variable: "DELTRAN_NATS_URL",
        token_variable: "DELTRAN_NATS_TOKEN_FILE (or DELTRAN_NATS_TOKEN)",
        ca_variable: "DELTRAN_NATS_CA_FILE",
    };
    crate::hosting::connect_nats(&settings, name)
        .await
        .map_err(|e| EngineError::Io(std::io::Error::other(e)))
}

pub(crate) use crate::hosting::nats_ready;

/// A failed call to another engine.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached.
    #[error("unreachable: {0}")]
    Transport(#[from] reqwest::Error),
    /// The peer answered with an error status.
    #[error("answered {0}")]
    Status(u16),
}

/// POSTs `body` as JSON to `url` through the traced client and decodes the answer.
pub(crate) async fn post_json<Req: Serialize, Resp: DeserializeOwned>(
    client: &TracedClient,
    url: String,
    body: &Req,
) -> Result<Resp, CallError> {
    let request = client.inner().post(url).json(body).build()?;
    let response = client.execute(request).await?;
    let status = response.status();
    if !status.is_success() {
        return Err(CallError::Status(status.as_u16()));
    }
    Ok(response.json().await?)
}

/// The traced HTTP client engines call each other with.
pub(crate) fn http_client(t: &Telemetry) -> TracedClient {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    TracedClient::new(client, &t.meter())
}

/// Processes every message on `subject` (in `queue`, if given) with the
/// glue's [`Consumer`](services_glue::nats::Consumer) until SIGINT/SIGTERM:
/// decoded and validated first — a message that fails is counted in
/// `deltran.messages.rejected` and never applied — then handed to
/// `handler`. Either failure marks the CONSUMER span and metrics and is
/// logged there (a rejection quotes input only masked).
pub(crate) async fn consume<T, F, Fut>(
    client: async_nats::Client,
    nats: NatsTelemetry,
    counts: MessageInstruments,
    subject: &'static str,
    queue: Option<&'static str>,
    handler: F,
) where
    T: DeserializeOwned + Validate,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut consumer = nats.consumer(&client, subject);
    if let Some(q) = queue {
        consumer = consumer.queue_group(q);
    }
    let stopped = consumer
        .run(shutdown_signal(), |message: async_nats::Message| {
            // Called inside the span: the handler's synchronous part sees
            // this message's context.
            let applied = decode::<T>(&message.payload)
                .map(&handler)
                .map_err(|rejected| {
                    let kind = if rejected.status == 413 {
                        "too_large"
                    } else {
                        "invalid"
                    };
                    counts.rejected.add(1, [subject, kind]);
                    format!("message rejected: {rejected}")
                });
            async move {
                match applied {
                    Ok(applying) => applying.await,
                    Err(e) => Err(e),
                }
            }
        })
        .await;
    if let Err(e) = stopped {
        tracing::error!(subject, error = %e, "consumer stopped");
    }
}

/// Every engine's faults, from its environment.
pub(crate) fn faults(env: &EngineEnv) -> Faults {
    Faults::new(env.fault_latency, env.fault_error_rate)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn engine_and_telemetry_variables_are_reported_in_one_list() {
        let env: BTreeMap<String, String> = [
            ("DELTRAN_PORT", "eighty"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("DELTRAN_FAULT_ERROR_RATE", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let errors = read_env(EngineKind::TokenEngine, &env).unwrap_err();
        let variables: Vec<&str> = errors.0.iter().map(|e| e.variable.as_str()).collect();
        assert_eq!(
            variables,
            [
                "DELTRAN_PORT",
                "DELTRAN_FAULT_ERROR_RATE",
                "OTEL_TRACES_SAMPLER"
            ]
        );
        let message = EngineError::from(errors).to_string();
        assert!(
            message.contains("OTEL_TRACES_SAMPLER=\"sometimes\""),
            "{message}"
        );
        assert!(message.contains("DELTRAN_PORT=\"eighty\""), "{message}");
    }

    #[test]
    fn a_clean_environment_reads() {
        let env: BTreeMap<String, String> = BTreeMap::new();
        let settings = read_env(EngineKind::Gateway, &env).unwrap();
        assert_eq!(settings.port, EngineKind::Gateway.default_port());
    }
}
