//! A trace as text: spans as a tree with start offset, duration and a bar,
//! each span's log lines under it, and the spans of other traces that link
//! here. What `trace <id>` prints in a terminal.

use std::fmt::Write as _;

use otlp_receiver::{ReceivedLog, ReceivedSpan, SpanKind, SpanStatus};

use crate::store::{TraceDetail, display_value};
use crate::tree::{log_time, service, tree};

/// Attributes worth a place on a span's line whatever the system.
pub const COMMON_KEYS: &[&str] = &[
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "messaging.destination.name",
    "messaging.operation.type",
    "db.operation.name",
    "error.type",
];

/// Width of the timeline bar, in characters.
const BAR_WIDTH: usize = 24;

/// Replaces control characters (terminal escapes included) so a hostile
/// attribute cannot rewrite the reader's screen.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

fn ms(nanos: u64) -> String {
    let ms = nanos as f64 / 1e6;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
        SpanKind::Unspecified => "unspecified",
    }
}

fn bar(offset: u64, duration: u64, total: u64) -> String {
    let total = total.max(1) as f64;
    let from = ((offset as f64 / total) * BAR_WIDTH as f64).floor() as usize;
    let len = (((duration as f64) / total) * BAR_WIDTH as f64)
        .ceil()
        .max(1.0) as usize;
    let from = from.min(BAR_WIDTH - 1);
    let len = len.min(BAR_WIDTH - from);
    format!(
        "{}{}{}",
        " ".repeat(from),
        "█".repeat(len),
        " ".repeat(BAR_WIDTH - from - len)
    )
}

/// Renders the trace; `keys` are the attributes shown on span lines (beside
/// [`COMMON_KEYS`]).
pub fn render(trace: &TraceDetail, keys: &[String]) -> String {
    let mut out = String::new();
    let s = &trace.summary;
    let status = if s.error { "ERROR" } else { "ok" };
    let _ = writeln!(
        out,
        "trace {}  {}  {} span(s) across {} service(s), {} log line(s), {}",
        sanitize(&s.trace_id),
        status,
        s.spans,
        s.services.len(),
        s.logs,
        ms(s.duration_nanos)
    );
    for (k, v) in &s.key_attributes {
        let _ = writeln!(out, "  {}: {}", sanitize(k), sanitize(v));
    }
    let _ = writeln!(
        out,
        "{:>9} {:>9}  {:<width$}  {:<18} span",
        "offset",
        "duration",
        "timeline",
        "service",
        width = BAR_WIDTH
    );

    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.extend(COMMON_KEYS);
    let tree = tree(trace);
    for (span, depth) in &tree.spans {
        span_line(&mut out, trace, span, *depth, &keys);
        if let Some(logs) = tree.logs.get(span.span_id.as_str()) {
            for log in logs {
                log_line(&mut out, trace, log, depth + 1);
            }
        }
    }
    let orphan_logs = &tree.orphan_logs;
    if !orphan_logs.is_empty() {
        let _ = writeln!(out, "log lines outside the stored spans:");
        for log in orphan_logs {
            log_line(&mut out, trace, log, 1);
        }
    }
    if !trace.linked_from.is_empty() {
        let _ = writeln!(out, "linked from:");
        for link in &trace.linked_from {
            let _ = writeln!(
                out,
                "  {} ({}) in trace {} → span {}",
                sanitize(&link.span_name),
                sanitize(&link.service),
                sanitize(&link.trace_id),
                sanitize(&link.target_span_id)
            );
        }
    }
    out
}

fn span_line(
    out: &mut String,
    trace: &TraceDetail,
    span: &ReceivedSpan,
    depth: usize,
    keys: &[&str],
) {
    let start = trace.summary.start_unix_nanos;
    let offset = span.start_unix_nanos.saturating_sub(start);
    let duration = span.end_unix_nanos.saturating_sub(span.start_unix_nanos);
    let status = match &span.status {
        SpanStatus::Error(msg) if msg.is_empty() => " ERROR".to_string(),
        SpanStatus::Error(msg) => format!(" ERROR: {}", sanitize(msg)),
        _ => String::new(),
    };
    let mut attributes = String::new();
    for key in keys {
        if let Some(value) = span.attributes.get(key) {
            let _ = write!(
                attributes,
                " {}={}",
                sanitize(key),
                sanitize(&display_value(value))
            );
        }
    }
    let links: String = span
        .links
        .iter()
        .map(|l| format!(" → links trace {}", sanitize(&l.trace_id)))
        .collect();
    let _ = writeln!(
        out,
        "{:>9} {:>9}  {}  {:<18} {}{} [{}]{}{}{}",
        ms(offset),
        ms(duration),
        bar(offset, duration, trace.summary.duration_nanos),
        sanitize(service(span)),
        "  ".repeat(depth.min(32)),
        sanitize(&span.name),
        kind(span.kind),
        status,
        attributes,
        links
    );
}

fn log_line(out: &mut String, trace: &TraceDetail, log: &ReceivedLog, depth: usize) {
    let offset = log_time(log).saturating_sub(trace.summary.start_unix_nanos);
    let attributes: String = log
        .attributes
        .iter()
        .map(|(k, v)| format!(" {}={}", sanitize(k), sanitize(&display_value(v))))
        .collect();
    let _ = writeln!(
        out,
        "{:>9} {:>9}  {:<width$}  {:<18} {}· {} {}{}",
        ms(offset),
        "",
        "",
        sanitize(log.resource.str("service.name").unwrap_or("")),
        "  ".repeat(depth.min(32)),
        sanitize(&log.severity_text),
        sanitize(log.body.as_deref().unwrap_or("")),
        attributes,
        width = BAR_WIDTH
    );
}
