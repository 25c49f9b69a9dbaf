//! The `${env:NAME}` (and `${NAME}`) references of a collector
//! configuration: which variables it reads, so a service's environment can
//! be checked to set them, and their values substituted, so an endpoint
//! written as a variable can still be followed to a service.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

use crate::collector;
pub use crate::collector::{EnvReference, substitute_env};

/// Every environment variable `value` (a collector configuration) reads,
/// from its string values (comments are not configuration). `$${…}` is
/// the collector's escape for a literal `${…}` and is not a reference.
pub fn env_references(value: &Value) -> BTreeSet<EnvReference> {
    let mut out = BTreeSet::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => out.extend(collector::env_references(s)),
            Value::Sequence(items) => stack.extend(items),
            Value::Mapping(m) => stack.extend(m.values()),
            Value::Tagged(t) => stack.push(&t.value),
            _ => {}
        }
    }
    out
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
