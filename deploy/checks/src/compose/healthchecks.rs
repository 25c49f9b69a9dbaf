//! Health checks that can actually run: the fleet image has no shell and
//! only the programs its Dockerfile copies in, and a probe must hit the
//! container's own loopback on a port it listens on — otherwise the
//! service is marked unhealthy forever and its dependants never start.

use super::ComposeError;
use super::dockerfile::final_stage_files;
use super::endpoint::Endpoint;
use super::findings::{finding, finish, joined};
use super::listeners::may_listen_on;
use super::service::{Build, Service};
use super::stack::Stack;

/// Health checks can run: exec form (the fleet image has no shell), a
/// program the image has (for the fleet image: a file its Dockerfile's
/// final stage adds), and an URL on the container's own loopback at a
/// port the service listens on.
pub fn check_healthchecks(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services.values() {
        let Some((form, rest)) = service.healthcheck.split_first() else {
            continue;
        };
        if form == "NONE" {
            continue;
        }
        let mut problems = Vec::new();
        if let Some(build) = &service.build {
            problems.extend(built_image_problem(build, form, rest));
        }
        problems.extend(url_problems(stack, service, rest));
        for problem in problems {
            findings.push(finding(
                &stack.path,
                format!("service {}: {problem}", service.name),
            ));
        }
    }
    finish(findings)
}

/// For a service built from a Dockerfile: the exec form, running a program
/// the final stage adds.
fn built_image_problem(build: &Build, form: &str, rest: &[String]) -> Option<String> {
    if form != "CMD" {
        return Some(format!(
            "healthcheck {form} needs a shell, which the fleet image does not have; use [CMD, <program>, …]"
        ));
    }
    let program = rest.first()?;
    let text = std::fs::read_to_string(&build.dockerfile).ok()?;
    let files = final_stage_files(&text);
    (!files.iter().any(|f| f == program)).then(|| {
        format!(
            "healthcheck runs {program}, which {} does not put in the image (it adds: {}); use one of those, by absolute path",
            build.dockerfile.display(),
            files.join(", ")
        )
    })
}

/// Every URL the health check probes stays in the container and hits a
/// port the service listens on.
fn url_problems(stack: &Stack, service: &Service, args: &[String]) -> Vec<String> {
    let listeners = stack.listeners(service, &mut Vec::new());
    let mut problems = Vec::new();
    for arg in args {
        if !(arg.starts_with("http://") || arg.starts_with("https://")) {
            continue;
        }
        match Endpoint::parse(arg) {
            Ok(endpoint) => {
                if !matches!(endpoint.host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
                    problems.push(format!(
                        "healthcheck URL {arg} leaves the container; probe 127.0.0.1"
                    ));
                }
                if !may_listen_on(service, &listeners, endpoint.port) {
                    problems.push(format!(
                        "healthcheck URL {arg} is not a port it listens on ({})",
                        joined(&listeners, "; ")
                    ));
                }
            }
            Err(why) => problems.push(format!("healthcheck URL {arg}: {why}")),
        }
    }
    problems
}
