//! What a PromQL expression reads: its series selectors, found by parsing
//! (promql-parser), never by pattern-matching text — so a test can prove
//! every metric a panel or rule names really exists.

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};

/// A label matcher of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMatcher {
    /// Label name.
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: &'static str,
    /// The value or regular expression.
    pub value: String,
}

/// One series selector (`name{label="x"}`) of an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The metric name, when the selector names one outright.
    pub name: Option<String>,
    /// Its matchers (for `{__name__=~"…"}` selectors, the name matcher too).
    pub matchers: Vec<LabelMatcher>,
}

impl Selector {
    /// The value an `=` matcher on `label` requires, if any.
    pub fn equals(&self, label: &str) -> Option<&str> {
        self.matchers
            .iter()
            .find(|m| m.label == label && m.op == "=")
            .map(|m| m.value.as_str())
    }

    /// Whether a metric called `name` is selected (name or `__name__` matchers).
    pub fn selects_name(&self, name: &str) -> bool {
        if let Some(n) = &self.name {
            return n == name;
        }
        self.matchers
            .iter()
            .filter(|m| m.label == "__name__")
            .all(|m| match m.op {
                "=" => m.value == name,
                "!=" => m.value != name,
                "=~" => full_match(&m.value, name),
                _ => !full_match(&m.value, name),
            })
    }
}

/// Anchored regular-expression match, as Prometheus does for `=~`.
fn full_match(re: &str, text: &str) -> bool {
    regex::Regex::new(&format!("^(?:{re})$")).is_ok_and(|r| r.is_match(text))
}

/// An expression that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("PromQL does not parse: {message}\n  in: {expr}")]
pub struct BadExpr {
    /// The expression.
    pub expr: String,
    /// The parser's message.
    pub message: String,
}

/// Every series selector in `expr`, in order of appearance.
pub fn selectors(expr: &str) -> Result<Vec<Selector>, BadExpr> {
    let parsed = parser::parse(expr).map_err(|message| BadExpr {
        expr: expr.to_string(),
        message,
    })?;
    let mut collect = Collect(Vec::new());
    // The visitor never fails.
    let _ = walk_expr(&mut collect, &parsed);
    Ok(collect.0)
}

/// The metric names an expression selects by name; `__name__` regex
/// selectors are matched against `known` and contribute what they select.
pub fn metric_names(expr: &str, known: &[&str]) -> Result<Vec<String>, BadExpr> {
    let mut names = Vec::new();
    for s in selectors(expr)? {
        match &s.name {
            Some(n) => names.push(n.clone()),
            None => names.extend(
                known
                    .iter()
                    .filter(|k| s.selects_name(k))
                    .map(|k| k.to_string()),
            ),
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Every range window in `expr` (`x[5m]`, subqueries' `[1h:]`).
pub fn range_windows(expr: &str) -> Result<Vec<std::time::Duration>, BadExpr> {
    let parsed = parser::parse(expr).map_err(|message| BadExpr {
        expr: expr.to_string(),
        message,
    })?;
    let mut ranges = Ranges(Vec::new());
    let _ = walk_expr(&mut ranges, &parsed);
    Ok(ranges.0)
}

struct Ranges(Vec<std::time::Duration>);

impl ExprVisitor for Ranges {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::MatrixSelector(ms) => self.0.push(ms.range),
            Expr::Subquery(sq) => self.0.push(sq.range),
            _ => {}
        }
        Ok(true)
    }
}

struct Collect(Vec<Selector>);

impl ExprVisitor for Collect {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        let matchers = vs
            .matchers
            .matchers
            .iter()
            .map(|m| LabelMatcher {
                label: m.name.clone(),
                op: match m.op {
                    MatchOp::Equal => "=",
                    MatchOp::NotEqual => "!=",
                    MatchOp::Re(_) => "=~",
                    MatchOp::NotRe(_) => "!~",
                },
                value: m.value.clone(),
            })
            .collect();
        self.0.push(Selector {
            name: vs.name.clone(),
            matchers,
        });
        Ok(true)
    }
}

/// Replaces Grafana's template variables in a panel query: `$__rate_interval`
/// (and `$__interval`, `$__range`) by `interval`, every `$name` or
/// `${name}` by its value in `vars`. A variable without a value is left as
/// it is, so the query then fails to parse and says which one.
pub fn expand_grafana(expr: &str, vars: &[(&str, &str)], interval: &str) -> String {
    let mut out = expr
        .replace("$__rate_interval", interval)
        .replace("${__rate_interval}", interval)
        .replace("$__interval", interval)
        .replace("$__range", interval);
    // Longest names first, so `$service` does not eat `$service_name`.
    let mut vars: Vec<&(&str, &str)> = vars.iter().collect();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_selector_inside_functions_and_binary_operators() {
        let s = selectors(
            r#"sum by (service_name) (rate(a_total{x="1"}[5m])) / on() group_left b or histogram_quantile(0.9, sum by (le) (rate(c_bucket[1m]))) > bool 3"#,
        )
        .unwrap();
        let names: Vec<_> = s.iter().map(|s| s.name.clone().unwrap()).collect();
        assert_eq!(names, ["a_total", "b", "c_bucket"]);
        assert_eq!(s[0].equals("x"), Some("1"));
    }

    #[test]
    fn name_regexes_select_from_the_known_names() {
        let known = [
            "otelcol_exporter_sent_spans_total",
            "otelcol_exporter_sent_log_records_total",
            "up",
        ];
        let names = metric_names(
            r#"rate({__name__=~"otelcol_exporter_sent_(spans|log_records)_total"}[5m])"#,
            &known,
        )
        .unwrap();
        assert_eq!(
            names,
            [
                "otelcol_exporter_sent_log_records_total",
                "otelcol_exporter_sent_spans_total"
            ]
        );
    }

    #[test]
    fn range_windows_are_read_from_the_syntax_tree() {
        let r = range_windows("rate(a[5m]) / max_over_time(b[1h:1m]) + c").unwrap();
        assert_eq!(
            r,
            [
                std::time::Duration::from_secs(300),
                std::time::Duration::from_secs(3600)
            ]
        );
    }

    #[test]
    fn a_broken_expression_is_an_error_naming_it() {
        let e = selectors("sum(rate(x[5m])").unwrap_err();
        assert!(e.to_string().contains("sum(rate(x[5m])"), "{e}");
    }

    #[test]
    fn grafana_variables_are_expanded_longest_first() {
        let q = expand_grafana(
            r#"rate(x{service_name=~"$service", env="${env}"}[$__rate_interval])"#,
            &[("service", "gateway"), ("env", "prod")],
            "1m",
        );
        assert_eq!(q, r#"rate(x{service_name=~"gateway", env="prod"}[1m])"#);
    }
}
