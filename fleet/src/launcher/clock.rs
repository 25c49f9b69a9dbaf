//! A launcher's heartbeat: one tick a second until Ctrl-C/SIGTERM or the
//! end of `--duration`, and the outage windows the fault knobs ask for.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// One tick a second until stopped.
pub struct RunClock {
    started: Instant,
    duration: Option<Duration>,
    tick: tokio::time::Interval,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for RunClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunClock")
            .field("duration", &self.duration)
            .finish()
    }
}

impl RunClock {
    /// Starts now; ends at `duration` if given, or on SIGINT/SIGTERM.
    pub fn start(duration: Option<Duration>) -> RunClock {
        RunClock {
            started: Instant::now(),
            duration,
            tick: tokio::time::interval(Duration::from_secs(1)),
            stop: Box::pin(crate::shutdown::shutdown_signal()),
        }
    }

    /// The time since the start at the next tick; `None` once stopped.
    pub async fn next(&mut self) -> Option<Duration> {
        tokio::select! {
            _ = &mut self.stop => return None,
            _ = self.tick.tick() => {}
        }
        let elapsed = self.started.elapsed();
        if self.duration.is_some_and(|d| elapsed >= d) {
            return None;
        }
        Some(elapsed)
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// What an outage window asks of its target at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Stop it now.
    Stop,
    /// Start it again now.
    Restart,
}

/// A stop-and-restart window (`--outage NAME=FROM-TO`) of one target.
#[derive(Debug, Clone)]
pub struct OutageWindow<T> {
    /// What goes down.
    pub target: T,
    from: Duration,
    to: Duration,
    down: bool,
}

impl<T> OutageWindow<T> {
    /// Down from `from` to `to` after the start.
    pub fn new(target: T, from: Duration, to: Duration) -> Self {
        OutageWindow {
            target,
            from,
            to,
            down: false,
        }
    }

    /// What to do at `elapsed`, if anything (each once).
    ///
    /// ```
    /// use std::time::Duration;
    /// use deltran_fleet::launcher::{Outage, OutageWindow};
    /// let s = Duration::from_secs;
    /// let mut w = OutageWindow::new("risk-engine", s(10), s(20));
    /// assert_eq!(w.at(s(5)), None);
    /// assert_eq!(w.at(s(10)), Some(Outage::Stop));
    /// assert_eq!(w.at(s(15)), None);
    /// assert_eq!(w.at(s(20)), Some(Outage::Restart));
    /// assert_eq!(w.at(s(25)), None);
    /// ```
    pub fn at(&mut self, elapsed: Duration) -> Option<Outage> {
        if !self.down && elapsed >= self.from && elapsed < self.to {
            self.down = true;
            Some(Outage::Stop)
        } else if self.down && elapsed >= self.to {
            self.down = false;
            Some(Outage::Restart)
        } else {
            None
        }
    }
}
