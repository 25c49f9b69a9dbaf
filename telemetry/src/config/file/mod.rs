//! `OTEL_CONFIG_FILE`: the declarative configuration file of the
//! OpenTelemetry specification (the opentelemetry-configuration YAML
//! schema, 1.x).
//!
//! The file replaces the `OTEL_*` environment: once it is set, other
//! `OTEL_*` variables count only where the file references them
//! (`${OTEL_SERVICE_NAME:-demo}`). The file is read, substituted, checked
//! against the supported part of the schema (every key it does not know
//! fails start-up with its path), and translated into the equivalent
//! variables, which the one environment parser then validates.

mod model;
mod substitute;
mod translate;

use std::io::Read;

pub(crate) use translate::Translated;

use super::errors::{ConfigError, ConfigErrors};
use crate::env::EnvSource;

/// The variable that names the file.
pub(crate) const VARIABLE: &str = "OTEL_CONFIG_FILE";

/// Larger files are refused: a configuration is a few kilobytes, and the
/// whole file is held while it is parsed.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Variables that are not `OTEL_*` and stay with the environment when a
/// file is used: they have no place in the schema.
pub(crate) const KEPT_FROM_ENVIRONMENT: &[&str] = &[
    "RUST_LOG",
    "TELEMETRY_LOG_FORMAT",
    "TELEMETRY_SHUTDOWN_TIMEOUT",
];

/// Reads, substitutes, checks and translates the file at `path`.
pub(crate) fn load(
    path: &str,
    env: &(impl EnvSource + ?Sized),
) -> Result<Translated, ConfigErrors> {
    let whole = |expected: String| ConfigErrors(vec![ConfigError::new(VARIABLE, path, expected)]);
    if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
        return Err(whole(
            "the path of a .yaml or .yml file (the specification requires the extension)".into(),
        ));
    }
    let text = read_bounded(path).map_err(whole)?;
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| whole(format!("a YAML document ({e})")))?;
    if value.is_null() {
        // An empty file: no keys at all, which `file_format` will name.
        value = serde_yaml_ng::Value::Mapping(Default::default());
    }
    let mut substitution_errors = Vec::new();
    substitute::substitute(&mut value, "", env, &mut substitution_errors);
    if !substitution_errors.is_empty() {
        return Err(errors(path, substitution_errors));
    }
    let file: model::File = serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let key = if at == "." { String::new() } else { at };
        errors(
            path,
            vec![(
                key,
                String::new(),
                format!("a key of the supported schema ({})", e.into_inner()),
            )],
        )
    })?;
    // Errors of the translation stay in it, to be reported with the
    // environment parser's, all at once.
    let mut translated = translate::translate(file);
    for var in KEPT_FROM_ENVIRONMENT {
        if let Some(value) = env.var(var) {
            translated.env.insert((*var).to_string(), value);
        }
    }
    if let Some(level) = translated.log_level {
        // `log_level` is the SDK's own logging: its targets get the level,
        // unless RUST_LOG names them itself.
        let rust_log = env.var("RUST_LOG").unwrap_or_else(|| "info".to_string());
        if !rust_log.contains("opentelemetry") {
            translated.env.insert(
                "RUST_LOG".to_string(),
                format!("{rust_log},opentelemetry={level}"),
            );
        }
    }
    Ok(translated)
}

/// Reads at most [`MAX_FILE_BYTES`], and says so when there is more.
fn read_bounded(path: &str) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("a readable file ({e})"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("a readable file ({e})"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("a file of at most {MAX_FILE_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "a UTF-8 text file".to_string())
}

/// (key path, value, expected) → errors that name the file and the key.
fn errors(file: &str, found: Vec<(String, String, String)>) -> ConfigErrors {
    ConfigErrors(
        found
            .into_iter()
            .map(|(key, value, expected)| ConfigError::new(&at(file, &key), &value, expected))
            .collect(),
    )
}

/// How an error names a place in the file: `OTEL_CONFIG_FILE /etc/otel.yaml: tracer_provider.sampler`.
pub(crate) fn at(file: &str, key: &str) -> String {
    if key.is_empty() {
        format!("{VARIABLE} {file}")
    } else {
        format!("{VARIABLE} {file}: {key}")
    }
}

/// The file's own errors, then those the environment parser found in the
/// translated variables, renamed to the key paths that set them.
pub(crate) fn report(
    file: &str,
    translated: &mut Translated,
    parsed: Option<ConfigErrors>,
) -> Option<ConfigErrors> {
    let mut all = errors(file, std::mem::take(&mut translated.errors)).0;
    for mut e in parsed.map(|e| e.0).unwrap_or_default() {
        if let Some(key) = translated.origins.get(&e.variable) {
            e.variable = at(file, key);
        }
        all.push(e);
    }
    (!all.is_empty()).then_some(ConfigErrors(all))
}
