//! Bind mounts, volumes and secret files: Compose creates an empty
//! directory for a bind-mount source that does not exist, so a wrong path
//! is a service silently started without its configuration, not an error.

use super::ComposeError;
use super::findings::{finding, finish};
use super::service::Mount;
use super::stack::Stack;

/// Every bind-mounted host path exists (Compose would otherwise create an
/// empty directory there and the service would start without its
/// configuration), and is mounted read-only (a container must not edit
/// the repository); every named volume is declared at the top level.
pub fn check_mounts(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services.values() {
        for mount in &service.mounts {
            for problem in mount_problems(stack, mount) {
                findings.push(finding(
                    &stack.path,
                    format!("service {}: {problem}", service.name),
                ));
            }
        }
    }
    for (name, file) in &stack.secret_files {
        if !file.exists() {
            findings.push(finding(
                &stack.path,
                format!(
                    "secret {name}: file {} does not exist (Compose refuses to start); document how to create it",
                    file.display()
                ),
            ));
        }
    }
    finish(findings)
}

/// What is wrong with one entry of a service's `volumes:`.
fn mount_problems(stack: &Stack, mount: &Mount) -> Vec<String> {
    let mut problems = Vec::new();
    match mount {
        Mount::Bind {
            source,
            host,
            target,
            read_only,
        } => {
            if !host.exists() {
                problems.push(format!(
                    "bind mount {source} (-> {target}) is {}, which does not exist; paths are relative to the compose file",
                    host.display()
                ));
            }
            if !read_only {
                problems.push(format!("bind mount {source} is writable; append :ro"));
            }
        }
        Mount::Volume { name, target } => {
            if !name.is_empty() && !stack.named_volumes.contains(name) {
                problems.push(format!(
                    "volume {name} (-> {target}) is not declared under the top-level volumes:"
                ));
            }
        }
    }
    problems
}
