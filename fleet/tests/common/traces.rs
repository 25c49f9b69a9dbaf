//! What a complete payment trace is, as `fleet_otlp.rs` asserts it for the
//! payments it follows, as one function that lists what is missing: a
//! payment's trace holds every engine on its path under one root, its HTTP
//! and NATS hops are parent-child, and the clearing window that settled it
//! is its own trace, linked to it, with the ledger writes.

use std::collections::{BTreeSet, HashMap};

use telemetry::testing::{ReceivedSpan, SpanKind};

/// The engines every accepted payment's own trace passes through.
pub const PAYMENT_PATH: [&str; 7] = [
    "gateway",
    "compliance-engine",
    "risk-engine",
    "token-engine",
    "obligation-engine",
    "clearing-engine",
    "settlement-engine",
];

/// The `service.name` of a span's resource.
pub fn service(s: &ReceivedSpan) -> &str {
    s.resource.str("service.name").unwrap_or("")
}

/// Received spans indexed by span id, trace id and the spans that
/// clearing windows link to.
pub struct SpanIndex<'a> {
    by_id: HashMap<&'a str, &'a ReceivedSpan>,
    by_trace: HashMap<&'a str, Vec<&'a ReceivedSpan>>,
    window_of: HashMap<&'a str, &'a ReceivedSpan>,
}

impl<'a> SpanIndex<'a> {
    pub fn new(spans: &'a [ReceivedSpan]) -> SpanIndex<'a> {
        let mut index = SpanIndex {
            by_id: HashMap::new(),
            by_trace: HashMap::new(),
            window_of: HashMap::new(),
        };
        for s in spans {
            index.by_id.insert(&s.span_id, s);
            index.by_trace.entry(&s.trace_id).or_default().push(s);
            if s.name == "clear window" {
                for l in &s.links {
                    index.window_of.insert(&l.span_id, s);
                }
            }
        }
        index
    }

    /// The spans of one trace (duplicates included, if any arrived twice).
    pub fn trace(&self, trace_id: &str) -> &[&'a ReceivedSpan] {
        self.by_trace
            .get(trace_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn parent_of(&self, s: &ReceivedSpan) -> Option<&'a ReceivedSpan> {
        s.parent_span_id
            .as_deref()
            .and_then(|p| self.by_id.get(p).copied())
    }

    /// What keeps any payment's trace from being whole, whatever its
    /// outcome: exactly one root (the gateway's `POST /payments`) and no
    /// span whose parent is missing. Empty when it is whole.
    pub fn trace_gaps(&self, trace_id: &str) -> Vec<String> {
        let mut gaps = Vec::new();
        let trace = self.trace(trace_id);
        // Exactly one root: the gateway's server span.
        let mut roots = BTreeSet::new();
        for s in trace.iter().filter(|s| s.parent_span_id.is_none()) {
            roots.insert(&s.span_id);
        }
        let root = trace.iter().find(|s| s.parent_span_id.is_none());
        match (roots.len(), root) {
            (1, Some(r)) if r.name == "POST /payments" && service(r) == "gateway" => {}
            _ => gaps.push(format!(
                "roots {:?}",
                trace
                    .iter()
                    .filter(|s| s.parent_span_id.is_none())
                    .map(|s| (&s.name, service(s)))
                    .collect::<Vec<_>>()
            )),
        }
        // Every other span's parent is in the same trace (nothing dangling).
        for s in trace {
            if s.parent_span_id.is_some()
                && self.parent_of(s).is_none_or(|p| p.trace_id != trace_id)
            {
                gaps.push(format!(
                    "{} ({}) has no parent in the trace",
                    s.name,
                    service(s)
                ));
            }
        }
        gaps
    }

    /// What keeps the trace of an accepted, settled payment from being
    /// complete; empty when it is complete.
    pub fn payment_trace_gaps(&self, trace_id: &str) -> Vec<String> {
        let mut gaps = Vec::new();
        let trace = self.trace(trace_id);
        let find = |name: &str| trace.iter().copied().find(|s| s.name == name);
        let services: BTreeSet<&str> = trace.iter().map(|s| service(s)).collect();
        for engine in PAYMENT_PATH {
            if !services.contains(engine) {
                gaps.push(format!("no {engine} span"));
            }
        }
        gaps.extend(self.trace_gaps(trace_id));
        // HTTP hops: each engine's server span is the child of a gateway
        // client span, itself the child of the root.
        for (engine, route) in [
            ("compliance-engine", "POST /screenings"),
            ("risk-engine", "POST /assessments"),
            ("token-engine", "POST /transfers"),
            ("obligation-engine", "POST /obligations"),
        ] {
            let server = trace
                .iter()
                .find(|s| service(s) == engine && s.name == route && s.kind == SpanKind::Server);
            let Some(server) = server else {
                gaps.push(format!("no {route} server span on {engine}"));
                continue;
            };
            let client = self.parent_of(server);
            let hop_ok = client.is_some_and(|c| {
                service(c) == "gateway"
                    && c.kind == SpanKind::Client
                    && self
                        .parent_of(c)
                        .is_some_and(|p| p.name == "POST /payments")
            });
            if !hop_ok {
                gaps.push(format!(
                    "{engine}'s {route} is not the child of a gateway client span under the root"
                ));
            }
        }
        // NATS hop: obligation-engine publishes, clearing-engine processes as its child.
        let publish = find("publish deltran.obligations.created");
        let process = find("process deltran.obligations.created");
        match publish {
            Some(p) if (service(p), p.kind) == ("obligation-engine", SpanKind::Producer) => {}
            _ => gaps.push("no obligation-engine producer span".into()),
        }
        match (process, publish) {
            (Some(c), Some(p))
                if (service(c), c.kind) == ("clearing-engine", SpanKind::Consumer)
                    && c.parent_span_id.as_deref() == Some(p.span_id.as_str()) => {}
            _ => gaps.push("no clearing-engine consumer span under the publish".into()),
        }
        // The clearing window is its own trace, linked to this obligation.
        match process.and_then(|c| self.window_of.get(c.span_id.as_str()).copied()) {
            None => gaps.push("no clearing window links to its obligation".into()),
            Some(window) if window.trace_id == trace_id => {
                gaps.push("the clearing window shares the payment's trace".into())
            }
            Some(window) => {
                let window_trace = self.trace(&window.trace_id);
                let window_services: BTreeSet<&str> =
                    window_trace.iter().map(|s| service(s)).collect();
                for engine in ["clearing-engine", "liquidity-router", "settlement-engine"] {
                    if !window_services.contains(engine) {
                        gaps.push(format!("window trace lacks {engine}"));
                    }
                }
                let db = window_trace
                    .iter()
                    .filter(|s| s.kind == SpanKind::Client && service(s) == "settlement-engine")
                    .count();
                if db < 3 {
                    gaps.push(format!("{db} ledger writes in the window trace"));
                }
            }
        }
        // Settlement comes back into the payment's trace, linked to the batch,
        // and the gateway and token-engine consume the event as children of
        // its publish.
        let settle = find("settle payment");
        match settle {
            Some(s) if service(s) == "settlement-engine" && !s.links.is_empty() => {}
            _ => gaps.push("no settle payment span linked to its batch".into()),
        }
        let settled = find("publish deltran.payments.settled");
        match (settled, settle) {
            (Some(p), Some(s)) if p.parent_span_id.as_deref() == Some(s.span_id.as_str()) => {
                let consumers: BTreeSet<&str> = trace
                    .iter()
                    .filter(|c| {
                        c.name == "process deltran.payments.settled"
                            && c.parent_span_id.as_deref() == Some(p.span_id.as_str())
                    })
                    .map(|c| service(c))
                    .collect();
                if consumers != BTreeSet::from(["gateway", "token-engine"]) {
                    gaps.push(format!("settled event consumers {consumers:?}"));
                }
            }
            _ => gaps.push("no settled publish under settle payment".into()),
        }
        gaps
    }
}
