//! Environment variable substitution, to the letter of the configuration
//! data model: `${NAME}`, `${env:NAME}`, `${NAME:-default}`, `$$` for a
//! literal `$`; scalar values only (never mapping keys), not recursive, and a
//! reference that is not well formed fails the whole file.

use serde_yaml_ng::Value;

use crate::env::EnvSource;

/// Replaces references in every scalar string of `value`. `path` is the key
/// path of `value`, for errors.
pub(super) fn substitute(
    value: &mut Value,
    path: &str,
    env: &(impl EnvSource + ?Sized),
    errors: &mut Vec<(String, String, String)>,
) {
    match value {
        Value::String(s) => match expand(s, env) {
            Ok(Some(expanded)) => {
                // A reference to an unset variable leaves nothing: that is a
                // null, as for `key:` with no value.
                *value = if expanded.is_empty() {
                    Value::Null
                } else {
                    Value::String(expanded)
                };
            }
            Ok(None) => {}
            Err(why) => errors.push((path.to_string(), s.clone(), why)),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{path}[{i}]"), env, errors);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = match key {
                    Value::String(k) => k.clone(),
                    other => format!("{other:?}"),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                substitute(item, &child, env, errors);
            }
        }
        Value::Tagged(tagged) => substitute(&mut tagged.value, path, env, errors),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The text with its references replaced, or `None` when it holds neither a
/// reference nor an escape (nothing to change).
pub(super) fn expand(
    text: &str,
    env: &(impl EnvSource + ?Sized),
) -> Result<Option<String>, String> {
    if !text.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            // An escaped `$` is never the start of a reference.
            out.push('$');
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                // No closing brace: not a reference, the text stays.
                out.push_str(tail);
                rest = "";
                continue;
            };
            out.push_str(&resolve(&body[..end], env)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// One reference's body (between `${` and `}`).
fn resolve(body: &str, env: &(impl EnvSource + ?Sized)) -> Result<String, String> {
    let reference = format!("${{{body}}}");
    let invalid = || {
        format!(
            "{reference} is not a valid reference: write ${{NAME}}, ${{env:NAME}} or \
             ${{NAME:-default}}, NAME a letter or _ then letters, digits or _ \
             (write $$ for a literal $)"
        )
    };
    let (name, default) = split_reference(body).ok_or_else(invalid)?;
    let name = match name.split_once(':') {
        None => name,
        Some(("env", name)) => name,
        Some((prefix, _)) => {
            return Err(format!(
                "{reference}: the substitution prefix {prefix:?} is not supported (only env)"
            ));
        }
    };
    if !is_env_name(name) {
        return Err(invalid());
    }
    match (env.var(name), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(unescape(default)),
        (None, None) => Ok(String::new()),
    }
}

/// `NAME` or `prefix:NAME`, and the default after `:-`.
fn split_reference(body: &str) -> Option<(&str, Option<&str>)> {
    if body.contains('\n') {
        return None;
    }
    match body.find(":-") {
        Some(at) => Some((&body[..at], Some(&body[at + 2..]))),
        None => Some((body, None)),
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Escapes inside a default value resolve too: `${X:-$${Y}}` is `${Y}`.
fn unescape(text: &str) -> String {
    text.replace("$$", "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Option<String>, String> {
        let env = [
            ("STRING_VALUE", "value"),
            ("BOOL_VALUE", "true"),
            ("INT_VALUE", "1"),
            ("FLOAT_VALUE", "1.1"),
            ("HEX_VALUE", "0xdeadbeef"),
            ("INVALID_MAP_VALUE", "value\nkey:value"),
            ("DO_NOT_REPLACE_ME", "Never use this value"),
            ("REPLACE_ME", "${DO_NOT_REPLACE_ME}"),
            ("VALUE_WITH_ESCAPE", "value$$"),
            ("EMPTY", ""),
        ];
        expand(text, &env)
    }

    #[test]
    fn the_specification_examples_hold() {
        for (input, expected) in [
            ("${STRING_VALUE}", "value"),
            ("${env:STRING_VALUE}", "value"),
            ("${BOOL_VALUE}", "true"),
            ("${INT_VALUE}", "1"),
            ("${FLOAT_VALUE}", "1.1"),
            ("${HEX_VALUE}", "0xdeadbeef"),
            ("${INVALID_MAP_VALUE}", "value\nkey:value"),
            ("foo ${STRING_VALUE} ${FLOAT_VALUE}", "foo value 1.1"),
            ("${UNDEFINED_KEY}", ""),
            ("${UNDEFINED_KEY:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${env:UNDEFINED_KEY:-fallback}", "fallback"),
            // Not recursive: a value holding a reference stays as it is.
            ("${REPLACE_ME}", "${DO_NOT_REPLACE_ME}"),
            ("${VALUE_WITH_ESCAPE}", "value$$"),
            // Escapes.
            ("$${STRING_VALUE}", "${STRING_VALUE}"),
            ("$$${STRING_VALUE}", "$value"),
            ("$$$${STRING_VALUE}", "$${STRING_VALUE}"),
            ("$${STRING_VALUE:-fallback}", "${STRING_VALUE:-fallback}"),
            (
                "$${STRING_VALUE:-${STRING_VALUE}}",
                "${STRING_VALUE:-value}",
            ),
            ("${UNDEFINED_KEY:-$${UNDEFINED_KEY}}", "${UNDEFINED_KEY}"),
            ("${UNDEFINED_KEY:-${STRING_VALUE}}", "${STRING_VALUE}"),
            ("value$$", "value$"),
            ("a $ b", "a $ b"),
            ("unterminated ${STRING_VALUE", "unterminated ${STRING_VALUE"),
        ] {
            assert_eq!(run(input).unwrap().as_deref(), Some(expected), "{input}");
        }
        assert_eq!(run("no references").unwrap(), None);
    }

    #[test]
    fn malformed_references_fail_with_the_reference() {
        for bad in [
            "${1API_KEY}",
            "${API_$KEY}",
            "${}",
            "${ STRING_VALUE}",
            "${A B}",
        ] {
            let err = run(bad).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
            assert!(err.contains("${NAME:-default}"), "{err}");
        }
        let err = run("${sys:HOME}").unwrap_err();
        assert!(err.contains("prefix \"sys\""), "{err}");
    }

    #[test]
    fn keys_are_never_substituted_and_paths_name_the_value() {
        let env = [("X", "1")];
        let mut value: Value =
            serde_yaml_ng::from_str("${X}: ${X}\nlist: [a, '${1BAD}']\n").unwrap();
        let mut errors = Vec::new();
        substitute(&mut value, "", &env, &mut errors);
        let map = value.as_mapping().unwrap();
        assert_eq!(map.get("${X}"), Some(&Value::String("1".into())));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "list[1]");
    }
}
