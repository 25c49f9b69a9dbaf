//! The embedded OTLP viewer: where the engines' traces, logs and metrics go
//! when no collector is configured, the recent payments the live view shows,
//! and `deltran trace <id>`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use otlp_viewer::{
    ForwardConfig, ForwardProtocol, Limits, TraceDetail, TraceFilter, TraceSummary, Viewer,
    ViewerConfig, ViewerSettings, waterfall,
};

use super::{Ports, RunArgs};
use crate::engines::gateway::{PAYMENT_ID, PAYMENT_OUTCOME};

/// Default port of the viewer's page.
pub const DEFAULT_VIEWER_PORT: u16 = 18888;

/// Name of the file a run leaves its held traces in.
pub const DUMP_FILE: &str = "traces.jsonl.gz";

/// When the launcher runs the embedded viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewerMode {
    /// When no `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the engines export to it).
    Auto,
    /// Always; with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the engines export to
    /// the viewer and it passes every export on to that collector.
    On,
    /// Never: without a collector, traces go to the engines' logs as JSON lines.
    Off,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

const SIGNAL_ENDPOINTS: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
];

fn collector_configured() -> bool {
    var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || SIGNAL_ENDPOINTS.iter().any(|n| var(n).is_some())
}

/// `--viewer on` beside a collector: the viewer forwards to it.
fn forward_to_collector() -> Result<ForwardConfig, String> {
    if let Some(name) = SIGNAL_ENDPOINTS.iter().find(|n| var(n).is_some()) {
        return Err(format!(
            "--viewer on forwards to one collector; {name} is set: use OTEL_EXPORTER_OTLP_ENDPOINT \
             alone, or drop --viewer on"
        ));
    }
    let endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    let protocol = match var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        None | Some("grpc") => ForwardProtocol::Grpc,
        Some("http/protobuf") => ForwardProtocol::HttpProtobuf,
        Some(other) => {
            return Err(format!(
                "--viewer on: OTEL_EXPORTER_OTLP_PROTOCOL={other:?}; the viewer forwards over grpc or http/protobuf"
            ));
        }
    };
    Ok(ForwardConfig::new(endpoint, protocol))
}

/// What the viewer shows beside each trace and how it is searched.
fn settings() -> ViewerSettings {
    ViewerSettings {
        key_attributes: vec![
            PAYMENT_ID.to_string(),
            PAYMENT_OUTCOME.to_string(),
            "deltran.window.id".to_string(),
        ],
        search_attribute: PAYMENT_ID.to_string(),
        search_label: "payment id".to_string(),
        title: "DelTran fleet".to_string(),
    }
}

/// Starts the viewer when the mode asks for it.
///
/// # Errors
/// `--viewer on` beside a collector endpoint, or a port that cannot be bound.
pub fn start(args: &RunArgs) -> Result<Option<Viewer>, String> {
    let forward = match args.viewer {
        ViewerMode::Off => return Ok(None),
        ViewerMode::Auto if collector_configured() => return Ok(None),
        ViewerMode::Auto => None,
        ViewerMode::On if collector_configured() => Some(forward_to_collector()?),
        ViewerMode::On => None,
    };
    let port = match (args.viewer_port, args.ports) {
        (Some(p), _) => p,
        (None, Ports::Auto) => 0,
        (None, Ports::Default) => DEFAULT_VIEWER_PORT,
    };
    let config = ViewerConfig {
        ui: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        limits: Limits::default(),
        settings: settings(),
        forward,
        ..ViewerConfig::default()
    };
    Viewer::start(config).map(Some).map_err(|e| {
        format!("{e} (the viewer's page wants 127.0.0.1:{port}; choose another with --viewer-port, or --viewer off)")
    })
}

/// The slowest and the failed recent payments, for the live view.
pub fn recent_payments(viewer: &Viewer) -> (Vec<TraceSummary>, Vec<TraceSummary>) {
    let store = viewer.store();
    let payments = |filter: TraceFilter| -> Vec<TraceSummary> {
        store
            .traces(&filter)
            .into_iter()
            .filter(|t| t.key_attributes.contains_key(PAYMENT_ID))
            .take(3)
            .collect()
    };
    let slowest = payments(TraceFilter {
        slowest_first: true,
        limit: Some(1000),
        ..TraceFilter::default()
    });
    let failed = payments(TraceFilter {
        status: Some("error".to_string()),
        limit: Some(1000),
        ..TraceFilter::default()
    });
    (slowest, failed)
}

/// Options of `deltran trace`.
#[derive(Clone, Debug, clap::Args)]
pub struct TraceArgs {
    /// The trace id (32 hex characters), as the live view and the logs print it.
    pub trace_id: String,
    /// A finished run's directory: read its `traces.jsonl.gz` instead of asking a running viewer.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// The running viewer's address.
    #[arg(long, env = "DELTRAN_VIEWER_URL", default_value_t = format!("http://127.0.0.1:{DEFAULT_VIEWER_PORT}"))]
    pub viewer: String,
    /// Print the trace as JSON instead of a waterfall.
    #[arg(long)]
    pub json: bool,
}

/// `deltran trace <id>`: prints one trace as a waterfall across the engines.
pub fn run_trace(args: TraceArgs) -> ExitCode {
    let id = args.trace_id.trim().to_ascii_lowercase();
    if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        eprintln!(
            "deltran trace: {:?} is not a trace id; a trace id is 32 hexadecimal characters",
            args.trace_id
        );
        return ExitCode::from(2);
    }
    let found = match &args.run_dir {
        Some(dir) => from_run_dir(dir, &id),
        None => from_viewer(&args.viewer, &id),
    };
    match found {
        Ok(trace) => {
            if args.json {
                match serde_json::to_string_pretty(&trace) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("deltran trace: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", waterfall::render(&trace, &settings().key_attributes));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("deltran trace: {e}");
            ExitCode::FAILURE
        }
    }
}

fn from_run_dir(dir: &Path, id: &str) -> Result<TraceDetail, String> {
    let path = dir.join(DUMP_FILE);
    match otlp_viewer::find_in_dump(&path, id) {
        Ok(Some(trace)) => Ok(trace),
        Ok(None) => Err(format!(
            "trace {id} is not in {} (the viewer keeps the most recent traces; older ones were evicted)",
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot read {}: {e} (a run writes it when it stops with the viewer on)",
            path.display()
        )),
    }
}

fn from_viewer(base: &str, id: &str) -> Result<TraceDetail, String> {
    let url = format!("{}/api/traces/{id}", base.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client.get(&url).send().await.map_err(|e| {
            format!("cannot reach the viewer at {base}: {e} (is the fleet running? for a finished run use --run-dir)")
        })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{url}: {status}: {}", body.trim()));
        }
        serde_json::from_str(&body).map_err(|e| format!("{url}: unexpected answer: {e}"))
    })
}
