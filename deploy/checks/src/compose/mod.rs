//! The compose stack of `deploy/compose/`, checked without Docker.
//!
//! Docker does not run where these checks run, so nothing here starts a
//! container. Instead the compose file is read the way Compose reads it
//! (paths relative to the file, YAML merge keys applied, short and long
//! syntax) and every place where one file names another service is followed
//! to the file that decides it: an engine's `OTEL_EXPORTER_OTLP_ENDPOINT`
//! must name the collector service and a port its OTLP receiver listens on
//! (read from the merged collector configuration), the collector's exporter
//! endpoints must name Prometheus, Loki and Tempo on the ports their
//! configurations open, Grafana's datasources and Prometheus' target files
//! likewise. What such a stack gets wrong is rarely a key: it is a port or
//! a name that two files disagree on, which only shows when the stack runs.
//!
//! Every problem is a [`Finding`]: the file to change and what to change.
//!
//! The model ([`Stack`], [`Service`], the [`Listener`]s each service opens)
//! is read once; each `check_*` function is one concern, in its own module.
//!
//! ```no_run
//! use deploy_checks::compose::{Stack, check_all, compose_file, validate_schema};
//! validate_schema(&compose_file())?;
//! let stack = Stack::load(&compose_file())?;
//! check_all(&stack)?;
//! # Ok::<(), deploy_checks::compose::ComposeError>(())
//! ```

mod collector;
mod dockerfile;
mod endpoint;
mod engines;
mod exporters;
mod findings;
mod flags;
mod grafana;
mod healthchecks;
mod image;
mod listeners;
mod mounts;
mod passwords;
mod ports;
mod prometheus;
mod read;
mod resolve;
mod schema;
mod service;
mod stack;
mod variables;

use std::path::PathBuf;

pub use collector::check_collector;
pub use dockerfile::{check_dockerfiles, dockerfile_findings};
pub use endpoint::Endpoint;
pub use engines::check_engines;
pub use exporters::check_collector_exporters;
pub use findings::{ComposeError, Finding};
pub use grafana::check_grafana;
pub use healthchecks::check_healthchecks;
pub use image::{ImageRef, check_images_pinned};
pub use listeners::{Listener, Protocol};
pub use mounts::check_mounts;
pub use passwords::check_postgres;
pub use ports::check_published_ports;
pub use prometheus::check_prometheus_targets;
pub use read::read_yaml;
pub use schema::validate_schema;
pub use service::{Build, Kind, Mount, PortMapping, Service};
pub use stack::Stack;
pub use variables::{EnvReference, env_references};

use findings::{finding, finish};

/// The compose file, relative to the repository root.
pub const COMPOSE_FILE: &str = "deploy/compose/compose.yaml";

/// `deploy/compose/compose.yaml` in this repository.
pub fn compose_file() -> PathBuf {
    crate::repo_root().join(COMPOSE_FILE)
}

/// One of the checks below.
pub type Check = fn(&Stack) -> Result<(), ComposeError>;

/// Runs every check below and reports all their findings together.
pub fn check_all(stack: &Stack) -> Result<(), ComposeError> {
    let checks: [Check; 11] = [
        check_mounts,
        check_images_pinned,
        check_dockerfiles,
        check_published_ports,
        check_collector,
        check_engines,
        check_collector_exporters,
        check_grafana,
        check_postgres,
        check_prometheus_targets,
        check_healthchecks,
    ];
    let mut findings = Vec::new();
    for check in checks {
        match check(stack) {
            Ok(()) => {}
            Err(ComposeError::Findings(f)) => findings.extend(f),
            Err(other) => findings.push(finding(&stack.path, other.to_string())),
        }
    }
    finish(findings)
}
