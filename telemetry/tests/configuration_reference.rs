//! The configuration reference (`docs/configuration.md`) and the parser
//! agree: every variable the parser reads is listed there, and every
//! variable listed there is read. A new variable without documentation, or
//! a documented one nobody reads, fails here. The same holds for the keys
//! of the configuration file, discovered from the parser itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use telemetry::EnvSource;
use telemetry::config::Config;

/// An environment that remembers every name asked for.
struct Recording {
    values: Vec<(String, String)>,
    asked: Mutex<BTreeSet<String>>,
}

impl EnvSource for Recording {
    fn var(&self, key: &str) -> Option<String> {
        self.asked.lock().unwrap().insert(key.to_string());
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// Names the parser asks for, over environments that reach every branch.
fn read_by_the_parser() -> BTreeSet<String> {
    let environments: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    ];
    let mut asked = BTreeSet::new();
    for env in environments {
        let recording = Recording {
            values: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            asked: Mutex::new(BTreeSet::new()),
        };
        let _ = Config::from_env(&recording);
        asked.extend(recording.asked.into_inner().unwrap());
    }
    asked
}

/// The heading of the configuration file's section, after the variables.
const FILE_SECTION: &str = "## Configuration file";

/// `{A,B}` in a name stands for each alternative.
fn expand(name: &str) -> Vec<String> {
    match (name.find('{'), name.find('}')) {
        (Some(open), Some(close)) if open < close => name[open + 1..close]
            .split(',')
            .flat_map(|alt| expand(&format!("{}{alt}{}", &name[..open], &name[close + 1..])))
            .collect(),
        _ => vec![name.to_string()],
    }
}

/// Variable names in the first column of the reference's table.
fn documented() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let text = std::fs::read_to_string(path).unwrap();
    let variables = text.split(FILE_SECTION).next().unwrap_or_default();
    let mut names = BTreeSet::new();
    for line in variables.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split(" | ").next().unwrap_or("");
        for token in first.split('`').skip(1).step_by(2) {
            names.extend(expand(token));
        }
    }
    names
}

#[test]
fn every_variable_read_is_documented_and_every_documented_one_is_read() {
    let read = read_by_the_parser();
    let documented = documented();
    let undocumented: Vec<&String> = read.difference(&documented).collect();
    let unread: Vec<&String> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty() && unread.is_empty(),
        "read but not in docs/configuration.md: {undocumented:?}\n\
         in docs/configuration.md but never read: {unread:?}"
    );
    assert!(read.len() > 50, "{read:?}");
}

/// What the file's parser says of one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// A mapping with these keys.
    Mapping(BTreeSet<String>),
    /// In the schema, refused by telemetry.
    Refused,
    /// A value (or a list of values).
    Value,
}

/// Where a probe goes: keys, and `[]` for "the first list element".
fn probe_document(path: &[String], probe: serde_json::Value) -> String {
    let mut value = probe;
    for segment in path.iter().rev() {
        value = if segment == "[]" {
            serde_json::Value::Array(vec![value])
        } else {
            serde_json::json!({ segment: value })
        };
    }
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("file_format".into(), "1.0".into());
    }
    // JSON is YAML.
    value.to_string()
}

fn errors_for(document: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("probe.yaml");
    std::fs::write(&file, document).unwrap();
    match Config::from_env(&[("OTEL_CONFIG_FILE", file.to_str().unwrap())]) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

/// Asks the parser what `path` is, by writing an unknown key there.
fn classify(path: &[String]) -> Key {
    const PROBE: &str = "zzz_probe";
    let errors = errors_for(&probe_document(path, serde_json::json!({ PROBE: 1 })));
    let marker = format!("unknown field `{PROBE}`");
    if let Some(at) = errors.find(&marker) {
        let rest = &errors[at + marker.len()..];
        let rest = &rest[..rest.find(')').unwrap_or(rest.len())];
        return Key::Mapping(
            rest.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect(),
        );
    }
    if errors.contains("expected a sequence") {
        let mut element = path.to_vec();
        element.push("[]".into());
        return match classify(&element) {
            Key::Value => Key::Value,
            other => other,
        };
    }
    if errors.contains("in the configuration schema, but telemetry does not support it") {
        return Key::Refused;
    }
    Key::Value
}

/// Every mapping of the file's schema, by path (`[]` for list elements),
/// with its keys read and its keys refused.
fn discovered() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let mut found = BTreeMap::new();
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = pending.pop() {
        let Key::Mapping(keys) = classify(&path) else {
            continue;
        };
        let (mut read, mut refused) = (BTreeSet::new(), BTreeSet::new());
        for key in keys {
            let mut child = path.clone();
            child.push(key.clone());
            match classify(&child) {
                Key::Refused => {
                    refused.insert(key);
                }
                Key::Mapping(_) => {
                    read.insert(key.clone());
                    // A parent-based sampler's samplers are samplers again:
                    // the root is documented once, the rest not repeated.
                    let samplers_again = (path.last().is_some_and(|s| s == "parent_based")
                        && key != "root")
                        || (key == "parent_based" && path.iter().any(|s| s == "parent_based"));
                    if !samplers_again {
                        // A list's element stands where the list is.
                        if errors_for(&probe_document(&child, serde_json::json!({})))
                            .contains("expected a sequence")
                        {
                            child.push("[]".into());
                        }
                        pending.push(child);
                    }
                }
                Key::Value => {
                    read.insert(key);
                }
            }
        }
        if !(read.is_empty() && refused.is_empty()) {
            found.insert(path.join(".").replace(".[]", "[]"), (read, refused));
        }
    }
    found
}

/// The file section's table: mapping path → (keys read, keys refused).
fn documented_file_keys() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let text = std::fs::read_to_string(path).unwrap();
    let section = text.split(FILE_SECTION).nth(1).expect("the file section");
    let ticks = |cell: &str| -> Vec<String> {
        // Only the leading `name` of each comma-separated entry; defaults
        // and notes in parentheses are for readers.
        let mut names = Vec::new();
        let mut depth = 0;
        let mut at_entry = true;
        let mut rest = cell;
        while let Some(c) = rest.chars().next() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => at_entry = true,
                '`' if depth == 0 => {
                    let end = rest[1..].find('`').unwrap_or(rest.len() - 1) + 1;
                    if at_entry {
                        names.push(rest[1..end].to_string());
                        at_entry = false;
                    }
                    rest = &rest[end..];
                }
                _ => {}
            }
            rest = &rest[c.len_utf8()..];
        }
        names
    };
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let read: BTreeSet<String> = ticks(cells[1]).into_iter().collect();
        let refused: BTreeSet<String> = ticks(cells.get(2).copied().unwrap_or(""))
            .into_iter()
            .collect();
        for mapping in cells[0].split("`, `") {
            for path in expand(mapping.trim_matches(|c| c == '`' || c == ' ')) {
                let path = if path.starts_with("(the top") || path.is_empty() {
                    String::new()
                } else {
                    path
                };
                let entry = table
                    .entry(path)
                    .or_insert_with(|| (BTreeSet::new(), BTreeSet::new()));
                entry.0.extend(read.iter().cloned());
                entry.1.extend(refused.iter().cloned());
            }
        }
    }
    table
}

#[test]
fn every_file_key_the_parser_knows_is_documented_and_the_reverse() {
    let found = discovered();
    let documented = documented_file_keys();
    assert!(found.len() > 25, "{found:#?}");
    let mut problems = Vec::new();
    for (path, keys) in &found {
        match documented.get(path) {
            None => problems.push(format!("mapping `{path}` is not in the table: {keys:?}")),
            Some(doc) if doc != keys => problems.push(format!(
                "`{path}`: the parser reads {:?} and refuses {:?}; the table says {:?} and {:?}",
                keys.0, keys.1, doc.0, doc.1
            )),
            Some(_) => {}
        }
    }
    for path in documented.keys().filter(|p| !found.contains_key(*p)) {
        problems.push(format!(
            "the table lists `{path}`, which the parser does not have"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
