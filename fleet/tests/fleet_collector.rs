//! The engines really send to a collector: the fleet with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` at rotel (PyPI `rotel`, a Rust OTLP
//! collector nobody here wrote), which forwards to the telemetry test
//! receiver. Every accepted payment's trace arrives complete (as
//! `fleet_otlp.rs` defines it, `common::traces`), with its logs and the
//! metrics; and when the collector is SIGKILLed mid-run and started again on
//! the same port, no payment fails and the only data missing is what the
//! dead collector had accepted and not yet forwarded, measured from the
//! engines' own `otel.sdk.*` counters.
//!
//! Sources: the load generator's outcome counts are the launcher's final
//! line (`deltran: ran … | sent … accepted … failed …`); the accepted
//! payments themselves (id, trace id, when) are the gateway's
//! `payment received` lines in its log file, which do not travel through
//! the collector; the engines' counters are read from their `/metrics`
//! while the collector is down and from their final OTLP self-metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Launcher;
use common::traces::{SpanIndex, service};
use deltran_fleet::engines::EngineKind;
use telemetry::testing::{OtlpReceiver, ReceivedLog, ReceivedMetric, ReceivedSpan, SpanKind};
use testkit::{OtlpProtocol, Rotel};

/// One fleet at a time: each is NATS and eight engines, on 2 shared cores.
static ONE_FLEET: Mutex<()> = Mutex::new(());

fn one_fleet() -> MutexGuard<'static, ()> {
    ONE_FLEET.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the engines' pipelines count, as `otel.sdk.exporter.{item}.exported`.
const ITEMS: [&str; 3] = ["span", "log", "metric_data_point"];

/// An engine and an item it exports.
type Key = (String, &'static str);
/// Per engine and item: a number of spans, log records or metric data points.
type Tally = BTreeMap<Key, u64>;
/// Per engine and item: what a killed collector took with it (negative:
/// forwarded although the engine was never told so, and counted it failed).
type Lost = BTreeMap<Key, i64>;
/// Per engine and item: its final counts and what the receiver holds.
type Table = BTreeMap<Key, (SelfCounts, u64)>;

fn engines() -> impl Iterator<Item = &'static str> {
    EngineKind::ALL.iter().map(|k| k.name())
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn secs(nanos: i128) -> f64 {
    nanos as f64 / 1e9
}

/// The fleet's telemetry settings: everything to `endpoint` with
/// `protocol`, batches every 200 ms, metrics every second.
fn fleet_env(endpoint: String, protocol: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ("OTEL_BLRP_SCHEDULE_DELAY", "200".into()),
    ]
}

// --- the load generator's outcomes and the gateway's payments -----------------------

/// The load generator's counts from the launcher's final line:
/// `sent`, `accepted`, `settled`, `held`, `rejected`, `invalid`, `failed`,
/// `settlement` (failed in settlement), `shed`, `unreachable`.
fn outcomes(launcher: &Launcher) -> BTreeMap<String, u64> {
    let line = launcher
        .summary()
        .unwrap_or_else(|| panic!("no final line from the launcher:\n{}", launcher.logs()));
    let counts = line.split_once(" | ").map(|(_, c)| c).unwrap_or_default();
    let words: Vec<&str> = counts
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '(' || c == ')'))
        .collect();
    let parsed: BTreeMap<String, u64> = words
        .chunks(2)
        .filter_map(|p| Some((p[0].to_string(), p.get(1)?.parse().ok()?)))
        .collect();
    assert_eq!(parsed.len(), 10, "unexpected final line {line:?}");
    parsed
}

/// No payment failed: every one sent was answered (accepted, held,
/// rejected or invalid: the load generator's shares), none failed in an
/// engine or in settlement, none was shed or unanswered, and every
/// accepted one settled before the fleet stopped.
fn assert_no_payment_failed(o: &BTreeMap<String, u64>, launcher: &Launcher) {
    let n = |k: &str| o[k];
    assert!(n("accepted") > 0, "{o:?}");
    for bad in ["failed", "settlement", "shed", "unreachable"] {
        assert_eq!(n(bad), 0, "{bad}: {o:?}\n{}", launcher.logs());
    }
    assert_eq!(
        n("sent"),
        n("accepted") + n("held") + n("rejected") + n("invalid"),
        "{o:?}"
    );
    assert_eq!(n("settled"), n("accepted"), "{o:?}\n{}", launcher.logs());
}

/// An accepted payment, from the gateway's own log file.
#[derive(Debug)]
struct Payment {
    id: String,
    trace_id: String,
    /// When the gateway logged `payment received` (unix ns).
    received: u64,
    /// When it logged `payment completed` with status settled.
    settled: Option<u64>,
}

/// Unix nanoseconds of an RFC 3339 UTC timestamp as the engines' JSON logs
/// write it (`2026-11-29T22:15:45.727265Z`).
fn unix_nanos(ts: &str) -> Option<u64> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    let nanos: u64 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let seconds = u64::try_from(days * 86_400 + h * 3_600 + min * 60 + s).ok()?;
    Some(seconds * 1_000_000_000 + nanos)
}

/// Every payment the gateway logged as accepted, in order.
/// Waits for a `--duration` run to end cleanly; its outcomes (no payment
/// failed) and the accepted payments, which the gateway's log and the load
/// generator must agree on.
fn run_ended(launcher: &mut Launcher, timeout: Duration) -> (BTreeMap<String, u64>, Vec<Payment>) {
    let status = launcher.wait_for_end(timeout);
    assert!(
        status.success(),
        "launcher exit {status}:\n{}",
        launcher.logs()
    );
    let outcomes = outcomes(launcher);
    assert_no_payment_failed(&outcomes, launcher);
    let payments = accepted_payments(launcher);
    assert_eq!(
        payments.len() as u64,
        outcomes["accepted"],
        "the gateway's log and the load generator disagree"
    );
    (outcomes, payments)
}

/// (payment id, trace id, outcome) of every payment the gateway did not
/// accept: held, rejected and invalid ones, the traces a tail sampler keeps.
fn refused_payments(launcher: &Launcher) -> Vec<(String, String, String)> {
    let path = launcher.run_dir().join("logs").join("gateway.log");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["message"] == "payment received" && v["fields"]["outcome"] != "accepted")
        .map(|v| {
            (
                v["fields"]["payment.id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                v["trace_id"].as_str().unwrap_or_default().to_string(),
                v["fields"]["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn accepted_payments(launcher: &Launcher) -> Vec<Payment> {
    let path = launcher.run_dir().join("logs").join("gateway.log");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut payments: Vec<Payment> = Vec::new();
    let mut settled: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let field = |k: &str| v["fields"][k].as_str().unwrap_or_default().to_string();
        let at = || unix_nanos(v["timestamp"].as_str().unwrap_or_default());
        match v["message"].as_str() {
            Some("payment received") if field("outcome") == "accepted" => payments.push(Payment {
                id: field("payment.id"),
                trace_id: v["trace_id"].as_str().unwrap_or_default().to_string(),
                received: at().unwrap_or_else(|| panic!("bad timestamp: {line}")),
                settled: None,
            }),
            Some("payment completed") if field("status") == "settled" => {
                settled.insert(field("payment.id"), at().unwrap());
            }
            _ => {}
        }
    }
    for p in &mut payments {
        assert_eq!(p.trace_id.len(), 32, "payment {} without a trace id", p.id);
        p.settled = settled.get(&p.id).copied();
    }
    payments
}

// --- what the receiver holds --------------------------------------------------------

/// Everything the receiver holds at one moment.
#[derive(Clone)]
struct Snapshot {
    spans: Vec<ReceivedSpan>,
    logs: Vec<ReceivedLog>,
    metrics: Vec<ReceivedMetric>,
}

impl Snapshot {
    fn take(receiver: &OtlpReceiver) -> Snapshot {
        Snapshot {
            spans: receiver.spans(),
            logs: receiver.logs(),
            metrics: receiver.metrics(),
        }
    }

    /// Items received per engine, duplicates included.
    fn tally(&self) -> Tally {
        let mut t = Tally::new();
        for e in engines() {
            for item in ITEMS {
                t.insert((e.to_string(), item), 0);
            }
        }
        let name = |r: &telemetry::testing::Attributes| {
            r.str("service.name").unwrap_or_default().to_string()
        };
        for s in &self.spans {
            *t.entry((service(s).to_string(), "span")).or_default() += 1;
        }
        for l in &self.logs {
            *t.entry((name(&l.resource), "log")).or_default() += 1;
        }
        for m in &self.metrics {
            *t.entry((name(&m.resource), "metric_data_point"))
                .or_default() += m.points_len() as u64;
        }
        t
    }

    /// Like [`Snapshot::tally`], each span and log record counted once
    /// (metric points are not deduplicated).
    fn tally_distinct(&self) -> Tally {
        let mut t = self.tally();
        for e in engines() {
            for item in ["span", "log"] {
                t.insert((e.to_string(), item), 0);
            }
        }
        for (engine, item, _) in self.keys() {
            *t.entry((engine, item)).or_default() += 1;
        }
        t
    }

    /// The distinct spans and log records: (engine, item, key); a span is
    /// keyed by its ids, a record by its timestamps, body and trace context.
    fn keys(&self) -> HashSet<(String, &'static str, String)> {
        let spans = self
            .spans
            .iter()
            .map(|s| (service(s).to_string(), "span", span_key(s)));
        let logs = self.logs.iter().map(|l| {
            let engine = l.resource.str("service.name").unwrap_or_default();
            (engine.to_string(), "log", log_key(l))
        });
        spans.chain(logs).collect()
    }

    /// What arrived after `earlier` was taken (the receiver only appends).
    fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            spans: self.spans[earlier.spans.len()..].to_vec(),
            logs: self.logs[earlier.logs.len()..].to_vec(),
            metrics: self.metrics[earlier.metrics.len()..].to_vec(),
        }
    }

    /// Metric streams (name and attributes) per engine: a collection holds
    /// at most one data point per stream.
    fn streams(&self, engine: &str) -> u64 {
        let mut streams = HashSet::new();
        for m in self
            .metrics
            .iter()
            .filter(|m| m.resource.str("service.name") == Some(engine))
        {
            let attrs: Vec<String> = match m.number_points() {
                [] => m
                    .histogram_points()
                    .iter()
                    .map(|p| format!("{:?}", p.attributes))
                    .collect(),
                points => points
                    .iter()
                    .map(|p| format!("{:?}", p.attributes))
                    .collect(),
            };
            for a in attrs {
                streams.insert(format!("{} {a}", m.name));
            }
        }
        streams.len() as u64
    }
}

fn span_key(s: &ReceivedSpan) -> String {
    format!("{} {}", s.trace_id, s.span_id)
}

fn log_key(l: &ReceivedLog) -> String {
    format!(
        "{} {} {:?} {:?} {:?}",
        l.time_unix_nanos, l.observed_time_unix_nanos, l.body, l.trace_id, l.span_id
    )
}

/// Waits (≤ 60 s) until nothing new has reached the receiver for 2 s: the
/// launcher has exited, so every engine has handed its last export to the
/// collector, which forwards within its 100 ms batch timeout.
fn wait_until_quiet(receiver: &OtlpReceiver) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Snapshot::take(receiver).tally();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = Snapshot::take(receiver).tally();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(2) {
            return;
        }
    }
    panic!("the receiver still got data 60 s after the fleet stopped");
}

// --- the engines' own counters ------------------------------------------------------

/// Each engine's `otel_sdk_exporter_{item}_exported_total` from its
/// Prometheus `/metrics`: (exported, lost in failed exports).
fn scrape_exported(launcher: &Launcher) -> BTreeMap<Key, (u64, u64)> {
    let mut out = BTreeMap::new();
    for e in &launcher.fleet.engines {
        let url = format!("http://127.0.0.1:{}/metrics", e.metrics_port);
        let (code, text) = testkit::http_get(&url).unwrap();
        assert_eq!(code, 200, "{url}: {text}");
        for item in ITEMS {
            let prefix = format!("otel_sdk_exporter_{item}_exported_total{{");
            // Lost is every `error_type` together (`export_failed`, `rejected`).
            let (mut ok, mut failed) = (None, None);
            for line in text.lines().filter(|l| l.starts_with(&prefix)) {
                let value = line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64;
                if line.contains("error_type=") {
                    failed = Some(failed.unwrap_or(0) + value);
                } else {
                    ok = Some(value);
                }
            }
            let (Some(ok), Some(failed)) = (ok, failed) else {
                panic!("{}: no otel_sdk_exporter_{item}_exported_total", e.name);
            };
            out.insert((e.name.clone(), item), (ok, failed));
        }
    }
    out
}

/// One engine's final word on one item, from the last self-metrics it
/// exported (at shutdown, after its span and log pipelines were flushed).
#[derive(Debug, Clone, Copy, Default)]
struct SelfCounts {
    /// Items the collector acknowledged.
    exported: u64,
    /// Items given up in failed exports.
    failed: u64,
    /// Items taken into the queue (spans and logs; 0 for metric points).
    processed: u64,
    /// Items dropped because the queue was full.
    queue_full: u64,
    /// Items still queued at the last report.
    queued: i64,
}

fn self_counts(metrics: &[ReceivedMetric], engine: &str, item: &str) -> SelfCounts {
    let reports = |name: String| {
        metrics
            .iter()
            .filter(move |m| m.name == name && m.resource.str("service.name") == Some(engine))
    };
    let points = |name: String| reports(name).flat_map(|m| m.number_points().iter());
    // Counters are cumulative: the last report holds the largest value. The
    // error side is the sum of every `error.type` (`export_failed`,
    // `rejected`) within one report.
    let max = |name: String, error: bool| {
        reports(name)
            .filter_map(|m| {
                let mut matching = m
                    .number_points()
                    .iter()
                    .filter(|p| p.attributes.contains_key("error.type") == error)
                    .peekable();
                matching.peek()?;
                Some(matching.map(|p| p.value as u64).sum::<u64>())
            })
            .max()
    };
    let exported = format!("otel.sdk.exporter.{item}.exported");
    let processed = format!("otel.sdk.processor.{item}.processed");
    SelfCounts {
        exported: max(exported.clone(), false).unwrap_or_else(|| panic!("{engine}: no {exported}")),
        failed: max(exported, true).unwrap_or(0),
        processed: max(processed.clone(), false).unwrap_or(0),
        queue_full: max(processed, true).unwrap_or(0),
        queued: points(format!("otel.sdk.processor.{item}.queue.size"))
            .max_by_key(|p| p.time_unix_nanos)
            .map(|p| p.value as i64)
            .unwrap_or(0),
    }
}

/// The largest value a metric of `engine` reported for a point whose
/// attributes include `key=value`.
fn counter_value(metrics: &[ReceivedMetric], engine: &str, name: &str, attr: (&str, &str)) -> u64 {
    metrics
        .iter()
        .filter(|m| m.name == name && m.resource.str("service.name") == Some(engine))
        .flat_map(|m| m.number_points().iter())
        .filter(|p| p.attributes.str(attr.0) == Some(attr.1))
        .map(|p| p.value as u64)
        .max()
        .unwrap_or(0)
}

/// Every span, log record and metric data point each engine exported is
/// accounted for by its own counters, and here: spans and records taken
/// into a queue were exported (none dropped, none given up, nothing left
/// queued at shutdown), the receiver holds each exported one once except
/// `lost` (what a killed collector took with it); of the metric points it
/// holds those exported minus `lost`, plus the final collection (which
/// cannot count itself). Metric exports are not retried: with
/// `metric_outage` some failed, and were counted. Returns the final counts
/// and what was received, for the report.
fn assert_accounted(end: &Snapshot, lost: &Lost, metric_outage: bool) -> Table {
    let (table, problems) = accounting(end, lost, metric_outage);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    table
}

/// [`assert_accounted`]'s checks: the final counts and what was received,
/// and every way they disagree.
fn accounting(end: &Snapshot, lost: &Lost, metric_outage: bool) -> (Table, Vec<String>) {
    let received = end.tally_distinct();
    let mut table = BTreeMap::new();
    let mut problems = Vec::new();
    for engine in engines() {
        for item in ITEMS {
            let key = (engine.to_string(), item);
            let c = self_counts(&end.metrics, engine, item);
            let got = received[&key];
            let lost = lost.get(&key).copied().unwrap_or(0);
            let mut check = |ok: bool, why: &str| {
                if !ok {
                    problems.push(format!(
                        "{engine} {item}s: {why}: {c:?}, received {got}, \
                         lost in the collector {lost}"
                    ));
                }
            };
            check(c.queue_full == 0, "dropped");
            let accounted = i64::try_from(got).unwrap() + lost;
            let exported = i64::try_from(c.exported).unwrap();
            if item == "metric_data_point" {
                check((c.failed > 0) == metric_outage, "failed exports");
                // The last report counts every export before its own
                // collection; that collection (one point per stream at
                // most, and at least the report itself) arrives too.
                let streams = i64::try_from(end.streams(engine)).unwrap();
                check(
                    (1..=streams).contains(&(accounted - exported)),
                    &format!(
                        "the points beyond the last report are not one collection (1..={streams})"
                    ),
                );
            } else {
                check(c.failed == 0, "given up after failed exports");
                check(c.queued == 0, "left queued at shutdown");
                check(
                    c.processed == c.exported + c.failed,
                    "taken into the queue but neither exported nor counted failed",
                );
                check(accounted == exported, "exported but not received");
            }
            table.insert(key, (c, got));
        }
    }
    (table, problems)
}

/// The engines' side of "no payment failed", as exported: the gateway
/// counted as many accepted and settled payments as the load generator and
/// none failed, and no engine answered any request with a 5xx.
fn assert_engines_agree(end: &Snapshot, outcomes: &BTreeMap<String, u64>) {
    let gateway =
        |name: &str, attr: (&str, &str)| counter_value(&end.metrics, "gateway", name, attr);
    assert_eq!(
        (
            gateway("deltran.payments", ("outcome", "accepted")),
            gateway("deltran.payments", ("outcome", "failed")),
            gateway("deltran.payments.completed", ("status", "settled")),
            gateway("deltran.payments.completed", ("status", "failed")),
        ),
        (outcomes["accepted"], 0, outcomes["settled"], 0),
        "the gateway's deltran.payments{{outcome=accepted|failed}} and \
         deltran.payments.completed{{status=settled|failed}}"
    );
    let errors: Vec<String> = end
        .spans
        .iter()
        .filter(|s| {
            s.kind == SpanKind::Server
                && s.attributes
                    .i64("http.response.status_code")
                    .is_some_and(|c| c >= 500)
        })
        .map(|s| format!("{} {} ({})", service(s), s.name, s.trace_id))
        .collect();
    assert!(errors.is_empty(), "5xx answers: {errors:?}");
}

/// The engines' pipelines whose export was in flight when the collector
/// died: their first failure (telemetry warns once, then at most once a
/// minute) is the broken connection, not a refused one.
fn exports_cut_by_the_kill(launcher: &Launcher) -> Vec<String> {
    let mut cut = Vec::new();
    for e in &launcher.fleet.engines {
        let path = launcher
            .run_dir()
            .join("logs")
            .join(format!("{}.log", e.name));
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let error = v["fields"]["error"].as_str().unwrap_or_default();
            if v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("telemetry export failing"))
                && error.contains("transport error")
                && !error.contains("connect error")
            {
                cut.push(format!("{} {}", e.name, v["fields"]["signal"]));
            }
        }
    }
    cut
}

fn start_rotel(receiver: &OtlpReceiver, protocol: OtlpProtocol) -> Rotel {
    let export_to = match protocol {
        OtlpProtocol::Grpc => receiver.grpc_endpoint(),
        OtlpProtocol::Http => receiver.http_endpoint(),
    };
    Rotel::builder(&export_to)
        .protocol(protocol)
        .start()
        .expect("rotel starts (pip install rotel)")
}

// --- 1. every payment's trace through a collector that stays up ------------------

fn every_trace_complete_through_rotel(protocol: OtlpProtocol) {
    let _one = one_fleet();
    let started = Instant::now();
    let receiver = OtlpReceiver::start().unwrap();
    let rotel = start_rotel(&receiver, protocol);
    let (endpoint, otlp_protocol) = match protocol {
        OtlpProtocol::Grpc => (rotel.grpc_endpoint(), "grpc"),
        OtlpProtocol::Http => (rotel.http_endpoint(), "http/protobuf"),
    };
    let mut launcher = Launcher::start(
        &[
            "--rate",
            "5",
            "--duration",
            "12",
            "--clearing-window-ms",
            "300",
            "--websockets",
            "1",
            // Enough refused payments to find each kind in a short run.
            "--invalid",
            "0.15",
            "--sanctioned",
            "0.15",
        ],
        &fleet_env(endpoint, otlp_protocol),
    );
    let (outcomes, payments) = run_ended(&mut launcher, Duration::from_secs(120));
    let refused = refused_payments(&launcher);

    wait_until_quiet(&receiver);
    let end = Snapshot::take(&receiver);
    rotel.stop().unwrap();

    // Every refused payment's trace is whole too, and its root says why:
    // the attribute the collector's tail sampler keeps it by.
    let index = SpanIndex::new(&end.spans);
    let kinds: BTreeSet<&str> = refused.iter().map(|(_, _, o)| o.as_str()).collect();
    assert!(
        kinds.contains("invalid") && (kinds.contains("held") || kinds.contains("rejected")),
        "the run refused too few payments to check: {kinds:?}"
    );
    for (id, trace_id, outcome) in &refused {
        assert_eq!(
            trace_id.len(),
            32,
            "refused payment {id} without a trace id"
        );
        let gaps = index.trace_gaps(trace_id);
        assert!(
            gaps.is_empty(),
            "{outcome} payment {id} (trace {trace_id}): {gaps:?}"
        );
        let root = index
            .trace(trace_id)
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .copied()
            .unwrap();
        assert_eq!(
            root.attributes.str("deltran.payment.outcome"),
            Some(outcome.as_str()),
            "payment {id}"
        );
    }

    // Every accepted payment's trace, complete.
    let incomplete: Vec<String> = payments
        .iter()
        .filter_map(|p| {
            let gaps = index.payment_trace_gaps(&p.trace_id);
            (!gaps.is_empty()).then(|| format!("{} (trace {}): {gaps:?}", p.id, p.trace_id))
        })
        .collect();
    assert!(
        incomplete.is_empty(),
        "{} of {} payments incomplete:\n{}",
        incomplete.len(),
        payments.len(),
        incomplete.join("\n")
    );
    for p in &payments {
        // The gateway logged it inside its server span (and the two clocks are one).
        let root = index
            .trace(&p.trace_id)
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .unwrap();
        let slack = 5_000_000;
        assert!(
            root.start_unix_nanos <= p.received + slack
                && p.received <= root.end_unix_nanos + slack,
            "payment {} logged at {} outside its root span {}..{}",
            p.id,
            p.received,
            root.start_unix_nanos,
            root.end_unix_nanos
        );
        // Logs carry the trace ids of the payments they are about.
        for engine in ["gateway", "token-engine"] {
            assert!(
                end.logs
                    .iter()
                    .any(|l| l.trace_id.as_deref() == Some(p.trace_id.as_str())
                        && l.resource.str("service.name") == Some(engine)),
                "no {engine} log in trace {} (payment {})",
                p.trace_id,
                p.id
            );
        }
    }

    // Metrics arrived: every engine's own, and the gateway's business
    // counters agree with the load generator.
    for engine in engines() {
        for name in ["process.uptime", "service.build.info"] {
            assert!(
                end.metrics
                    .iter()
                    .any(|m| m.name == name && m.resource.str("service.name") == Some(engine)),
                "{engine} exported no {name}"
            );
        }
    }
    assert_engines_agree(&end, &outcomes);

    // Nothing dropped, nothing failed, everything exported received.
    let table = assert_accounted(&end, &BTreeMap::new(), false);
    assert_eq!(
        end.tally(),
        end.tally_distinct(),
        "something arrived twice through a collector that stayed up"
    );
    let total = |item: &str| -> u64 {
        table
            .iter()
            .filter(|((_, i), _)| *i == item)
            .map(|(_, (_, got))| got)
            .sum()
    };
    eprintln!(
        "through rotel ({protocol:?}): {} payments accepted and {} refused, all complete; \
         received {} spans, {} log records, {} metric points; {:.1} s",
        payments.len(),
        refused.len(),
        total("span"),
        total("log"),
        total("metric_data_point"),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn every_payment_trace_arrives_complete_through_a_real_collector() {
    every_trace_complete_through_rotel(OtlpProtocol::Grpc);
}

#[test]
fn every_payment_trace_arrives_complete_through_a_real_collector_over_http() {
    every_trace_complete_through_rotel(OtlpProtocol::Http);
}

// --- 2. the collector SIGKILLed mid-run and started again --------------------------

/// How long before the kill the engines' counters are read: rotel forwards
/// what it accepts within its 100 ms batch timeout, so what a SIGKILL can
/// take with it was handed over in this window (generously).
const LOSS_HORIZON: Duration = Duration::from_secs(3);
/// How long the collector stays dead.
const OUTAGE: Duration = Duration::from_secs(6);

#[test]
fn collector_killed_and_restarted_mid_run_loses_only_what_engines_count() {
    let _one = one_fleet();
    let started = Instant::now();
    let receiver = OtlpReceiver::start().unwrap();
    let rotel = start_rotel(&receiver, OtlpProtocol::Grpc);
    let mut launcher = Launcher::start(
        &[
            "--rate",
            "5",
            "--duration",
            "35",
            "--clearing-window-ms",
            "300",
            "--websockets",
            "1",
        ],
        &fleet_env(rotel.grpc_endpoint(), "grpc"),
    );
    let run_started = Instant::now();

    // Data flows from every engine through the collector.
    let flowing = receiver.wait_for_spans(Duration::from_secs(60), |spans| {
        engines().all(|e| spans.iter().any(|s| service(s) == e))
    });
    assert!(
        engines().all(|e| flowing.iter().any(|s| service(s) == e)),
        "not every engine's spans came through rotel:\n{}\nrotel:\n{}",
        launcher.logs(),
        rotel.log_tail(20)
    );
    std::thread::sleep(Duration::from_secs(8).saturating_sub(run_started.elapsed()));

    // Kill it, reading the engines' counters LOSS_HORIZON before.
    let before = scrape_exported(&launcher);
    let before_at = now_nanos();
    std::thread::sleep(LOSS_HORIZON);
    let killed_at = now_nanos();
    let killed = Instant::now();
    let killed_into_run = run_started.elapsed();
    let again = rotel.kill().unwrap();
    // Give the receiver a moment for what the dead collector had already sent.
    std::thread::sleep(Duration::from_secs(1));
    let at_kill = scrape_exported(&launcher);
    let dead = Snapshot::take(&receiver);
    let dead_tally = dead.tally();

    std::thread::sleep(OUTAGE.saturating_sub(killed.elapsed()));
    // Nothing is "exported" while no collector listens, and nothing arrives.
    let at_restart = scrape_exported(&launcher);
    for (key, (ok, failed)) in &at_restart {
        assert_eq!(
            *ok, at_kill[key].0,
            "{key:?}: exported rose while the collector was dead"
        );
        if key.1 == "metric_data_point" {
            assert!(
                *failed > at_kill[key].1,
                "{key:?}: the metric exports during the outage were not counted as failed"
            );
        }
    }
    assert_eq!(
        Snapshot::take(&receiver).tally(),
        dead_tally,
        "data arrived while the collector was dead"
    );
    let rotel = again.start().expect("rotel starts again on the same ports");
    let outage = killed.elapsed();
    let restarted_at = now_nanos();

    let (outcomes, payments) = run_ended(&mut launcher, Duration::from_secs(150));
    let cut = exports_cut_by_the_kill(&launcher);
    wait_until_quiet(&receiver);
    let end = Snapshot::take(&receiver);
    rotel.stop().unwrap();
    assert_engines_agree(&end, &outcomes);

    // What the killed collector took with it, per engine and item: what the
    // engines had counted exported at the kill (their counters cannot move
    // while it is dead) minus what had reached the receiver. A batch in
    // flight at the kill that rotel forwarded without answering is retried
    // by the engine and arrives twice ("resent"): received before the kill
    // but not counted exported then. Metric exports are not retried (the
    // engine counts them failed), so such a batch shows as a negative loss.
    let dead_keys = dead.keys();
    let after = end.since(&dead);
    let mut resent: Tally = Tally::new();
    for (engine, item, key) in after.keys() {
        if dead_keys.contains(&(engine.clone(), item, key)) {
            *resent.entry((engine, item)).or_default() += 1;
        }
    }
    let dead_distinct = dead.tally_distinct();
    let mut lost: Lost = BTreeMap::new();
    for engine in engines() {
        for item in ITEMS {
            let key = (engine.to_string(), item);
            let exported_at_kill = i64::try_from(at_kill[&key].0).unwrap();
            let received_before =
                i64::try_from(dead_distinct[&key] - resent.get(&key).copied().unwrap_or(0))
                    .unwrap();
            let lost_here = exported_at_kill - received_before;
            // Never more received than exported (but for one metric
            // collection in flight)...
            let slack = if item == "metric_data_point" {
                i64::try_from(end.streams(engine)).unwrap()
            } else {
                0
            };
            assert!(
                lost_here >= -slack,
                "{key:?}: received {received_before} before the kill, exported {exported_at_kill}"
            );
            // ...and the collector lost at most what it was handed in its
            // last LOSS_HORIZON.
            let handed_late = exported_at_kill - i64::try_from(before[&key].0).unwrap();
            assert!(
                lost_here <= handed_late,
                "{key:?}: {lost_here} lost, but only {handed_late} were exported in the \
                 {LOSS_HORIZON:?} before the kill"
            );
            lost.insert(key, lost_here);
        }
    }
    // Everything exported after the restart arrived; with that loss the
    // engines' counters account for every item (none dropped, no span or
    // log given up: the queues held the outage).
    let table = assert_accounted(&end, &lost, true);
    // The accounting is exact: one span gone missing after the restart
    // (as if an engine counted it exported and never sent it) fails it.
    let mut one_missing = end.clone();
    let gone = (dead.spans.len()..end.spans.len())
        .find(|&i| {
            let s = &end.spans[i];
            !dead_keys.contains(&(service(s).to_string(), "span", span_key(s)))
        })
        .expect("spans sent after the restart");
    let gone = one_missing.spans.remove(gone);
    let engine = service(&gone).to_string();
    let (c, got) = table[&(engine.clone(), "span")];
    assert_eq!(
        accounting(&one_missing, &lost, true).1,
        [format!(
            "{engine} spans: exported but not received: {c:?}, received {}, \
             lost in the collector {}",
            got - 1,
            lost[&(engine.clone(), "span")],
        )]
    );

    // Every payment whose spans were all ended outside the window in which
    // the collector could lose data (from LOSS_HORIZON before the kill to the
    // kill) is complete: payments during the outage too, since their spans
    // waited in the engines' queues. Spans of a payment end between its
    // arrival at the gateway and a moment after its settlement.
    let index = SpanIndex::new(&end.spans);
    let exposed_from = before_at.saturating_sub(1_000_000_000);
    let mut exposed = 0;
    let mut exposed_incomplete = Vec::new();
    let mut incomplete = Vec::new();
    for p in &payments {
        let gaps = index.payment_trace_gaps(&p.trace_id);
        let from_kill = secs(i128::from(p.received) - i128::from(killed_at));
        let last_end = p.settled.unwrap_or(u64::MAX).saturating_add(2_000_000_000);
        if p.received <= killed_at && last_end >= exposed_from {
            exposed += 1;
            if !gaps.is_empty() {
                exposed_incomplete.push(format!("{from_kill:+.2} s"));
            }
        } else if !gaps.is_empty() {
            incomplete.push(format!(
                "{} (received {from_kill:+.1} s from the kill): {gaps:?}",
                p.id
            ));
        }
    }
    assert!(
        incomplete.is_empty(),
        "payments outside the loss window with incomplete traces:\n{}",
        incomplete.join("\n")
    );
    let during_outage = payments
        .iter()
        .filter(|p| p.received > killed_at && p.received < restarted_at)
        .count();
    assert!(during_outage > 0, "no payment arrived during the outage");

    let sum = |f: &dyn Fn(&SelfCounts, u64) -> u64, item: &str| -> u64 {
        table
            .iter()
            .filter(|((_, i), _)| *i == item)
            .map(|(_, (c, got))| f(c, *got))
            .sum()
    };
    let of = |t: &Tally, item: &str| -> u64 {
        t.iter()
            .filter(|((_, i), _)| *i == item)
            .map(|(_, n)| n)
            .sum()
    };
    let lost_total = |item: &str| -> i64 {
        lost.iter()
            .filter(|((_, i), _)| *i == item)
            .map(|(_, n)| n)
            .sum()
    };
    let failed_in_outage: u64 = at_restart
        .iter()
        .filter(|((_, i), _)| *i == "metric_data_point")
        .map(|(k, (_, failed))| failed - at_kill[k].1)
        .sum();
    eprintln!(
        "collector SIGKILLed {:.1} s into the run, down {:.1} s (restarted on the same port); \
         payments: {} accepted, none failed, {} during the outage; {} exposed to the kill, \
         {} of them incomplete (received {:?} from the kill); all {} others complete",
        killed_into_run.as_secs_f64(),
        outage.as_secs_f64(),
        payments.len(),
        during_outage,
        exposed,
        exposed_incomplete.len(),
        exposed_incomplete,
        payments.len() - exposed,
    );
    for item in ["span", "log"] {
        eprintln!(
            "{item}s: created {} = exported {} + given up {} + dropped {}; received {} \
             distinct ({} after the restart, {} of them resent); lost in the killed collector {}",
            sum(&|c, _| c.processed + c.queue_full, item),
            sum(&|c, _| c.exported, item),
            sum(&|c, _| c.failed, item),
            sum(&|c, _| c.queue_full, item),
            sum(&|_, got| got, item),
            of(&after.tally(), item),
            of(&resent, item),
            lost_total(item),
        );
    }
    eprintln!("exports cut mid-flight by the kill (and retried): {cut:?}");
    eprintln!(
        "metric points: exported {} (last report) + failed {} (of them {failed_in_outage} \
         during the outage); received {}; lost in the killed collector {}; test took {:.1} s",
        sum(&|c, _| c.exported, "metric_data_point"),
        sum(&|c, _| c.failed, "metric_data_point"),
        sum(&|_, got| got, "metric_data_point"),
        lost_total("metric_data_point"),
        started.elapsed().as_secs_f64()
    );
}
