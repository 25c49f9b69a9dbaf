//! The traffic the NetworkPolicies must let through, and what they must
//! refuse, stated once as pairs (from, to, port) and evaluated against the
//! rendered policies: engines to their agent, agents to the gateways,
//! Prometheus to every metrics port, callers to their peers — and no one
//! else, since a policy that admits too much looks exactly like one that
//! admits enough.

use std::collections::BTreeSet;

use super::collectors::{COLLECTOR_METRICS_PORT, OTLP_PORTS};
use super::engines::{engine_kind, engine_port, peer_of, runs_engine};
use super::env::container_env;
use super::error::Problems;
use super::json::array_at;
use super::network_policy::{PodRef, allowing_policies, ingress_allowed};
use super::services::url_parts;
use super::workload::Workload;
use super::{K8sError, Manifest};

/// Where Prometheus runs, as the NetworkPolicies and the README state it.
pub const PROMETHEUS_NAMESPACE: &str = "monitoring";
/// The label that marks Prometheus pods.
pub const PROMETHEUS_LABEL: (&str, &str) = ("app.kubernetes.io/name", "prometheus");

/// The traffic the NetworkPolicies must allow and deny, evaluated:
/// engines reach the collector their OTLP endpoint names on 4317 and 4318,
/// and nothing else does; no pod reaches an engine on an OTLP port; only
/// agents reach the gateways; Prometheus (and nothing else) reaches the
/// collectors' 8888 and the engines' `metrics` port; each engine's peers
/// reach its business port and strangers do not.
pub fn check_network_policies(m: &Manifest) -> Result<(), K8sError> {
    let mut problems = Problems::default();
    let workloads = m.workloads();
    let engines: Vec<&Workload<'_>> = workloads.iter().filter(|w| w.is_engine()).collect();
    let agents: Vec<&Workload<'_>> = workloads
        .iter()
        .filter(|w| w.kind == "DaemonSet" && w.is_collector())
        .collect();
    let gateways: Vec<&Workload<'_>> = workloads
        .iter()
        .filter(|w| w.kind == "Deployment" && w.is_collector())
        .collect();
    let traffic = Traffic::new(m, &workloads);
    if engines.is_empty() || agents.is_empty() {
        problems.push("no engine Deployments or no collector DaemonSet rendered");
    }
    for agent in &agents {
        traffic.check_agent(&mut problems, agent, &engines);
    }
    for gateway in &gateways {
        traffic.check_gateway(&mut problems, gateway, &agents, &engines);
    }
    let others: Vec<PodRef> = workloads
        .iter()
        .map(PodRef::of)
        .chain(traffic.strangers.iter().cloned())
        .chain([traffic.prometheus.clone()])
        .collect();
    for e in &engines {
        traffic.check_engine(&mut problems, e, &others);
    }
    for caller in &engines {
        traffic.check_peer_calls(&mut problems, caller, &engines);
    }
    problems.finish("network policies")
}

/// The rendered policies, and the pods outside the workloads that
/// traffic is checked from.
struct Traffic<'a> {
    m: &'a Manifest,
    /// Prometheus' pods.
    prometheus: PodRef,
    /// Pods that no policy should let in anywhere.
    strangers: Vec<PodRef>,
}

impl<'a> Traffic<'a> {
    /// Strangers: a labelled pod in `default`, and an unlabelled pod in
    /// every namespace that runs something (and Prometheus').
    fn new(m: &'a Manifest, workloads: &[Workload<'_>]) -> Traffic<'a> {
        let mut strangers = vec![PodRef::outsider(
            "a pod in namespace default",
            "default",
            &[("app.kubernetes.io/name", "stranger")],
        )];
        let mut namespaces: BTreeSet<String> =
            workloads.iter().map(|w| w.namespace.clone()).collect();
        namespaces.insert(PROMETHEUS_NAMESPACE.to_string());
        for ns in namespaces {
            strangers.push(PodRef::outsider(
                &format!("an unlabelled pod in namespace {ns}"),
                &ns,
                &[],
            ));
        }
        Traffic {
            m,
            prometheus: PodRef::outsider("Prometheus", PROMETHEUS_NAMESPACE, &[PROMETHEUS_LABEL]),
            strangers,
        }
    }

    /// A problem unless the policies let `from` reach `to` on `port`
    /// exactly when `allowed` (`why` says why that is intended).
    fn check_reach(
        &self,
        problems: &mut Problems,
        from: &PodRef,
        to: &PodRef,
        port: u16,
        allowed: bool,
        why: &str,
    ) {
        if ingress_allowed(self.m, from, to, port) != allowed {
            problems.push(format!(
                "{} {} reach {} on port {port} ({why}); {}",
                from.what,
                if allowed { "cannot" } else { "can" },
                to.what,
                allowing_policies(self.m, to)
            ));
        }
    }

    /// `from` must reach `to` on `port`.
    fn allow(&self, problems: &mut Problems, from: &PodRef, to: &PodRef, port: u16, why: &str) {
        self.check_reach(problems, from, to, port, true, why);
    }

    /// `from` must not reach `to` on `port`.
    fn deny(&self, problems: &mut Problems, from: &PodRef, to: &PodRef, port: u16, why: &str) {
        self.check_reach(problems, from, to, port, false, why);
    }

    /// An agent: engines send it OTLP, nobody else does; Prometheus scrapes it.
    fn check_agent(&self, problems: &mut Problems, a: &Workload<'_>, engines: &[&Workload<'_>]) {
        let agent = PodRef::of(a);
        for e in engines {
            for port in OTLP_PORTS {
                let why = "engines export OTLP to the agent";
                self.allow(problems, &PodRef::of(e), &agent, port, why);
            }
        }
        self.closed_collector(problems, &agent, &OTLP_PORTS, "only engines may send OTLP");
    }

    /// A gateway: agents send it OTLP/gRPC, engines and strangers do not;
    /// Prometheus scrapes it.
    fn check_gateway(
        &self,
        problems: &mut Problems,
        g: &Workload<'_>,
        agents: &[&Workload<'_>],
        engines: &[&Workload<'_>],
    ) {
        let gateway = PodRef::of(g);
        for a in agents {
            let why = "agents route traces to the gateways";
            self.allow(problems, &PodRef::of(a), &gateway, 4317, why);
        }
        for e in engines {
            let why = "engines go through their agent";
            self.deny(problems, &PodRef::of(e), &gateway, 4317, why);
        }
        let why = "only agents may send OTLP to gateways";
        self.closed_collector(problems, &gateway, &[4317], why);
    }

    /// A collector: strangers reach neither its OTLP `ports` (`why`) nor
    /// its metrics port; Prometheus scrapes it.
    fn closed_collector(
        &self,
        problems: &mut Problems,
        collector: &PodRef,
        ports: &[u16],
        why: &str,
    ) {
        for stranger in &self.strangers {
            for &port in ports {
                self.deny(problems, stranger, collector, port, why);
            }
            self.deny(
                problems,
                stranger,
                collector,
                COLLECTOR_METRICS_PORT,
                "only Prometheus scrapes",
            );
        }
        self.allow(
            problems,
            &self.prometheus,
            collector,
            COLLECTOR_METRICS_PORT,
            "Prometheus scrapes the collector",
        );
    }

    /// An engine: no pod (of `others`) reaches its OTLP ports; only
    /// Prometheus its metrics port; no stranger its business port.
    fn check_engine(&self, problems: &mut Problems, e: &Workload<'_>, others: &[PodRef]) {
        let engine = PodRef::of(e);
        for from in others {
            for port in OTLP_PORTS {
                self.deny(problems, from, &engine, port, "engines never accept OTLP");
            }
        }
        if let Some((_, metrics)) = engine
            .ports
            .iter()
            .find(|(n, _)| n.as_deref() == Some("metrics"))
        {
            self.allow(
                problems,
                &self.prometheus,
                &engine,
                *metrics,
                "Prometheus scrapes the engines",
            );
            for stranger in &self.strangers {
                self.deny(
                    problems,
                    stranger,
                    &engine,
                    *metrics,
                    "only Prometheus scrapes",
                );
            }
        }
        let business = array_at(e.pod, "/containers")
            .iter()
            .find_map(engine_kind)
            .and_then(engine_port);
        if let Some(port) = business {
            for stranger in &self.strangers {
                self.deny(
                    problems,
                    stranger,
                    &engine,
                    port,
                    "only its callers reach an engine",
                );
            }
        }
    }

    /// `caller` reaches the business port of every peer whose URL it sets.
    fn check_peer_calls(
        &self,
        problems: &mut Problems,
        caller: &Workload<'_>,
        engines: &[&Workload<'_>],
    ) {
        for c in array_at(caller.pod, "/containers") {
            for (name, value) in container_env(self.m, &caller.namespace, c) {
                let Some((peer, peer_port)) = peer_of(&name) else {
                    continue;
                };
                let Some(url) = value.known() else { continue };
                let Some((_, _, port)) = url_parts(url) else {
                    continue;
                };
                for callee in engines.iter().filter(|w| runs_engine(w, peer)) {
                    let target_port = callee
                        .ports()
                        .iter()
                        .find(|(_, p)| *p == port)
                        .map(|(_, p)| *p)
                        .unwrap_or(peer_port);
                    self.allow(
                        problems,
                        &PodRef::of(caller),
                        &PodRef::of(callee),
                        target_port,
                        &format!("{name} is set on the caller"),
                    );
                }
            }
        }
    }
}
