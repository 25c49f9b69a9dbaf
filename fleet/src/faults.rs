//! Faults injected on purpose (latency, errors), so dashboards and alerts
//! have something to show.

use std::time::Duration;

/// An engine's injected faults.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    latency: Duration,
    error_rate: f64,
}

/// The request failed because a fault was injected.
#[derive(Debug, thiserror::Error)]
#[error("injected fault (DELTRAN_FAULT_ERROR_RATE)")]
pub struct InjectedFault;

impl Faults {
    /// `latency` added to each business request, `error_rate` (0..1) of them failed.
    pub fn new(latency: Duration, error_rate: f64) -> Self {
        Faults {
            latency,
            error_rate: error_rate.clamp(0.0, 1.0),
        }
    }

    /// Sleeps the injected latency, then fails with the injected probability.
    pub async fn apply(&self) -> Result<(), InjectedFault> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.error_rate > 0.0 && fastrand::f64() < self.error_rate {
            tracing::warn!("injected fault");
            return Err(InjectedFault);
        }
        Ok(())
    }
}
