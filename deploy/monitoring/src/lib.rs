//! Monitoring as code for the fleet.
//!
//! - [`dashboards`]: the Grafana dashboards, written once as a catalogue
//!   and rendered to `deploy/grafana/dashboards/*.json` ([`grafana`] is the
//!   small model they are written in).
//! - [`slo`]: `deploy/slo/*.yaml` → multi-window, multi-burn-rate rules.
//! - [`generate`]: the rendered files and the stale-file check
//!   (`cargo run -p monitoring -- generate | check`).
//! - [`push_path`]: how an OTLP metric is named in Prometheus on the push
//!   path, to prove both paths give the series dashboards select.
//! - [`rules`], [`promql`], [`duration`], [`staging`], [`dashboard_queries`]:
//!   what tests use to run the shipped files against real Prometheus and
//!   Alertmanager servers — read rule files, find the metrics a query
//!   reads, shorten timings by one documented factor, expand Grafana
//!   variables as Grafana does.

pub mod dashboard_queries;
pub mod dashboards;
pub mod duration;
pub mod generate;
pub mod grafana;
pub mod promql;
pub mod push_path;
pub mod rules;
pub mod slo;
pub mod staging;
