//! Published ports: a laptop's stack must not be reachable from the
//! network (Grafana, Prometheus and the OTLP receivers have no TLS here),
//! and a published port must be one the service listens on, or the host
//! port leads nowhere.

use super::ComposeError;
use super::findings::{finding, finish, joined};
use super::listeners::may_listen_on;
use super::stack::Stack;

/// Every published port is bound to 127.0.0.1 (a laptop's stack must not
/// be reachable from the network: Grafana, Prometheus and the OTLP
/// receivers have no TLS here), and publishes a port the service listens on.
pub fn check_published_ports(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    for service in stack.services.values() {
        if service.ports.is_empty() {
            continue;
        }
        let listeners = stack.listeners(service, &mut findings);
        for port in &service.ports {
            if port.host_ip.as_deref() != Some("127.0.0.1") {
                findings.push(finding(
                    &stack.path,
                    format!(
                        "service {}: port {:?} is published on every address; write 127.0.0.1:<host port>:<container port>",
                        service.name, port.spec
                    ),
                ));
            }
            match port.target {
                Some(target) if !may_listen_on(service, &listeners, target) => {
                    findings.push(finding(
                        &stack.path,
                        format!(
                            "service {}: port {:?} publishes container port {target}, which it does not listen on (it listens on: {})",
                            service.name,
                            port.spec,
                            joined(&listeners, "; ")
                        ),
                    ));
                }
                Some(_) => {}
                None => findings.push(finding(
                    &stack.path,
                    format!(
                        "service {}: port {:?} has no single container port",
                        service.name, port.spec
                    ),
                )),
            }
        }
    }
    finish(findings)
}
