//! How an OTLP metric is named and labelled once it reaches Prometheus on
//! the push path: Prometheus 3's OTLP receiver with
//! `translation_strategy: UnderscoreEscapingWithSuffixes` (the default, and
//! what `deploy/prometheus/otlp.yml` sets), following
//! prometheus/otlptranslator (`metric_namer.go`, `unit_namer.go`,
//! `label_namer.go`). Tests compare it with what the engines' `/metrics`
//! expose, so "one set of dashboards serves both paths" is checked, not
//! assumed.
//!
//! ```
//! use monitoring::push_path::{Kind, prometheus_names};
//! assert_eq!(
//!     prometheus_names("http.server.request.duration", "s", Kind::Histogram),
//!     ["http_server_request_duration_seconds_bucket", "http_server_request_duration_seconds_sum", "http_server_request_duration_seconds_count"]
//! );
//! assert_eq!(prometheus_names("cache.lookups", "{lookup}", Kind::MonotonicSum), ["cache_lookups_total"]);
//! ```

/// The OTLP metric kinds, as the translator distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic sum (Counter): `_total`.
    MonotonicSum,
    /// A non-monotonic sum (UpDownCounter): no type suffix.
    Sum,
    /// A gauge: `_ratio` when its unit is `1`.
    Gauge,
    /// An explicit-bucket histogram: `_bucket`, `_sum`, `_count`.
    Histogram,
}

/// OTel unit → Prometheus unit word (otlptranslator's unit map).
fn main_unit(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

/// The per-unit word after `/` (`m/s` → `per_second`).
fn per_unit(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// Keeps only characters a metric name may hold, as otlptranslator's
/// `cleanUpUnit` does for units that are not in the map.
fn clean(word: &str) -> String {
    word.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

fn unit_words(unit: &str) -> (Option<String>, Option<String>) {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m.trim(), Some(p.trim())),
        None => (unit.trim(), None),
    };
    // Annotations (`{request}`) and the dimensionless `1` add no word.
    let word = |u: &str, map: fn(&str) -> Option<&'static str>| -> Option<String> {
        if u.is_empty() || u.contains('{') || u == "1" {
            return None;
        }
        Some(map(u).map(str::to_string).unwrap_or_else(|| clean(u))).filter(|w| !w.is_empty())
    };
    (word(main, main_unit), per.and_then(|p| word(p, per_unit)))
}

/// The series names the metric becomes.
pub fn prometheus_names(name: &str, unit: &str, kind: Kind) -> Vec<String> {
    // Tokens of letters, digits and `:`: dots, underscores and runs of
    // anything else become one `_` (the translator splits on `_` too).
    let mut tokens: Vec<String> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let (main, per) = unit_words(unit);
    if let Some(m) = main
        && !tokens.contains(&m)
    {
        tokens.push(m);
    }
    if let Some(p) = per
        && !tokens.contains(&p)
    {
        tokens.push("per".into());
        tokens.push(p);
    }
    if kind == Kind::MonotonicSum {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == Kind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let mut base = tokens.join("_");
    if base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert(0, '_');
    }
    match kind {
        Kind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{base}{s}"))
            .collect(),
        _ => vec![base],
    }
}

/// An attribute key as a label name: every character outside
/// `[a-zA-Z0-9_]` becomes `_`; a leading digit gets `key_`.
pub fn label_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_translator() {
        assert_eq!(
            prometheus_names("system.cpu.utilization", "1", Kind::Gauge),
            ["system_cpu_utilization_ratio"]
        );
        assert_eq!(
            prometheus_names("queue.fill", "1", Kind::Sum),
            ["queue_fill"]
        );
        assert_eq!(
            prometheus_names("requests.total", "{request}", Kind::MonotonicSum),
            ["requests_total"]
        );
        assert_eq!(
            prometheus_names("disk.io", "By", Kind::MonotonicSum),
            ["disk_io_bytes_total"]
        );
        assert_eq!(
            prometheus_names("speed", "m/s", Kind::Gauge),
            ["speed_meters_per_second"]
        );
        assert_eq!(
            prometheus_names("process.uptime", "s", Kind::Gauge),
            ["process_uptime_seconds"]
        );
        assert_eq!(
            prometheus_names("latency.seconds", "s", Kind::Gauge),
            ["latency_seconds"]
        );
        assert_eq!(prometheus_names("a..b__c", "", Kind::Gauge), ["a_b_c"]);
        assert_eq!(
            prometheus_names("latency_seconds", "s", Kind::Gauge),
            ["latency_seconds"]
        );
        assert_eq!(prometheus_names("5xx", "", Kind::Gauge), ["_5xx"]);
    }

    #[test]
    fn labels_replace_every_invalid_character() {
        assert_eq!(
            label_name("http.response.status_code"),
            "http_response_status_code"
        );
        assert_eq!(label_name("k8s.pod.name"), "k8s_pod_name");
        assert_eq!(label_name("2fa"), "key_2fa");
    }
}
