//! The `${env:NAME}` (and `${NAME}`) references of a collector
//! configuration: which variables it reads, so a service's environment can
//! be checked to set them, and their values substituted, so an endpoint
//! written as a variable can still be followed to a service.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;
use serde_yaml_ng::Value;

/// `${env:NAME}` or `${NAME}`, with an optional `:-default`.
static ENV_REFERENCE: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}"));

/// One `${env:NAME}` (or `${NAME}`) a collector configuration reads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvReference {
    /// The variable.
    pub name: String,
    /// Whether it has a `:-default` (then it need not be set).
    pub has_default: bool,
}

/// Every environment variable `value` (a collector configuration) reads,
/// from its string values (comments are not configuration). `$${…}` is
/// the collector's escape for a literal `${…}` and is not a reference.
pub fn env_references(value: &Value) -> BTreeSet<EnvReference> {
    let mut out = BTreeSet::new();
    let Ok(re) = &*ENV_REFERENCE else {
        return out;
    };
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                for m in re.captures_iter(s) {
                    let Some(whole) = m.get(0) else { continue };
                    if s[..whole.start()].ends_with('$') {
                        continue;
                    }
                    out.insert(EnvReference {
                        name: m[1].to_string(),
                        has_default: m.get(2).is_some(),
                    });
                }
            }
            Value::Sequence(items) => stack.extend(items),
            Value::Mapping(m) => stack.extend(m.values()),
            Value::Tagged(t) => stack.push(&t.value),
            _ => {}
        }
    }
    out
}

/// `text` with every `${env:NAME}` / `${NAME}` replaced from `env` (the
/// default after `:-` when unset); unknown names are left as written.
pub(super) fn substitute_env(text: &str, env: &BTreeMap<String, String>) -> String {
    let Ok(re) = &*ENV_REFERENCE else {
        return text.to_string();
    };
    re.replace_all(text, |c: &regex::Captures<'_>| {
        match (env.get(&c[1]), c.get(2)) {
            (Some(v), _) => v.clone(),
            (None, Some(default)) => default.as_str().trim_start_matches(":-").to_string(),
            (None, None) => c[0].to_string(),
        }
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_skip_escapes_and_comments() -> Result<(), serde_yaml_ng::Error> {
        let v: Value = serde_yaml_ng::from_str(
            "# ${env:IN_COMMENT}\na: ${env:A}\nb: '$${env:ESCAPED}'\nc: ${env:C:-x}\n",
        )?;
        let refs = env_references(&v);
        let names: Vec<(&str, bool)> = refs
            .iter()
            .map(|r| (r.name.as_str(), r.has_default))
            .collect();
        assert_eq!(names, [("A", false), ("C", true)]);
        Ok(())
    }
}
