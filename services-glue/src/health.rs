//! `/health` (alive) and `/ready` (every dependency check passes, including
//! "is telemetry getting out") for axum and actix-web, plus the
//! `process.uptime` and `service.build.info` series.
//!
//! Checks are plain closures, so this crate does not depend on `telemetry`;
//! an engine wires `guard.health()` in as one of them:
//!
//! ```
//! use services_glue::health::Readiness;
//! let nats_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
//! let flag = nats_up.clone();
//! let readiness = Readiness::new()
//!     .check("nats", move || flag.load(std::sync::atomic::Ordering::Relaxed))
//!     .check("telemetry", || true); // e.g. move || telemetry_health.is_healthy()
//! assert!(readiness.report().0);
//! nats_up.store(false, std::sync::atomic::Ordering::Relaxed);
//! let (ready, body) = readiness.report();
//! assert!(!ready);
//! assert!(body.contains("\"nats\":false"));
//! ```
//!
//! A check added with [`Readiness::info`] is reported in the body but does not
//! gate readiness: a payment engine whose collector is down should stay in
//! rotation, with the problem visible on `/ready`.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// Named readiness checks; cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
    info: Vec<(&'static str, Check)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().chain(&self.info).map(|(n, _)| n))
            .finish()
    }
}

impl Readiness {
    /// No checks: always ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check; it must be cheap and must not block (it runs per probe).
    pub fn check(
        mut self,
        name: &'static str,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Arc::new(check)));
        self
    }

    /// Adds a check that is reported but never makes the service unready.
    pub fn info(
        mut self,
        name: &'static str,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.info.push((name, Arc::new(check)));
        self
    }

    /// Whether every gating check passes, and a JSON body naming each result.
    ///
    /// ```
    /// use services_glue::health::Readiness;
    /// let r = Readiness::new().check("db", || true).info("telemetry", || false);
    /// let (ready, body) = r.report();
    /// assert!(ready);
    /// assert!(body.contains("\"telemetry\":false"));
    /// ```
    pub fn report(&self) -> (bool, String) {
        let results: Vec<(&str, bool)> = self.checks.iter().map(|(n, c)| (*n, c())).collect();
        let ready = results.iter().all(|(_, ok)| *ok);
        let checks: Vec<String> = results
            .into_iter()
            .chain(self.info.iter().map(|(n, c)| (*n, c())))
            .map(|(n, ok)| format!("\"{n}\":{ok}"))
            .collect();
        let status = if ready { "ready" } else { "not_ready" };
        (
            ready,
            format!(
                "{{\"status\":\"{status}\",\"checks\":{{{}}}}}",
                checks.join(",")
            ),
        )
    }
}

/// Registers `process.uptime` (s, since this call) and `service.build.info`
/// (always 1, carrying the version) as observable gauges on `meter`.
pub fn register_process_metrics(meter: &Meter, version: &'static str) {
    let started = Instant::now();
    meter
        .f64_observable_gauge("process.uptime")
        .with_unit("s")
        .with_description("Seconds since the service started")
        .with_callback(move |o| o.observe(started.elapsed().as_secs_f64(), &[]))
        .build();
    let attrs = [KeyValue::new("service.version", version)];
    meter
        .u64_observable_gauge("service.build.info")
        .with_description("Always 1; the version as an attribute")
        .with_callback(move |o| o.observe(1, &attrs))
        .build();
}

/// `GET /health` and `GET /ready` as an axum router to merge into the app.
#[cfg(feature = "axum")]
pub fn axum_routes(readiness: Readiness) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    axum::Router::new()
        .route("/health", get(|| async { (StatusCode::OK, "ok\n") }))
        .route(
            "/ready",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let (ready, body) = readiness.report();
                    let code = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (code, [(header::CONTENT_TYPE, "application/json")], body)
                }
            }),
        )
}

/// `GET /health` and `GET /ready` for `App::configure`.
#[cfg(feature = "actix")]
pub fn actix_configure(
    readiness: Readiness,
) -> impl Fn(&mut actix_web::web::ServiceConfig) + Clone {
    use actix_web::{HttpResponse, web};
    move |cfg: &mut web::ServiceConfig| {
        let readiness = readiness.clone();
        cfg.route(
            "/health",
            web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
        )
        .route(
            "/ready",
            web::get().to(move || {
                let readiness = readiness.clone();
                async move {
                    let (ready, body) = readiness.report();
                    let mut response = if ready {
                        HttpResponse::Ok()
                    } else {
                        HttpResponse::ServiceUnavailable()
                    };
                    response.content_type("application/json").body(body)
                }
            }),
        );
    }
}
