//! Masks card numbers (PANs: 13–19 digits starting 2–6, Luhn-checked,
//! grouped or not) and IBANs (country, check digits and account, mod-97
//! checked, grouped in fours or not), keeping the last four characters.
//!
//! One masking for every signal: span attributes, event names and
//! attributes, link attributes and status messages, log bodies and
//! attributes (on the export worker thread, never on the application's hot
//! path), and the stdout log lines (JSON and text). Only string values are
//! examined: numbers, trace ids, UUIDs and amounts are left alone.

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _};
use opentelemetry::trace::Status;
use opentelemetry::{Array, Key, KeyValue, Value};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};
use opentelemetry_sdk::trace::SpanData;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// `Some(masked)` when `value` contains a card number or IBAN.
///
/// ```
/// use telemetry::redact::mask_sensitive;
/// assert_eq!(mask_sensitive("card 4111 1111 1111 1111 ok").as_deref(), Some("card ****1111 ok"));
/// assert_eq!(mask_sensitive("DE89370400440532013000").as_deref(), Some("DE89****3000"));
/// assert_eq!(mask_sensitive("order 12345"), None);
/// ```
pub fn mask_sensitive(value: &str) -> Option<String> {
    if !may_be_sensitive(value.as_bytes()) {
        return None;
    }
    let masked_cards = mask_cards(value);
    let after = masked_cards.as_deref().unwrap_or(value);
    let masked_ibans = mask_ibans(after);
    masked_ibans.or(masked_cards)
}

/// Whether `s` can hold what [`mask_sensitive`] masks: a card number has
/// at least 13 digits, an IBAN starts with two capital letters and two
/// digits. One pass without allocating, so the values that hold neither
/// (nearly all of them) are not copied character by character.
fn may_be_sensitive(s: &[u8]) -> bool {
    // The shortest card number has 13 digits; the shortest IBAN 15 characters.
    if s.len() < 13 {
        return false;
    }
    s.iter().filter(|b| b.is_ascii_digit()).count() >= 13
        || s.windows(4).any(|w| {
            w[0].is_ascii_uppercase()
                && w[1].is_ascii_uppercase()
                && w[2].is_ascii_digit()
                && w[3].is_ascii_digit()
        })
}

/// Masks a string attribute value (and strings in string arrays) in place.
pub(crate) fn mask_value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(m) = mask_sensitive(s.as_str()) {
                *value = Value::from(m);
            }
        }
        Value::Array(Array::String(items)) => {
            for item in items.iter_mut() {
                if let Some(m) = mask_sensitive(item.as_str()) {
                    *item = m.into();
                }
            }
        }
        _ => {}
    }
}

/// Masks every attribute value of a list.
pub(crate) fn mask_attributes(attrs: &mut [KeyValue]) {
    for kv in attrs.iter_mut() {
        mask_value(&mut kv.value);
    }
}

/// Masks everything of a finished span that can carry text from outside:
/// attributes, event names (a `tracing` event's message) and attributes,
/// link attributes, and the error description.
pub(crate) fn mask_span(span: &mut SpanData) {
    mask_attributes(&mut span.attributes);
    for event in span.events.events.iter_mut() {
        if let Some(m) = mask_sensitive(&event.name) {
            event.name = m.into();
        }
        mask_attributes(&mut event.attributes);
    }
    for link in span.links.links.iter_mut() {
        mask_attributes(&mut link.attributes);
    }
    if let Status::Error { description } = &span.status
        && let Some(m) = mask_sensitive(description)
    {
        span.status = Status::error(m);
    }
}

/// A log value with every string in it masked; `None` when nothing changes.
fn masked_any(value: &AnyValue) -> Option<AnyValue> {
    match value {
        AnyValue::String(s) => mask_sensitive(s.as_str()).map(AnyValue::from),
        AnyValue::ListAny(items) => {
            let masked: Vec<(&AnyValue, Option<AnyValue>)> =
                items.iter().map(|v| (v, masked_any(v))).collect();
            masked.iter().any(|(_, m)| m.is_some()).then(|| {
                AnyValue::ListAny(Box::new(
                    masked
                        .into_iter()
                        .map(|(v, m)| m.unwrap_or_else(|| v.clone()))
                        .collect(),
                ))
            })
        }
        AnyValue::Map(map) => {
            let masked: Vec<(&Key, &AnyValue, Option<AnyValue>)> =
                map.iter().map(|(k, v)| (k, v, masked_any(v))).collect();
            masked.iter().any(|(_, _, m)| m.is_some()).then(|| {
                AnyValue::Map(Box::new(
                    masked
                        .into_iter()
                        .map(|(k, v, m)| (k.clone(), m.unwrap_or_else(|| v.clone())))
                        .collect(),
                ))
            })
        }
        _ => None,
    }
}

/// The log record with its body and attributes masked, built afresh by
/// `blank` (the SDK's records cannot rewrite an attribute in place);
/// `None` when there is nothing to mask, the common case.
pub(crate) fn masked_log_record(record: &SdkLogRecord, blank: &SdkLogger) -> Option<SdkLogRecord> {
    let body = record.body().and_then(masked_any);
    if body.is_none()
        && record
            .attributes_iter()
            .all(|(_, v)| masked_any(v).is_none())
    {
        // Nothing to mask (the common case): no per-record allocation.
        return None;
    }
    let attrs: Vec<Option<AnyValue>> = record
        .attributes_iter()
        .map(|(_, v)| masked_any(v))
        .collect();
    if body.is_none() && attrs.iter().all(Option::is_none) {
        return None;
    }
    let mut out = blank.create_log_record();
    if let Some(name) = record.event_name() {
        out.set_event_name(name);
    }
    if let Some(target) = record.target() {
        out.set_target(target.clone());
    }
    if let Some(t) = record.timestamp() {
        out.set_timestamp(t);
    }
    if let Some(t) = record.observed_timestamp() {
        out.set_observed_timestamp(t);
    }
    if let Some(tc) = record.trace_context() {
        out.set_trace_context(tc.trace_id, tc.span_id, tc.trace_flags);
    }
    if let Some(text) = record.severity_text() {
        out.set_severity_text(text);
    }
    if let Some(n) = record.severity_number() {
        out.set_severity_number(n);
    }
    if let Some(b) = body.or_else(|| record.body().cloned()) {
        out.set_body(b);
    }
    for ((key, value), masked) in record.attributes_iter().zip(attrs) {
        out.add_attribute(key.clone(), masked.unwrap_or_else(|| value.clone()));
    }
    Some(out)
}

/// Field formatting for the readable-text stdout layer that masks string
/// and `Debug` values (numbers are written as they are).
#[derive(Debug, Default, Clone, Copy)]
pub struct MaskingFields;

impl<'writer> FormatFields<'writer> for MaskingFields {
    fn format_fields<R: RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = MaskingVisitor(DefaultVisitor::new(writer, true));
        fields.record(&mut visitor);
        visitor.0.finish()
    }
}

struct MaskingVisitor<'a>(DefaultVisitor<'a>);

impl Visit for MaskingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match mask_sensitive(value) {
            Some(m) => self.0.record_str(field, &m),
            None => self.0.record_str(field, value),
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        let masked = mask_sensitive(&text).unwrap_or(text);
        self.0.record_debug(field, &format_args!("{masked}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match mask_sensitive(&text) {
            Some(m) => self.0.record_debug(field, &format_args!("{m}")),
            None => self.0.record_debug(field, value),
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.record_i64(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.record_u64(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.record_f64(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.record_bool(field, value);
    }
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Runs of 13–19 digits, optionally grouped by single spaces or dashes.
fn mask_cards(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut masked = Masked::new(s);
    let mut i = 0;
    // Stepping by bytes is safe: every test is on ASCII bytes, and no byte of
    // a multi-byte UTF-8 character is ASCII.
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        // Collect a digit run with single separators (up to 19 digits are
        // kept; a longer run is no card).
        let start = i;
        let mut digits = [0u8; 19];
        let mut count = 0;
        let mut end = i;
        let mut j = i;
        while j < bytes.len() {
            if bytes[j].is_ascii_digit() {
                if count < digits.len() {
                    digits[count] = bytes[j] - b'0';
                }
                count += 1;
                j += 1;
                end = j;
            } else if (bytes[j] == b' ' || bytes[j] == b'-')
                && j + 1 < bytes.len()
                && bytes[j + 1].is_ascii_digit()
                && count > 0
            {
                j += 1;
            } else {
                break;
            }
        }
        let boundary_ok = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
        // Card numbers start 2-6 (ISO/IEC 7812 industry identifiers of
        // payment cards): epoch-millisecond timestamps (1…) never match.
        let card_prefix = matches!(digits[0], 2..=6);
        if (13..=19).contains(&count) && boundary_ok && card_prefix && luhn(&digits[..count]) {
            let out = masked.replace(start, end);
            out.push_str("****");
            out.extend(digits[count - 4..count].iter().map(|d| (d + b'0') as char));
        }
        i = end;
    }
    masked.finish()
}

/// A copy of a string made only once something in it is masked: most
/// values hold nothing to mask and are never copied.
struct Masked<'a> {
    source: &'a str,
    out: Option<String>,
    /// Where the copy of `source` stops so far.
    copied_to: usize,
}

impl<'a> Masked<'a> {
    fn new(source: &'a str) -> Self {
        Masked {
            source,
            out: None,
            copied_to: 0,
        }
    }

    /// Drops `source[start..end]` from the copy and returns the copy, to
    /// which the replacement is written.
    fn replace(&mut self, start: usize, end: usize) -> &mut String {
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.source.len()));
        out.push_str(&self.source[self.copied_to..start]);
        self.copied_to = end;
        out
    }

    /// The masked copy, if anything was masked.
    fn finish(self) -> Option<String> {
        let mut out = self.out?;
        out.push_str(&self.source[self.copied_to..]);
        Some(out)
    }
}

/// Two letters, two digits, then 11–30 letters/digits, either unbroken or
/// in groups of four separated by single spaces (the printed form); kept
/// only when the ISO 13616 mod-97 check holds.
fn mask_ibans(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut masked = Masked::new(s);
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if at_word_start
            && i + 4 <= bytes.len()
            && bytes[i].is_ascii_uppercase()
            && bytes[i + 1].is_ascii_uppercase()
            && bytes[i + 2].is_ascii_digit()
            && bytes[i + 3].is_ascii_digit()
            && let Some((end, chars)) = iban_at(bytes, i)
        {
            let out = masked.replace(i, end);
            out.push_str(&s[i..i + 4]);
            out.push_str("****");
            out.extend(chars[chars.len() - 4..].iter().map(|&b| b as char));
            i = end;
            continue;
        }
        // Bytes, as in `mask_cards`.
        i += 1;
    }
    masked.finish()
}

/// The IBAN starting at `start`: its end and its characters without spaces.
fn iban_at(bytes: &[u8], start: usize) -> Option<(usize, Vec<u8>)> {
    let is_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    // Unbroken first, then grouped: "DE89 3704 0044 0532 0130 00".
    let mut end = start;
    while end < bytes.len() && is_char(bytes[end]) {
        end += 1;
    }
    let mut chars: Vec<u8> = bytes[start..end].to_vec();
    if chars.len() == 4 {
        let mut j = end;
        loop {
            if j + 1 < bytes.len() && bytes[j] == b' ' && is_char(bytes[j + 1]) {
                let group_start = j + 1;
                let mut k = group_start;
                while k < bytes.len() && is_char(bytes[k]) && k - group_start < 4 {
                    k += 1;
                }
                let full_group = k - group_start == 4;
                let ends_word = k >= bytes.len() || !bytes[k].is_ascii_alphanumeric();
                if !ends_word {
                    break;
                }
                chars.extend_from_slice(&bytes[group_start..k]);
                end = k;
                j = k;
                if !full_group {
                    break;
                }
            } else {
                break;
            }
        }
    }
    let boundary_ok = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
    ((15..=34).contains(&chars.len()) && boundary_ok && iban_checksum_ok(&chars))
        .then_some((end, chars))
}

/// ISO 13616: move the first four characters to the end, letters to
/// 10..35, and the number mod 97 must be 1.
fn iban_checksum_ok(chars: &[u8]) -> bool {
    let mut rem: u32 = 0;
    for &b in chars[4..].iter().chain(&chars[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_everything_around_it_including_multibyte_text() {
        assert_eq!(
            mask_sensitive(
                "é 4111 1111 1111 1111 💳 to DE89370400440532013000, ü 5500-0000-0000-0004"
            )
            .as_deref(),
            Some("é ****1111 💳 to DE89****3000, ü ****0004")
        );
        // Twenty digits (Luhn-valid) are no card; nothing is copied.
        assert_eq!(mask_sensitive("41111111111111111115"), None);
        assert_eq!(mask_sensitive("ünïcödé only, 12 digits 123456789012"), None);
    }

    #[test]
    fn cards_need_luhn_and_length() {
        assert_eq!(
            mask_sensitive("4111111111111111").as_deref(),
            Some("****1111")
        );
        assert_eq!(
            mask_sensitive("pan=5500-0000-0000-0004;").as_deref(),
            Some("pan=****0004;")
        );
        assert_eq!(mask_sensitive("4111111111111112"), None, "fails Luhn");
        assert_eq!(mask_sensitive("411111111111"), None, "too short");
        assert_eq!(mask_sensitive("2026-11-22 10:00"), None);
        assert_eq!(
            mask_sensitive("trace 4bf92f3577b34da6a3ce929d0e0e4736"),
            None
        );
    }

    #[test]
    fn ibans_are_masked_other_codes_are_not() {
        assert_eq!(
            mask_sensitive("to GB82WEST12345698765432").as_deref(),
            Some("to GB82****5432")
        );
        assert_eq!(mask_sensitive("EURUSD"), None);
        assert_eq!(mask_sensitive("US12"), None);
    }

    #[test]
    fn grouped_ibans_and_the_checksum() {
        assert_eq!(
            mask_sensitive("from DE89 3704 0044 0532 0130 00 today").as_deref(),
            Some("from DE89****3000 today")
        );
        assert_eq!(
            mask_sensitive("DE89370400440532013000").as_deref(),
            Some("DE89****3000")
        );
        assert_eq!(
            mask_sensitive("DE88370400440532013000"),
            None,
            "mod-97 fails"
        );
        assert_eq!(mask_sensitive("DE89 3704"), None, "too short");
    }

    #[test]
    fn no_false_positives_on_ids_timestamps_and_amounts() {
        for text in [
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
            "550e8400-e29b-41d4-a716-446655440000",
            "12345678-1234-1234-1234-123456789012",
            "1764443235123",
            "accepted_at_ms=1764443235123",
            "amount 1250000.50 EUR",
            "999999999999",
            "ABCDEFGH12345678",
        ] {
            assert_eq!(mask_sensitive(text), None, "{text}");
        }
    }

    #[test]
    fn log_values_are_masked_inside_lists_and_maps_keeping_the_rest() {
        let card = AnyValue::from("4111111111111111");
        let plain = AnyValue::Int(7);
        assert!(masked_any(&plain).is_none());
        let list = AnyValue::ListAny(Box::new(vec![plain.clone(), card.clone()]));
        assert_eq!(
            masked_any(&list),
            Some(AnyValue::ListAny(Box::new(vec![
                plain.clone(),
                AnyValue::from("****1111")
            ])))
        );
        let map = AnyValue::Map(Box::new(
            [
                (Key::from("n"), plain.clone()),
                (Key::from("inner"), list.clone()),
            ]
            .into_iter()
            .collect(),
        ));
        let Some(AnyValue::Map(masked)) = masked_any(&map) else {
            panic!("a card inside a map must be masked");
        };
        assert_eq!(masked.get(&Key::from("n")), Some(&plain));
        assert_eq!(masked.get(&Key::from("inner")), masked_any(&list).as_ref());
        let clean = AnyValue::ListAny(Box::new(vec![plain]));
        assert!(masked_any(&clean).is_none(), "nothing to mask: no copy");
    }

    #[test]
    fn non_ascii_text_is_kept() {
        assert_eq!(mask_sensitive("Zahlung für Müller"), None);
        assert_eq!(
            mask_sensitive("für 4111111111111111").as_deref(),
            Some("für ****1111")
        );
    }
}
