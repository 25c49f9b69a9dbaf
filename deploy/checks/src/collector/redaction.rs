//! The collector's masking of card numbers and IBANs, read from the
//! configuration and applied here as the collector would apply it.
//!
//! The `redaction` processor masks span and log attributes (numbers too,
//! with `redact_all_types`); `transform/redact` applies the same patterns,
//! in OTTL, where attributes end: span status messages, span event names
//! and attributes, log bodies. Both replace each match with `****`.
//!
//! The patterns are RE2. Rust's `regex` shares most of RE2's syntax and its
//! leftmost-first matching, but not everything means the same: `\d`, `\w`,
//! `\s` and `\b` are Unicode-aware in Rust and ASCII in RE2, and Rust
//! refuses what RE2 refuses (look-around, back-references) with different
//! messages. [`to_rust`] accepts only the shared subset and turns `\b` into
//! Rust's ASCII word boundary, so what is tested here is what the collector
//! runs.

use regex::Regex;
use serde_yaml_ng::Value;

/// Where `transform/redact` must apply every pattern: (OTTL context, path).
pub const OTTL_TARGETS: [(&str, &str); 4] = [
    ("span", "status.message"),
    ("spanevent", "name"),
    ("spanevent", "attributes"),
    ("log", "body"),
];

/// What a match is replaced with.
pub const MASK: &str = "****";

/// An RE2 pattern outside the subset Rust's `regex` runs identically.
#[derive(Debug, thiserror::Error)]
#[error("pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The RE2 pattern.
    pub pattern: String,
    /// What to change.
    pub reason: String,
}

/// The Rust spelling of an RE2 pattern, or why it has none that behaves the same.
///
/// ```
/// use deploy_checks::collector::redaction::to_rust;
/// assert_eq!(to_rust(r"\b[0-9]{4}\b").unwrap(), r"(?-u:\b)[0-9]{4}(?-u:\b)");
/// assert!(to_rust(r"\d+").is_err());
/// assert!(to_rust(r"(?=x)").is_err());
/// ```
pub fn to_rust(re2: &str) -> Result<String, PatternError> {
    let fail = |reason: &str| PatternError {
        pattern: re2.to_string(),
        reason: reason.to_string(),
    };
    for look in ["(?=", "(?!", "(?<=", "(?<!"] {
        if re2.contains(look) {
            return Err(fail("look-around is not RE2: the collector refuses it"));
        }
    }
    let mut out = String::with_capacity(re2.len() + 16);
    let mut chars = re2.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            return Err(fail("ends with a lone backslash"));
        };
        match next {
            'b' => out.push_str(r"(?-u:\b)"),
            'B' => out.push_str(r"(?-u:\B)"),
            'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                return Err(fail(&format!(
                    "\\{next} is ASCII in RE2 and Unicode in Rust: write the class out ([0-9], [A-Za-z0-9_], [ \\t\\n])"
                )));
            }
            'p' | 'P' => return Err(fail("Unicode classes differ between RE2 and Rust")),
            '1'..='9' => return Err(fail("back-references are not RE2")),
            'C' => return Err(fail("\\C (any byte) has no Rust equivalent")),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// The patterns of the `redaction` processor (`blocked_values`).
pub fn blocked_values(config: &Value) -> Vec<String> {
    config["processors"]["redaction"]["blocked_values"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// One masking statement of `transform/redact`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OttlMask {
    /// The OTTL context (`span`, `spanevent`, `log`).
    pub context: String,
    /// The path it rewrites (`body`, `attributes`, …).
    pub target: String,
    /// The RE2 pattern, unescaped from its OTTL string literal.
    pub pattern: String,
    /// The replacement.
    pub replacement: String,
}

/// The masking statements of `transform/redact`, or the statement that is
/// not of the form `replace_pattern(<path>, "<re>", "<mask>")` /
/// `replace_all_patterns(<path>, "value", "<re>", "<mask>")`.
pub fn ottl_masks(config: &Value) -> Result<Vec<OttlMask>, String> {
    let transform = &config["processors"]["transform/redact"];
    let mut out = Vec::new();
    for group in ["trace_statements", "log_statements"] {
        for block in transform[group].as_sequence().into_iter().flatten() {
            let context = block["context"].as_str().unwrap_or_default().to_string();
            for statement in block["statements"].as_sequence().into_iter().flatten() {
                let text = statement.as_str().unwrap_or_default();
                out.push(parse_statement(&context, text)?);
            }
        }
    }
    Ok(out)
}

fn parse_statement(context: &str, text: &str) -> Result<OttlMask, String> {
    let bad = || {
        format!(
            "transform/redact: {text:?} is not replace_pattern(<path>, \"<re>\", \"<mask>\") or replace_all_patterns(<path>, \"value\", \"<re>\", \"<mask>\")"
        )
    };
    let (all, rest) = if let Some(rest) = text.strip_prefix("replace_pattern(") {
        (false, rest)
    } else if let Some(rest) = text.strip_prefix("replace_all_patterns(") {
        (true, rest)
    } else {
        return Err(bad());
    };
    let comma = rest.find(',').ok_or_else(bad)?;
    let target = rest[..comma].trim().to_string();
    let literals = string_literals(&rest[comma..]);
    let (pattern, replacement) = match (all, literals.as_slice()) {
        (false, [pattern, replacement, ..]) => (pattern.clone(), replacement.clone()),
        (true, [mode, pattern, replacement, ..]) if mode == "value" => {
            (pattern.clone(), replacement.clone())
        }
        _ => return Err(bad()),
    };
    Ok(OttlMask {
        context: context.to_string(),
        target,
        pattern,
        replacement,
    })
}

/// The OTTL string literals of `text`, unescaped (`\\` → `\`, `\"` → `"`).
fn string_literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut lit = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        lit.push(escaped);
                    }
                }
                '"' => break,
                other => lit.push(other),
            }
        }
        out.push(lit);
    }
    out
}

/// The collector's masking, compiled for Rust.
#[derive(Debug)]
pub struct Redactor {
    patterns: Vec<Regex>,
}

impl Redactor {
    /// Compiles RE2 patterns through [`to_rust`].
    pub fn new(patterns: &[String]) -> Result<Redactor, PatternError> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let rust = to_rust(p)?;
                Regex::new(&rust).map_err(|e| PatternError {
                    pattern: p.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Redactor { patterns })
    }

    /// `value` after every pattern, in order, replaced its matches with
    /// [`MASK`] (Go's `ReplaceAllString`, which both processors use).
    pub fn mask(&self, value: &str) -> String {
        let mut out = value.to_string();
        for re in &self.patterns {
            out = re.replace_all(&out, MASK).into_owned();
        }
        out
    }

    /// What `redact_all_types` does to a number: its decimal form, masked;
    /// `None` when nothing matched (the number is kept as a number).
    pub fn mask_number(&self, value: i64) -> Option<String> {
        self.mask_text_of(value.to_string())
    }

    /// The same for a double: the collector's `AsString` writes it as
    /// JavaScript does (plain decimals from 1e-6 to 1e21, else an
    /// exponent), so a card number stored as a double is a digit run too.
    pub fn mask_double(&self, value: f64) -> Option<String> {
        let plain = value == 0.0 || (1e-6..1e21).contains(&value.abs());
        self.mask_text_of(if plain {
            format!("{value}")
        } else {
            format!("{value:e}")
        })
    }

    fn mask_text_of(&self, text: String) -> Option<String> {
        let masked = self.mask(&text);
        (masked != text).then_some(masked)
    }
}
