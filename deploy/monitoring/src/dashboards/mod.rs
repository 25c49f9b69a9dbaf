//! The dashboard catalogue: every dashboard `deploy/grafana/dashboards/`
//! holds, written here once and rendered to the JSON Grafana loads.
//!
//! Every query selects on `deployment_environment_name`,
//! `service_namespace` and `service_name`, the labels both metric paths put
//! on every series (the engines' `/metrics`, and the collector or
//! Prometheus' OTLP receiver promoting the same resource attributes), and
//! never on `job`, `instance` or `otel_scope_*`, which differ between them.

mod cryptofunk;
mod engine;
mod overview;
mod payments;
mod pipeline;

use crate::grafana::{Dashboard, Target, Variable};

/// A dashboard and the file it is written to.
#[derive(Debug)]
pub struct DashboardFile {
    /// File name under `deploy/grafana/dashboards/`.
    pub file_name: &'static str,
    /// The dashboard.
    pub dashboard: Dashboard,
}

/// Every dashboard, in the order the README lists them: DelTran's, then
/// CryptoFunk's.
pub fn all() -> Vec<DashboardFile> {
    let mut all = vec![
        DashboardFile {
            file_name: "services-overview.json",
            dashboard: overview::dashboard(),
        },
        DashboardFile {
            file_name: "engine-drill-down.json",
            dashboard: engine::dashboard(),
        },
        DashboardFile {
            file_name: "payments.json",
            dashboard: payments::dashboard(),
        },
        DashboardFile {
            file_name: "telemetry-pipeline.json",
            dashboard: pipeline::dashboard(),
        },
    ];
    all.extend(cryptofunk::all());
    all
}

/// A monitored system: the namespace its services report under, which its
/// dashboards' `$namespace` opens on (one Prometheus may hold several:
/// Grafana would otherwise open on the first alphabetically), and the tag
/// that links its dashboards to each other.
#[derive(Clone, Copy, Debug)]
pub struct System {
    /// `service.namespace` of its services.
    pub namespace: &'static str,
    /// Dashboard tag.
    pub tag: &'static str,
    /// Display name.
    pub name: &'static str,
}

/// The DelTran payment fleet.
pub const DELTRAN: System = System {
    namespace: "deltran",
    tag: crate::grafana::TAG,
    name: "DelTran",
};

/// The CryptoFunk trading fleet.
pub const CRYPTOFUNK: System = System {
    namespace: "cryptofunk",
    tag: "cryptofunk",
    name: "CryptoFunk",
};

/// The engine drill-down's uid (the overview links to it per service).
pub const ENGINE_UID: &str = "deltran-engine";

/// Environment and namespace variables' filter.
pub(crate) const SCOPE: &str =
    r#"deployment_environment_name=~"$env", service_namespace=~"$namespace""#;

/// [`SCOPE`] plus the service variable.
pub(crate) const SCOPE_SERVICE: &str = r#"deployment_environment_name=~"$env", service_namespace=~"$namespace", service_name=~"$service""#;

/// Every engine exports `service.build.info`, on both paths: the variables
/// read their values from it.
const IDENTITY_SERIES: &str = "service_build_info";

/// `$datasource`, `$env`, `$namespace` of a DelTran dashboard.
pub(crate) fn scope_variables(d: Dashboard) -> Dashboard {
    system_variables(d, &DELTRAN)
}

/// `$datasource`, `$env`, `$namespace` (opening on the system's own), and
/// the system's tag.
pub(crate) fn system_variables(d: Dashboard, system: &System) -> Dashboard {
    d.system(system.tag, system.name)
        .variable(Variable::datasource())
        .variable(Variable::single(
            "env",
            "Environment",
            IDENTITY_SERIES,
            "deployment_environment_name",
        ))
        .variable(
            Variable::single(
                "namespace",
                "Namespace",
                format!(r#"{IDENTITY_SERIES}{{deployment_environment_name=~"$env"}}"#),
                "service_namespace",
            )
            .default_value(system.namespace),
        )
}

/// The series `$service` offers its values from.
pub(crate) fn service_series() -> String {
    format!("{IDENTITY_SERIES}{{{SCOPE}}}")
}

/// `rate(<metric>{<filter>}[$__rate_interval])`.
pub(crate) fn rate(metric: &str, filter: &str) -> String {
    format!("rate({metric}{{{filter}}}[$__rate_interval])")
}

/// `histogram_quantile(q, sum by (<by>, le) (rate(<histogram>_bucket{…})))`.
pub(crate) fn quantile(q: f64, histogram: &str, filter: &str, by: &str) -> String {
    let by = if by.is_empty() {
        "le".to_string()
    } else {
        format!("{by}, le")
    };
    format!(
        "histogram_quantile({q}, sum by ({by}) ({}))",
        rate(&format!("{histogram}_bucket"), filter)
    )
}

/// A ratio that reads 0 (not "No data") while the numerator has no series:
/// `(sum by (<by>) (rate(num)) or sum by (<by>) (rate(den)) * 0) / sum by (<by>) (rate(den))`.
pub(crate) fn ratio_or_zero(metric: &str, num_filter: &str, den_filter: &str, by: &str) -> String {
    let sum = |f: &str| format!("sum by ({by}) ({})", rate(metric, f));
    format!(
        "({} or {} * 0) / {}",
        sum(num_filter),
        sum(den_filter),
        sum(den_filter)
    )
}

/// A rate that reads 0 while the selected series do not exist yet
/// (e.g. no request has failed): `sum by (<by>) (rate(m{num})) or sum by (<by>) (rate(m{den})) * 0`.
pub(crate) fn rate_or_zero(metric: &str, num_filter: &str, den_filter: &str, by: &str) -> String {
    format!(
        "sum by ({by}) ({}) or sum by ({by}) ({}) * 0",
        rate(metric, num_filter),
        rate(metric, den_filter)
    )
}

/// Joins label filters.
pub(crate) fn and(a: &str, b: &str) -> String {
    format!("{a}, {b}")
}

/// NATS messages published per second by subject (failed ones by error.type);
/// the overview and the drill-down show the same series.
pub(crate) fn nats_published_by_subject() -> Target {
    Target::new(
        format!(
            "sum by (messaging_destination_name, error_type) ({})",
            rate("messaging_client_sent_messages_total", SCOPE_SERVICE)
        ),
        "{{messaging_destination_name}} {{error_type}}",
    )
}

/// Share of cache lookups that hit, per cache.
pub(crate) fn cache_hit_rate() -> Target {
    Target::new(
        format!(
            "sum by (cache_name) ({}) / sum by (cache_name) ({})",
            rate(
                "cache_lookups_total",
                &and(SCOPE_SERVICE, r#"cache_result="hit""#)
            ),
            rate("cache_lookups_total", SCOPE_SERVICE)
        ),
        "{{cache_name}}",
    )
}

/// `sum by (service_name) (rate(<metric>{<scope>, <filter>}))`, one line per engine.
pub(crate) fn per_engine_rate(metric: &str, filter: &str, legend: &str) -> Target {
    Target::new(
        format!(
            "sum by (service_name) ({})",
            rate(metric, &and(SCOPE_SERVICE, filter))
        ),
        legend,
    )
}
