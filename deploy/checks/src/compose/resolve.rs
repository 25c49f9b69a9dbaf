//! Following a URL written in one file to the service it names and the
//! port that service listens on: the step every cross-file check shares,
//! so each reports a wrong host, a wrong port and a wrong protocol the
//! same way, naming what would be right.

use std::path::Path;

use super::Finding;
use super::endpoint::Endpoint;
use super::findings::{finding, joined};
use super::listeners::{Listener, Protocol};
use super::service::{Kind, Service};
use super::stack::Stack;

impl Stack {
    /// Follows `url` (written in `file` as `what`) to a service of this
    /// stack and a port it listens on that speaks `protocol`; each mismatch
    /// is a finding naming `file`.
    pub(super) fn resolve(
        &self,
        file: &Path,
        what: &str,
        url: &str,
        protocol: &[Protocol],
        findings: &mut Vec<Finding>,
    ) -> Option<(Endpoint, &Service)> {
        let endpoint = match Endpoint::parse(url) {
            Ok(e) => e,
            Err(why) => {
                findings.push(finding(file, format!("{what} = {url:?}: {why}")));
                return None;
            }
        };
        let Some(service) = self.service(&endpoint.host) else {
            findings.push(finding(
                file,
                format!(
                    "{what} = {url:?} names host {:?}, which is no service of {} (services: {}); name the service",
                    endpoint.host,
                    self.path.display(),
                    joined(self.services.keys(), ", ")
                ),
            ));
            return None;
        };
        if service.kind() == Kind::Other {
            return Some((endpoint, service));
        }
        let listeners = self.listeners(service, &mut Vec::new());
        match port_problem(service, &listeners, endpoint.port, protocol) {
            Some(problem) => {
                findings.push(finding(file, format!("{what} = {url:?}: {problem}")));
                None
            }
            None => Some((endpoint, service)),
        }
    }
}

/// Why `port` of `service` (listening on `listeners`) is not one speaking
/// `protocol`, if it is not: no such port, or another protocol on it.
fn port_problem(
    service: &Service,
    listeners: &[Listener],
    port: u16,
    protocol: &[Protocol],
) -> Option<String> {
    let speaks = |l: &&Listener| protocol.contains(&l.protocol);
    let on_port: Vec<&Listener> = listeners.iter().filter(|l| l.port == port).collect();
    let Some(first) = on_port.first() else {
        let wanted = joined(listeners.iter().filter(speaks), " or ");
        return Some(format!(
            "service {} does not listen on port {port} (it listens on: {}){}",
            service.name,
            joined(listeners, "; "),
            wrapped("; use ", &wanted, "")
        ));
    };
    if on_port.iter().any(speaks) {
        return None;
    }
    let wanted = joined(listeners.iter().filter(speaks).map(|l| l.port), " or ");
    Some(format!(
        "port {port} of {} is {first}, but this needs {}{}",
        service.name,
        joined(protocol, " or "),
        wrapped(" (port ", &wanted, ")")
    ))
}

/// `text` between `before` and `after`, or nothing when there is no text
/// (a hint that has nothing to suggest is left out).
fn wrapped(before: &str, text: &str, after: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("{before}{text}{after}")
    }
}
