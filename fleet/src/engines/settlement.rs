//! settlement-engine (8088, actix-web): settles each net position into a
//! ledger in a real database through sqlx — an embedded SQLite file by
//! default, PostgreSQL when `DELTRAN_DATABASE_URL` names one — then tells
//! the gateway and token-engine, per payment, in the payment's own trace.

use std::str::FromStr;
use std::sync::Arc;

use actix_web::web;
use services_glue::db::DbTelemetry;
use services_glue::health::Readiness;
use services_glue::nats::NatsTelemetry;
use telemetry::Telemetry;
use tracing::Instrument;

use super::EngineError;
use crate::domain::{PaymentEvent, PaymentStatus, SettlementInstruction, now_ms, subjects};
use crate::env::EngineEnv;
use crate::faults::Faults;

services_glue::instruments! {
    /// settlement-engine's business instruments.
    pub struct SettlementInstruments {
        /// Net positions settled or failed.
        instructions: counter("deltran.settlement.instructions", "{instruction}",
            "Net positions processed, by outcome (settled, failed)", ["outcome"]),
        /// Payments settled or failed.
        payments: counter("deltran.settlement.payments", "{payment}",
            "Payments settled or failed, by outcome", ["outcome"]),
        /// Acceptance-to-settlement latency.
        latency: histogram("deltran.settlement.latency", "s",
            "Time from the gateway accepting a payment to its settlement", ["outcome"],
            [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        /// Net amounts moved.
        net_amount: histogram("deltran.settlement.net.amount", "{amount}", "Net amounts settled", ["currency"],
            [100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0]),
    }
}

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS ledger_entries (window_id TEXT NOT NULL, bank TEXT NOT NULL, currency TEXT NOT NULL, amount DOUBLE PRECISION NOT NULL, corridor TEXT NOT NULL, created_at_ms BIGINT NOT NULL)";
const CREATE_SETTLED: &str = "CREATE TABLE IF NOT EXISTS settled_payments (payment_id TEXT PRIMARY KEY, window_id TEXT NOT NULL, settled_at_ms BIGINT NOT NULL)";
const INSERT_ENTRY: &str = "INSERT INTO ledger_entries (window_id, bank, currency, amount, corridor, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)";
const BALANCES: &str =
    "SELECT bank, currency, SUM(amount) FROM ledger_entries GROUP BY bank, currency";
const INSERT_SETTLED: &str =
    "INSERT INTO settled_payments (payment_id, window_id, settled_at_ms) VALUES ($1, $2, $3)";

/// The ledger database: the same statements on either driver.
#[derive(Clone, Debug)]
enum Ledger {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the ledger holds.
macro_rules! with_pool {
    ($ledger:expr, $pool:ident => $body:expr) => {
        match $ledger {
            Ledger::Sqlite($pool) => $body,
            Ledger::Postgres($pool) => $body,
        }
    };
}

impl Ledger {
    async fn open(env: &EngineEnv) -> Result<(Ledger, &'static str), EngineError> {
        match env.database_url.as_deref() {
            Some(url) if url.starts_with("postgres") => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect(url)
                    .await?;
                Ok((Ledger::Postgres(pool), "postgresql"))
            }
            other => {
                let url = match other {
                    Some(u) => u.to_string(),
                    None => format!(
                        "sqlite://{}",
                        env.data_dir.join("settlement-ledger.db").display()
                    ),
                };
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
                // One writer: SQLite serialises writes anyway.
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await?;
                Ok((Ledger::Sqlite(pool), "sqlite"))
            }
        }
    }

    async fn migrate(&self, db: &DbTelemetry) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            db.run(CREATE_LEDGER, sqlx::query(CREATE_LEDGER).execute(pool)).await?;
            db.run(CREATE_SETTLED, sqlx::query(CREATE_SETTLED).execute(pool)).await?;
            Ok(())
        })
    }

    /// Debits the payer, credits the payee and marks every member settled, atomically.
    async fn settle(&self, db: &DbTelemetry, i: &SettlementInstruction) -> Result<(), sqlx::Error> {
        let now = now_ms();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (bank, amount) in [(&i.from_bank, -i.net_amount), (&i.to_bank, i.net_amount)] {
                let q = sqlx::query(INSERT_ENTRY)
                    .bind(&i.window_id)
                    .bind(bank)
                    .bind(&i.currency)
                    .bind(amount)
                    .bind(&i.route.corridor)
                    .bind(now);
                db.run(INSERT_ENTRY, q.execute(&mut *tx)).await?;
            }
            for m in &i.members {
                let q = sqlx::query(INSERT_SETTLED).bind(&m.payment_id).bind(&i.window_id).bind(now);
                db.run(INSERT_SETTLED, q.execute(&mut *tx)).await?;
            }
            tx.commit().await
        })
    }
}

/// `GET /ledger/balances`: each bank's net settled position per currency.
async fn balances(s: web::Data<Arc<Settlement>>) -> actix_web::HttpResponse {
    let rows: Result<Vec<(String, String, f64)>, sqlx::Error> = with_pool!(&s.ledger, pool => {
        s.db.run(BALANCES, sqlx::query_as(BALANCES).fetch_all(pool)).await
    });
    match rows {
        Ok(rows) => actix_web::HttpResponse::Ok().json(
            rows.into_iter()
                .map(|(bank, currency, amount)| serde_json::json!({"bank": bank, "currency": currency, "amount": amount}))
                .collect::<Vec<_>>(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "balances query failed");
            actix_web::HttpResponse::ServiceUnavailable().body("ledger unavailable\n")
        }
    }
}

struct Settlement {
    m: SettlementInstruments,
    faults: Faults,
    ledger: Ledger,
    db: DbTelemetry,
    nats: async_nats::Client,
    nats_telemetry: NatsTelemetry,
}

async fn on_instruction(s: &Settlement, instruction: SettlementInstruction) -> Result<(), String> {
    let outcome = match s.faults.apply().await {
        Err(e) => Err(e.to_string()),
        Ok(()) => s
            .ledger
            .settle(&s.db, &instruction)
            .await
            .map_err(|e| e.to_string()),
    };
    let status = if outcome.is_ok() {
        PaymentStatus::Settled
    } else {
        PaymentStatus::Failed
    };
    s.m.instructions.add(1, [status.as_str()]);
    s.m.net_amount
        .record(instruction.net_amount, [instruction.currency.as_str()]);
    match &outcome {
        Ok(()) => {
            tracing::info!(window.id = %instruction.window_id, payments = instruction.members.len(), "net position settled")
        }
        Err(e) => {
            tracing::error!(window.id = %instruction.window_id, error = %e, "net position failed")
        }
    }
    // Tell each payment's trace what happened to it, linked to this batch.
    let batch = services_glue::propagation::carrier_of(&tracing::Span::current());
    let subject = if outcome.is_ok() {
        subjects::SETTLED
    } else {
        subjects::FAILED
    };
    let now = now_ms();
    for member in &instruction.members {
        let latency = (now - member.accepted_at_ms).max(0) as f64 / 1000.0;
        s.m.payments.add(1, [status.as_str()]);
        s.m.latency.record(latency, [status.as_str()]);
        let span = tracing::info_span!(parent: None, "settle payment", deltran.payment.id = %member.payment_id);
        services_glue::propagation::set_parent_from_carrier(&span, &member.carrier);
        services_glue::propagation::link_to_carrier(&span, &batch);
        let event = PaymentEvent {
            payment_id: member.payment_id.clone(),
            status,
        };
        let payload = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        let published = s
            .nats_telemetry
            .publish(&s.nats, subject, payload.into())
            .instrument(span)
            .await;
        if let Err(e) = published {
            tracing::error!(payment.id = %member.payment_id, error = %e, "payment event not published");
        }
    }
    outcome
}

/// Runs settlement-engine until SIGINT/SIGTERM.
pub fn main(env: EngineEnv) -> Result<(), EngineError> {
    let t = telemetry::builder!("settlement-engine").try_init()?;
    actix_web::rt::System::new().block_on(serve(&t, &env))
}

async fn serve(t: &Telemetry, env: &EngineEnv) -> Result<(), EngineError> {
    let meter = t.meter();
    let nats = super::connect_nats(env, "settlement-engine").await?;
    let (ledger, system) = Ledger::open(env).await?;
    let db = DbTelemetry::new(&meter, system);
    ledger.migrate(&db).await?;
    with_pool!(&ledger, pool => db.observe_pool(&meter, "ledger", pool.clone()));
    tracing::info!(db.system.name = system, "ledger ready");
    let s = Arc::new(Settlement {
        m: SettlementInstruments::new(&meter),
        faults: super::faults(env),
        ledger: ledger.clone(),
        db,
        nats: nats.clone(),
        nats_telemetry: NatsTelemetry::new(&meter),
    });
    {
        let s = s.clone();
        actix_web::rt::spawn(super::consume(
            nats.clone(),
            s.nats_telemetry.clone(),
            super::MessageInstruments::new(&meter),
            subjects::INSTRUCTIONS,
            Some("settlement-engine"),
            move |instruction| {
                let s = s.clone();
                async move { on_instruction(&s, instruction).await }
            },
        ));
    }
    let db_ready = ledger.clone();
    let readiness = Readiness::new()
        .check("nats", super::nats_ready(&nats))
        .check(
            "database",
            move || with_pool!(&db_ready, pool => !pool.is_closed()),
        );
    let data = web::Data::new(s);
    super::serve_actix(t, env, readiness, move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone())
            .route("/ledger/balances", web::get().to(balances));
    })
    .await
}
