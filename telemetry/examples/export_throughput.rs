//! Export throughput of one telemetry stack, in one process: N spans (or
//! log records) pushed through the stack's batch queue and OTLP exporter to
//! a collector, then shut down; one JSON line on stdout with what it cost.
//!
//! ```text
//! export_throughput <stack> <signal> <protocol> <endpoint> [n] [threads] [sustain_seconds] [rate]
//!   stack     telemetry | upstream | lean | lean-json
//!   signal    spans | logs
//!   protocol  grpc | http
//!   endpoint  http://127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318 (HTTP, no path)
//!   n         items in total (default 300000), split over `threads` (default 1)
//!   sustain_seconds, rate: instead of n, push `rate` items per second for
//!             that long, sampling RSS every second
//! ```
//!
//! Throughput runs (no `sustain_seconds`) size every stack's queue to hold
//! all `n` items (`OTEL_BSP_MAX_QUEUE_SIZE` / `OTEL_BLRP_MAX_QUEUE_SIZE` for
//! telemetry, `BatchConfig::max_queue_size` for the SDK's processors), the
//! one departure from defaults: nothing is dropped, every item is exported,
//! and CPU and wall time are the cost of exporting all of them. Sustained
//! runs keep each stack's own queue bound (2048).
//!
//! ```text
//! ```
//!
//! Stacks:
//! - `telemetry`: `Telemetry::builder(..)` as shipped (its batch queue, its
//!   OTLP exporter set-up), installed globally; `RUST_LOG=info`,
//!   `TELEMETRY_LOG_FORMAT=json` with stdout written to `io::sink` (log
//!   records are still formatted as JSON for stdout, as in production; only
//!   the write goes nowhere); the other signals `none`.
//! - `telemetry-none`: `telemetry` with `TELEMETRY_LOG_FORMAT=none`: log
//!   records go over OTLP only, no stdout line is formatted (the
//!   like-for-like reading against `lean`).
//! - `upstream`: `tracing_subscriber::registry()` + `tracing_opentelemetry::layer()`
//!   (or `OpenTelemetryTracingBridge`) with their defaults, no filter, and the
//!   SDK's `BatchSpanProcessor` / `BatchLogProcessor` with their defaults over
//!   `opentelemetry_otlp`'s exporter (gRPC: tonic, built inside a tokio
//!   runtime; HTTP: the exporter's default client, blocking reqwest).
//! - `lean`: `upstream` with telemetry's settings: `EnvFilter` "info", no
//!   code location, thread ids or inactivity tracking on the span layer, and
//!   telemetry's default batch sizes (queue 2048, batch 512, schedule delay
//!   5 s for spans, 1 s for logs).
//! - `lean-json`: `lean` plus telemetry's stdout layer
//!   (`telemetry::stdout::JsonLayer`, to `io::sink`): what telemetry does
//!   per event besides exporting it, for a like-for-like reading of the log
//!   record figures.
//!
//! The workspace patches tracing-opentelemetry (an early sampler); the patch
//! acts only when `with_early_sampler` is called, which the upstream stacks
//! never do, so they run upstream's code path byte for byte.
//!
//! Spans dropped: telemetry's health counters; for the SDK processors the
//! count they log (`opentelemetry_sdk` warning) when shut down.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stack {
    Telemetry,
    TelemetryNone,
    Upstream,
    Lean,
    LeanJson,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    Spans,
    Logs,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    Http,
}

struct Args {
    stack: Stack,
    signal: Signal,
    protocol: Protocol,
    endpoint: String,
    n: u64,
    threads: u64,
    sustain: Option<(u64, u64)>,
    /// Throughput runs: every stack's queue holds all `n` items, so nothing
    /// is dropped and every item is exported. Sustained runs: `None`, each
    /// stack's own queue bound (2048).
    queue: Option<usize>,
}

fn args() -> Res<Args> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let get = |i: usize| a.get(i).map(String::as_str);
    let stack = match get(0) {
        Some("telemetry") => Stack::Telemetry,
        Some("telemetry-none") => Stack::TelemetryNone,
        Some("upstream") => Stack::Upstream,
        Some("lean") => Stack::Lean,
        Some("lean-json") => Stack::LeanJson,
        _ => return Err("usage: export_throughput telemetry|upstream|lean spans|logs grpc|http ENDPOINT [n] [threads] [sustain_seconds rate]".into()),
    };
    let signal = match get(1) {
        Some("logs") => Signal::Logs,
        _ => Signal::Spans,
    };
    let protocol = match get(2) {
        Some("http") => Protocol::Http,
        _ => Protocol::Grpc,
    };
    let endpoint = get(3).unwrap_or("http://127.0.0.1:4317").to_string();
    let n = get(4).map(str::parse).transpose()?.unwrap_or(300_000);
    let threads = get(5).map(str::parse).transpose()?.unwrap_or(1u64).max(1);
    let sustain = match (get(6), get(7)) {
        (Some(s), Some(r)) => Some((s.parse()?, r.parse()?)),
        _ => None,
    };
    let queue = sustain.is_none().then_some((n as usize).max(2048));
    Ok(Args {
        queue,
        stack,
        signal,
        protocol,
        endpoint,
        n,
        threads,
        sustain,
    })
}

/// utime + stime of the whole process, in seconds (USER_HZ is 100 on Linux).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some(rest) = stat.rsplit(')').next() else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// A `/proc/self/status` field in MiB (`VmHWM`, `VmRSS`).
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Records the drop counts the SDK's batch processors log at shutdown.
#[derive(Clone, Default)]
struct SdkDrops(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SdkDrops {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Visit<'a>(&'a AtomicU64);
        impl tracing::field::Visit for Visit<'_> {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name().starts_with("dropped_") {
                    self.0.fetch_add(value, Ordering::Relaxed);
                }
            }
            fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
                self.record_u64(field, value.max(0) as u64);
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        event.record(&mut Visit(&self.0));
    }
}

/// Only the SDK's own warnings reach [`SdkDrops`].
fn sdk_warnings() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_target("opentelemetry_sdk", tracing::Level::WARN)
}

/// One installed stack: how to shut it down and what it says it dropped.
struct Installed {
    shutdown: Box<dyn FnOnce() -> Res<()>>,
    dropped: Box<dyn Fn() -> u64>,
    /// Runtimes and clients that must outlive the shutdown.
    _keep: Vec<Box<dyn std::any::Any>>,
}

fn install(a: &Args) -> Res<Installed> {
    match a.stack {
        Stack::Telemetry | Stack::TelemetryNone => install_telemetry(a),
        Stack::Upstream | Stack::Lean | Stack::LeanJson => install_upstream(a),
    }
}

fn install_telemetry(a: &Args) -> Res<Installed> {
    let (traces, logs) = match a.signal {
        Signal::Spans => ("otlp", "none"),
        Signal::Logs => ("none", "otlp"),
    };
    let protocol = match a.protocol {
        Protocol::Grpc => "grpc",
        Protocol::Http => "http/protobuf",
    };
    let queue = a.queue.map(|q| q.to_string());
    let mut env: Vec<(String, String)> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", a.endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_TRACES_EXPORTER", traces),
        ("OTEL_LOGS_EXPORTER", logs),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("RUST_LOG", "info"),
        (
            "TELEMETRY_LOG_FORMAT",
            if a.stack == Stack::TelemetryNone {
                "none"
            } else {
                "json"
            },
        ),
        ("TELEMETRY_SHUTDOWN_TIMEOUT", "60000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(q) = queue {
        env.push(("OTEL_BSP_MAX_QUEUE_SIZE".into(), q.clone()));
        env.push(("OTEL_BLRP_MAX_QUEUE_SIZE".into(), q));
    }
    let t = telemetry::Telemetry::builder("export-bench")
        .with_env(env)
        .with_stdout_writer(std::io::sink)
        .try_init()?;
    let t = Arc::new(t);
    let signal = match a.signal {
        Signal::Spans => telemetry::Signal::Traces,
        Signal::Logs => telemetry::Signal::Logs,
    };
    let health = t.health();
    Ok(Installed {
        shutdown: Box::new(move || Ok(t.shutdown()?)),
        dropped: Box::new(move || health.signal(signal).map_or(0, |s| s.dropped + s.failed)),
        _keep: Vec::new(),
    })
}

fn install_upstream(a: &Args) -> Res<Installed> {
    let lean = matches!(a.stack, Stack::Lean | Stack::LeanJson);
    // telemetry's stdout layer (one JSON line per event, to a sink), for a
    // like-for-like comparison of log records with telemetry's own stack.
    let json =
        || (a.stack == Stack::LeanJson).then(|| telemetry::stdout::JsonLayer::new(std::io::sink));
    // The tonic exporter spawns its connection onto the runtime current
    // when it is built, as in an application's `#[tokio::main]`.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let resource = Resource::builder()
        .with_service_name("export-bench")
        .build();
    let drops = SdkDrops::default();
    let dropped = Arc::clone(&drops.0);
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    let http_client = || -> Res<reqwest013::blocking::Client> {
        Ok(reqwest013::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?)
    };
    let filter = || lean.then(|| EnvFilter::new("info"));
    let shutdown: Box<dyn FnOnce() -> Res<()>> = match a.signal {
        Signal::Spans => {
            let exporter = match a.protocol {
                Protocol::Grpc => {
                    let _enter = rt.enter();
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(a.endpoint.clone())
                        .build()?
                }
                Protocol::Http => opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(format!("{}/v1/traces", a.endpoint))
                    .with_http_client(http_client()?)
                    .build()?,
            };
            let mut config = opentelemetry_sdk::trace::BatchConfigBuilder::default();
            if lean {
                config = config
                    .with_max_queue_size(2048)
                    .with_max_export_batch_size(512)
                    .with_scheduled_delay(Duration::from_millis(5000));
            }
            if let Some(q) = a.queue {
                config = config.with_max_queue_size(q);
            }
            let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                .with_batch_config(config.build())
                .build();
            let provider = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_span_processor(processor)
                .build();
            let tracer = provider.tracer("export-bench");
            let layer = if lean {
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_location(false)
                    .with_threads(false)
                    .with_tracked_inactivity(false)
            } else {
                tracing_opentelemetry::layer().with_tracer(tracer)
            };
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(filter())
                    .with(json())
                    .with(layer)
                    .with(drops.with_filter(sdk_warnings())),
            )?;
            Box::new(move || Ok(provider.shutdown_with_timeout(Duration::from_secs(120))?))
        }
        Signal::Logs => {
            let exporter = match a.protocol {
                Protocol::Grpc => {
                    let _enter = rt.enter();
                    opentelemetry_otlp::LogExporter::builder()
                        .with_tonic()
                        .with_endpoint(a.endpoint.clone())
                        .build()?
                }
                Protocol::Http => opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_endpoint(format!("{}/v1/logs", a.endpoint))
                    .with_http_client(http_client()?)
                    .build()?,
            };
            let mut config = opentelemetry_sdk::logs::BatchConfigBuilder::default();
            if lean {
                config = config
                    .with_max_queue_size(2048)
                    .with_max_export_batch_size(512)
                    .with_scheduled_delay(Duration::from_millis(1000));
            }
            if let Some(q) = a.queue {
                config = config.with_max_queue_size(q);
            }
            let processor = opentelemetry_sdk::logs::BatchLogProcessor::builder(exporter)
                .with_batch_config(config.build())
                .build();
            let provider = SdkLoggerProvider::builder()
                .with_resource(resource)
                .with_log_processor(processor)
                .build();
            let bridge =
                opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider);
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(filter())
                    .with(json())
                    .with(bridge)
                    .with(drops.with_filter(sdk_warnings())),
            )?;
            Box::new(move || Ok(provider.shutdown_with_timeout(Duration::from_secs(120))?))
        }
    };
    keep.push(Box::new(rt));
    Ok(Installed {
        shutdown,
        dropped: Box::new(move || dropped.load(Ordering::Relaxed)),
        _keep: keep,
    })
}

/// One item of work: a span with a few attributes, entered and closed, or
/// a log record with a few attributes.
#[inline(never)]
fn produce(signal: Signal, i: u64) {
    match signal {
        Signal::Spans => {
            tracing::info_span!(
                "process_payment",
                payment.id = i,
                payment.currency = "EUR",
                payment.amount_cents = 12_950u64,
                merchant.tier = "gold",
            )
            .in_scope(|| std::hint::black_box(i));
        }
        Signal::Logs => {
            tracing::info!(
                payment.id = i,
                payment.currency = "EUR",
                payment.amount_cents = 12_950u64,
                merchant.tier = "gold",
                "payment accepted"
            );
        }
    }
}

fn main() -> Res<()> {
    let a = args()?;
    let installed = install(&a)?;
    let signal = a.signal;
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut rss = Vec::new();
    let produced: u64 = match a.sustain {
        None => {
            let per = a.n / a.threads;
            let workers: Vec<_> = (0..a.threads)
                .map(|t| {
                    std::thread::spawn(move || {
                        for i in t * per..(t + 1) * per {
                            produce(signal, i);
                        }
                        per
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or(0))
                .sum::<u64>()
        }
        Some((seconds, rate)) => {
            // Paced in 10 ms ticks, spread over the threads; RSS each second.
            let stop = Arc::new(AtomicBool::new(false));
            let per_tick = (rate / 100 / a.threads).max(1);
            let workers: Vec<_> = (0..a.threads)
                .map(|_| {
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || {
                        let t0 = Instant::now();
                        let mut n = 0u64;
                        let mut tick = 0u32;
                        while !stop.load(Ordering::Relaxed) {
                            for _ in 0..per_tick {
                                produce(signal, n);
                                n += 1;
                            }
                            tick += 1;
                            let next = t0 + Duration::from_millis(10) * tick;
                            std::thread::sleep(next.saturating_duration_since(Instant::now()));
                        }
                        n
                    })
                })
                .collect();
            for _ in 0..seconds {
                std::thread::sleep(Duration::from_secs(1));
                rss.push(status_mib("VmRSS:"));
            }
            stop.store(true, Ordering::Relaxed);
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or(0))
                .sum::<u64>()
        }
    };
    let produce_wall = start.elapsed().as_secs_f64();
    let dropped = installed.dropped;
    (installed.shutdown)()?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let dropped = dropped();
    let stack = match a.stack {
        Stack::Telemetry => "telemetry",
        Stack::TelemetryNone => "telemetry-none",
        Stack::Upstream => "upstream",
        Stack::Lean => "lean",
        Stack::LeanJson => "lean-json",
    };
    let mut line = serde_json::json!({
        "stack": stack,
        "signal": match a.signal { Signal::Spans => "spans", Signal::Logs => "logs" },
        "protocol": match a.protocol { Protocol::Grpc => "grpc", Protocol::Http => "http" },
        "threads": a.threads,
        "produced": produced,
        "dropped": dropped,
        "cpu_s": cpu,
        "wall_s": wall,
        "produce_wall_s": produce_wall,
        "per_cpu_s": (produced - dropped) as f64 / cpu,
        "peak_rss_mib": status_mib("VmHWM:"),
    });
    if !rss.is_empty() {
        line["rss_first_mib"] = rss[0].into();
        line["rss_last_mib"] = rss[rss.len() - 1].into();
        line["rss_max_mib"] = rss.iter().copied().fold(0.0, f64::max).into();
        line["rss_samples_mib"] = rss.into();
    }
    println!("{line}");
    Ok(())
}
