//! Reading files the way Compose reads them: YAML with anchors and merge
//! keys applied, scalars as the strings Compose sees, paths resolved
//! without touching the file system (a missing path is what a check
//! reports, so it must not fail the reading).

use std::path::{Component, Path, PathBuf};

use serde_yaml_ng::Value;

use super::ComposeError;

/// The text of `path`.
pub(super) fn read_text(path: &Path) -> Result<String, ComposeError> {
    std::fs::read_to_string(path).map_err(|source| ComposeError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a YAML file with anchors, aliases and merge keys (`<<`) resolved.
pub fn read_yaml(path: &Path) -> Result<Value, ComposeError> {
    parse_yaml(path, &read_text(path)?)
}

/// `text` (read from `path`, for errors) parsed, merge keys applied.
fn parse_yaml(path: &Path, text: &str) -> Result<Value, ComposeError> {
    let yaml_error = |e: serde_yaml_ng::Error| ComposeError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut value: Value = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
    value.apply_merge().map_err(yaml_error)?;
    Ok(value)
}

/// A scalar as the string Compose would see (numbers and booleans too).
pub(super) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A `string | [string]` field (command, entrypoint, healthcheck.test).
/// The string form is split on whitespace, which is what Compose does for
/// the simple commands these checks read.
pub(super) fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The value under `keys`, one mapping level each (`None` where a level is
/// missing), so a nested setting reads as the dotted path the files use.
pub(super) fn get_path<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(value, |level, key| level.get(*key))
}

/// The items of the sequence under `key` (none when it is missing or not a
/// sequence: a check then has nothing to follow).
pub(super) fn sequence<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
}

/// The string items of the sequence under `key`.
pub(super) fn string_items<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    sequence(value, key).filter_map(Value::as_str)
}

/// `path` with `.` and `..` removed, without touching the file system (the
/// path may not exist: that is what is checked).
pub(super) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
