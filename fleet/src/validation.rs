//! What every engine accepts, checked at every entry — HTTP body or NATS
//! message, not only at the gateway — so that nothing from outside becomes
//! a metric label, a ledger row, a cache key or a log line unchecked:
//! banks and currencies from allow-lists, amounts in range, text fields
//! capped, bodies capped (413). Error messages quote input only as a short
//! excerpt with card numbers and IBANs masked.

use serde::de::DeserializeOwned;

use crate::domain::{
    AssessmentRequest, BANKS, CURRENCIES, Member, Obligation, PaymentEvent, PaymentRequest,
    PaymentStatus, Route, RouteRequest, ScreeningRequest, SettlementInstruction,
};

/// The bounds, in one place (docs/fleet.md, "Security and limits").
pub mod limits {
    /// Largest request body or NATS message an engine reads.
    pub const MAX_BODY_BYTES: usize = 64 * 1024;
    /// Longest party name (ISO 20022 `Max140Text`).
    pub const MAX_PARTY_CHARS: usize = 140;
    /// Largest amount, in any currency.
    pub const MAX_AMOUNT: f64 = 1e12;
    /// Most payments in one net position.
    pub const MAX_MEMBERS: usize = 10_000;
    /// Most entries in a payment's trace-context carrier, and longest value.
    pub const MAX_CARRIER_ENTRIES: usize = 4;
    /// Longest carrier value (a W3C `tracestate` is at most 512 characters).
    pub const MAX_CARRIER_VALUE: usize = 512;
    /// How much of a rejected value an error message quotes.
    pub const EXCERPT_CHARS: usize = 40;
}

use limits::*;

/// Corridors liquidity-router chooses from.
pub const CORRIDORS: [&str; 4] = ["instant", "sepa", "swift", "rtgs"];
/// Liquidity sources liquidity-router chooses from.
pub const SOURCES: [&str; 2] = ["nostro", "credit_line"];

/// A short, masked, printable quote of `input` for an error message.
///
/// ```
/// use deltran_fleet::validation::excerpt;
/// assert_eq!(excerpt("4111 1111 1111 1111"), "\"****1111\"");
/// assert_eq!(excerpt(&"x".repeat(1_000)).chars().count(), 43);
/// ```
pub fn excerpt(input: &str) -> String {
    let printable: String = input
        .chars()
        .filter(|c| !c.is_control())
        .take(EXCERPT_CHARS + 20)
        .collect();
    let masked = telemetry::redact::mask_sensitive(&printable).unwrap_or(printable);
    let mut cut: String = masked.chars().take(EXCERPT_CHARS).collect();
    if input.chars().count() > cut.chars().count() && masked.chars().count() > EXCERPT_CHARS {
        cut.push('…');
    }
    format!("\"{cut}\"")
}

/// Something an engine received that it will not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 413 for an oversized body, 422 otherwise.
    pub status: u16,
    /// What is wrong, naming the field; input only as an [`excerpt`].
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Checks an engine applies to a message type.
pub trait Validate {
    /// Why it cannot be acted on, if it cannot.
    fn validate(&self) -> Result<(), String>;
}

/// Parses and checks a body or message.
pub fn decode<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, Rejected> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Rejected {
            status: 413,
            reason: format!(
                "body of {} bytes is over the {MAX_BODY_BYTES}-byte limit",
                bytes.len()
            ),
        });
    }
    let value: T = serde_json::from_slice(bytes).map_err(|e| Rejected {
        status: 422,
        reason: json_error(&e),
    })?;
    value.validate().map_err(|reason| Rejected {
        status: 422,
        reason,
    })?;
    Ok(value)
}

/// serde's message without the input it may quote: the class of error and
/// where.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "malformed JSON",
        Category::Eof => "truncated JSON",
        Category::Data => "JSON of the wrong shape (a missing field or a wrong type)",
        Category::Io => "unreadable body",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

fn bank(field: &str, value: &str) -> Result<(), String> {
    if BANKS.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field} {} is not a participant; use one of {BANKS:?}",
            excerpt(value)
        ))
    }
}

fn currency(value: &str) -> Result<(), String> {
    if CURRENCIES.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "currency {} is not cleared here; use one of {CURRENCIES:?}",
            excerpt(value)
        ))
    }
}

fn amount(field: &str, value: f64, zero_allowed: bool) -> Result<(), String> {
    let low_ok = if zero_allowed {
        value >= 0.0
    } else {
        value > 0.0
    };
    if value.is_finite() && low_ok && value <= MAX_AMOUNT {
        Ok(())
    } else {
        Err(format!(
            "{field} must be a number {} and at most {MAX_AMOUNT:e}",
            if zero_allowed { "≥ 0" } else { "> 0" }
        ))
    }
}

fn party(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} is required"));
    }
    if value.chars().count() > MAX_PARTY_CHARS {
        return Err(format!(
            "{field} is longer than {MAX_PARTY_CHARS} characters"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} contains control characters"));
    }
    Ok(())
}

fn id(field: &str, value: &str) -> Result<(), String> {
    uuid::Uuid::parse_str(value)
        .map(|_| ())
        .map_err(|_| format!("{field} {} is not a UUID", excerpt(value)))
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field} {} is not one of {allowed:?}",
            excerpt(value)
        ))
    }
}

impl Validate for PaymentRequest {
    fn validate(&self) -> Result<(), String> {
        amount("amount", self.amount, false)?;
        currency(&self.currency)?;
        bank("from_bank", &self.from_bank)?;
        bank("to_bank", &self.to_bank)?;
        if self.from_bank == self.to_bank {
            return Err("from_bank and to_bank must differ".into());
        }
        party("debtor", &self.debtor)?;
        party("creditor", &self.creditor)
    }
}

impl Validate for ScreeningRequest {
    fn validate(&self) -> Result<(), String> {
        party("debtor", &self.debtor)?;
        party("creditor", &self.creditor)
    }
}

impl Validate for AssessmentRequest {
    fn validate(&self) -> Result<(), String> {
        bank("from_bank", &self.from_bank)?;
        amount("amount", self.amount, false)?;
        currency(&self.currency)
    }
}

impl Validate for Obligation {
    fn validate(&self) -> Result<(), String> {
        id("payment_id", &self.payment_id)?;
        bank("from_bank", &self.from_bank)?;
        bank("to_bank", &self.to_bank)?;
        if self.from_bank == self.to_bank {
            return Err("from_bank and to_bank must differ".into());
        }
        amount("amount", self.amount, false)?;
        currency(&self.currency)?;
        if self.accepted_at_ms <= 0 {
            return Err("accepted_at_ms must be a time after 1970".into());
        }
        Ok(())
    }
}

impl Validate for RouteRequest {
    fn validate(&self) -> Result<(), String> {
        bank("from_bank", &self.from_bank)?;
        bank("to_bank", &self.to_bank)?;
        amount("amount", self.amount, true)?;
        currency(&self.currency)
    }
}

impl Validate for Route {
    fn validate(&self) -> Result<(), String> {
        one_of("corridor", &self.corridor, &CORRIDORS)?;
        one_of("source", &self.source, &SOURCES)?;
        if self.fx_rate_usd.is_finite() && self.fx_rate_usd > 0.0 {
            Ok(())
        } else {
            Err("fx_rate_usd must be a positive number".into())
        }
    }
}

impl Validate for Member {
    fn validate(&self) -> Result<(), String> {
        id("members[].payment_id", &self.payment_id)?;
        if self.carrier.len() > MAX_CARRIER_ENTRIES
            || self
                .carrier
                .iter()
                .any(|(k, v)| k.len() > 64 || v.len() > MAX_CARRIER_VALUE)
        {
            return Err(format!(
                "members[].carrier holds more than {MAX_CARRIER_ENTRIES} entries or a value over {MAX_CARRIER_VALUE} characters"
            ));
        }
        Ok(())
    }
}

impl Validate for SettlementInstruction {
    fn validate(&self) -> Result<(), String> {
        id("window_id", &self.window_id)?;
        bank("from_bank", &self.from_bank)?;
        bank("to_bank", &self.to_bank)?;
        if self.from_bank == self.to_bank {
            return Err("from_bank and to_bank must differ".into());
        }
        amount("net_amount", self.net_amount, true)?;
        currency(&self.currency)?;
        self.route.validate()?;
        if self.members.is_empty() || self.members.len() > MAX_MEMBERS {
            return Err(format!("members must hold 1 to {MAX_MEMBERS} payments"));
        }
        self.members.iter().try_for_each(Validate::validate)
    }
}

impl Validate for PaymentEvent {
    fn validate(&self) -> Result<(), String> {
        id("payment_id", &self.payment_id)?;
        if matches!(self.status, PaymentStatus::Settled | PaymentStatus::Failed) {
            Ok(())
        } else {
            Err("status must be settled or failed".into())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn payment() -> PaymentRequest {
        PaymentRequest {
            from_bank: "DEUTDEFF".into(),
            to_bank: "BNPAFRPP".into(),
            amount: 100.0,
            currency: "EUR".into(),
            debtor: "Acme Manufacturing".into(),
            creditor: "Globex Retail".into(),
        }
    }

    #[test]
    fn hostile_fields_are_refused_without_being_echoed() {
        let card = "4111111111111111";
        let mut p = payment();
        p.currency = card.into();
        let e = p.validate().unwrap_err();
        assert!(!e.contains(card) && e.contains("****1111"), "{e}");
        let mut p = payment();
        p.debtor = "x".repeat(2_000_000);
        let e = p.validate().unwrap_err();
        assert!(e.len() < 200, "{e}");
        let mut p = payment();
        p.amount = -1e12;
        assert!(p.validate().is_err());
        p.amount = f64::NAN;
        assert!(p.validate().is_err());
        p.amount = 2e12;
        assert!(p.validate().is_err());
        let mut p = payment();
        p.creditor = "ok\u{7}bell".into();
        assert!(p.validate().is_err());
    }

    #[test]
    fn bodies_over_the_limit_are_413_and_json_errors_do_not_quote_input() {
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(decode::<PaymentRequest>(&big).unwrap_err().status, 413);
        let e = decode::<PaymentRequest>(br#"{"amount": "4111111111111111"}"#).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(!e.reason.contains("4111"), "{e}");
        assert!(
            decode::<PaymentRequest>(serde_json::to_vec(&payment()).unwrap().as_slice()).is_ok()
        );
    }

    #[test]
    fn forged_instructions_are_refused() {
        let instruction = |from: &str, amount: f64| SettlementInstruction {
            window_id: uuid::Uuid::new_v4().to_string(),
            from_bank: from.into(),
            to_bank: "BNPAFRPP".into(),
            net_amount: amount,
            currency: "EUR".into(),
            route: Route {
                corridor: "sepa".into(),
                source: "nostro".into(),
                fx_rate_usd: 1.08,
            },
            members: vec![Member {
                payment_id: uuid::Uuid::new_v4().to_string(),
                accepted_at_ms: 1,
                carrier: Default::default(),
            }],
        };
        assert!(instruction("DEUTDEFF", 10.0).validate().is_ok());
        assert!(instruction("MADEUPBK", 10.0).validate().is_err());
        assert!(instruction("DEUTDEFF", -999_999_999.0).validate().is_err());
        let mut no_members = instruction("DEUTDEFF", 10.0);
        no_members.members.clear();
        assert!(no_members.validate().is_err());
    }
}
