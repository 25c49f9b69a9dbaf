//! Reading rendered objects by JSON pointer: every check asks for fields
//! that may be absent (a missing field is often the very problem), so an
//! absent value reads as nothing rather than failing.

use std::collections::BTreeMap;

use serde_json::Value;

/// The string at `pointer`, if there is one.
pub(super) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The array at `pointer` (empty when absent or not an array).
pub(super) fn array_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A `labels:`-style map of strings (empty when absent).
pub(super) fn labels_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `kind/namespace/name` of an object, as problems name it.
pub fn object_id(v: &Value) -> String {
    let kind = str_at(v, "/kind").unwrap_or("?");
    let name = str_at(v, "/metadata/name").unwrap_or("?");
    match str_at(v, "/metadata/namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}
