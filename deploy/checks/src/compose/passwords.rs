//! Passwords the user must set: a password written into the compose file,
//! or given a default, becomes everyone's password, so each must be a
//! required variable (`${NAME:?…}`, which makes Compose refuse to start
//! without it) or a file mounted from a secret.

use std::sync::LazyLock;

use regex::Regex;

use super::findings::{finding, finish};
use super::service::{Kind, Service};
use super::stack::Stack;
use super::{ComposeError, Finding};

/// Exactly one required variable: `${NAME:?message}` or `${NAME?message}`.
static REQUIRED_VARIABLE: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):?\?[^}]*\}$"));

/// The variable's name when `value` is exactly one required variable.
pub(super) fn required_variable(value: &str) -> Option<String> {
    match &*REQUIRED_VARIABLE {
        Ok(re) => re.captures(value).map(|c| c[1].to_string()),
        Err(_) => None,
    }
}

/// Checks that the password `service` reads from `var` is not written
/// into the file: either `var` is exactly a required variable, or one of
/// `file_vars` (`var__FILE`, `var_FILE`) names a file mounted from a
/// secret or a bind mount. Without either the image falls back to
/// `fallback`, which the finding names.
pub(super) fn required_password(
    stack: &Stack,
    service: &Service,
    var: &str,
    file_vars: &[&str],
    fallback: &str,
    findings: &mut Vec<Finding>,
) {
    let file = &stack.path;
    if let Some(value) = service.environment.get(var) {
        if required_variable(value).is_none() {
            let why = if value.starts_with("${") && value.contains('-') {
                "has a default, which becomes everyone's password"
            } else if value.starts_with("${") {
                "is an optional variable, so it may be empty"
            } else {
                "is written into the file"
            };
            findings.push(finding(
                file,
                format!(
                    "service {}: {var} {why}; write {var}: ${{NAME:?set NAME}} so Compose refuses to start until the user sets it",
                    service.name
                ),
            ));
        }
        return;
    }
    let file_var = file_vars
        .iter()
        .find_map(|v| service.environment.get(*v).map(|path| (v, path)));
    match file_var {
        Some((v, path)) => {
            let mounted = service.secrets.values().any(|t| t == path)
                || stack.host_path(service, path).is_some();
            if !mounted {
                findings.push(finding(
                    file,
                    format!(
                        "service {}: {v}={path} is neither a secret nor a bind mount of this service; mount the password file there",
                        service.name
                    ),
                ));
            }
        }
        None => findings.push(finding(
            file,
            format!(
                "service {}: no {var} (nor {}), so it falls back to {fallback}; set {var}: ${{NAME:?set NAME}}",
                service.name,
                file_vars.join(" / ")
            ),
        )),
    }
}

/// PostgreSQL's password is one the user sets, never written in the file.
pub fn check_postgres(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services_of(&Kind::Postgres) {
        required_password(
            stack,
            service,
            "POSTGRES_PASSWORD",
            &["POSTGRES_PASSWORD_FILE"],
            "no password at all (the image refuses to start, or trusts everyone)",
            &mut findings,
        );
    }
    finish(findings)
}
