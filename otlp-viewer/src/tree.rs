//! A trace as a tree, the one shape both the page and the terminal draw:
//! spans depth-first (children by start time) with their depth, and each
//! span's log lines.

use std::collections::{BTreeMap, HashSet};

use otlp_receiver::{ReceivedLog, ReceivedSpan};

use crate::store::TraceDetail;

/// The spans in drawing order and the log lines under each.
#[derive(Debug)]
pub struct TraceTree<'a> {
    /// Spans depth-first with their depth (0 for a root, or for a span whose
    /// parent is not held).
    pub spans: Vec<(&'a ReceivedSpan, usize)>,
    /// Log lines by the span they were written in.
    pub logs: BTreeMap<&'a str, Vec<&'a ReceivedLog>>,
    /// Log lines whose span is not held (or that name none).
    pub orphan_logs: Vec<&'a ReceivedLog>,
}

/// Builds the tree. An explicit stack, not recursion, so a hostile
/// thousand-deep trace cannot overflow ours; a span is drawn once even if
/// ids repeat.
pub fn tree(trace: &TraceDetail) -> TraceTree<'_> {
    let ids: HashSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: BTreeMap<&str, Vec<&ReceivedSpan>> = BTreeMap::new();
    let mut roots = Vec::new();
    for span in &trace.spans {
        match span.parent_span_id.as_deref() {
            Some(parent) if ids.contains(parent) => children.entry(parent).or_default().push(span),
            _ => roots.push(span),
        }
    }
    let mut spans = Vec::with_capacity(trace.spans.len());
    let mut seen = HashSet::new();
    let mut stack: Vec<(&ReceivedSpan, usize)> = roots.iter().rev().map(|s| (*s, 0)).collect();
    while let Some((span, depth)) = stack.pop() {
        if !seen.insert(span.span_id.as_str()) {
            continue;
        }
        spans.push((span, depth));
        if let Some(kids) = children.get(span.span_id.as_str()) {
            for kid in kids.iter().rev() {
                stack.push((kid, depth + 1));
            }
        }
    }
    let mut logs: BTreeMap<&str, Vec<&ReceivedLog>> = BTreeMap::new();
    let mut orphan_logs = Vec::new();
    for log in &trace.logs {
        match log.span_id.as_deref() {
            Some(id) if ids.contains(id) => logs.entry(id).or_default().push(log),
            _ => orphan_logs.push(log),
        }
    }
    TraceTree {
        spans,
        logs,
        orphan_logs,
    }
}

/// The span's `service.name`.
pub(crate) fn service(span: &ReceivedSpan) -> &str {
    span.resource
        .str("service.name")
        .unwrap_or("unknown_service")
}

/// When a log record happened: its time, or when it was observed.
pub(crate) fn log_time(log: &ReceivedLog) -> u64 {
    if log.time_unix_nanos != 0 {
        log.time_unix_nanos
    } else {
        log.observed_time_unix_nanos
    }
}
