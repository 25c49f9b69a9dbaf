//! The messages engines exchange over HTTP and NATS.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// NATS subjects of the fleet.
pub mod subjects {
    /// obligation-engine → clearing-engine.
    pub const OBLIGATIONS: &str = "deltran.obligations.created";
    /// clearing-engine → settlement-engine, one per net position.
    pub const INSTRUCTIONS: &str = "deltran.settlement.instructions";
    /// settlement-engine → gateway and token-engine, one per payment.
    pub const SETTLED: &str = "deltran.payments.settled";
    /// settlement-engine → gateway and token-engine, one per payment.
    pub const FAILED: &str = "deltran.payments.failed";
}

/// Currencies the fleet clears.
pub const CURRENCIES: [&str; 4] = ["EUR", "USD", "GBP", "AED"];

/// Participant banks.
pub const BANKS: [&str; 6] = [
    "DEUTDEFF", "BNPAFRPP", "CHASUS33", "BARCGB22", "EBILAEAD", "HSBCHKHH",
];

/// Parties on the sanctions list: payments naming them are rejected.
pub const SANCTIONED_PARTIES: [&str; 3] = [
    "Volga Shell Trading",
    "Black Sea Holdings",
    "Northern Star Logistics FZE",
];

/// Parties on the watch list: payments naming them are held for review.
pub const WATCHLIST_PARTIES: [&str; 2] = ["Caspian Commodities", "Amber Route Freight"];

/// Ordinary parties the load generator uses.
pub const PARTIES: [&str; 8] = [
    "Acme Manufacturing",
    "Globex Retail",
    "Initech Services",
    "Umbrella Pharma",
    "Stark Components",
    "Wayne Logistics",
    "Tyrell Robotics",
    "Cyberdyne Energy",
];

/// `POST /payments` on the gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// Payer's bank (BIC).
    pub from_bank: String,
    /// Payee's bank (BIC).
    pub to_bank: String,
    /// Amount in `currency`.
    pub amount: f64,
    /// ISO 4217 code, one of [`CURRENCIES`].
    pub currency: String,
    /// Ordering party.
    pub debtor: String,
    /// Beneficiary.
    pub creditor: String,
}

/// Where a payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Passed every check; on its way to clearing.
    Accepted,
    /// Held by compliance for review.
    Held,
    /// Refused (invalid, sanctioned, or over a risk limit).
    Rejected,
    /// An engine on the path failed.
    Failed,
    /// In the ledger.
    Settled,
}

impl PaymentStatus {
    /// The status as a metric attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Accepted => "accepted",
            PaymentStatus::Held => "held",
            PaymentStatus::Rejected => "rejected",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Settled => "settled",
        }
    }
}

/// The gateway's answer and `GET /payments/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaymentView {
    /// Payment id.
    pub id: String,
    /// Current status.
    pub status: PaymentStatus,
    /// Why it was rejected, held or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The trace to look up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// compliance-engine `POST /screenings`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScreeningRequest {
    /// Ordering party.
    pub debtor: String,
    /// Beneficiary.
    pub creditor: String,
}

/// compliance-engine's decision: `clear`, `hold` or `reject`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScreeningResponse {
    /// `clear`, `hold` or `reject`.
    pub decision: String,
}

/// risk-engine `POST /assessments`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssessmentRequest {
    /// Payer's bank.
    pub from_bank: String,
    /// Amount.
    pub amount: f64,
    /// Currency.
    pub currency: String,
}

/// risk-engine's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssessmentResponse {
    /// 0 (safe) to 1.
    pub score: f64,
    /// `approve` or `decline`.
    pub decision: String,
    /// Which limit, when declined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// token-engine `POST /transfers` and obligation-engine `POST /obligations`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Obligation {
    /// The payment this obligation comes from.
    pub payment_id: String,
    /// Owing bank.
    pub from_bank: String,
    /// Owed bank.
    pub to_bank: String,
    /// Amount.
    pub amount: f64,
    /// Currency.
    pub currency: String,
    /// When the gateway accepted the payment (ms since the epoch).
    pub accepted_at_ms: i64,
}

/// liquidity-router `POST /routes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouteRequest {
    /// Paying bank.
    pub from_bank: String,
    /// Receiving bank.
    pub to_bank: String,
    /// Net amount.
    pub amount: f64,
    /// Currency.
    pub currency: String,
}

/// The corridor and liquidity source chosen for a net position.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Route {
    /// Payment corridor (`instant`, `sepa`, `swift`, `rtgs`).
    pub corridor: String,
    /// Liquidity source (`nostro`, `credit_line`).
    pub source: String,
    /// USD per unit of the currency.
    pub fx_rate_usd: f64,
}

/// One payment inside a net position, with the context of its trace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    /// Payment id.
    pub payment_id: String,
    /// When the gateway accepted it.
    pub accepted_at_ms: i64,
    /// Its trace context (`traceparent`, ...).
    pub carrier: HashMap<String, String>,
}

/// clearing-engine → settlement-engine: settle one net position.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SettlementInstruction {
    /// The clearing window.
    pub window_id: String,
    /// Net payer.
    pub from_bank: String,
    /// Net payee.
    pub to_bank: String,
    /// Net amount (≥ 0).
    pub net_amount: f64,
    /// Currency.
    pub currency: String,
    /// How it moves.
    pub route: Route,
    /// The payments netted into it.
    pub members: Vec<Member>,
}

/// settlement-engine → gateway, token-engine: a payment's final state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaymentEvent {
    /// Payment id.
    pub payment_id: String,
    /// `settled` or `failed`.
    pub status: PaymentStatus,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
