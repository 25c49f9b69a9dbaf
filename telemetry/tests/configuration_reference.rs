//! The configuration reference (`docs/configuration.md`) and the parser
//! agree: every variable the parser reads is listed there, and every
//! variable listed there is read. A new variable without documentation, or
//! a documented one nobody reads, fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
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
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
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
