//! Prometheus durations (`30s`, `5m`, `1h30m`, `30d`): parsed, printed in
//! the canonical form Prometheus prints, and scaled — tests run the shipped
//! rules with every `for:` shortened by one documented factor.

use std::fmt;
use std::time::Duration;

/// A duration in Prometheus' notation, kept in whole milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(u64);

/// A string that is not a Prometheus duration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a Prometheus duration; write it like 30s, 5m, 1h30m or 30d")]
pub struct BadDuration(pub String);

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl PromDuration {
    /// From whole milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        PromDuration(ms)
    }

    /// Whole milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Seconds, for PromQL arithmetic.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Parses `1h30m`-style text: units in descending order, each at most once.
    pub fn parse(text: &str) -> Result<Self, BadDuration> {
        let bad = || BadDuration(text.to_string());
        if text.is_empty() {
            return Err(bad());
        }
        let mut rest = text;
        let mut total: u64 = 0;
        let mut last_unit = usize::MAX;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            // `ms` before `m`: the longest unit that matches.
            let (index, (unit, factor)) = UNITS
                .iter()
                .enumerate()
                .filter(|(_, (u, _))| rest.starts_with(u))
                .max_by_key(|(_, (u, _))| u.len())
                .ok_or_else(bad)?;
            if last_unit != usize::MAX && index <= last_unit {
                return Err(bad());
            }
            last_unit = index;
            rest = &rest[unit.len()..];
            total = value
                .checked_mul(*factor)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
        }
        Ok(PromDuration(total))
    }

    /// Divides by `factor`, never below one second (Prometheus' smallest
    /// useful evaluation step in the tests).
    pub fn shortened(self, factor: u64) -> Self {
        PromDuration((self.0 / factor.max(1)).max(1_000))
    }
}

impl From<PromDuration> for Duration {
    fn from(d: PromDuration) -> Duration {
        Duration::from_millis(d.0)
    }
}

impl fmt::Display for PromDuration {
    /// Prometheus' own form: `1h30m`, `5m`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, factor) in UNITS {
            if rest >= factor {
                write!(f, "{}{unit}", rest / factor)?;
                rest %= factor;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_prometheus() {
        for (text, ms) in [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("3d", 259_200_000),
            ("1w", 604_800_000),
            ("500ms", 500),
            ("1m30s", 90_000),
        ] {
            let d = PromDuration::parse(text).unwrap();
            assert_eq!(d.as_millis(), ms, "{text}");
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(PromDuration::parse("90s").unwrap().to_string(), "1m30s");
        // Prometheus prints weeks, too.
        assert_eq!(PromDuration::parse("30d").unwrap().to_string(), "4w2d");
    }

    #[test]
    fn refuses_what_prometheus_refuses() {
        for text in ["", "5", "m", "5x", "1m1h", "1m1m", "-5m", "1.5h", "5 m"] {
            assert_eq!(
                PromDuration::parse(text),
                Err(BadDuration(text.to_string())),
                "{text}"
            );
        }
    }

    #[test]
    fn shortening_keeps_a_one_second_floor() {
        let d = PromDuration::parse("2m").unwrap();
        assert_eq!(d.shortened(30).to_string(), "4s");
        assert_eq!(
            PromDuration::parse("10s")
                .unwrap()
                .shortened(30)
                .to_string(),
            "1s"
        );
    }
}
