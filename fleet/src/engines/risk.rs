//! risk-engine (8084, axum): scores payments, enforces limits, and trips a
//! circuit breaker when limit breaches pile up (every payment is declined
//! while it is open).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use services_glue::health::Readiness;
use telemetry::Telemetry;

use super::{EngineError, Valid};
use crate::domain::{AssessmentRequest, AssessmentResponse};
use crate::env::EngineEnv;
use crate::faults::Faults;

services_glue::instruments! {
    /// risk-engine's business instruments.
    pub struct RiskInstruments {
        /// Assessments by decision.
        assessments: counter("deltran.risk.assessments", "{assessment}",
            "Payments assessed, by decision (approve, decline)", ["decision"]),
        /// Risk scores.
        score: histogram("deltran.risk.score", "{score}", "Risk score of assessed payments (0 safe, 1 risky)", [],
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        /// Limit breaches by limit type.
        breaches: counter("deltran.risk.limit.breaches", "{breach}",
            "Limit breaches, by limit type (payment_limit, score)", ["limit.type"]),
        /// Times the breaker opened.
        breaker_trips: counter("deltran.risk.circuit_breaker.trips", "{trip}",
            "Times the circuit breaker tripped open", []),
        /// 1 while the breaker is open.
        breaker_open: gauge("deltran.risk.circuit_breaker.open", "{breaker}",
            "1 while the circuit breaker is open (all payments declined), else 0", []),
    }
}

/// Declines above this score.
const SCORE_LIMIT: f64 = 0.97;
/// Breaches count towards the breaker for this long.
const BREACH_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Breaker {
    breaches: VecDeque<Instant>,
    open_until: Option<Instant>,
}

struct Risk {
    m: RiskInstruments,
    faults: Faults,
    payment_limit: f64,
    threshold: u32,
    cooldown: Duration,
    breaker: Mutex<Breaker>,
}

impl Risk {
    fn breaker_is_open(&self, now: Instant) -> bool {
        let Ok(mut b) = self.breaker.lock() else {
            return false;
        };
        match b.open_until {
            Some(until) if now < until => true,
            Some(_) => {
                b.open_until = None;
                b.breaches.clear();
                tracing::info!("circuit breaker closed");
                false
            }
            None => false,
        }
    }

    fn record_breach(&self, now: Instant, limit: &'static str) {
        self.m.breaches.add(1, [limit]);
        let Ok(mut b) = self.breaker.lock() else {
            return;
        };
        b.breaches.push_back(now);
        // Only the last `threshold` breaches inside the window matter: the
        // list never holds more, whatever the rate.
        while b
            .breaches
            .front()
            .is_some_and(|t| now.duration_since(*t) > BREACH_WINDOW)
            || b.breaches.len() > self.threshold as usize
        {
            b.breaches.pop_front();
        }
        if b.open_until.is_none() && b.breaches.len() >= self.threshold as usize {
            b.open_until = Some(now + self.cooldown);
            self.m.breaker_trips.add(1, []);
            tracing::error!(
                breaches = b.breaches.len(),
                cooldown_ms = self.cooldown.as_millis() as u64,
                "circuit breaker tripped: declining every payment"
            );
        }
    }

    fn assess(&self, request: &AssessmentRequest) -> AssessmentResponse {
        let now = Instant::now();
        // A deterministic part (size against the limit) and some noise.
        let score =
            ((request.amount / self.payment_limit).min(1.0) * 0.6 + fastrand::f64() * 0.4).min(1.0);
        self.m.score.record(score, []);
        let (decision, reason) = if self.breaker_is_open(now) {
            ("decline", Some("circuit_breaker_open"))
        } else if request.amount > self.payment_limit {
            self.record_breach(now, "payment_limit");
            ("decline", Some("payment_limit"))
        } else if score > SCORE_LIMIT {
            self.record_breach(now, "score");
            ("decline", Some("score"))
        } else {
            ("approve", None)
        };
        self.m
            .breaker_open
            .record(if self.breaker_is_open(now) { 1.0 } else { 0.0 }, []);
        self.m.assessments.add(1, [decision]);
        AssessmentResponse {
            score,
            decision: decision.into(),
            reason: reason.map(String::from),
        }
    }
}

async fn assess(State(r): State<Arc<Risk>>, Valid(request): Valid<AssessmentRequest>) -> Response {
    if r.faults.apply().await.is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected fault\n").into_response();
    }
    Json(r.assess(&request)).into_response()
}

/// Runs risk-engine until SIGINT/SIGTERM.
pub fn main(env: EngineEnv) -> Result<(), EngineError> {
    let t = telemetry::builder!("risk-engine").try_init()?;
    super::block_on(serve(&t, &env))
}

async fn serve(t: &Telemetry, env: &EngineEnv) -> Result<(), EngineError> {
    let m = RiskInstruments::new(&t.meter());
    m.breaker_open.record(0.0, []);
    let r = Arc::new(Risk {
        m,
        faults: super::faults(env),
        payment_limit: env.risk_payment_limit,
        threshold: env.risk_breaker_threshold.max(1),
        cooldown: env.risk_breaker_cooldown,
        breaker: Mutex::new(Breaker {
            breaches: VecDeque::new(),
            open_until: None,
        }),
    });
    let app = Router::new()
        .route("/assessments", post(assess))
        .with_state(r);
    super::serve_axum(t, env, app, Readiness::new()).await
}
