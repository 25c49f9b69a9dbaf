//! The DelTran demo fleet: eight payment engines, each its own process
//! starting with `telemetry::init!("<engine>")` and instrumented only through
//! `services-glue`, plus the launcher that runs them with NATS, a load
//! generator and a live terminal view (`cargo run -p deltran-fleet`).
//!
//! A payment's path (one trace; the netting batch is a second trace linked
//! to every payment in it):
//!
//! ```text
//! client ─► gateway ─► compliance-engine ─► risk-engine ─► token-engine ─► obligation-engine
//!                                                                         │ NATS deltran.obligations.created
//!                         clearing-engine (process, then window) ◄────────┘
//!                           │ per net position: liquidity-router (HTTP), NATS deltran.settlement.instructions
//!                         settlement-engine (ledger in SQLite/PostgreSQL)
//!                           │ per payment: NATS deltran.payments.settled
//!                         gateway (WebSocket push) and token-engine (burn)
//! ```

pub mod catalogue;
pub mod domain;
pub mod engines;
pub mod env;
pub mod faults;
pub mod hosting;
pub mod launcher;
pub mod probe;
pub mod shutdown;
pub mod ttl_cache;
pub mod validation;
