//! gateway (8080, axum): accepts payments, walks them through compliance,
//! risk, token and obligation engines, and streams their status to
//! WebSocket clients as settlement events arrive over NATS.

mod event_stream;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::validation::decode;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use event_stream::StreamLimits;
use services_glue::health::Readiness;
use services_glue::nats::NatsTelemetry;
use services_glue::reqwest::TracedClient;
use telemetry::Telemetry;
use tokio::sync::broadcast;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{CallError, EngineError, EngineKind, post_json};
use crate::domain::{
    AssessmentRequest, AssessmentResponse, Obligation, PaymentEvent, PaymentRequest, PaymentStatus,
    PaymentView, ScreeningRequest, ScreeningResponse, now_ms, subjects,
};
use crate::env::EngineEnv;
use crate::faults::Faults;

/// Span attribute with the payment's outcome (accepted, held, rejected,
/// invalid, failed): what the collector's tail sampling keys on.
pub const PAYMENT_OUTCOME: &str = "deltran.payment.outcome";
/// Span attribute with the payment's id.
pub const PAYMENT_ID: &str = "deltran.payment.id";

services_glue::instruments! {
    /// The gateway's business instruments.
    pub struct GatewayInstruments {
        /// Payments received, by outcome.
        payments: counter("deltran.payments", "{payment}",
            "Payments received, by outcome (accepted, held, rejected, invalid, failed, shed)", ["outcome"]),
        /// Amounts of accepted payments.
        amount: histogram("deltran.payment.amount", "{amount}", "Amounts of accepted payments", ["currency"],
            [100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0]),
        /// Accepted payments that reached a final state.
        completed: counter("deltran.payments.completed", "{payment}",
            "Accepted payments that reached a final state (settled, failed)", ["status"]),
        /// Open WebSocket status streams.
        websocket_connections: up_down_counter("deltran.gateway.websocket.connections", "{connection}",
            "Open WebSocket payment-status streams", []),
    }
}

/// How many payments the gateway remembers for `GET /payments/{id}`.
const REMEMBERED: usize = 100_000;

#[derive(Default)]
struct PaymentBook {
    by_id: HashMap<String, PaymentView>,
    order: VecDeque<String>,
}

struct Gateway {
    http: TracedClient,
    compliance: String,
    risk: String,
    token: String,
    obligation: String,
    m: GatewayInstruments,
    faults: Faults,
    book: Mutex<PaymentBook>,
    events: broadcast::Sender<String>,
    /// Payments in process at once; past it, new ones are shed (503) so
    /// the accepted ones keep their latency instead of everyone queueing.
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    /// Open event streams. An upgraded connection leaves the accept loop's
    /// connection bound, so the streams have one of their own.
    websockets: Arc<tokio::sync::Semaphore>,
}

/// Event streams (`/payments/stream`) open at once; past it, 503.
pub(crate) const MAX_WEBSOCKETS: usize = 256;

/// What a shed request is told to wait before trying again.
const RETRY_AFTER_SECONDS: &str = "1";

impl Gateway {
    fn remember(&self, view: &PaymentView) {
        if let Ok(mut book) = self.book.lock() {
            if book.by_id.insert(view.id.clone(), view.clone()).is_none() {
                book.order.push_back(view.id.clone());
            }
            while book.order.len() > REMEMBERED {
                if let Some(old) = book.order.pop_front() {
                    book.by_id.remove(&old);
                }
            }
        }
    }

    fn complete(&self, event: &PaymentEvent) {
        let view = self.book.lock().ok().and_then(|mut book| {
            book.by_id.get_mut(&event.payment_id).map(|v| {
                v.status = event.status;
                v.clone()
            })
        });
        self.m.completed.add(1, [event.status.as_str()]);
        let view = view.unwrap_or(PaymentView {
            id: event.payment_id.clone(),
            status: event.status,
            reason: None,
            trace_id: None,
        });
        if let Ok(json) = serde_json::to_string(&view) {
            // No receivers is fine: nobody is watching.
            let _ = self.events.send(json);
        }
    }

    /// Walks one payment through the engines on its path.
    async fn process(
        &self,
        id: &str,
        request: PaymentRequest,
    ) -> (StatusCode, PaymentStatus, Option<String>) {
        if self.faults.apply().await.is_err() {
            return failed("gateway: injected fault");
        }
        let screening: Result<ScreeningResponse, _> = post_json(
            &self.http,
            format!("{}/screenings", self.compliance),
            &ScreeningRequest {
                debtor: request.debtor.clone(),
                creditor: request.creditor.clone(),
            },
        )
        .await;
        match screening {
            Ok(s) if s.decision == "reject" => {
                return (
                    StatusCode::FORBIDDEN,
                    PaymentStatus::Rejected,
                    Some("sanctioned party".into()),
                );
            }
            Ok(s) if s.decision == "hold" => {
                return (
                    StatusCode::ACCEPTED,
                    PaymentStatus::Held,
                    Some("held for compliance review".into()),
                );
            }
            Ok(_) => {}
            Err(e) => return unavailable(EngineKind::ComplianceEngine, e),
        }
        let assessment: Result<AssessmentResponse, _> = post_json(
            &self.http,
            format!("{}/assessments", self.risk),
            &AssessmentRequest {
                from_bank: request.from_bank.clone(),
                amount: request.amount,
                currency: request.currency.clone(),
            },
        )
        .await;
        match assessment {
            Ok(a) if a.decision != "approve" => {
                let reason = a.reason.unwrap_or_else(|| "risk".into());
                return (
                    StatusCode::CONFLICT,
                    PaymentStatus::Rejected,
                    Some(format!("declined by risk: {reason}")),
                );
            }
            Ok(_) => {}
            Err(e) => return unavailable(EngineKind::RiskEngine, e),
        }
        let obligation = Obligation {
            payment_id: id.to_string(),
            from_bank: request.from_bank.clone(),
            to_bank: request.to_bank.clone(),
            amount: request.amount,
            currency: request.currency.clone(),
            accepted_at_ms: now_ms(),
        };
        let minted: Result<serde_json::Value, _> =
            post_json(&self.http, format!("{}/transfers", self.token), &obligation).await;
        if let Err(e) = minted {
            return unavailable(EngineKind::TokenEngine, e);
        }
        let recorded: Result<serde_json::Value, _> = post_json(
            &self.http,
            format!("{}/obligations", self.obligation),
            &obligation,
        )
        .await;
        if let Err(e) = recorded {
            return unavailable(EngineKind::ObligationEngine, e);
        }
        self.m
            .amount
            .record(request.amount, [request.currency.as_str()]);
        (StatusCode::ACCEPTED, PaymentStatus::Accepted, None)
    }
}

fn failed(reason: &str) -> (StatusCode, PaymentStatus, Option<String>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        PaymentStatus::Failed,
        Some(reason.to_string()),
    )
}

fn unavailable(engine: EngineKind, e: CallError) -> (StatusCode, PaymentStatus, Option<String>) {
    tracing::warn!(engine = engine.name(), error = %e, "payment failed at a downstream engine");
    (
        StatusCode::BAD_GATEWAY,
        PaymentStatus::Failed,
        Some(format!("{} {e}", engine.name())),
    )
}

async fn create_payment(
    State(g): State<Arc<Gateway>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Overloaded: answer at once rather than queue. Shed payments are
    // counted (outcome `shed`) and never remembered.
    let _permit = match &g.in_flight {
        Some(limit) => match limit.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                g.m.payments.add(1, ["shed"]);
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
                    Json(serde_json::json!({
                        "error": "the gateway is at capacity; retry after 1 s"
                    })),
                )
                    .into_response();
            }
        },
        None => None,
    };
    let id = uuid::Uuid::new_v4().to_string();
    let trace_id = services_glue::propagation::trace_id_of(&tracing::Span::current());
    let request = body
        .map_err(|e| super::body_rejected(&e))
        .and_then(|bytes| decode::<PaymentRequest>(&bytes));
    let (code, status, reason) = match request {
        Ok(request) => g.process(&id, request).await,
        // 413 or 422, with a reason that never quotes more than a masked excerpt.
        Err(rejected) => (
            StatusCode::from_u16(rejected.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            PaymentStatus::Rejected,
            Some(rejected.reason),
        ),
    };
    let outcome = match (code, status) {
        (StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE, _) => "invalid",
        (_, s) => s.as_str(),
    };
    g.m.payments.add(1, [outcome]);
    // On the server span itself, not only its log event: the collector's
    // tail sampler keeps every rejected, held or invalid payment by this
    // attribute, and a trace search finds a payment by its id.
    let server_span = tracing::Span::current();
    server_span.set_attribute(PAYMENT_OUTCOME, outcome);
    server_span.set_attribute(PAYMENT_ID, id.clone());
    tracing::info!(payment.id = %id, outcome, reason = reason.as_deref().unwrap_or(""), "payment received");
    let view = PaymentView {
        id,
        status,
        reason,
        trace_id,
    };
    g.remember(&view);
    (code, Json(view)).into_response()
}

async fn get_payment(State(g): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let view = g.book.lock().ok().and_then(|b| b.by_id.get(&id).cloned());
    match view {
        Some(v) => Json(v).into_response(),
        None => (StatusCode::NOT_FOUND, "no such payment\n").into_response(),
    }
}

async fn stream(State(g): State<Arc<Gateway>>, upgrade: WebSocketUpgrade) -> Response {
    let Ok(permit) = g.websockets.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
            Json(serde_json::json!({
                "error": format!("{MAX_WEBSOCKETS} event streams are open; retry after 1 s")
            })),
        )
            .into_response();
    };
    event_stream::configure(upgrade).on_upgrade(move |socket| async move {
        g.m.websocket_connections.add(1, []);
        let _open = Open(g.m.clone());
        let end = event_stream::watch(socket, g.events.subscribe(), StreamLimits::default()).await;
        tracing::info!(reason = end.as_str(), "event stream closed");
        drop(permit);
    })
}

/// Keeps the connections gauge right however the socket ends.
struct Open(GatewayInstruments);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.websocket_connections.add(-1, []);
    }
}

async fn on_payment_event(g: Arc<Gateway>, event: PaymentEvent) -> Result<(), String> {
    tracing::info!(payment.id = %event.payment_id, status = event.status.as_str(), "payment completed");
    g.complete(&event);
    Ok(())
}

/// Runs the gateway until SIGINT/SIGTERM.
pub fn main(env: EngineEnv) -> Result<(), EngineError> {
    let t = telemetry::builder!("gateway").try_init()?;
    super::block_on(serve(&t, &env))
}

async fn serve(t: &Telemetry, env: &EngineEnv) -> Result<(), EngineError> {
    let meter = t.meter();
    let nats = super::connect_nats(env, "gateway").await?;
    let (events, _) = broadcast::channel(1024);
    let g = Arc::new(Gateway {
        http: super::http_client(t),
        compliance: env.peer_url(EngineKind::ComplianceEngine),
        risk: env.peer_url(EngineKind::RiskEngine),
        token: env.peer_url(EngineKind::TokenEngine),
        obligation: env.peer_url(EngineKind::ObligationEngine),
        m: GatewayInstruments::new(&meter),
        faults: super::faults(env),
        book: Mutex::new(PaymentBook::default()),
        events,
        in_flight: (env.gateway_max_in_flight > 0)
            .then(|| Arc::new(tokio::sync::Semaphore::new(env.gateway_max_in_flight))),
        websockets: Arc::new(tokio::sync::Semaphore::new(MAX_WEBSOCKETS)),
    });
    let nats_telemetry = NatsTelemetry::new(&meter);
    for subject in [subjects::SETTLED, subjects::FAILED] {
        let g = g.clone();
        tokio::spawn(super::consume(
            nats.clone(),
            nats_telemetry.clone(),
            super::MessageInstruments::new(&meter),
            subject,
            None,
            move |event| on_payment_event(g.clone(), event),
        ));
    }
    let app = Router::new()
        .route("/payments", post(create_payment))
        .route("/payments/{id}", get(get_payment))
        .route("/payments/stream", get(stream))
        .with_state(g);
    let readiness = Readiness::new().check("nats", super::nats_ready(&nats));
    super::serve_axum(t, env, app, readiness).await
}
