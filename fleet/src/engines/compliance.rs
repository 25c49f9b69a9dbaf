//! compliance-engine (8086, axum): screens both parties of a payment
//! against the sanctions and watch lists; lookups go through a cache whose
//! hits and misses the glue measures.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use services_glue::cache::InstrumentedCache;
use services_glue::health::Readiness;
use telemetry::Telemetry;

use super::{EngineError, Valid};
use crate::domain::{SANCTIONED_PARTIES, ScreeningRequest, ScreeningResponse, WATCHLIST_PARTIES};
use crate::env::EngineEnv;
use crate::faults::Faults;
use crate::ttl_cache::TtlCache;

services_glue::instruments! {
    /// compliance-engine's business instruments.
    pub struct ComplianceInstruments {
        /// Screenings by decision.
        screenings: counter("deltran.compliance.screenings", "{screening}",
            "Payments screened, by decision (clear, hold, reject)", ["decision"]),
        /// Entries on the lists screened against.
        list_entries: gauge("deltran.compliance.list.entries", "{entry}",
            "Entries on the screening lists", ["list"]),
    }
}

/// What the lists say about one party.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listing {
    Sanctioned,
    Watched,
    Clear,
}

/// Screened parties remembered (each name at most 140 characters).
const SCREENING_CACHE_ENTRIES: std::num::NonZeroUsize =
    std::num::NonZeroUsize::MIN.saturating_add(9_999);

struct Compliance {
    cache: InstrumentedCache<TtlCache<String, Listing>>,
    m: ComplianceInstruments,
    faults: Faults,
}

impl Compliance {
    /// Cached lookup; a miss reads the list (a short simulated query).
    async fn listing(&self, party: &str) -> Listing {
        let key = party.trim().to_lowercase();
        if let Some(hit) = self.cache.get(&key) {
            return hit;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let listing = if SANCTIONED_PARTIES.iter().any(|p| p.to_lowercase() == key) {
            Listing::Sanctioned
        } else if WATCHLIST_PARTIES.iter().any(|p| p.to_lowercase() == key) {
            Listing::Watched
        } else {
            Listing::Clear
        };
        self.cache.insert(key, listing);
        listing
    }
}

async fn screen(
    State(c): State<Arc<Compliance>>,
    Valid(request): Valid<ScreeningRequest>,
) -> Response {
    if c.faults.apply().await.is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected fault\n").into_response();
    }
    let debtor = c.listing(&request.debtor).await;
    let creditor = c.listing(&request.creditor).await;
    let decision = match (debtor, creditor) {
        (Listing::Sanctioned, _) | (_, Listing::Sanctioned) => "reject",
        (Listing::Watched, _) | (_, Listing::Watched) => "hold",
        _ => "clear",
    };
    c.m.screenings.add(1, [decision]);
    if decision != "clear" {
        tracing::warn!(decision, "screening hit");
    }
    Json(ScreeningResponse {
        decision: decision.into(),
    })
    .into_response()
}

/// Runs compliance-engine until SIGINT/SIGTERM.
pub fn main(env: EngineEnv) -> Result<(), EngineError> {
    let t = telemetry::builder!("compliance-engine").try_init()?;
    super::block_on(serve(&t, &env))
}

async fn serve(t: &Telemetry, env: &EngineEnv) -> Result<(), EngineError> {
    let meter = t.meter();
    let m = ComplianceInstruments::new(&meter);
    m.list_entries
        .record(SANCTIONED_PARTIES.len() as f64, ["sanctions"]);
    m.list_entries
        .record(WATCHLIST_PARTIES.len() as f64, ["watch"]);
    let c = Arc::new(Compliance {
        cache: InstrumentedCache::new(
            TtlCache::new(Duration::from_secs(30), SCREENING_CACHE_ENTRIES),
            "sanctions",
            &meter,
        ),
        m,
        faults: super::faults(env),
    });
    let app = Router::new()
        .route("/screenings", post(screen))
        .with_state(c);
    super::serve_axum(t, env, app, Readiness::new()).await
}
