//! The load generator: payments at a steady rate with the invalid and
//! sanctioned shares asked for, plus WebSocket clients on the gateway's
//! status stream (which is how settlements are counted).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::parse_share;
use crate::domain::{
    BANKS, CURRENCIES, PARTIES, PaymentRequest, PaymentStatus, PaymentView, SANCTIONED_PARTIES,
    WATCHLIST_PARTIES,
};

/// How long one payment may take before it counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The payments the load generator sends.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadMix {
    /// Payments per second sent to the gateway (0: no load; send your own).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Share (0..1) of payments that are invalid (bad amount, currency or bank).
    #[arg(long, default_value_t = 0.05, value_parser = parse_share)]
    pub invalid: f64,
    /// Share (0..1) of payments naming a sanctioned party.
    #[arg(long, default_value_t = 0.02, value_parser = parse_share)]
    pub sanctioned: f64,
    /// WebSocket clients watching payment status on the gateway.
    #[arg(long, default_value_t = 2)]
    pub websockets: usize,
}

/// What the load generator saw, for the view.
#[derive(Debug, Default)]
pub struct LoadStats {
    /// Payments sent.
    pub sent: AtomicU64,
    /// Accepted (202, accepted).
    pub accepted: AtomicU64,
    /// Held for compliance review.
    pub held: AtomicU64,
    /// Rejected by compliance or risk.
    pub rejected: AtomicU64,
    /// Rejected as invalid (422).
    pub invalid: AtomicU64,
    /// Failed in an engine (5xx).
    pub failed: AtomicU64,
    /// The gateway could not be reached, or gave no answer within 10 s.
    pub unreachable: AtomicU64,
    /// Shed by the gateway at capacity (503 with Retry-After).
    pub shed: AtomicU64,
    /// Settled (seen on the WebSocket stream).
    pub settled: AtomicU64,
    /// Failed in settlement (seen on the WebSocket stream).
    pub settle_failed: AtomicU64,
    /// Open WebSocket clients.
    pub websockets: AtomicU64,
    /// The trace id of a recently accepted payment.
    pub last_trace: Mutex<Option<String>>,
}

impl LoadStats {
    /// Payments sent whose outcome has not come back yet.
    pub fn in_flight(&self) -> u64 {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let answered = n(&self.accepted)
            + n(&self.held)
            + n(&self.rejected)
            + n(&self.invalid)
            + n(&self.failed)
            + n(&self.shed)
            + n(&self.unreachable);
        n(&self.sent).saturating_sub(answered)
    }

    /// One line of outcomes: what the view and `deltran load` print.
    pub fn summary(&self) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "sent {} accepted {} settled {} held {} rejected {} invalid {} failed {} (settlement {}) shed {} unreachable {}",
            n(&self.sent),
            n(&self.accepted),
            n(&self.settled),
            n(&self.held),
            n(&self.rejected),
            n(&self.invalid),
            n(&self.failed),
            n(&self.settle_failed),
            n(&self.shed),
            n(&self.unreachable),
        )
    }

    fn count(&self, view: &PaymentView, code: u16) {
        let counter = match (code, view.status) {
            (422, _) => &self.invalid,
            (_, PaymentStatus::Accepted) => {
                if let (Some(t), Ok(mut last)) = (&view.trace_id, self.last_trace.lock()) {
                    *last = Some(t.clone());
                }
                &self.accepted
            }
            (_, PaymentStatus::Held) => &self.held,
            (_, PaymentStatus::Rejected) => &self.rejected,
            _ => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The running load; [`LoadHandle::stop`] ends it.
#[derive(Debug)]
pub struct LoadHandle {
    sender: Option<JoinHandle<()>>,
    watchers: Vec<JoinHandle<()>>,
    stats: Arc<LoadStats>,
}

impl LoadHandle {
    /// Stops sending payments; the WebSocket clients keep counting settlements.
    ///
    /// Payments already sent are waited for (at most the client's 10 s
    /// timeout), so every payment counted as sent has its outcome counted too.
    pub async fn stop_sending(&mut self) {
        if let Some(t) = self.sender.take() {
            t.abort();
            let _ = t.await;
        }
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(1);
        while self.stats.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops everything, closing the WebSockets.
    pub async fn stop(mut self) {
        self.stop_sending().await;
        for t in &self.watchers {
            t.abort();
        }
        for t in self.watchers {
            let _ = t.await;
        }
    }
}

fn pick<'a>(items: &[&'a str]) -> &'a str {
    items[fastrand::usize(..items.len())]
}

/// One payment body: valid, invalid, sanctioned or watch-listed as the shares say.
pub fn payment_body(invalid: f64, sanctioned: f64) -> serde_json::Value {
    let from = pick(&BANKS);
    let to = loop {
        let b = pick(&BANKS);
        if b != from {
            break b;
        }
    };
    // Log-uniform amounts from 100 to 200,000, and a rare one over the risk limit.
    let mut amount = (100f64.ln() + fastrand::f64() * (200_000f64.ln() - 100f64.ln())).exp();
    if fastrand::f64() < 0.003 {
        amount = 1_500_000.0 + fastrand::f64() * 1_000_000.0;
    }
    let mut request = PaymentRequest {
        from_bank: from.into(),
        to_bank: to.into(),
        amount: (amount * 100.0).round() / 100.0,
        currency: pick(&CURRENCIES).into(),
        debtor: pick(&PARTIES).into(),
        creditor: pick(&PARTIES).into(),
    };
    let roll = fastrand::f64();
    if roll < invalid {
        match fastrand::u8(..3) {
            0 => request.amount = -request.amount,
            1 => request.currency = "XXX".into(),
            _ => request.to_bank = "NOTABANK".into(),
        }
    } else if roll < invalid + sanctioned {
        request.creditor = pick(&SANCTIONED_PARTIES).into();
    } else if roll < invalid + sanctioned + 0.01 {
        request.debtor = pick(&WATCHLIST_PARTIES).into();
    }
    serde_json::to_value(request).unwrap_or_default()
}

/// Starts the payment loop and the WebSocket clients.
/// The treasury desk's pollers (clearing window, ledger balances) run when
/// their engines' URLs are given.
pub fn start(
    args: &LoadMix,
    gateway_url: String,
    clearing_url: Option<String>,
    settlement_url: Option<String>,
    stats: Arc<LoadStats>,
) -> LoadHandle {
    let mut sender = None;
    let mut watchers = Vec::new();
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_default();
    if args.rate > 0.0 {
        let (invalid, sanctioned, rate) = (args.invalid, args.sanctioned, args.rate);
        let (url, stats) = (format!("{gateway_url}/payments"), stats.clone());
        sender = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let (http, url, stats) = (http.clone(), url.clone(), stats.clone());
                let body = payment_body(invalid, sanctioned);
                stats.sent.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    match http.post(&url).json(&body).send().await {
                        Ok(r)
                            if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                                && r.headers().contains_key(reqwest::header::RETRY_AFTER) =>
                        {
                            stats.shed.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            let code = r.status().as_u16();
                            match r.json::<PaymentView>().await {
                                Ok(view) => stats.count(&view, code),
                                Err(_) => {
                                    stats.failed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Err(_) => {
                            stats.unreachable.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        }));
    }
    // A treasury desk polling the open clearing window and ledger balances.
    let polled = [
        ("windows/current", clearing_url),
        ("ledger/balances", settlement_url),
    ];
    for (path, poll) in polled
        .into_iter()
        .filter_map(|(path, url)| Some((path, url?)))
    {
        let url = format!("{poll}/{path}");
        let http = reqwest::Client::new();
        watchers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let _ = http.get(&url).send().await;
            }
        }));
    }
    let ws_url = format!(
        "{}/payments/stream",
        gateway_url.replacen("http://", "ws://", 1)
    );
    for i in 0..args.websockets {
        let (ws_url, stats) = (ws_url.clone(), stats.clone());
        // The first client counts settlements; the others are just watching.
        let counting = i == 0;
        watchers.push(tokio::spawn(async move {
            loop {
                if let Ok((mut socket, _)) = tokio_tungstenite::connect_async(ws_url.as_str()).await
                {
                    stats.websockets.fetch_add(1, Ordering::Relaxed);
                    while let Some(Ok(message)) = socket.next().await {
                        let Ok(text) = message.to_text() else {
                            continue;
                        };
                        if !counting {
                            continue;
                        }
                        match serde_json::from_str::<PaymentView>(text).map(|v| v.status) {
                            Ok(PaymentStatus::Settled) => {
                                stats.settled.fetch_add(1, Ordering::Relaxed)
                            }
                            Ok(PaymentStatus::Failed) => {
                                stats.settle_failed.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => 0,
                        };
                    }
                    stats.websockets.fetch_sub(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    LoadHandle {
        sender,
        watchers,
        stats,
    }
}
