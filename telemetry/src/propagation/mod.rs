//! Context propagation: W3C Trace Context (`traceparent`/`tracestate`)
//! implemented to the letter of the current specification (Trace Context
//! Level 2), W3C baggage (bounded to 8192 bytes and 64 members by the SDK),
//! B3 single and multi header ([`B3Propagator`]) and Jaeger
//! ([`JaegerPropagator`]), with helpers to inject into and extract
//! from any header map.
//!
//! Why not the upstream `TraceContextPropagator` (0.33)? It accepts malformed
//! ids such as `00-1-2-01`, reads only the first of repeated header lines,
//! rejects valid `tracestate` keys (it allows 13 characters after `@` and
//! a single `@`, where the current grammar allows `@` anywhere after the
//! first character), so one such key makes the whole `tracestate` vanish,
//! and it writes an empty `tracestate:` line when there is nothing to carry.
//! [`StrictTraceContext`] does all of that itself:
//!
//! - `traceparent` is checked against the exact grammar; a bad one, or more
//!   than one line (the combined value of two lines is not a valid
//!   `traceparent`), is ignored and the request starts a new trace.
//! - Repeated `tracestate` lines are combined into one list, joined with `,`
//!   in order (RFC 9110 field combination, as the specification requires).
//! - `tracestate` is parsed with the current key grammar
//!   (`(lcalpha / DIGIT) 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@")`)
//!   and value grammar. A list that is invalid — a bad member, a duplicated
//!   key, or more than 32 members — is discarded whole (the trace parent is
//!   kept), which is what the W3C test suite expects. Empty and
//!   whitespace-only members are allowed and do not count towards the 32.
//! - What is propagated is at most [`TRACESTATE_MAX_LEN`] (512) characters,
//!   the length the specification says to propagate at least: past that,
//!   whole members are dropped, those longer than 128 characters first, then
//!   from the end of the list, as the specification asks.
//! - Nothing is written for an empty `tracestate`.
//!
//! ```
//! use opentelemetry::trace::TraceContextExt;
//! let propagator = telemetry::propagation::default_propagator();
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
//! headers.append("tracestate", "rojo=00f067aa0ba902b7".parse().unwrap());
//! headers.append("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
//! let cx = telemetry::propagation::extract(&propagator, &headers);
//! assert!(cx.span().span_context().is_remote());
//!
//! let mut out = http::HeaderMap::new();
//! telemetry::propagation::inject(&propagator, &cx, &mut out);
//! assert_eq!(out["tracestate"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
//!
//! headers.insert("traceparent", "00-1-2-01".parse().unwrap());
//! let cx = telemetry::propagation::extract(&propagator, &headers);
//! assert!(!cx.span().span_context().is_valid());
//! ```

mod b3;
mod jaeger;

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::BaggagePropagator;

use crate::config::PropagatorKind;

pub use b3::B3Propagator;
pub use jaeger::JaegerPropagator;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Most list-members a `tracestate` may have (W3C Trace Context).
pub const TRACESTATE_MAX_MEMBERS: usize = 32;

/// Most characters of `tracestate` propagated: the specification's "SHOULD
/// propagate at least 512 characters of a combined header". Longer lists
/// are truncated by whole members (see [`normalize_tracestate`]), so every
/// outgoing call carries a bounded header however large the incoming one.
pub const TRACESTATE_MAX_LEN: usize = 512;

/// Members longer than this are the first dropped when truncating.
const TRACESTATE_LARGE_MEMBER: usize = 128;

fn fields() -> &'static [String; 2] {
    static FIELDS: OnceLock<[String; 2]> = OnceLock::new();
    FIELDS.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()])
}

/// W3C Trace Context with strict validation of both headers; see the
/// [module documentation](self) for the rules.
#[derive(Debug, Default)]
pub struct StrictTraceContext {
    _private: (),
}

impl StrictTraceContext {
    /// A new strict propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The whole incoming `tracestate`, when the upstream `TraceState` could not
/// hold all of it (keys the 0.33 parser wrongly rejects, such as
/// `a@vvvvvvvvvvvvvv`). The span context then carries the members upstream
/// accepts, and this value — riding along in the `Context`, which
/// `tracing-opentelemetry` hands from parent to child spans — lets
/// injection forward the list exactly as received.
#[derive(Debug, Clone, PartialEq)]
struct ReceivedTraceState {
    trace_id: TraceId,
    /// What the span context's `TraceState` held when extracted: if a span
    /// still carries exactly this, nobody in this service changed it.
    accepted: TraceState,
    /// The normalised list, as it is to be propagated.
    header: String,
}

impl TextMapPropagator for StrictTraceContext {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        // Always written as version 00, the highest version known here.
        injector.set(
            TRACEPARENT,
            format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags() & TraceFlags::SAMPLED
            ),
        );
        let state = match cx.get::<ReceivedTraceState>() {
            Some(received)
                if received.trace_id == sc.trace_id() && &received.accepted == sc.trace_state() =>
            {
                received.header.clone()
            }
            _ => {
                let header = sc.trace_state().header();
                if header.len() > TRACESTATE_MAX_LEN {
                    normalize_tracestate(&header).unwrap_or_default()
                } else {
                    header
                }
            }
        };
        // The specification asks senders to avoid empty `tracestate` headers.
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        // Two `traceparent` lines combine into `a, b`, which is not a valid
        // value: the request starts a new trace, like any invalid header.
        let traceparent = match extractor.get_all(TRACEPARENT) {
            Some(lines) if lines.len() == 1 => lines.into_iter().next(),
            Some(_) => None,
            None => None,
        };
        let Some((trace_id, span_id, flags)) = traceparent.and_then(parse_traceparent) else {
            return cx.clone();
        };
        // A failure to parse `tracestate` never affects `traceparent`.
        let header = extractor
            .get_all(TRACESTATE)
            .and_then(|lines| normalize_tracestate(&lines.join(",")))
            .unwrap_or_default();
        let (state, complete) = upstream_trace_state(&header);
        let received = (!complete).then(|| ReceivedTraceState {
            trace_id,
            accepted: state.clone(),
            header,
        });
        let sc = SpanContext::new(trace_id, span_id, flags, true, state);
        let cx = cx.with_remote_span_context(sc);
        match received {
            Some(received) => cx.with_value(received),
            None => cx,
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(fields())
    }
}

/// The upstream `TraceState` for a normalised `tracestate`, and whether it
/// holds every member. When the 0.33 key check rejects one, the others are
/// kept so samplers and exporters still see them.
fn upstream_trace_state(header: &str) -> (TraceState, bool) {
    let members: Vec<(&str, &str)> = header
        .split(',')
        .filter_map(|m| m.split_once('='))
        .collect();
    match TraceState::from_key_value(members.iter().copied()) {
        Ok(state) => (state, true),
        Err(_) => {
            let accepted = members
                .iter()
                .copied()
                .filter(|m| TraceState::from_key_value([*m]).is_ok());
            (
                TraceState::from_key_value(accepted).unwrap_or_default(),
                false,
            )
        }
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a `traceparent` against the W3C grammar: `version-traceid-parentid-flags`,
/// lower-case hex of exact lengths, no all-zero ids, version `ff` forbidden,
/// and for version `00` nothing after the flags.
pub fn is_valid_traceparent(value: &str) -> bool {
    parse_traceparent(value).is_some()
}

/// Parses a `traceparent` (surrounding spaces and tabs allowed), keeping only
/// the `sampled` flag as the specification asks for unknown flags.
fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let v = value.trim_matches([' ', '\t']);
    let head = v.get(..55)?;
    let rest = v.get(55..)?;
    let mut parts = head.split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || version.len() != 2
        || trace_id.len() != 32
        || parent_id.len() != 16
        || flags.len() != 2
        || !is_lower_hex(version)
        || !is_lower_hex(trace_id)
        || !is_lower_hex(parent_id)
        || !is_lower_hex(flags)
        || version == "ff"
    {
        return None;
    }
    // Version 00 has nothing after the flags; future versions may append
    // fields after a dash.
    if !(rest.is_empty() || (version != "00" && rest.starts_with('-'))) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(parent_id).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
    ))
}

/// Checks a `tracestate` value (already combined from all its lines):
/// at most 32 members with the current W3C key and value grammar, no key
/// twice. Empty and whitespace-only members are allowed. Length is not a
/// validity question: [`normalize_tracestate`] truncates long lists.
pub fn is_valid_tracestate(value: &str) -> bool {
    parse_tracestate(value).is_some()
}

/// The `tracestate` to propagate for a received (combined) value: `None`
/// when the list is invalid (it is then discarded whole), otherwise the
/// members joined by `,` without optional whitespace, truncated to
/// [`TRACESTATE_MAX_LEN`] characters by dropping whole members — first
/// those longer than 128 characters, then from the end of the list.
///
/// ```
/// use telemetry::propagation::normalize_tracestate;
/// assert_eq!(normalize_tracestate("foo=1 ,\t a@vvvvvvvvvvvvvv=2,").as_deref(), Some("foo=1,a@vvvvvvvvvvvvvv=2"));
/// assert_eq!(normalize_tracestate("foo=1,foo=2"), None);
/// assert_eq!(normalize_tracestate("").as_deref(), Some(""));
/// ```
pub fn normalize_tracestate(value: &str) -> Option<String> {
    let mut members = parse_tracestate(value)?;
    let member_len = |(k, v): &(&str, &str)| k.len() + 1 + v.len();
    let total =
        |ms: &[(&str, &str)]| ms.iter().map(member_len).sum::<usize>() + ms.len().saturating_sub(1);
    while total(&members) > TRACESTATE_MAX_LEN {
        let victim = members
            .iter()
            .rposition(|m| member_len(m) > TRACESTATE_LARGE_MEMBER)
            .unwrap_or(members.len().saturating_sub(1));
        if victim >= members.len() {
            break;
        }
        members.remove(victim);
    }
    let mut out = String::with_capacity(total(&members));
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    Some(out)
}

fn parse_tracestate(value: &str) -> Option<Vec<(&str, &str)>> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for member in value.split(',') {
        // Spaces and tabs around a list-member are optional whitespace.
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        if members.len() == TRACESTATE_MAX_MEMBERS {
            return None;
        }
        let (key, val) = member.split_once('=')?;
        if !valid_key(key) || !valid_value(val) || members.iter().any(|(k, _)| *k == key) {
            return None;
        }
        members.push((key, val));
    }
    Some(members)
}

/// `key = (lcalpha / DIGIT) 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@")`
/// (Trace Context Level 2; `@` is an ordinary key character, so multi-tenant
/// keys need no special case).
fn valid_key(k: &str) -> bool {
    let mut bytes = k.bytes();
    k.len() <= 256
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

/// `value = 0*255(chr) nblk-chr`: printable ASCII without `,` and `=`, not
/// ending in a space.
fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !v.ends_with(' ')
}

/// Builds the composite propagator `OTEL_PROPAGATORS` asked for.
pub fn propagator_for(kinds: &[PropagatorKind]) -> TextMapCompositePropagator {
    let list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = kinds
        .iter()
        .map(|k| -> Box<dyn TextMapPropagator + Send + Sync> {
            match k {
                PropagatorKind::TraceContext => Box::new(StrictTraceContext::new()),
                PropagatorKind::Baggage => Box::new(BaggagePropagator::new()),
                PropagatorKind::B3 => Box::new(B3Propagator::single()),
                PropagatorKind::B3Multi => Box::new(B3Propagator::multi()),
                PropagatorKind::Jaeger => Box::new(JaegerPropagator::new()),
            }
        })
        .collect();
    TextMapCompositePropagator::new(list)
}

/// W3C trace context and baggage: the default of `OTEL_PROPAGATORS`.
pub fn default_propagator() -> TextMapCompositePropagator {
    propagator_for(&[PropagatorKind::TraceContext, PropagatorKind::Baggage])
}

// The `http::HeaderMap` carriers and explicit-propagator helpers live in
// `telemetry-api`, shared with `services-glue`.
pub use telemetry_api::{HeaderExtractor, HeaderInjector, extract, inject};

/// Writes `cx` into `headers` with the global propagator (set by `init`).
pub fn inject_global(cx: &Context, headers: &mut http::HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| inject(p, cx, headers));
}

/// Reads a context from `headers` with the global propagator (set by `init`).
pub fn extract_global(headers: &http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| extract(p, headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::baggage::BaggageExt;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn strict_traceparent_grammar() {
        assert!(is_valid_traceparent(GOOD));
        assert!(is_valid_traceparent(&format!(" \t{GOOD}\t ")));
        assert!(is_valid_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"
        ));
        for bad in [
            "00-1-2-01",
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "0-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // Two lines combined by an intermediary.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01, 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(!is_valid_traceparent(bad), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn tracestate_key_grammar_is_level_2() {
        // `@` is an ordinary key character after the first.
        for good in [
            "a@vvvvvvvvvvvvvv=1",
            "foo=1,a@vvvvvvvvvvvvvv=1",
            "t@vvvvvvvvvvvvvvv=1",
            "foo@=1,bar=2",
            "foo@@bar=1,bar=2",
            "foo@bar@baz=1,bar=2",
            "1abc=1",
            "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/=1",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            "foo= leading space kept",
        ] {
            assert!(is_valid_tracestate(good), "{good:?} must be accepted");
        }
        let key_256 = "k".repeat(256);
        assert!(is_valid_tracestate(&format!("{key_256}=1")));
        let long_tenant = format!("{}@v", "t".repeat(242));
        assert!(is_valid_tracestate(&format!("foo=1,{long_tenant}=1")));
        for bad in [
            "@foo=1,bar=2",
            "FOO=1",
            "foo.bar=1",
            "foo =1",
            "_foo=1",
            "k=v=w",
            "novalue",
            "foo=",
            "foo=a\tb",
            "foo=1,foo=2",
            "foo=1,foo=1",
        ] {
            assert!(!is_valid_tracestate(bad), "{bad:?} must be rejected");
        }
        assert!(!is_valid_tracestate(&format!("{}=1", "k".repeat(257))));
        assert!(!is_valid_tracestate(&format!("k={}", "v".repeat(257))));
        assert!(is_valid_tracestate(&format!("k={}", "v".repeat(256))));
    }

    #[test]
    fn tracestate_member_limit_counts_real_members_only() {
        let members = |n: usize| {
            (1..=n)
                .map(|i| format!("bar{i:02}={i:02}"))
                .collect::<Vec<_>>()
        };
        let thirty_two = members(32).join(",");
        assert!(is_valid_tracestate(&thirty_two));
        // Empty and whitespace-only members are allowed and not counted.
        assert!(is_valid_tracestate(&format!(", ,{thirty_two},\t,")));
        assert!(!is_valid_tracestate(&members(33).join(",")));
        assert_eq!(normalize_tracestate(&members(33).join(",")), None);
        assert_eq!(normalize_tracestate(" \t ").as_deref(), Some(""));
    }

    #[test]
    fn long_tracestate_is_truncated_by_whole_members_large_first() {
        let big = format!("big={}", "x".repeat(200));
        let smalls: Vec<String> = (0..20)
            .map(|i| format!("s{i:02}={}", "y".repeat(20)))
            .collect();
        // 20 small members of 24 chars (499 with commas) plus one large one.
        let mut list = vec![smalls[0].clone(), big.clone()];
        list.extend(smalls[1..].iter().cloned());
        let out = normalize_tracestate(&list.join(",")).unwrap();
        assert_eq!(out, smalls.join(","), "the >128-char member goes first");
        assert!(out.len() <= TRACESTATE_MAX_LEN);

        // Without large members, members are dropped from the end.
        let many: Vec<String> = (0..30)
            .map(|i| format!("m{i:02}={}", "z".repeat(26)))
            .collect();
        let out = normalize_tracestate(&many.join(",")).unwrap();
        assert!(out.len() <= TRACESTATE_MAX_LEN, "{}", out.len());
        let kept: Vec<&str> = out.split(',').collect();
        // 17 members take 17 * 30 + 16 = 526 characters, 16 take 495.
        assert_eq!(kept.len(), 16);
        assert_eq!(out.len(), 495);
        assert!(
            many.iter().zip(&kept).all(|(a, b)| a == b),
            "a prefix is kept"
        );
    }

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn round_trip(pairs: &[(&str, &str)]) -> (SpanContext, http::HeaderMap) {
        let p = default_propagator();
        let cx = extract(&p, &headers(pairs));
        let mut out = http::HeaderMap::new();
        inject(&p, &cx, &mut out);
        (cx.span().span_context().clone(), out)
    }

    fn lines<'a>(h: &'a http::HeaderMap, name: &str) -> Vec<&'a str> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn malformed_traceparent_is_ignored_but_valid_one_round_trips() {
        let (sc, _) = round_trip(&[("traceparent", "00-1-2-01")]);
        assert!(!sc.is_valid());

        let (sc, out) = round_trip(&[("traceparent", GOOD), ("tracestate", "rojo=1")]);
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_state().get("rojo"), Some("1"));
        assert_eq!(lines(&out, "traceparent"), [GOOD]);
        assert_eq!(lines(&out, "tracestate"), ["rojo=1"]);
    }

    #[test]
    fn unknown_flags_are_zeroed_and_higher_versions_downgraded() {
        let (sc, out) = round_trip(&[(
            "traceparent",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future",
        )]);
        assert!(sc.is_sampled());
        assert_eq!(
            lines(&out, "traceparent"),
            ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
        );
    }

    #[test]
    fn repeated_tracestate_lines_are_combined_in_order() {
        let (sc, out) = round_trip(&[
            ("traceparent", GOOD),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", ""),
            ("tracestate", " rojo=1 , congo=2"),
            ("tracestate", "baz=3"),
        ]);
        assert_eq!(
            sc.trace_state().header(),
            "foo=1,bar=2,rojo=1,congo=2,baz=3"
        );
        assert_eq!(
            lines(&out, "tracestate"),
            ["foo=1,bar=2,rojo=1,congo=2,baz=3"]
        );
        // A key repeated across lines makes the combined list invalid.
        let (sc, out) = round_trip(&[
            ("traceparent", GOOD),
            ("tracestate", "foo=1"),
            ("tracestate", "foo=2"),
        ]);
        assert!(sc.is_valid());
        assert!(out.get("tracestate").is_none());
    }

    #[test]
    fn repeated_traceparent_lines_start_a_new_trace() {
        for second in [
            GOOD,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            let (sc, out) = round_trip(&[
                ("traceparent", GOOD),
                ("traceparent", second),
                ("tracestate", "foo=1"),
            ]);
            assert!(!sc.is_valid(), "{second}");
            assert!(out.is_empty(), "{out:?}");
        }
    }

    #[test]
    fn a_tracestate_line_that_is_not_ascii_invalidates_the_list() {
        let mut h = headers(&[("traceparent", GOOD), ("tracestate", "foo=1")]);
        h.append(
            "tracestate",
            http::HeaderValue::from_bytes("bar=\u{e9}".as_bytes()).unwrap(),
        );
        let p = default_propagator();
        let cx = extract(&p, &h);
        assert!(cx.span().span_context().is_valid());
        assert_eq!(cx.span().span_context().trace_state().header(), "");
    }

    #[test]
    fn keys_upstream_rejects_still_propagate_unchanged() {
        let state = "foo=1,a@vvvvvvvvvvvvvv=1,x@@y=2";
        let (sc, out) = round_trip(&[("traceparent", GOOD), ("tracestate", state)]);
        assert!(sc.is_valid());
        // The upstream TraceState holds what it can ...
        assert_eq!(sc.trace_state().get("foo"), Some("1"));
        // ... and the whole list goes out as received.
        assert_eq!(lines(&out, "tracestate"), [state]);

        // A child span of this service (same trace, same state) forwards it too.
        let p = default_propagator();
        let received = extract(
            &p,
            &headers(&[("traceparent", GOOD), ("tracestate", state)]),
        );
        let child = SpanContext::new(
            sc.trace_id(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::SAMPLED,
            false,
            sc.trace_state().clone(),
        );
        let mut out = http::HeaderMap::new();
        inject(
            &p,
            &received.with_remote_span_context(child.clone()),
            &mut out,
        );
        assert_eq!(lines(&out, "tracestate"), [state]);

        // A span whose state this service changed carries its own state.
        let changed = SpanContext::new(
            child.trace_id(),
            child.span_id(),
            child.trace_flags(),
            false,
            sc.trace_state().insert("mine", "1").unwrap(),
        );
        let mut out = http::HeaderMap::new();
        inject(&p, &received.with_remote_span_context(changed), &mut out);
        assert_eq!(lines(&out, "tracestate"), ["mine=1,foo=1"]);

        // Another trace never picks up this request's state.
        let other = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            child.span_id(),
            child.trace_flags(),
            false,
            sc.trace_state().clone(),
        );
        let mut out = http::HeaderMap::new();
        inject(&p, &received.with_remote_span_context(other), &mut out);
        assert_eq!(lines(&out, "tracestate"), ["foo=1"]);
    }

    #[test]
    fn empty_tracestate_is_never_written() {
        let (_, out) = round_trip(&[("traceparent", GOOD)]);
        assert_eq!(lines(&out, "traceparent"), [GOOD]);
        assert!(out.get("tracestate").is_none(), "{out:?}");
        let (_, out) = round_trip(&[("traceparent", GOOD), ("tracestate", " ")]);
        assert!(out.get("tracestate").is_none(), "{out:?}");
        // The upstream propagator writes an empty value; the injector drops it.
        let mut out = http::HeaderMap::new();
        let cx = extract(&default_propagator(), &headers(&[("traceparent", GOOD)]));
        inject(
            &opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            &cx,
            &mut out,
        );
        assert_eq!(lines(&out, "traceparent"), [GOOD]);
        assert!(out.get("tracestate").is_none(), "{out:?}");
    }

    #[test]
    fn invalid_tracestate_is_dropped_but_parent_kept() {
        let (sc, out) = round_trip(&[("traceparent", GOOD), ("tracestate", "BAD KEY=1")]);
        assert!(sc.is_valid());
        assert_eq!(sc.trace_state().header(), "");
        assert_eq!(lines(&out, "traceparent"), [GOOD]);
        assert!(out.get("tracestate").is_none());
    }

    #[test]
    fn baggage_is_bounded() {
        let p = default_propagator();
        let members: Vec<String> = (0..100).map(|i| format!("k{i}=v{i}")).collect();
        let cx = extract(&p, &headers(&[("baggage", &members.join(","))]));
        // The first 64 members are kept, the rest dropped: a bound that an
        // empty result would also meet proves nothing, so count exactly.
        assert_eq!(cx.baggage().len(), 64, "members kept");
        assert_eq!(
            cx.baggage().get("k0").map(|v| v.to_string()).as_deref(),
            Some("v0")
        );
        let huge = format!("k={}", "x".repeat(9000));
        let cx = extract(&p, &headers(&[("baggage", &huge)]));
        assert_eq!(cx.baggage().len(), 0);
        let cx = extract(&p, &headers(&[("baggage", "user=alice,tier=gold")]));
        assert_eq!(
            cx.baggage().get("tier").map(|v| v.to_string()).as_deref(),
            Some("gold")
        );
    }

    #[test]
    fn none_propagator_neither_injects_nor_extracts() {
        let p = propagator_for(&[]);
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let mut out = http::HeaderMap::new();
        inject(&p, &cx, &mut out);
        assert!(out.is_empty());
        let cx = extract(&p, &headers(&[("traceparent", GOOD)]));
        assert!(!cx.span().span_context().is_valid());
    }
}
