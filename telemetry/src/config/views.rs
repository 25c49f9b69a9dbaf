//! Metric views from the configuration file (`meter_provider.views`):
//! which instruments a view selects and what stream it makes of them.

use opentelemetry_sdk::metrics::{Aggregation, Instrument, InstrumentKind, Stream};

/// The largest `cardinality_limit` a view may set. The SDK reserves a hash
/// table for the whole limit when each selected instrument is created, up
/// to 70 bytes of address space and 2 bytes resident per series of the
/// limit: 100,000 reserves 4 MB per instrument; 10⁸ made 130 MB resident per
/// instrument; a billion aborts the service.
pub const MAX_CARDINALITY_LIMIT: usize = 100_000;

/// One view: the first view whose selector matches an instrument decides
/// its stream; instruments no view selects keep telemetry's defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ViewConfig {
    /// Which instruments.
    pub selector: ViewSelector,
    /// What they become.
    pub stream: ViewStream,
}

/// Criteria that must all hold; an unset criterion matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ViewSelector {
    /// Instrument name, exact or with `*` and `?` wildcards.
    pub instrument_name: Option<String>,
    /// Instrument kind.
    pub instrument_kind: Option<InstrumentKind>,
    /// Unit, exact.
    pub unit: Option<String>,
    /// Meter (instrumentation scope) name, exact.
    pub meter_name: Option<String>,
    /// Meter version, exact.
    pub meter_version: Option<String>,
    /// Meter schema URL, exact.
    pub meter_schema_url: Option<String>,
}

/// The stream a view makes; unset fields keep the instrument's own.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ViewStream {
    /// New name (only when the selector names one instrument).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Aggregation; `None` keeps telemetry's default for the instrument.
    pub aggregation: Option<Aggregation>,
    /// Most attribute sets per collection, at most [`MAX_CARDINALITY_LIMIT`]
    /// (the configuration file refuses a larger one).
    pub cardinality_limit: Option<usize>,
    /// Attribute keys kept; every other key is dropped.
    pub attribute_keys: Option<Vec<String>>,
}

impl ViewConfig {
    /// Whether the view selects `inst`.
    pub(crate) fn selects(&self, inst: &Instrument) -> bool {
        let s = &self.selector;
        let scope = inst.scope();
        s.instrument_name
            .as_deref()
            .is_none_or(|pattern| wildcard(pattern, inst.name()))
            && s.instrument_kind.is_none_or(|k| k == inst.kind())
            && s.unit.as_deref().is_none_or(|u| u == inst.unit())
            && s.meter_name.as_deref().is_none_or(|n| n == scope.name())
            && s.meter_version
                .as_deref()
                .is_none_or(|v| scope.version() == Some(v))
            && s.meter_schema_url
                .as_deref()
                .is_none_or(|u| scope.schema_url() == Some(u))
    }

    /// The stream for a selected instrument; `default_aggregation` is what
    /// telemetry would have chosen without the view.
    pub(crate) fn stream(&self, default_aggregation: Option<Aggregation>) -> Option<Stream> {
        let s = &self.stream;
        let mut builder = Stream::builder();
        if let Some(name) = &s.name {
            builder = builder.with_name(name.clone());
        }
        if let Some(description) = &s.description {
            builder = builder.with_description(description.clone());
        }
        if let Some(aggregation) = s.aggregation.clone().or(default_aggregation) {
            builder = builder.with_aggregation(aggregation);
        }
        if let Some(limit) = s.cardinality_limit {
            builder = builder.with_cardinality_limit(limit);
        }
        if let Some(keys) = &s.attribute_keys {
            builder = builder
                .with_allowed_attribute_keys(keys.iter().cloned().map(opentelemetry::Key::from));
        }
        builder.build().ok()
    }
}

/// `*` matches any run of characters, `?` any one.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_as_the_schema_describes() {
        for (pattern, text, expected) in [
            (
                "http.server.request.duration",
                "http.server.request.duration",
                true,
            ),
            ("http.*", "http.server.request.duration", true),
            ("*.duration", "http.server.request.duration", true),
            ("*", "", true),
            ("deltran.?ayments", "deltran.payments", true),
            ("deltran.?ayments", "deltran.pppayments", false),
            ("http.*.duration", "http.client.request.size", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("exact", "exactly", false),
        ] {
            assert_eq!(wildcard(pattern, text), expected, "{pattern} vs {text}");
        }
    }
}
