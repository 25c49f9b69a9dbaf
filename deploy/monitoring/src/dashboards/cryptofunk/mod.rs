//! The CryptoFunk trading fleet's dashboards: its fourteen components
//! (system), the paper portfolio (trading), the agents and their LLM and
//! tool calls (agents), and the risk controls (risk).
//!
//! They read only the series of CryptoFunk's metrics contract
//! (`deploy/prometheus/cryptofunk-metrics.txt`) and the recorded series the
//! alerts share, with the DelTran dashboards' variables and conventions:
//! `$namespace` opens on `cryptofunk`, and `$service` offers its components.

mod agents;
mod risk;
mod system;
mod trading;

use super::{CRYPTOFUNK, DashboardFile, rate, service_series, system_variables};
use crate::grafana::{Dashboard, Variable};

/// CryptoFunk's dashboards, in the order the README lists them.
pub(super) fn all() -> Vec<DashboardFile> {
    vec![
        DashboardFile {
            file_name: "cryptofunk-system.json",
            dashboard: system::dashboard(),
        },
        DashboardFile {
            file_name: "cryptofunk-trading.json",
            dashboard: trading::dashboard(),
        },
        DashboardFile {
            file_name: "cryptofunk-agents.json",
            dashboard: agents::dashboard(),
        },
        DashboardFile {
            file_name: "cryptofunk-risk.json",
            dashboard: risk::dashboard(),
        },
    ]
}

/// `$datasource`, `$env`, `$namespace` (opening on `cryptofunk`), `$service`.
fn variables(d: Dashboard) -> Dashboard {
    system_variables(d, &CRYPTOFUNK).variable(Variable::multi(
        "service",
        "Service",
        service_series(),
        "service_name",
    ))
}

/// Events per minute (trades, signals, rounds come a few a minute):
/// `60 * sum by (<by>) (rate(<metric>{<filter>}[$__rate_interval]))`.
fn per_minute(metric: &str, filter: &str, by: &str) -> String {
    format!("60 * sum by ({by}) ({})", rate(metric, filter))
}
