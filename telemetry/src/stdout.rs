//! Stdout logs: JSON lines with `trace_id` and `span_id` outside dev, readable
//! text in dev; with `TELEMETRY_LOG_FORMAT=none`, JSON lines of telemetry's
//! own events only.

use std::fmt::Write as _;
use std::io::Write as _;

use opentelemetry::trace::TraceContextExt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Writes each event as one JSON object per line:
/// `{"timestamp","level","target","message","fields",...,"span","trace_id","span_id"}`.
///
/// The line is written straight into one buffer (no JSON tree, no string per
/// field): every service writes one per log event.
#[derive(Debug)]
pub struct JsonLayer<W> {
    make_writer: W,
    /// When set, only events whose target it accepts are written.
    keep_target: Option<fn(&str) -> bool>,
}

impl<W> JsonLayer<W> {
    /// A JSON layer writing to `make_writer` (e.g. `std::io::stdout`).
    pub fn new(make_writer: W) -> Self {
        JsonLayer {
            make_writer,
            keep_target: None,
        }
    }

    /// Writes only the events whose target `keep` accepts (the other layers
    /// still see every event).
    pub(crate) fn only_targets(mut self, keep: fn(&str) -> bool) -> Self {
        self.keep_target = Some(keep);
        self
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if self.keep_target.is_some_and(|keep| !keep(meta.target())) {
            return;
        }
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);

        let mut line = Vec::with_capacity(192 + fields.fields.len());
        line.extend_from_slice(b"{\"timestamp\":\"");
        write_rfc3339(&mut line, std::time::SystemTime::now());
        line.extend_from_slice(b"\",\"level\":\"");
        line.extend_from_slice(meta.level().as_str().as_bytes());
        line.extend_from_slice(b"\",\"target\":");
        json_str(&mut line, meta.target());
        if let Some(message) = &fields.message {
            line.extend_from_slice(b",\"message\":");
            json_str(&mut line, message);
        }
        if !fields.fields.is_empty() {
            line.extend_from_slice(b",\"fields\":{");
            line.extend_from_slice(&fields.fields);
            line.push(b'}');
        }
        if let Some(span) = ctx.event_span(event) {
            line.extend_from_slice(b",\"span\":");
            json_str(&mut line, span.name());
        }
        opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                // Hex digits only: nothing to escape.
                let _ = write!(
                    line,
                    ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                    sc.trace_id(),
                    sc.span_id()
                );
            }
        });
        line.extend_from_slice(b"}\n");
        // A failed stdout write must never hurt the service.
        let _ = self.make_writer.make_writer_for(meta).write_all(&line);
    }
}

/// `text` as a JSON string (quoted, escaped) at the end of `out`.
fn json_str(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(out, text);
}

/// An event's message, and its other fields as the members of a JSON object.
#[derive(Default)]
struct JsonVisitor {
    message: Option<String>,
    /// `"name":value` members, comma-separated.
    fields: Vec<u8>,
}

impl JsonVisitor {
    /// Starts the member `name`.
    fn key(&mut self, field: &Field) {
        if !self.fields.is_empty() {
            self.fields.push(b',');
        }
        json_str(&mut self.fields, field.name());
        self.fields.push(b':');
    }

    fn record_text(&mut self, field: &Field, text: &str) {
        let masked = crate::redact::mask_sensitive(text);
        let text = masked.as_deref().unwrap_or(text);
        if field.name() == "message" {
            self.message = Some(text.to_string());
        } else {
            self.key(field);
            json_str(&mut self.fields, text);
        }
    }

    fn record_number(&mut self, field: &Field, value: impl std::fmt::Display) {
        self.key(field);
        let _ = write!(self.fields, "{value}");
    }
}

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_text(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_number(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_number(field, value);
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.record_number(field, value);
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.record_number(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.key(field);
            // serde_json writes the shortest form that reads back the same.
            let _ = serde_json::to_writer(&mut self.fields, &value);
        } else {
            // JSON has no NaN or infinity: as text, as it reads.
            self.record_text(field, &value.to_string());
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.fields
            .extend_from_slice(if value { b"true" } else { b"false" });
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_text(field, &value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.record_text(field, &text);
    }
}

/// `time` in UTC as RFC 3339 with microseconds, without a date crate.
pub(crate) fn rfc3339(time: std::time::SystemTime) -> String {
    let mut out = Vec::with_capacity(27);
    write_rfc3339(&mut out, time);
    // Digits, dashes, colons, a dot, `T` and `Z`: always UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `time` in UTC as RFC 3339 with microseconds to `out`.
fn write_rfc3339(out: &mut Vec<u8>, time: std::time::SystemTime) {
    let now = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let micros = now.subsec_micros();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{micros:06}Z"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    use tracing_subscriber::layer::SubscriberExt as _;

    use crate::test_support::Lines;

    /// The JSON lines `f`'s events print, parsed, and the raw text.
    fn printed(f: impl FnOnce()) -> (Vec<serde_json::Value>, String) {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber =
            tracing_subscriber::registry().with(JsonLayer::new(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let text = lines.text();
        let parsed = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (parsed, text)
    }

    #[test]
    fn hostile_text_stays_one_valid_json_line() {
        let hostile = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} \u{2028} é 💳";
        let (lines, raw) = printed(|| {
            tracing::info_span!("pay").in_scope(|| {
                tracing::info!(
                    text = hostile,
                    debug = ?hostile,
                    count = 3u64,
                    max = u64::MAX,
                    neg = -4i64,
                    big = u128::MAX,
                    ratio = 0.25,
                    nan = f64::NAN,
                    inf = f64::INFINITY,
                    ok = true,
                    "msg {hostile}"
                );
            });
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["message"], format!("msg {hostile}"));
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["span"], "pay");
        let f = &line["fields"];
        assert_eq!(f["text"], hostile);
        assert_eq!(f["debug"], format!("{hostile:?}"));
        assert_eq!(f["count"], 3);
        assert_eq!(f["max"], u64::MAX);
        assert_eq!(f["neg"], -4);
        assert!(raw.contains(&format!("\"big\":{}", u128::MAX)), "{raw}");
        assert_eq!(f["ratio"], 0.25);
        assert_eq!(f["nan"], "NaN");
        assert_eq!(f["inf"], "inf");
        assert_eq!(f["ok"], true);
        assert!(
            line.get("trace_id").is_none(),
            "no OpenTelemetry context here"
        );
    }

    #[test]
    fn card_numbers_are_masked_in_messages_and_fields() {
        let (lines, _) = printed(|| {
            tracing::warn!(card = "4111 1111 1111 1111", "charged 4111111111111111");
        });
        let text = lines[0].to_string();
        assert!(!text.contains("4111 1111 1111 1111"), "{text}");
        assert!(!text.contains("4111111111111111"), "{text}");
        assert_eq!(lines[0]["fields"]["card"], "****1111");
    }

    #[test]
    fn timestamp_is_rfc3339() {
        let t = rfc3339(std::time::SystemTime::now());
        assert_eq!(t.len(), 27, "{t}");
        assert!(t.ends_with('Z'));
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "T");
        let year: i32 = t[..4].parse().unwrap();
        assert!(year >= 2024);
    }
}
