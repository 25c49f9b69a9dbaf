//! A local OTLP viewer, for runs without any backend: an OTLP endpoint
//! (gRPC and HTTP/protobuf) whose [`Store`] keeps the recent traces, their
//! log lines and the latest metric points in bounded memory, and a loopback
//! web server that shows them — service map, per-service request charts,
//! a filterable trace list, a trace's waterfall with its logs, a log search —
//! with a JSON API under `/api/` and a terminal [`waterfall`].
//!
//! ```
//! use otlp_viewer::{Viewer, ViewerConfig};
//!
//! let viewer = Viewer::start(ViewerConfig::default())?;
//! // Point exporters at `viewer.otlp_grpc_endpoint()`, open `viewer.url()`.
//! assert!(viewer.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(viewer.store().stats().spans, 0);
//! viewer.shutdown();
//! # Ok::<(), otlp_viewer::ViewerError>(())
//! ```

mod dump;
mod histogram;
mod size;
mod store;
mod tree;
pub mod waterfall;
mod web;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use otlp_receiver::{
    Batch, Forwarder, OtlpServer, RequestInfo, RequestOutcome, ServerConfig, ServingThread, Sink,
};

pub use dump::{find_in_dump, read_dump, write_dump};
pub use otlp_receiver::{ForwardConfig, ForwardProtocol, ForwardStats};
pub use store::{
    BUCKET_SECONDS, Edge, IncomingLink, LatestPoint, Limits, SeriesPoint, ServiceSeries, Store,
    StoreStats, TraceDetail, TraceFilter, TraceSummary, ViewerSettings, display_value,
};

/// Where the viewer listens and what it keeps.
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// OTLP listeners (default: free loopback ports, 16 MiB per request).
    pub otlp: ServerConfig,
    /// The web page's address; must be a loopback address (port 0 picks one).
    pub ui: SocketAddr,
    /// Memory bounds.
    pub limits: Limits,
    /// What to call things on the page.
    pub settings: ViewerSettings,
    /// Pass every export on to this collector as well (the viewer then sits
    /// in front of it, and the exporters need only one endpoint).
    pub forward: Option<ForwardConfig>,
}

impl Default for ViewerConfig {
    fn default() -> Self {
        ViewerConfig {
            otlp: ServerConfig::default(),
            ui: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: Limits::default(),
            settings: ViewerSettings::default(),
            forward: None,
        }
    }
}

/// Why the viewer could not start.
#[derive(Debug)]
pub enum ViewerError {
    /// The page would be reachable from other machines.
    NotLoopback(SocketAddr),
    /// A socket or thread could not be set up.
    Io(&'static str, io::Error),
    /// The forwarding endpoint is unusable.
    Forward(String),
}

impl fmt::Display for ViewerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewerError::NotLoopback(addr) => write!(
                f,
                "the viewer serves its page on loopback only, not on {addr}; use 127.0.0.1 or [::1]"
            ),
            ViewerError::Io(what, e) => write!(f, "viewer: cannot {what}: {e}"),
            ViewerError::Forward(e) => write!(f, "viewer: {e}"),
        }
    }
}

impl std::error::Error for ViewerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ViewerError::Io(_, e) => Some(e),
            ViewerError::NotLoopback(_) | ViewerError::Forward(_) => None,
        }
    }
}

/// The viewer's sink when it forwards: the store takes the decoded batch,
/// the forwarder only the request's bytes, so no second decoded copy of an
/// export is made.
struct StoreAndForward {
    store: Arc<Store>,
    forwarder: Forwarder,
}

impl Sink for StoreAndForward {
    fn receive(&self, request: RequestInfo, batch: Option<Batch>) -> RequestOutcome {
        if batch.is_some() {
            self.forwarder.forward(request.clone());
        }
        self.store.receive(request, batch)
    }
}

/// A running viewer: OTLP in, web page out. Stops on [`Viewer::shutdown`] or drop.
pub struct Viewer {
    store: Arc<Store>,
    forwarded: Option<Arc<ForwardStats>>,
    otlp: Option<OtlpServer>,
    ui_addr: SocketAddr,
    ui: Option<ServingThread>,
}

impl fmt::Debug for Viewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Viewer")
            .field("ui", &self.ui_addr)
            .field("otlp", &self.otlp)
            .finish_non_exhaustive()
    }
}

impl Viewer {
    /// Binds the OTLP listeners and the page, each served from its own thread
    /// and runtime so neither a slow page nor a burst of exports stalls the other.
    ///
    /// # Errors
    /// A non-loopback page address, or an address that cannot be bound.
    pub fn start(config: ViewerConfig) -> Result<Viewer, ViewerError> {
        if !config.ui.ip().is_loopback() {
            return Err(ViewerError::NotLoopback(config.ui));
        }
        let store = Arc::new(Store::new(config.limits, config.settings));
        let ui = std::net::TcpListener::bind(config.ui)
            .map_err(|e| ViewerError::Io("bind the page's address", e))?;
        let ui_addr = ui
            .local_addr()
            .map_err(|e| ViewerError::Io("read the page's address", e))?;
        let (sink, forwarded): (Arc<dyn Sink>, _) = match config.forward {
            None => (Arc::clone(&store) as Arc<dyn Sink>, None),
            Some(forward) => {
                let forwarder = Forwarder::start(forward).map_err(ViewerError::Forward)?;
                let stats = Arc::clone(forwarder.stats());
                let sink = StoreAndForward {
                    store: Arc::clone(&store),
                    forwarder,
                };
                (Arc::new(sink), Some(stats))
            }
        };
        let otlp = OtlpServer::start(config.otlp, sink)
            .map_err(|e| ViewerError::Io("bind the OTLP listeners", e))?;

        let router = web::router(Arc::clone(&store), ui_addr.port());
        let ui = ServingThread::start("otlp-viewer-ui", vec![ui], |listeners, stop| async move {
            if let Some(listener) = listeners.into_iter().next() {
                // Loopback only, but a browser's stray tabs and a local
                // script are clients too: the connection bound and header
                // deadline every server of the workspace has.
                let service = move || hyper_util::service::TowerToHyperService::new(router.clone());
                let stop = async move {
                    let _ = stop.await;
                };
                bounded_serve::serve(listener, service, bounded_serve::Limits::default(), stop)
                    .await;
            }
        })
        .map_err(|e| ViewerError::Io("start the page's thread", e))?;
        Ok(Viewer {
            store,
            forwarded,
            otlp: Some(otlp),
            ui_addr,
            ui: Some(ui),
        })
    }

    /// The page, e.g. `http://127.0.0.1:18888`.
    pub fn url(&self) -> String {
        format!("http://{}", self.ui_addr)
    }

    /// Where OTLP/gRPC exporters send.
    pub fn otlp_grpc_endpoint(&self) -> String {
        self.otlp
            .as_ref()
            .map_or_else(String::new, OtlpServer::grpc_endpoint)
    }

    /// Where OTLP/HTTP exporters send.
    pub fn otlp_http_endpoint(&self) -> String {
        self.otlp
            .as_ref()
            .map_or_else(String::new, OtlpServer::http_endpoint)
    }

    /// What happened to the exports passed on to the next collector, when forwarding.
    pub fn forwarded(&self) -> Option<&Arc<ForwardStats>> {
        self.forwarded.as_ref()
    }

    /// What the viewer holds, for in-process queries.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stops both servers (the store stays readable through [`Viewer::store`]'s clones).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // OTLP first: nothing arrives while the page winds down.
        drop(self.otlp.take());
        drop(self.ui.take());
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.stop();
    }
}
