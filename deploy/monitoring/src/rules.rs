//! Prometheus rule files and `promtool test rules` files, read as data so
//! tests can hold every alert to the same standard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A rule file (`groups:`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Its groups.
    pub groups: Vec<RuleGroup>,
}

/// A rule group.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    /// Group name.
    pub name: String,
    /// Evaluation interval, if not the global one.
    #[serde(default)]
    pub interval: Option<String>,
    /// Its rules.
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Recorded series name.
    #[serde(default)]
    pub record: Option<String>,
    /// Alert name.
    #[serde(default)]
    pub alert: Option<String>,
    /// PromQL.
    pub expr: String,
    /// Pending time before firing.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// Firing time kept after the condition clears.
    #[serde(default)]
    pub keep_firing_for: Option<String>,
    /// Labels added.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (alerts).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A rule file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RulesError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// The files of `dir` whose extension is one of `extensions`, sorted.
pub fn files_with_extension(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, RulesError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| RulesError {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The `*.yml` and `*.yaml` files of a directory, sorted.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, RulesError> {
    files_with_extension(dir, &["yml", "yaml"])
}

/// The series rules and dashboards may read that the engines do not
/// export: the collector's, listed in `deploy/prometheus/collector-metrics.txt`.
pub fn collector_metrics(root: &Path) -> Result<std::collections::BTreeSet<String>, RulesError> {
    Ok(
        documented_series(&root.join("deploy/prometheus/collector-metrics.txt"))?
            .into_keys()
            .collect(),
    )
}

/// The series CryptoFunk's components export (its metrics contract), each
/// with its own labels: `deploy/prometheus/cryptofunk-metrics.txt`.
pub fn cryptofunk_metrics(
    root: &Path,
) -> Result<BTreeMap<String, std::collections::BTreeSet<String>>, RulesError> {
    documented_series(&root.join("deploy/prometheus/cryptofunk-metrics.txt"))
}

/// A list of series: one a line, its name then the labels it carries
/// (besides the resource labels every series has); `#` starts a comment.
pub fn documented_series(
    path: &Path,
) -> Result<BTreeMap<String, std::collections::BTreeSet<String>>, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|e| RulesError {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut series = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace().map(String::from);
        let name = words.next().unwrap_or_default();
        if series.insert(name.clone(), words.collect()).is_some() {
            return Err(RulesError {
                path: path.to_path_buf(),
                message: format!("{name} is listed twice"),
            });
        }
    }
    Ok(series)
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|e| RulesError {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_yaml_ng::from_str(&text).map_err(|e| RulesError {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Every rule of every file in `dir`, with the file it is in.
pub fn load_rules(dir: &Path) -> Result<Vec<(PathBuf, Rule)>, RulesError> {
    let mut out = Vec::new();
    for path in yaml_files(dir)? {
        let file: RuleFile = parse(&path)?;
        for group in file.groups {
            out.extend(group.rules.into_iter().map(|r| (path.clone(), r)));
        }
    }
    Ok(out)
}

/// A `promtool test rules` file.
#[derive(Clone, Debug, Deserialize)]
pub struct TestFile {
    /// Rule files under test.
    pub rule_files: Vec<String>,
    /// The test groups.
    pub tests: Vec<TestGroup>,
}

/// One group of a test file.
#[derive(Clone, Debug, Deserialize)]
pub struct TestGroup {
    /// Alert expectations.
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTest>,
}

/// One alert expectation at one time.
#[derive(Clone, Debug, Deserialize)]
pub struct AlertTest {
    /// When.
    pub eval_time: String,
    /// Which alert.
    pub alertname: String,
    /// The alerts expected to fire (empty: it must be quiet).
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

/// One expected firing alert.
#[derive(Clone, Debug, Deserialize)]
pub struct ExpectedAlert {
    /// Its labels.
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    /// Its annotations.
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

/// What the unit tests in a directory prove about the alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// (alert, severity) pairs seen firing with `severity` and
    /// `runbook_url` asserted: an alert defined at two severities needs a
    /// firing case for each.
    pub fires: std::collections::BTreeSet<(String, String)>,
    /// Alerts with a case where they stay quiet.
    pub quiet: std::collections::BTreeSet<String>,
}

/// Coverage over every test file in `dir`.
pub fn test_coverage(dir: &Path) -> Result<Coverage, RulesError> {
    let mut cov = Coverage::default();
    for path in yaml_files(dir)? {
        let file: TestFile = parse(&path)?;
        for case in file.tests.iter().flat_map(|t| &t.alert_rule_test) {
            if case.exp_alerts.is_empty() {
                cov.quiet.insert(case.alertname.clone());
            }
            for a in &case.exp_alerts {
                if let Some(severity) = a.exp_labels.get("severity")
                    && a.exp_annotations.contains_key("runbook_url")
                {
                    cov.fires.insert((case.alertname.clone(), severity.clone()));
                }
            }
        }
    }
    Ok(cov)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn documented_series_have_their_labels_and_are_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.txt");
        std::fs::write(&path, "# comment\n\nm_total a b\nplain\n").unwrap();
        let series = documented_series(&path).unwrap();
        assert_eq!(series["m_total"], ["a", "b"].map(String::from).into());
        assert!(series["plain"].is_empty());
        std::fs::write(&path, "m a\nm b\n").unwrap();
        assert!(
            documented_series(&path)
                .unwrap_err()
                .message
                .contains("twice")
        );
    }

    #[test]
    fn coverage_needs_asserted_annotations_and_a_quiet_case() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.test.yml"),
            r#"
rule_files: [x.yml]
tests:
  - alert_rule_test:
      - eval_time: 1m
        alertname: Both
        exp_alerts: []
      - eval_time: 5m
        alertname: Both
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations: {summary: s, runbook_url: u}
      - eval_time: 5m
        alertname: FiresOnly
        exp_alerts:
          - exp_labels: {severity: warning}
            exp_annotations: {runbook_url: u}
      - eval_time: 5m
        alertname: NoAnnotations
        exp_alerts:
          - exp_labels: {severity: warning}
"#,
        )
        .unwrap();
        let cov = test_coverage(dir.path()).unwrap();
        let fires = |a: &str, s: &str| cov.fires.contains(&(a.to_string(), s.to_string()));
        assert!(fires("Both", "critical") && cov.quiet.contains("Both"));
        assert!(fires("FiresOnly", "warning") && !cov.quiet.contains("FiresOnly"));
        assert!(
            !fires("FiresOnly", "critical"),
            "a severity never seen firing"
        );
        assert!(!fires("NoAnnotations", "warning"));
        assert!(!cov.quiet.contains("Untested"));
    }
}
