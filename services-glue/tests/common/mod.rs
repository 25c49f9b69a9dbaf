//! Setup shared by the glue's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod w3c;

use std::future::Future;

use opentelemetry::metrics::Meter;
use telemetry::Telemetry;
use telemetry::testing::{AttrValue, Attributes, InMemory};

/// The W3C propagator, handed to the glue through its configs: these tests
/// never set the global one (it stays a no-op), so propagation that works
/// here works for a service that never installs telemetry globally.
pub fn w3c() -> services_glue::propagation::Propagator {
    services_glue::propagation::Propagator::new(telemetry::propagation::default_propagator())
}

/// Runs `body` on a current-thread runtime under an in-memory telemetry for
/// `service`, then flushes and returns what was exported.
pub fn run_in_telemetry<F, Fut>(service: &str, body: F) -> InMemory
where
    F: FnOnce(Meter) -> Fut,
    Fut: Future<Output = ()>,
{
    run_telemetry(Telemetry::builder(service), body)
}

/// [`run_in_telemetry`] with telemetry configured from `env` alone.
#[allow(dead_code)] // not every test file configures telemetry
pub fn run_in_telemetry_with<F, Fut>(service: &str, env: &[(&str, &str)], body: F) -> InMemory
where
    F: FnOnce(Meter) -> Fut,
    Fut: Future<Output = ()>,
{
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    run_telemetry(
        Telemetry::builder(service).with_env(env.collect::<Vec<_>>()),
        body,
    )
}

fn run_telemetry<F, Fut>(builder: telemetry::TelemetryBuilder, body: F) -> InMemory
where
    F: FnOnce(Meter) -> Fut,
    Fut: Future<Output = ()>,
{
    let sink = InMemory::new();
    let t = builder.with_in_memory(&sink).build().unwrap();
    let meter = t.meter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || rt.block_on(body(meter)));
    t.shutdown().unwrap();
    sink
}

/// An attribute value as text, as OpenTelemetry's `Value` displays it
/// (strings bare, numbers and booleans as written), to search spans for a
/// leaked marker or to build a series key.
pub fn text(value: &AttrValue) -> String {
    match value {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::I64(i) => i.to_string(),
        AttrValue::F64(f) => f.to_string(),
        AttrValue::Array(items) => {
            format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(","))
        }
        other => format!("{other:?}"),
    }
}

/// A point's attribute set as `k=v` pairs, sorted and joined by `,`
/// (`cache.name=sanctions,cache.result=hit`): one string per series.
pub fn series_key(attributes: &Attributes) -> String {
    let mut pairs: Vec<String> = attributes
        .iter()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Whether any attribute value of `attributes` mentions `marker`.
pub fn mentions(attributes: &Attributes, marker: &str) -> bool {
    attributes.iter().any(|(_, v)| text(v).contains(marker))
}

/// An actix-web server on 127.0.0.1 (one worker) in its own thread and
/// actix system, started by [`start_actix!`].
#[cfg(feature = "actix")]
pub struct ActixServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

#[cfg(feature = "actix")]
impl ActixServer {
    /// Wraps what [`start_actix!`] started.
    pub fn new(
        addr: std::net::SocketAddr,
        handle: actix_web::dev::ServerHandle,
        thread: std::thread::JoinHandle<()>,
    ) -> ActixServer {
        ActixServer {
            addr,
            handle,
            thread,
        }
    }

    /// Stops it gracefully and joins its thread.
    pub fn stop(self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        self.thread.join().unwrap();
    }
}

/// Starts `HttpServer::new($factory)` as an [`ActixServer`] (a macro: the
/// factory's type is actix's to name, not ours).
#[cfg(feature = "actix")]
#[allow(unused_macros)]
macro_rules! start_actix {
    ($factory:expr) => {{
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new($factory)
                    .workers(1)
                    .bind(("127.0.0.1", 0))
                    .unwrap();
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).unwrap();
                server.await.unwrap();
            })
        });
        let (addr, handle) = rx.recv().unwrap();
        $crate::common::ActixServer::new(addr, handle, thread)
    }};
}
#[cfg(feature = "actix")]
#[allow(unused_imports)]
pub(crate) use start_actix;
