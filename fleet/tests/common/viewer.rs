//! Asking the launcher's embedded viewer for what it holds.

use otlp_viewer::{TraceDetail, TraceSummary};

pub use super::traces::{PAYMENT_PATH as PATH, service};

pub fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Option<T> {
    let (code, body) = testkit::http_get(url).ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

/// A settled accepted payment's trace: its window has linked to it.
pub fn settled_payment(viewer: &str) -> Option<TraceDetail> {
    let list: Vec<TraceSummary> = get_json(&format!("{viewer}/api/traces?limit=1000"))?;
    list.iter()
        .filter(|t| {
            t.root_name == "POST /payments"
                && t.key_attributes
                    .get("deltran.payment.outcome")
                    .map(String::as_str)
                    == Some("accepted")
                && t.services.len() >= PATH.len()
        })
        .find_map(|t| {
            let detail: TraceDetail = get_json(&format!("{viewer}/api/traces/{}", t.trace_id))?;
            let has = |name: &str| detail.spans.iter().any(|s| service(s) == name);
            (PATH.iter().all(|p| has(p)) && !detail.linked_from.is_empty()).then_some(detail)
        })
}
