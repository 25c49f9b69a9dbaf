//! The live terminal view: per engine requests/s, p95 latency and 5xx rate
//! (from each engine's own `/metrics`), payment outcomes from the load
//! generator, a recent trace id, and where the telemetry is going.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use otlp_viewer::{StoreStats, TraceSummary, Viewer};

use super::RunArgs;
use super::fleet::Fleet;
use super::load::LoadStats;
use crate::catalogue::EngineKind;

/// Cumulative request counts of one engine at one moment.
#[derive(Clone, Debug)]
struct Snapshot {
    at: Instant,
    /// `(le, cumulative count)`, summed over every route and status.
    buckets: Vec<(f64, f64)>,
    total: f64,
    errors: f64,
    /// The engine's own telemetry: items dropped at a full queue, and lost in failed exports.
    telemetry_dropped: f64,
    telemetry_failed: f64,
}

/// Parses `http_server_request_duration_seconds` out of a Prometheus scrape.
fn snapshot(text: &str) -> Option<Snapshot> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).ok()?;
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let (mut total, mut errors) = (0.0, 0.0);
    let (mut telemetry_dropped, mut telemetry_failed) = (0.0, 0.0);
    for sample in scrape.samples {
        if sample.labels.get("error_type").is_some()
            && let prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Untyped(n) =
                sample.value
        {
            if sample.metric.starts_with("otel_sdk_processor_") {
                telemetry_dropped += n;
            } else if sample.metric.starts_with("otel_sdk_exporter_") {
                telemetry_failed += n;
            }
            continue;
        }
        if sample.metric != "http_server_request_duration_seconds" {
            continue;
        }
        let prometheus_parse::Value::Histogram(counts) = sample.value else {
            continue;
        };
        let all = counts
            .iter()
            .find(|c| c.less_than.is_infinite())
            .map_or(0.0, |c| c.count);
        total += all;
        if sample
            .labels
            .get("http_response_status_code")
            .is_some_and(|s| s.starts_with('5'))
        {
            errors += all;
        }
        for c in counts {
            match buckets.iter_mut().find(|(le, _)| *le == c.less_than) {
                Some((_, n)) => *n += c.count,
                None => buckets.push((c.less_than, c.count)),
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(Snapshot {
        at: Instant::now(),
        buckets,
        total,
        errors,
        telemetry_dropped,
        telemetry_failed,
    })
}

/// The `q` quantile (seconds) of the requests between two snapshots,
/// interpolated within the bucket as Prometheus' `histogram_quantile` does.
fn quantile(q: f64, before: &Snapshot, now: &Snapshot) -> Option<f64> {
    let delta = |le: f64| {
        let old = before
            .buckets
            .iter()
            .find(|(l, _)| *l == le)
            .map_or(0.0, |(_, n)| *n);
        now.buckets
            .iter()
            .find(|(l, _)| *l == le)
            .map_or(0.0, |(_, n)| *n)
            - old
    };
    let total = now.total - before.total;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, _) in &now.buckets {
        let count = delta(*le);
        if count >= target {
            if le.is_infinite() {
                return Some(lower);
            }
            let share = if count > below {
                (target - below) / (count - below)
            } else {
                1.0
            };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (*le, count);
    }
    None
}

#[derive(Clone, Debug, Default)]
struct Row {
    up: bool,
    rps: Option<f64>,
    p95_ms: Option<f64>,
    error_pct: Option<f64>,
}

/// How often the run prints its line when there is no live table.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// The view's state between refreshes.
#[derive(Debug)]
pub struct View {
    live: bool,
    header: String,
    sinks: String,
    run_dir: PathBuf,
    http: reqwest::Client,
    previous: HashMap<EngineKind, Snapshot>,
    rows: HashMap<EngineKind, Row>,
    last_line: Option<Instant>,
    /// The slowest and the failed recent payments, from the viewer.
    slowest: Vec<TraceSummary>,
    failed: Vec<TraceSummary>,
}

/// What the viewer held when the run ended, and where it was written.
#[derive(Debug)]
pub struct Kept {
    /// `<run dir>/traces.jsonl.gz`.
    pub path: PathBuf,
    /// Traces written, or why not.
    pub written: Result<usize, String>,
    /// The viewer's counts at the end.
    pub stats: StoreStats,
    /// Export requests forwarded, failed and dropped, when it forwarded to a collector.
    pub forwarded: Option<(u64, u64, u64)>,
}

fn describe_knobs(args: &RunArgs) -> String {
    let mut s = format!(
        "load {} payments/s (invalid {:.0}%, sanctioned {:.0}%)",
        args.mix.rate,
        args.mix.invalid * 100.0,
        args.mix.sanctioned * 100.0
    );
    for (k, ms) in &args.latency {
        let _ = write!(s, "; {} +{ms} ms", k.name());
    }
    for (k, share) in &args.errors {
        let _ = write!(s, "; {} errors {:.0}%", k.name(), share * 100.0);
    }
    for (k, from, to) in &args.outage {
        let _ = write!(
            s,
            "; {} down {}-{} s",
            k.name(),
            from.as_secs(),
            to.as_secs()
        );
    }
    s
}

fn describe_sinks(fleet: &Fleet, run_dir: &Path, viewer: Option<&Viewer>) -> String {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
    let gateway = fleet
        .slots
        .iter()
        .find(|s| s.kind == EngineKind::Gateway)
        .map_or(EngineKind::Gateway.default_port(), |s| s.port);
    let metrics = format!(
        "metrics: http://127.0.0.1:{gateway}/metrics (every engine serves /metrics on its port)"
    );
    let logs = run_dir.join("logs").display().to_string();
    if let Some(viewer) = viewer {
        let onward = match (viewer.forwarded(), var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            (Some(_), Some(endpoint)) => format!(", which forwards everything to {endpoint}"),
            _ => String::new(),
        };
        return format!(
            "traces, logs, metrics: OTLP → the embedded viewer{onward}\nopen {} \
             (or `deltran trace <id>`)\n{metrics}\nengine logs: {logs}",
            viewer.url()
        );
    }
    match var("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        Some(endpoint) => {
            format!("traces, metrics, logs: OTLP → {endpoint}\n{metrics}\nengine logs: {logs}")
        }
        None => format!(
            "no collector (set OTEL_EXPORTER_OTLP_ENDPOINT to use one)\n{metrics}\ntraces and logs: console → {logs}/<engine>.log (grep the trace id)"
        ),
    }
}

impl View {
    /// A view for this run.
    pub fn new(args: &RunArgs, fleet: &Fleet, run_dir: &Path, viewer: Option<&Viewer>) -> View {
        View {
            // Screen-clearing codes only where a person watches a terminal.
            live: !args.no_view && std::io::stdout().is_terminal(),
            header: describe_knobs(args),
            sinks: describe_sinks(fleet, run_dir, viewer),
            run_dir: run_dir.to_path_buf(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(800))
                .build()
                .unwrap_or_default(),
            previous: HashMap::new(),
            rows: HashMap::new(),
            last_line: None,
            slowest: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Scrapes every engine and redraws (or, without the live table, scrapes
    /// and prints a line every [`LINE_EVERY`]).
    pub async fn refresh(
        &mut self,
        fleet: &mut Fleet,
        stats: &LoadStats,
        elapsed: Duration,
        viewer: Option<&Viewer>,
    ) {
        // Without the live table the engines are read only for the line
        // printed every few seconds: each read costs every engine a full
        // collection of its metrics, so none is made for nothing shown.
        if self.live || self.line_due() {
            self.scrape(fleet).await;
        }
        if let Some(viewer) = viewer {
            (self.slowest, self.failed) = super::viewer::recent_payments(viewer);
        }
        self.show(stats, fleet, elapsed);
    }

    /// Reads every running engine's `/metrics` into its row and snapshot.
    pub async fn scrape(&mut self, fleet: &mut Fleet) {
        for slot in fleet.slots.iter_mut() {
            let running = slot.running();
            let url = format!("http://127.0.0.1:{}/metrics", slot.port);
            let scraped = match running {
                true => match self.http.get(&url).send().await {
                    Ok(r) => r.text().await.ok().and_then(|t| snapshot(&t)),
                    Err(_) => None,
                },
                false => None,
            };
            let mut row = Row {
                up: scraped.is_some(),
                ..Row::default()
            };
            if let Some(now) = scraped {
                if let Some(before) = self.previous.get(&slot.kind) {
                    let dt = now.at.duration_since(before.at).as_secs_f64();
                    let requests = now.total - before.total;
                    if dt > 0.0 && requests >= 0.0 {
                        row.rps = Some(requests / dt);
                        row.p95_ms = quantile(0.95, before, &now).map(|s| s * 1000.0);
                        row.error_pct = (requests > 0.0)
                            .then(|| 100.0 * (now.errors - before.errors) / requests);
                    }
                }
                self.previous.insert(slot.kind, now);
            } else {
                self.previous.remove(&slot.kind);
            }
            self.rows.insert(slot.kind, row);
        }
    }

    /// Without the live table, a line is printed every [`LINE_EVERY`].
    fn line_due(&self) -> bool {
        self.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY)
    }

    fn show(&mut self, stats: &LoadStats, fleet: &Fleet, elapsed: Duration) {
        if self.live {
            print!("\x1b[2J\x1b[H{}", self.render(fleet, stats, elapsed));
        } else if self.line_due() {
            self.last_line = Some(Instant::now());
            let up = self.rows.values().filter(|r| r.up).count();
            println!(
                "[{:>4}s] engines up {up}/8 | {}",
                elapsed.as_secs(),
                stats.summary()
            );
        }
    }

    fn render(&self, fleet: &Fleet, stats: &LoadStats, elapsed: Duration) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "DelTran fleet — {} s — {}    (Ctrl-C stops everything)\n",
            elapsed.as_secs(),
            self.header
        );
        let _ = writeln!(
            out,
            "{:<19} {:<10} {:>5}  {:<5} {:>8} {:>9} {:>7}",
            "engine", "framework", "port", "state", "req/s", "p95 ms", "5xx %"
        );
        let fmt =
            |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
        for slot in &fleet.slots {
            let row = self.rows.get(&slot.kind).cloned().unwrap_or_default();
            let state = match (row.up, slot.stopped) {
                (true, _) => "up",
                (false, true) => "STOP",
                (false, false) => "DOWN",
            };
            let _ = writeln!(
                out,
                "{:<19} {:<10} {:>5}  {:<5} {:>8} {:>9} {:>7}",
                slot.kind.name(),
                slot.kind.framework(),
                slot.port,
                state,
                fmt(row.rps, 1),
                fmt(row.p95_ms, 1),
                fmt(row.error_pct, 1),
            );
        }
        let _ = writeln!(out, "\npayments: {}", stats.summary());
        let _ = writeln!(
            out,
            "websocket clients: {}",
            stats.websockets.load(Ordering::Relaxed)
        );
        let trace = stats.last_trace.lock().ok().and_then(|t| t.clone());
        let _ = writeln!(
            out,
            "recent trace id: {}",
            trace.as_deref().unwrap_or("(none yet)")
        );
        for (title, list) in [
            ("slowest recent payments", &self.slowest),
            ("failed recent payments", &self.failed),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{title}:");
            for t in list {
                let _ = writeln!(
                    out,
                    "  {:>8.1} ms  {:<9} {}  trace {}",
                    t.duration_nanos as f64 / 1e6,
                    t.key_attributes
                        .get(crate::engines::gateway::PAYMENT_OUTCOME)
                        .map_or("", String::as_str),
                    t.key_attributes
                        .get(crate::engines::gateway::PAYMENT_ID)
                        .map_or("", String::as_str),
                    t.trace_id
                );
            }
        }
        let _ = writeln!(out, "\n{}", self.sinks);
        let _ = writeln!(out, "run directory: {}", self.run_dir.display());
        out
    }

    /// The final counts, printed after everything stopped: what the load
    /// saw, how the stop went, and each engine's requests and 5xx as its
    /// own `/metrics` last said.
    pub fn summary(
        &self,
        stats: &LoadStats,
        elapsed: Duration,
        ending: &Ending,
        kept: Option<&Kept>,
    ) {
        println!(
            "\ndeltran: ran {} s | {}",
            elapsed.as_secs(),
            stats.summary()
        );
        println!(
            "deltran: stopped in {:.1} s | engines {} | nats-server {}",
            ending.took.as_secs_f64(),
            if ending.engines_clean {
                "all exited cleanly"
            } else {
                "NOT all exited cleanly (see their logs)"
            },
            if ending.nats_clean {
                "exited cleanly"
            } else {
                "had to be killed"
            },
        );
        println!("deltran: {}", self.engine_totals());
        println!("deltran: {}", self.telemetry_totals());
        if let Some(kept) = kept {
            let s = &kept.stats;
            println!(
                "deltran: viewer received {} spans, {} log lines, {} metric points; holds {} traces \
                 ({} evicted as the oldest, bounds {} spans / {} log lines)",
                s.spans_received,
                s.logs_received,
                s.points_received,
                s.traces,
                s.traces_evicted,
                s.limits.map_or(0, |l| l.max_spans),
                s.limits.map_or(0, |l| l.max_logs),
            );
            if let Some((forwarded, failed, dropped)) = kept.forwarded {
                println!(
                    "deltran: viewer forwarded {forwarded} export requests to the collector \
                     ({failed} failed, {dropped} dropped at a full queue)"
                );
            }
            match &kept.written {
                Ok(n) => println!(
                    "deltran: {n} traces kept in {} (deltran trace <id> --run-dir {})",
                    kept.path.display(),
                    self.run_dir.display()
                ),
                Err(e) => println!("deltran: cannot write {}: {e}", kept.path.display()),
            }
        }
        println!(
            "deltran: logs and ledger kept in {}",
            self.run_dir.display()
        );
    }
}

/// How the stop went.
#[derive(Debug, Clone, Copy)]
pub struct Ending {
    /// From the stop request until NATS was down.
    pub took: Duration,
    /// Every engine exited 0 within the stop budget.
    pub engines_clean: bool,
    /// The NATS server this run started exited on SIGTERM.
    pub nats_clean: bool,
}

impl View {
    /// One `<title>: <engine> …, …` line from each engine's last scrape,
    /// engines by name.
    fn per_engine(&self, title: &str, part: impl Fn(&Snapshot) -> String) -> String {
        let mut kinds: Vec<&EngineKind> = self.previous.keys().collect();
        kinds.sort_by_key(|k| k.name());
        let parts: Vec<String> = kinds
            .into_iter()
            .filter_map(|k| Some(format!("{} {}", k.name(), part(self.previous.get(k)?))))
            .collect();
        if parts.is_empty() {
            format!("{title}: none scraped")
        } else {
            format!("{title}: {}", parts.join(", "))
        }
    }

    /// `requests per engine: <engine> N (5xx M), …`: the counters since
    /// each engine process started.
    fn engine_totals(&self) -> String {
        self.per_engine("requests per engine", |s| {
            format!("{:.0} (5xx {:.0})", s.total, s.errors)
        })
    }

    /// `telemetry lost per engine: <engine> dropped N failed M, …` from the
    /// engines' own `otel.sdk.*` counters (all zero is the healthy answer).
    fn telemetry_totals(&self) -> String {
        self.per_engine("telemetry lost per engine", |s| {
            format!(
                "dropped {:.0} failed {:.0}",
                s.telemetry_dropped, s.telemetry_failed
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(buckets: &[(f64, f64)]) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            buckets: buckets.to_vec(),
            total: buckets.last().map_or(0.0, |b| b.1),
            errors: 0.0,
            telemetry_dropped: 0.0,
            telemetry_failed: 0.0,
        }
    }

    #[test]
    fn quantile_interpolates_within_the_bucket_like_prometheus() {
        let before = snap(&[(0.01, 0.0), (0.1, 0.0), (f64::INFINITY, 0.0)]);
        // 50 requests ≤ 10 ms, 50 between 10 and 100 ms.
        let now = snap(&[(0.01, 50.0), (0.1, 100.0), (f64::INFINITY, 100.0)]);
        let p95 = quantile(0.95, &before, &now).unwrap();
        assert!((p95 - (0.01 + 0.09 * 0.9)).abs() < 1e-9, "{p95}");
        let p50 = quantile(0.5, &before, &now).unwrap();
        assert!((p50 - 0.01).abs() < 1e-9, "{p50}");
        assert_eq!(quantile(0.95, &now, &now), None, "no requests, no quantile");
    }

    #[test]
    fn snapshot_sums_routes_and_counts_5xx() {
        let text = "# TYPE http_server_request_duration_seconds histogram\n\
http_server_request_duration_seconds_bucket{http_route=\"/a\",http_response_status_code=\"200\",le=\"0.1\"} 3\n\
http_server_request_duration_seconds_bucket{http_route=\"/a\",http_response_status_code=\"200\",le=\"+Inf\"} 4\n\
http_server_request_duration_seconds_bucket{http_route=\"/b\",http_response_status_code=\"503\",le=\"0.1\"} 1\n\
http_server_request_duration_seconds_bucket{http_route=\"/b\",http_response_status_code=\"503\",le=\"+Inf\"} 2\n\
# TYPE otel_sdk_processor_span_processed_total counter\n\
otel_sdk_processor_span_processed_total{otel_component_type=\"batching_span_processor\"} 100\n\
otel_sdk_processor_span_processed_total{error_type=\"queue_full\",otel_component_type=\"batching_span_processor\"} 7\n\
otel_sdk_processor_log_processed_total{error_type=\"queue_full\",otel_component_type=\"batching_log_processor\"} 1\n\
# TYPE otel_sdk_exporter_span_exported_total counter\n\
otel_sdk_exporter_span_exported_total{otel_component_type=\"otlp_grpc_span_exporter\"} 93\n\
otel_sdk_exporter_span_exported_total{error_type=\"export_failed\",otel_component_type=\"otlp_grpc_span_exporter\"} 3\n";
        let s = snapshot(text).unwrap();
        assert_eq!((s.telemetry_dropped, s.telemetry_failed), (8.0, 3.0));
        assert_eq!(s.total, 6.0);
        assert_eq!(s.errors, 2.0);
        assert_eq!(s.buckets, vec![(0.1, 4.0), (f64::INFINITY, 6.0)]);
    }
}
