//! Service level objectives, declared in `deploy/slo/*.yaml`, turned into
//! multi-window, multi-burn-rate recording and alert rules (the shape of
//! the Google SRE workbook, as Sloth and Pyrra generate it):
//!
//! | severity | burn rate | long window | short window |
//! |---|---|---|---|
//! | critical (page) | 14.4× | 1 h | 5 m |
//! | critical (page) | 6× | 6 h | 30 m |
//! | warning (ticket) | 3× | 1 d | 2 h |
//! | warning (ticket) | 1× | 3 d | 6 h |
//!
//! Each alert also needs `min_events` requests in its long window, so a
//! handful of requests at night cannot page anyone.
//!
//! ```
//! let spec: monitoring::slo::SloFile = serde_yaml_ng::from_str(r#"
//! service: gateway
//! slos:
//!   - name: gateway-payments-availability
//!     description: POST /payments answered without a server error.
//!     objective: 99.9
//!     window: 30d
//!     min_events: 100
//!     runbook: slo-gateway-payments.md
//!     sli:
//!       availability:
//!         histogram: http_server_request_duration_seconds
//!         selector: service_name="gateway", http_route="/payments"
//!         errors: http_response_status_code=~"5.."
//! "#).unwrap();
//! let rules = monitoring::slo::render(&[spec], "https://example.com/runbooks/").unwrap();
//! assert!(rules.contains("alert: GatewayPaymentsAvailabilityErrorBudgetBurn"));
//! ```

use std::fmt::Write as _;

use serde::Deserialize;

use crate::duration::PromDuration;

/// One `deploy/slo/*.yaml` file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    /// The service the objectives are about (`service_name`).
    pub service: String,
    /// Its objectives.
    pub slos: Vec<Slo>,
}

/// One objective.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Unique name, lower-case words joined by `-` (the `slo` label).
    pub name: String,
    /// What a good event is, for people.
    pub description: String,
    /// Target share of good events, in percent (e.g. `99.9`).
    pub objective: f64,
    /// The compliance window (`30d`).
    pub window: String,
    /// Events a long window must hold before its alert may fire.
    pub min_events: u64,
    /// Runbook file in `deploy/runbooks/`.
    pub runbook: String,
    /// How events are counted (`availability:` or `latency:`).
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub sli: Sli,
}

/// The two kinds of indicator, both read from one histogram.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Sli {
    /// Bad events are those matching `errors`.
    Availability {
        /// Histogram base name (`…_count` counts events).
        histogram: String,
        /// Label matchers selecting the events.
        selector: String,
        /// Extra matchers selecting the bad ones.
        errors: String,
    },
    /// Bad events are those slower than `threshold` seconds.
    Latency {
        /// Histogram base name (`…_bucket{le}` and `…_count`).
        histogram: String,
        /// Label matchers selecting the events.
        selector: String,
        /// Seconds; must be one of the histogram's bucket boundaries.
        threshold: f64,
    },
}

/// A declaration that cannot become rules; says what to change.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SloError {
    /// Objective outside (0, 100).
    #[error("SLO {slo}: objective {value} must be a percentage above 0 and below 100, e.g. 99.9")]
    Objective {
        /// The SLO.
        slo: String,
        /// What was given.
        value: f64,
    },
    /// Window other than the 30 days the burn rates are tuned for.
    #[error(
        "SLO {slo}: window {value:?} must be 30d: the burn rates (14.4x, 6x, 3x, 1x over 1h to 3d) spend 2%, 5%, 10% of a 30-day budget; other windows would need other rates"
    )]
    Window {
        /// The SLO.
        slo: String,
        /// What was given.
        value: String,
    },
    /// A threshold that is no bucket boundary cannot be counted exactly.
    #[error(
        "SLO {slo}: latency threshold {value} s is not a bucket boundary of the engines' seconds histograms; use one of {buckets:?}"
    )]
    Threshold {
        /// The SLO.
        slo: String,
        /// What was given.
        value: f64,
        /// The boundaries.
        buckets: Vec<f64>,
    },
    /// Names become labels and alert names.
    #[error(
        "SLO {slo:?}: name must be lower-case words joined by '-', e.g. gateway-payments-availability"
    )]
    Name {
        /// What was given.
        slo: String,
    },
    /// Two objectives with one name.
    #[error("SLO {slo}: declared twice; names must be unique")]
    Duplicate {
        /// The SLO.
        slo: String,
    },
    /// A selector PromQL refuses.
    #[error("SLO {slo}: selector does not parse as PromQL label matchers: {message}")]
    Selector {
        /// The SLO.
        slo: String,
        /// The parser's message.
        message: String,
    },
    /// An empty file.
    #[error("SLO file for {service}: declares no objectives")]
    Empty {
        /// The service.
        service: String,
    },
}

/// Rounded to nine decimals, so 100 - 99.9 prints as 0.001, not
/// 0.0009999999999990905.
fn rounded(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// The alerting windows: (severity, burn rate, long, short).
pub const BURN_WINDOWS: [(&str, f64, &str, &str); 4] = [
    ("critical", 14.4, "1h", "5m"),
    ("critical", 6.0, "6h", "30m"),
    ("warning", 3.0, "1d", "2h"),
    ("warning", 1.0, "3d", "6h"),
];

/// Windows recorded in the fast group (evaluated with the global interval,
/// beside the page alert that reads them).
const FAST_WINDOWS: [&str; 5] = ["5m", "30m", "1h", "2h", "6h"];

/// Windows recorded once a minute: days of samples per evaluation, read
/// only by the ticket alert and the dashboards.
const SLOW_WINDOWS: [&str; 2] = ["1d", "3d"];

/// How often the slow group is evaluated.
const SLOW_INTERVAL: &str = "1m";

/// The labels SLO series keep (both metric paths carry them).
const KEEP: &str = "deployment_environment_name, service_namespace, service_name";

impl Slo {
    fn validate(&self) -> Result<(), SloError> {
        let name_ok = !self.name.is_empty()
            && self.name.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !name_ok {
            return Err(SloError::Name {
                slo: self.name.clone(),
            });
        }
        if !(self.objective > 0.0 && self.objective < 100.0) {
            return Err(SloError::Objective {
                slo: self.name.clone(),
                value: self.objective,
            });
        }
        let window_ok = PromDuration::parse(&self.window)
            .is_ok_and(|w| w == PromDuration::from_millis(30 * 24 * 3_600_000));
        if !window_ok {
            return Err(SloError::Window {
                slo: self.name.clone(),
                value: self.window.clone(),
            });
        }
        let (selector, extra) = match &self.sli {
            Sli::Availability {
                selector, errors, ..
            } => (selector, Some(errors)),
            Sli::Latency {
                selector,
                threshold,
                ..
            } => {
                let buckets = telemetry::SECONDS_BUCKETS.to_vec();
                if !buckets.iter().any(|b| (b - threshold).abs() < 1e-12) {
                    return Err(SloError::Threshold {
                        slo: self.name.clone(),
                        value: *threshold,
                        buckets,
                    });
                }
                (selector, None)
            }
        };
        for matchers in std::iter::once(selector).chain(extra) {
            promql_parser::parser::parse(&format!("x{{{matchers}}}")).map_err(|message| {
                SloError::Selector {
                    slo: self.name.clone(),
                    message,
                }
            })?;
        }
        Ok(())
    }

    /// The error budget as a ratio (`0.001` for 99.9 %).
    pub fn error_budget(&self) -> f64 {
        rounded((100.0 - self.objective) / 100.0)
    }

    /// The objective as a ratio (`0.999` for 99.9 %).
    pub fn objective_ratio(&self) -> f64 {
        rounded(self.objective / 100.0)
    }

    /// The generated alert's name: `gateway-payments-availability` →
    /// `GatewayPaymentsAvailabilityErrorBudgetBurn`.
    pub fn alert_name(&self) -> String {
        let mut name: String = self
            .name
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        name.push_str("ErrorBudgetBurn");
        name
    }

    fn events(&self, window: &str) -> String {
        let (histogram, selector) = match &self.sli {
            Sli::Availability {
                histogram,
                selector,
                ..
            }
            | Sli::Latency {
                histogram,
                selector,
                ..
            } => (histogram, selector),
        };
        format!("sum by ({KEEP}) (rate({histogram}_count{{{selector}}}[{window}]))")
    }

    fn errors(&self, window: &str) -> String {
        match &self.sli {
            Sli::Availability {
                histogram,
                selector,
                errors,
            } => format!(
                "sum by ({KEEP}) (rate({histogram}_count{{{selector}, {errors}}}[{window}])) or {} * 0",
                self.events(window)
            ),
            Sli::Latency {
                histogram,
                selector,
                threshold,
            } => format!(
                "{} - sum by ({KEEP}) (rate({histogram}_bucket{{{selector}, {}}}[{window}]))",
                self.events(window),
                le_matcher(*threshold)
            ),
        }
    }
}

/// Selects one bucket: Prometheus 2 keeps `le` as exposed (`1`), Prometheus 3
/// normalises whole numbers to `1.0`; both must match.
fn le_matcher(threshold: f64) -> String {
    if threshold.fract() == 0.0 {
        format!("le=~\"{threshold}(\\\\.0)?\"")
    } else {
        format!("le=\"{threshold}\"")
    }
}

fn rule(out: &mut String, record: &str, expr: &str, slo: &str) {
    let _ = write!(
        out,
        "      - record: {record}\n        expr: {}\n        labels:\n          slo: {slo}\n",
        yaml_string(expr)
    );
}

/// A YAML double-quoted scalar.
fn yaml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Renders every objective of `files` as one Prometheus rule file;
/// `runbook_base` is prefixed to each runbook file name.
pub fn render(files: &[SloFile], runbook_base: &str) -> Result<String, SloError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::from(
        "# Generated from deploy/slo/*.yaml by `cargo run -p monitoring -- generate`; do not edit.\n\
         # Multi-window, multi-burn-rate SLO rules: see deploy/monitoring/src/slo.rs.\n\
         groups:\n",
    );
    for file in files {
        if file.slos.is_empty() {
            return Err(SloError::Empty {
                service: file.service.clone(),
            });
        }
        for slo in &file.slos {
            slo.validate()?;
            if !seen.insert(slo.name.clone()) {
                return Err(SloError::Duplicate {
                    slo: slo.name.clone(),
                });
            }
            render_slo(&mut out, &file.service, slo, runbook_base);
        }
    }
    Ok(out)
}

fn render_slo(out: &mut String, service: &str, slo: &Slo, runbook_base: &str) {
    let name = &slo.name;
    let budget = slo.error_budget();
    let sel = format!("slo=\"{name}\"");
    let ratios = |out: &mut String, windows: &[&str]| {
        for w in windows {
            rule(
                out,
                &format!("slo:sli_events:rate{w}"),
                &slo.events(w),
                name,
            );
            rule(
                out,
                &format!("slo:sli_errors:rate{w}"),
                &slo.errors(w),
                name,
            );
            rule(
                out,
                &format!("slo:sli_error:ratio_rate{w}"),
                &format!("slo:sli_errors:rate{w}{{{sel}}} / slo:sli_events:rate{w}{{{sel}}}"),
                name,
            );
        }
    };
    let _ = write!(out, "  - name: slo-{name}\n    rules:\n");
    rule(
        out,
        "slo:objective:ratio",
        &format!("vector({})", slo.objective_ratio()),
        name,
    );
    rule(
        out,
        "slo:error_budget:ratio",
        &format!("vector({budget})"),
        name,
    );
    ratios(out, &FAST_WINDOWS);
    render_alert(out, service, slo, "critical", runbook_base);
    let _ = write!(
        out,
        "  - name: slo-{name}-long-windows\n    interval: {SLOW_INTERVAL}\n    rules:\n"
    );
    ratios(out, &SLOW_WINDOWS);
    let window = &slo.window;
    rule(
        out,
        &format!("slo:sli_error:ratio_rate{window}"),
        &format!(
            "sum_over_time(slo:sli_errors:rate5m{{{sel}}}[{window}]) / sum_over_time(slo:sli_events:rate5m{{{sel}}}[{window}])"
        ),
        name,
    );
    rule(
        out,
        "slo:error_budget_remaining:ratio",
        &format!("1 - slo:sli_error:ratio_rate{window}{{{sel}}} / {budget}"),
        name,
    );
    render_alert(out, service, slo, "warning", runbook_base);
}

fn render_alert(out: &mut String, service: &str, slo: &Slo, severity: &str, runbook_base: &str) {
    let name = &slo.name;
    let window = &slo.window;
    let budget = slo.error_budget();
    let sel = format!("slo=\"{name}\"");
    let alert = slo.alert_name();
    let runbook = format!("{runbook_base}{}", slo.runbook);
    let branches: Vec<String> = BURN_WINDOWS
        .iter()
        .filter(|(s, ..)| *s == severity)
        .map(|(_, burn, long, short)| {
            let seconds = PromDuration::parse(long).map_or(0.0, PromDuration::as_secs_f64);
            format!(
                "(\n            slo:sli_error:ratio_rate{long}{{{sel}}} > ({burn} * {budget})\n            and slo:sli_error:ratio_rate{short}{{{sel}}} > ({burn} * {budget})\n            and slo:sli_events:rate{long}{{{sel}}} * {seconds} >= {min}\n          )",
                min = slo.min_events
            )
        })
        .collect();
    let (for_, kind, windows) = if severity == "critical" {
        ("2m", "page", "14.4x over 1h and 5m, or 6x over 6h and 30m")
    } else {
        ("15m", "ticket", "3x over 1d and 2h, or 1x over 3d and 6h")
    };
    let _ = write!(
        out,
        "      - alert: {alert}\n        expr: |\n          {}\n        for: {for_}\n        labels:\n          severity: {severity}\n          slo: {name}\n          service_name: {service}\n        annotations:\n          summary: {}\n          description: {}\n          runbook_url: {runbook}\n",
        branches.join("\n          or\n          "),
        yaml_string(&format!(
            "{service} is burning the error budget of SLO {name} too fast ({kind})"
        )),
        yaml_string(&format!(
            "{} Objective {}% over {window}; the error ratio over the long window is {{{{ $value | humanizePercentage }}}} against a budget of {}% (burn rate {windows}). At this pace the budget is gone before the window ends.",
            slo.description,
            slo.objective,
            budget * 100.0
        )),
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(objective: f64, window: &str, threshold: f64) -> SloFile {
        SloFile {
            service: "gateway".into(),
            slos: vec![Slo {
                name: "gateway-payments-latency".into(),
                description: "fast".into(),
                objective,
                window: window.into(),
                min_events: 10,
                runbook: "r.md".into(),
                sli: Sli::Latency {
                    histogram: "h".into(),
                    selector: r#"service_name="gateway""#.into(),
                    threshold,
                },
            }],
        }
    }

    #[test]
    fn bad_declarations_say_what_to_change() {
        let e = render(&[spec(100.0, "30d", 0.5)], "").unwrap_err();
        assert!(e.to_string().contains("objective 100"), "{e}");
        let e = render(&[spec(99.0, "1d", 0.5)], "").unwrap_err();
        assert!(e.to_string().contains("must be 30d"), "{e}");
        let e = render(&[spec(99.0, "28d", 0.5)], "").unwrap_err();
        assert!(matches!(e, SloError::Window { .. }), "{e}");
        let e = render(&[spec(99.0, "thirty days", 0.5)], "").unwrap_err();
        assert!(matches!(e, SloError::Window { .. }), "{e}");
        let e = render(&[spec(99.0, "30d", 0.3)], "").unwrap_err();
        assert!(e.to_string().contains("not a bucket boundary"), "{e}");
        let mut twice = spec(99.0, "30d", 0.5);
        twice.slos.push(twice.slos[0].clone());
        assert!(matches!(
            render(&[twice], "").unwrap_err(),
            SloError::Duplicate { .. }
        ));
        let mut bad_name = spec(99.0, "30d", 0.5);
        bad_name.slos[0].name = "Gateway Latency".into();
        assert!(matches!(
            render(&[bad_name], "").unwrap_err(),
            SloError::Name { .. }
        ));
        let mut bad_selector = spec(99.0, "30d", 0.5);
        if let Sli::Latency { selector, .. } = &mut bad_selector.slos[0].sli {
            *selector = "service_name=gateway".into();
        }
        assert!(matches!(
            render(&[bad_selector], "").unwrap_err(),
            SloError::Selector { .. }
        ));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e =
            serde_yaml_ng::from_str::<SloFile>("service: x\nslos: []\nowner: me\n").unwrap_err();
        assert!(e.to_string().contains("owner"), "{e}");
    }

    #[test]
    fn budgets_and_alert_names() {
        let s = &spec(99.9, "30d", 0.5).slos[0];
        assert_eq!(s.error_budget(), 0.001);
        assert_eq!(s.alert_name(), "GatewayPaymentsLatencyErrorBudgetBurn");
    }

    #[test]
    fn every_generated_expression_parses_and_every_window_is_recorded() {
        let text = render(&[spec(99.0, "30d", 0.5)], "https://x/").unwrap();
        let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let rules: Vec<&serde_yaml_ng::Value> = parsed["groups"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_sequence().unwrap())
            .collect();
        assert_eq!(
            parsed["groups"][1]["interval"], "1m",
            "days-long windows once a minute"
        );
        for r in &rules {
            let expr = r["expr"].as_str().unwrap();
            crate::promql::selectors(expr).unwrap();
        }
        for w in FAST_WINDOWS
            .iter()
            .chain(&SLOW_WINDOWS)
            .chain(["30d"].iter())
        {
            let record = format!("slo:sli_error:ratio_rate{w}");
            assert!(
                rules.iter().any(|r| r["record"].as_str() == Some(&record)),
                "{record}"
            );
        }
        let alerts: Vec<_> = rules.iter().filter(|r| r["alert"].is_string()).collect();
        assert_eq!(alerts.len(), 2);
        assert!(
            alerts[0]["expr"]
                .as_str()
                .unwrap()
                .contains("ratio_rate1h{slo=\"gateway-payments-latency\"} > (14.4 * 0.01)")
        );
        assert!(
            alerts[1]["expr"]
                .as_str()
                .unwrap()
                .contains("* 259200 >= 10")
        );
    }
}
