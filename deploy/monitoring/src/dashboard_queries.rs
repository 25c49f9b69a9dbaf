//! Dashboards read back from their JSON files the way Grafana reads them:
//! panels (inside collapsed rows too), their queries, and the template
//! variables with their `label_values()` queries.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A template variable.
#[derive(Clone, Debug)]
pub struct VariableModel {
    /// `$name`.
    pub name: String,
    /// `datasource`, `query`, ….
    pub kind: String,
    /// For `label_values(series, label)` variables: (series, label).
    pub label_values: Option<(String, String)>,
    /// Several values at once.
    pub multi: bool,
    /// "All" option and its value.
    pub all_value: Option<String>,
}

/// A panel query.
#[derive(Clone, Debug)]
pub struct TargetModel {
    /// `A`, `B`, ….
    pub ref_id: String,
    /// The PromQL, with variables unexpanded.
    pub expr: String,
    /// The datasource uid it names.
    pub datasource_uid: String,
}

/// A panel.
#[derive(Clone, Debug)]
pub struct PanelModel {
    /// Title.
    pub title: String,
    /// Grafana panel type.
    pub kind: String,
    /// Description (hover text).
    pub description: String,
    /// `fieldConfig.defaults.unit`.
    pub unit: Option<String>,
    /// `fieldConfig.defaults.noValue`.
    pub no_value: Option<String>,
    /// Its queries.
    pub targets: Vec<TargetModel>,
    /// The panel datasource uid.
    pub datasource_uid: String,
}

/// A dashboard.
#[derive(Clone, Debug)]
pub struct DashboardModel {
    /// The file.
    pub path: PathBuf,
    /// uid.
    pub uid: String,
    /// title.
    pub title: String,
    /// The raw JSON.
    pub json: Value,
    /// Template variables, in order.
    pub variables: Vec<VariableModel>,
    /// Every non-row panel.
    pub panels: Vec<PanelModel>,
}

/// A dashboard file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// `label_values(series, label)` → (series, label).
pub fn parse_label_values(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (series, label) = inner.rsplit_once(',')?;
    Some((series.trim().to_string(), label.trim().to_string()))
}

fn panel(p: &Value) -> PanelModel {
    PanelModel {
        title: s(&p["title"]),
        kind: s(&p["type"]),
        description: s(&p["description"]),
        unit: p["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .map(String::from),
        no_value: p["fieldConfig"]["defaults"]["noValue"]
            .as_str()
            .map(String::from),
        datasource_uid: s(&p["datasource"]["uid"]),
        targets: p["targets"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| TargetModel {
                        ref_id: s(&t["refId"]),
                        expr: s(&t["expr"]),
                        datasource_uid: s(&t["datasource"]["uid"]),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Reads one dashboard file.
pub fn load(path: &Path) -> Result<DashboardModel, LoadError> {
    let fail = |message: String| LoadError {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let mut panels = Vec::new();
    for p in json["panels"]
        .as_array()
        .ok_or_else(|| fail("no panels".into()))?
    {
        if p["type"] == "row" {
            panels.extend(p["panels"].as_array().into_iter().flatten().map(panel));
        } else {
            panels.push(panel(p));
        }
    }
    let variables = json["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let query = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .unwrap_or_default();
            VariableModel {
                name: s(&v["name"]),
                kind: s(&v["type"]),
                label_values: parse_label_values(query),
                multi: v["multi"].as_bool().unwrap_or(false),
                all_value: v["includeAll"]
                    .as_bool()
                    .unwrap_or(false)
                    .then(|| s(&v["allValue"])),
            }
        })
        .collect();
    Ok(DashboardModel {
        path: path.to_path_buf(),
        uid: s(&json["uid"]),
        title: s(&json["title"]),
        json,
        variables,
        panels,
    })
}

/// Every dashboard in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<DashboardModel>, LoadError> {
    crate::rules::files_with_extension(dir, &["json"])
        .map_err(|e| LoadError {
            path: e.path,
            message: e.message,
        })?
        .iter()
        .map(|p| load(p))
        .collect()
}

/// Every combination of variable values the dashboard offers: each real
/// value of each variable (as `label_values(series, label)` answers, with
/// the earlier variables' values expanded into `series`) and "All" where
/// offered. `label_values` asks the Prometheus the test runs.
pub fn combinations(
    d: &DashboardModel,
    rate_interval: &str,
    mut label_values: impl FnMut(&str, &str) -> Result<Vec<String>, String>,
) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for v in &d.variables {
        let mut next = Vec::new();
        for combo in &combos {
            let values: Vec<String> = match (&v.kind[..], &v.label_values) {
                ("datasource", _) => vec!["prometheus".into()],
                (_, Some((series, label))) => {
                    let vars: Vec<(&str, &str)> = combo
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let series = crate::promql::expand_grafana(series, &vars, rate_interval);
                    let mut values = label_values(&series, label)?;
                    if values.is_empty() {
                        return Err(format!("{}: ${} has no values", d.title, v.name));
                    }
                    if let Some(all) = &v.all_value {
                        values.push(all.clone());
                    }
                    values
                }
                _ => {
                    return Err(format!(
                        "{}: ${} is neither a datasource nor label_values()",
                        d.title, v.name
                    ));
                }
            };
            for value in values {
                let mut c = combo.clone();
                c.push((v.name.clone(), value));
                next.push(c);
            }
        }
        combos = next;
    }
    Ok(combos)
}

/// A panel query that returned no data under one combination of variable
/// values, for a test to judge whether that is explained.
#[derive(Debug)]
pub struct EmptyTarget<'a> {
    /// Its panel.
    pub panel: &'a PanelModel,
    /// The query.
    pub target: &'a TargetModel,
    /// The variable values it ran with.
    pub vars: Vec<(String, String)>,
    /// The query as run (variables expanded).
    pub expr: String,
}

impl EmptyTarget<'_> {
    /// The `$service` value it ran with, unless that was "All".
    pub fn service(&self) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == "service")
            .map(|(_, v)| v.as_str())
            .filter(|v| *v != ".*")
    }
}

/// Runs every target of `d` under every combination of its variables'
/// values ([`combinations`]); the ones that returned nothing.
/// `has_data(expr)` asks the Prometheus the test runs.
pub fn empty_targets<'a>(
    d: &'a DashboardModel,
    rate_interval: &str,
    label_values: impl FnMut(&str, &str) -> Result<Vec<String>, String>,
    mut has_data: impl FnMut(&str) -> Result<bool, String>,
) -> Result<Vec<EmptyTarget<'a>>, String> {
    let mut empty = Vec::new();
    for combo in combinations(d, rate_interval, label_values)? {
        let vars: Vec<(&str, &str)> = combo
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for panel in &d.panels {
            for target in &panel.targets {
                let expr = crate::promql::expand_grafana(&target.expr, &vars, rate_interval);
                if !has_data(&expr).map_err(|e| format!("{} / {}: {e}", d.title, panel.title))? {
                    empty.push(EmptyTarget {
                        panel,
                        target,
                        vars: combo.clone(),
                        expr,
                    });
                }
            }
        }
    }
    Ok(empty)
}

/// Whether a dashboard is tagged with `system` (`deltran`, `cryptofunk`).
pub fn is_of_system(d: &DashboardModel, system: &str) -> bool {
    d.json["tags"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t == system))
}

/// Every PromQL query `deploy/` ships: each dashboard target (template
/// variables replaced by `placeholder`, `$__rate_interval` by
/// `rate_interval`) and each rule's expression.
pub fn shipped_queries(
    root: &Path,
    placeholder: &str,
    rate_interval: &str,
) -> Result<Vec<String>, LoadError> {
    let vars = [
        ("env", placeholder),
        ("namespace", placeholder),
        ("service", placeholder),
        ("datasource", placeholder),
    ];
    let mut queries: Vec<String> = load_dir(&root.join("deploy/grafana/dashboards"))?
        .iter()
        .flat_map(|d| d.panels.iter().flat_map(|p| p.targets.iter()))
        .map(|t| crate::promql::expand_grafana(&t.expr, &vars, rate_interval))
        .collect();
    let rules =
        crate::rules::load_rules(&root.join("deploy/prometheus/rules")).map_err(|e| LoadError {
            path: e.path,
            message: e.message,
        })?;
    queries.extend(rules.into_iter().map(|(_, r)| r.expr));
    Ok(queries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_queries_split_at_the_last_comma() {
        assert_eq!(
            parse_label_values(r#"label_values(m{a="1", b=~"$x"}, service_name)"#),
            Some((
                r#"m{a="1", b=~"$x"}"#.to_string(),
                "service_name".to_string()
            ))
        );
        assert_eq!(parse_label_values("query_result(up)"), None);
    }
}
