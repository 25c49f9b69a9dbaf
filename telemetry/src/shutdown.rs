//! Bounded shutdown: one background thread does the ordered flush; callers
//! wait for it synchronously or asynchronously, never past the deadline.
//!
//! Why a thread: the SDK's shutdown paths block, and blocking a runtime
//! worker thread (worse, a `current_thread` runtime's only thread) is how the
//! upstream crates deadlock. Telemetry's exporters run on telemetry's own
//! runtime, so the caller's runtime being blocked or gone never matters.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::config::Signal;

/// Why shutdown did not complete cleanly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The deadline passed before everything was flushed; what was still
    /// queued may be lost. The service is free to exit.
    #[error("telemetry shutdown did not finish within {0:?}; data still queued may be lost")]
    TimedOut(Duration),
    /// Some providers reported errors while flushing.
    #[error("telemetry shutdown finished with errors: {}", .0.iter().map(|(s, e)| format!("{s}: {e}")).collect::<Vec<_>>().join("; "))]
    Failed(Vec<(Signal, String)>),
}

/// The outcome of a shutdown, shared by every caller.
#[derive(Debug, Default)]
pub(crate) struct ShutdownSlot {
    result: Mutex<Option<Result<(), ShutdownError>>>,
    done: Condvar,
    wakers: Mutex<Vec<Waker>>,
}

impl ShutdownSlot {
    pub(crate) fn complete(&self, r: Result<(), ShutdownError>) {
        if let Ok(mut slot) = self.result.lock()
            && slot.is_none()
        {
            *slot = Some(r);
        }
        self.done.notify_all();
        if let Ok(mut w) = self.wakers.lock() {
            for waker in w.drain(..) {
                waker.wake();
            }
        }
    }

    fn get(&self) -> Option<Result<(), ShutdownError>> {
        self.result.lock().ok().and_then(|r| r.clone())
    }

    /// Blocks until the result is in or `deadline` passes. A timeout is
    /// recorded as the result, so that every caller (now, later, sync or
    /// async) sees the same outcome even if the shutdown thread reports late.
    pub(crate) fn wait_until(
        &self,
        deadline: Instant,
        budget: Duration,
    ) -> Result<(), ShutdownError> {
        let Ok(mut guard) = self.result.lock() else {
            return Err(ShutdownError::TimedOut(budget));
        };
        loop {
            if let Some(r) = guard.as_ref() {
                return r.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.done.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => guard = g,
                Err(_) => return Err(ShutdownError::TimedOut(budget)),
            }
        }
        drop(guard);
        self.complete(Err(ShutdownError::TimedOut(budget)));
        self.get().unwrap_or(Err(ShutdownError::TimedOut(budget)))
    }
}

/// Resolves when the shutdown thread reports, or at the deadline (a timer
/// thread completes the slot with `TimedOut`). Runtime-agnostic.
pub(crate) struct WaitShutdown {
    pub(crate) slot: Arc<ShutdownSlot>,
}

impl Future for WaitShutdown {
    type Output = Result<(), ShutdownError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(r) = self.slot.get() {
            return Poll::Ready(r);
        }
        if let Ok(mut w) = self.slot.wakers.lock() {
            w.push(cx.waker().clone());
        }
        // Re-check: the result may have landed between get() and push().
        match self.slot.get() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

/// Runs `f` on its own thread and waits at most until `deadline`.
/// `None` when it did not finish in time (the thread is left to finish).
pub(crate) fn run_bounded<T: Send + 'static>(
    name: &str,
    deadline: Instant,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name(format!("otel-stop-{name}"))
        .spawn(move || {
            let _ = tx.send(f());
        });
    if spawned.is_err() {
        return None;
    }
    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()
}
