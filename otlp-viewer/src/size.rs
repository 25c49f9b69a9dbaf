//! What a stored item costs in memory, estimated from what it holds.
//!
//! The store's count bounds say nothing of an item's size: one span may
//! carry a 16 MiB attribute. These estimates (heap bytes of every string,
//! vector and map entry, plus a fixed overhead per allocation) let the store
//! hold a byte bound as well. They err on the high side for small items.

use otlp_receiver::{AttrValue, Attributes, ReceivedLog, ReceivedSpan, SpanStatus};

/// What an allocation costs beyond its bytes (header, rounding) and what a
/// map entry costs beyond its key and value (tree node share).
const PER_ALLOCATION: usize = 16;
const PER_ENTRY: usize = 48;

/// A map's node: room for eleven keys and values whatever it holds, so a
/// map of one small entry costs a whole node.
const MAP_NODE: usize =
    11 * (std::mem::size_of::<String>() + std::mem::size_of::<AttrValue>()) + PER_ALLOCATION;

/// Heap bytes of the nodes of a map of `len` entries.
fn map_nodes(len: usize) -> usize {
    len.div_ceil(11) * MAP_NODE
}

/// Heap bytes of a string.
pub(crate) fn text(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        s.len() + PER_ALLOCATION
    }
}

fn value(v: &AttrValue) -> usize {
    std::mem::size_of::<AttrValue>()
        + match v {
            AttrValue::Str(s) => text(s),
            AttrValue::Bytes(b) => b.len() + PER_ALLOCATION,
            AttrValue::Array(items) => items.iter().map(value).sum::<usize>() + PER_ALLOCATION,
            AttrValue::Map(map) => {
                map_nodes(map.len())
                    + map
                        .iter()
                        .map(|(k, v)| text(k) + value(v) + PER_ENTRY)
                        .sum::<usize>()
            }
            AttrValue::Bool(_) | AttrValue::I64(_) | AttrValue::F64(_) | AttrValue::Empty => 0,
        }
}

/// Heap bytes of an attribute map.
pub(crate) fn attributes(a: &Attributes) -> usize {
    map_nodes(a.len())
        + a.iter()
            .map(|(k, v)| text(k) + value(v) + PER_ENTRY)
            .sum::<usize>()
}

/// Bytes of a span, its resource not included (resources are shared).
pub(crate) fn span(s: &ReceivedSpan) -> usize {
    let status = match &s.status {
        SpanStatus::Error(message) => text(message),
        SpanStatus::Unset | SpanStatus::Ok => 0,
    };
    std::mem::size_of::<ReceivedSpan>()
        + text(&s.scope_name)
        + s.scope_version.as_deref().map_or(0, text)
        + text(&s.trace_id)
        + text(&s.span_id)
        + s.parent_span_id.as_deref().map_or(0, text)
        + text(&s.trace_state)
        + text(&s.name)
        + attributes(&s.attributes)
        + s.events
            .iter()
            .map(|e| PER_ENTRY + text(&e.name) + attributes(&e.attributes))
            .sum::<usize>()
        + s.links
            .iter()
            .map(|l| PER_ENTRY + text(&l.trace_id) + text(&l.span_id) + attributes(&l.attributes))
            .sum::<usize>()
        + status
}

/// Bytes of a log record, its resource not included.
pub(crate) fn log(l: &ReceivedLog) -> usize {
    std::mem::size_of::<ReceivedLog>()
        + text(&l.scope_name)
        + l.scope_version.as_deref().map_or(0, text)
        + text(&l.severity_text)
        + l.body.as_deref().map_or(0, text)
        + attributes(&l.attributes)
        + l.trace_id.as_deref().map_or(0, text)
        + l.span_id.as_deref().map_or(0, text)
        + text(&l.event_name)
}

/// `s` cut to at most `max` bytes at a character boundary, marked with `…`
/// when cut.
pub(crate) fn clipped(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_value_is_counted_by_its_bytes() {
        let mut small = Attributes::default();
        small.0.insert("k".into(), AttrValue::Str("v".into()));
        let mut large = Attributes::default();
        large
            .0
            .insert("k".into(), AttrValue::Str("x".repeat(1 << 20)));
        // One small entry still takes a whole node of the map.
        assert!(attributes(&small) >= MAP_NODE && attributes(&small) < MAP_NODE + 200);
        let twelve: Attributes = Attributes(
            (0..12)
                .map(|i| (format!("k{i}"), AttrValue::I64(i)))
                .collect(),
        );
        assert!(
            attributes(&twelve) >= 2 * MAP_NODE,
            "twelve entries take two nodes"
        );
        assert!(attributes(&large) > 1 << 20);
        let mut nested = Attributes::default();
        nested.0.insert(
            "k".into(),
            AttrValue::Array(vec![AttrValue::Bytes(vec![0; 1 << 20]); 3]),
        );
        assert!(attributes(&nested) > 3 << 20);
    }

    #[test]
    fn clipping_keeps_whole_characters() {
        assert_eq!(clipped("abc".into(), 3), "abc");
        assert_eq!(clipped("abcd".into(), 3), "abc…");
        // "é" is two bytes: cutting at 2 would split it.
        assert_eq!(clipped("aé".into(), 2), "a…");
    }
}
