//! Masks card numbers (PANs, Luhn-checked) and IBANs in span attribute
//! values before export, keeping only the last four characters. Runs on the
//! export worker thread, never on the application's hot path.

/// `Some(masked)` when `value` contains a card number or IBAN.
///
/// ```
/// use telemetry::redact::mask_sensitive;
/// assert_eq!(mask_sensitive("card 4111 1111 1111 1111 ok").as_deref(), Some("card ****1111 ok"));
/// assert_eq!(mask_sensitive("DE89370400440532013000").as_deref(), Some("DE89****3000"));
/// assert_eq!(mask_sensitive("order 12345"), None);
/// ```
pub fn mask_sensitive(value: &str) -> Option<String> {
    let masked_cards = mask_cards(value);
    let after = masked_cards.as_deref().unwrap_or(value);
    let masked_ibans = mask_ibans(after);
    masked_ibans.or(masked_cards)
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
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i = copy_char(s, i, &mut out);
            continue;
        }
        // Collect a digit run with single separators.
        let start = i;
        let mut digits = Vec::new();
        let mut end = i;
        let mut j = i;
        while j < bytes.len() {
            if bytes[j].is_ascii_digit() {
                digits.push(bytes[j] - b'0');
                j += 1;
                end = j;
            } else if (bytes[j] == b' ' || bytes[j] == b'-')
                && j + 1 < bytes.len()
                && bytes[j + 1].is_ascii_digit()
                && !digits.is_empty()
            {
                j += 1;
            } else {
                break;
            }
        }
        let boundary_ok = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if (13..=19).contains(&digits.len()) && boundary_ok && luhn(&digits) {
            let last4: String = digits[digits.len() - 4..]
                .iter()
                .map(|d| (d + b'0') as char)
                .collect();
            out.push_str("****");
            out.push_str(&last4);
            changed = true;
        } else {
            out.push_str(&s[start..end]);
        }
        i = end;
    }
    changed.then_some(out)
}

/// Two letters, two digits, then 11–30 letters/digits (no separators).
fn mask_ibans(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if at_word_start
            && i + 4 <= bytes.len()
            && bytes[i].is_ascii_uppercase()
            && bytes[i + 1].is_ascii_uppercase()
            && bytes[i + 2].is_ascii_digit()
            && bytes[i + 3].is_ascii_digit()
        {
            let mut end = i + 4;
            while end < bytes.len()
                && (bytes[end].is_ascii_uppercase() || bytes[end].is_ascii_digit())
            {
                end += 1;
            }
            let len = end - i;
            let boundary_ok = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
            if (15..=34).contains(&len) && boundary_ok {
                out.push_str(&s[i..i + 4]);
                out.push_str("****");
                out.push_str(&s[end - 4..end]);
                changed = true;
                i = end;
                continue;
            }
        }
        i = copy_char(s, i, &mut out);
    }
    changed.then_some(out)
}

/// Copies the character starting at byte `i` (always a char boundary here)
/// and returns the index after it.
fn copy_char(s: &str, i: usize, out: &mut String) -> usize {
    match s[i..].chars().next() {
        Some(c) => {
            out.push(c);
            i + c.len_utf8()
        }
        None => s.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn non_ascii_text_is_kept() {
        assert_eq!(mask_sensitive("Zahlung für Müller"), None);
        assert_eq!(
            mask_sensitive("für 4111111111111111").as_deref(),
            Some("für ****1111")
        );
    }
}
