//! token-engine (8081, actix-web): every accepted payment is tokenised —
//! a token is minted to the payer's bank and transferred to the payee's —
//! and burned when the payment settles or fails (the DelTran token family).

use std::sync::{Arc, Mutex};

use actix_web::{HttpResponse, web};
use services_glue::health::Readiness;
use services_glue::nats::NatsTelemetry;
use telemetry::Telemetry;

use super::EngineError;
use crate::domain::{Obligation, PaymentEvent, subjects};
use crate::env::EngineEnv;
use crate::faults::Faults;
use crate::validation::decode;

services_glue::instruments! {
    /// The token family of the original DelTran `metrics.rs`.
    pub struct TokenInstruments {
        /// Tokens minted.
        minted: counter("tokens.minted", "{token}", "Tokens minted", ["currency"]),
        /// Tokens burned.
        burned: counter("tokens.burned", "{token}", "Tokens burned (payment settled or failed)", ["currency", "reason"]),
        /// Tokens transferred between banks.
        transferred: counter("tokens.transferred", "{token}", "Tokens transferred between banks", ["currency"]),
        /// Tokens in circulation.
        active: up_down_counter("tokens.active", "{token}", "Tokens in circulation (minted, not yet burned)", ["currency"]),
        /// Value of each minted token.
        value: histogram("tokens.value", "{amount}", "Value of minted tokens", ["currency"],
            [100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0]),
    }
}

/// Live tokens held; a payment that never settles is not remembered
/// forever: past this many, the oldest token is burned as `expired`.
const LIVE_TOKENS: std::num::NonZeroUsize = std::num::NonZeroUsize::MIN.saturating_add(99_999);

struct Token {
    m: TokenInstruments,
    faults: Faults,
    /// payment id → currency of its live token, oldest first out.
    live: Mutex<lru::LruCache<String, String>>,
}

async fn transfer(t: web::Data<Arc<Token>>, body: web::Bytes) -> HttpResponse {
    let o = match decode::<Obligation>(&body) {
        Ok(o) => o,
        Err(rejected) => {
            return HttpResponse::build(
                actix_web::http::StatusCode::from_u16(rejected.status)
                    .unwrap_or(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY),
            )
            .json(serde_json::json!({ "error": rejected.reason }));
        }
    };
    if t.faults.apply().await.is_err() {
        return HttpResponse::InternalServerError().body("injected fault\n");
    }
    let currency = o.currency.as_str();
    let (fresh, expired) = t
        .live
        .lock()
        .map(|mut live| {
            let fresh = !live.contains(&o.payment_id);
            let pushed = live.push(o.payment_id.clone(), o.currency.clone());
            let expired = pushed.filter(|(id, _)| *id != o.payment_id).map(|(_, c)| c);
            (fresh, expired)
        })
        .unwrap_or((false, None));
    if let Some(old) = expired {
        t.m.burned.add(1, [old.as_str(), "expired"]);
        t.m.active.add(-1, [old.as_str()]);
    }
    if fresh {
        t.m.minted.add(1, [currency]);
        t.m.active.add(1, [currency]);
        t.m.value.record(o.amount, [currency]);
    }
    t.m.transferred.add(1, [currency]);
    tracing::info!(payment.id = %o.payment_id, from = %o.from_bank, to = %o.to_bank, "token minted and transferred");
    HttpResponse::Ok().json(serde_json::json!({ "token": o.payment_id, "owner": o.to_bank }))
}

fn burn(t: &Token, event: PaymentEvent) -> Result<(), String> {
    let currency = t
        .live
        .lock()
        .ok()
        .and_then(|mut live| live.pop(&event.payment_id));
    if let Some(currency) = currency {
        t.m.burned
            .add(1, [currency.as_str(), event.status.as_str()]);
        t.m.active.add(-1, [currency.as_str()]);
        tracing::info!(payment.id = %event.payment_id, "token burned");
    }
    Ok(())
}

/// Runs token-engine until SIGINT/SIGTERM.
pub fn main(env: EngineEnv) -> Result<(), EngineError> {
    let t = telemetry::builder!("token-engine").try_init()?;
    actix_web::rt::System::new().block_on(serve(&t, &env))
}

async fn serve(t: &Telemetry, env: &EngineEnv) -> Result<(), EngineError> {
    let meter = t.meter();
    let nats = super::connect_nats(env, "token-engine").await?;
    let token = Arc::new(Token {
        m: TokenInstruments::new(&meter),
        faults: super::faults(env),
        live: Mutex::new(lru::LruCache::new(LIVE_TOKENS)),
    });
    let nats_telemetry = NatsTelemetry::new(&meter);
    for subject in [subjects::SETTLED, subjects::FAILED] {
        let token = token.clone();
        actix_web::rt::spawn(super::consume(
            nats.clone(),
            nats_telemetry.clone(),
            super::MessageInstruments::new(&meter),
            subject,
            Some("token-engine"),
            move |event| std::future::ready(burn(&token, event)),
        ));
    }
    let data = web::Data::new(token);
    let readiness = Readiness::new().check("nats", super::nats_ready(&nats));
    super::serve_actix(t, env, readiness, move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone())
            .route("/transfers", web::post().to(transfer));
    })
    .await
}
