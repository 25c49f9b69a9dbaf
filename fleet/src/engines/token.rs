//! token-engine (8081, actix-web): every accepted payment is tokenised —
//! a token is minted to the payer's bank and transferred to the payee's —
//! and burned when the payment settles or fails (the DelTran token family).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{HttpResponse, web};
use services_glue::health::Readiness;
use services_glue::nats::NatsTelemetry;
use telemetry::Telemetry;

use super::EngineError;
use crate::domain::{Obligation, PaymentEvent, subjects};
use crate::env::EngineEnv;
use crate::faults::Faults;

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

struct Token {
    m: TokenInstruments,
    faults: Faults,
    /// payment id → currency of its live token.
    live: Mutex<HashMap<String, String>>,
}

async fn transfer(t: web::Data<Arc<Token>>, body: web::Json<Obligation>) -> HttpResponse {
    if t.faults.apply().await.is_err() {
        return HttpResponse::InternalServerError().body("injected fault\n");
    }
    let o = body.into_inner();
    let currency = o.currency.as_str();
    let fresh = t
        .live
        .lock()
        .map(|mut live| {
            live.insert(o.payment_id.clone(), o.currency.clone())
                .is_none()
        })
        .unwrap_or(false);
    if fresh {
        t.m.minted.add(1, [currency]);
        t.m.active.add(1, [currency]);
        t.m.value.record(o.amount, [currency]);
    }
    t.m.transferred.add(1, [currency]);
    tracing::info!(payment.id = %o.payment_id, from = %o.from_bank, to = %o.to_bank, "token minted and transferred");
    HttpResponse::Ok().json(serde_json::json!({ "token": o.payment_id, "owner": o.to_bank }))
}

fn burn(t: &Token, message: &async_nats::Message) -> Result<(), String> {
    let event: PaymentEvent =
        serde_json::from_slice(&message.payload).map_err(|e| e.to_string())?;
    let currency = t
        .live
        .lock()
        .ok()
        .and_then(|mut live| live.remove(&event.payment_id));
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
    let t = telemetry::try_init!("token-engine")?;
    actix_web::rt::System::new().block_on(serve(&t, &env))
}

async fn serve(t: &Telemetry, env: &EngineEnv) -> Result<(), EngineError> {
    let meter = t.meter();
    let nats = super::connect_nats(env, "token-engine").await?;
    let token = Arc::new(Token {
        m: TokenInstruments::new(&meter),
        faults: super::faults(env),
        live: Mutex::new(HashMap::new()),
    });
    let nats_telemetry = NatsTelemetry::new(&meter);
    for subject in [subjects::SETTLED, subjects::FAILED] {
        let token = token.clone();
        actix_web::rt::spawn(super::consume(
            nats.clone(),
            nats_telemetry.clone(),
            subject,
            Some("token-engine"),
            move |m| {
                let result = burn(&token, &m);
                std::future::ready(result)
            },
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
