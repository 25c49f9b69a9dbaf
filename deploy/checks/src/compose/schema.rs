//! The compose specification's JSON schema, applied offline: the one check
//! that catches misspelt or misplaced keys, which Compose refuses at `up`
//! and which every other check here would silently read past.

use std::path::Path;
use std::process::Command;

use super::ComposeError;

/// Validates `compose` against the compose specification's JSON schema,
/// offline: `check-jsonschema --builtin-schema vendor.compose-spec` (PyPI
/// `check-jsonschema`, installed by `scripts/install-test-deps.sh`) ships
/// the schema, so no network is needed. Catches misspelt or misplaced keys,
/// which Compose would refuse at `up`.
pub fn validate_schema(compose: &Path) -> Result<(), ComposeError> {
    let program = "check-jsonschema";
    let args = ["--builtin-schema", "vendor.compose-spec"];
    let command = format!("{program} {} {}", args.join(" "), compose.display());
    let output = Command::new(program)
        .args(args)
        .arg(compose)
        .output()
        .map_err(|e| ComposeError::Tool {
            command: command.clone(),
            message: format!(
                "{e}; install it with `pip install check-jsonschema` (scripts/install-test-deps.sh)"
            ),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(ComposeError::Schema {
        path: compose.to_path_buf(),
        command,
        output: text.trim().to_string(),
    })
}
