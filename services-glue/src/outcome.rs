//! How a unit of work ends, recorded in one place for every integration.
//!
//! Each integration used to write its own `Drop` guard and its own
//! `otel.status_code = ERROR` lines; a fix to one (say, to record
//! `error.type` on cancellation) then had to be repeated in all of them.
//! [`OutcomeGuard`] owns the span, the start time and the measurements:
//! [`finish`](OutcomeGuard::finish) records the span's status and
//! `error.type` and the duration, exactly once, and dropping the guard
//! unfinished records the work as `cancelled` (the client went away, the
//! future was dropped, the handler panicked).

use std::borrow::Cow;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;

/// `error.type` of work dropped before it finished.
pub(crate) const CANCELLED: &str = "cancelled";

/// An `error.type` value: a short, bounded string, usually static.
pub(crate) type ErrorType = Cow<'static, str>;

/// Marks `span` as failed with `error_type`: the one place the glue writes
/// `otel.status_code = ERROR`, so every integration reports errors alike.
pub(crate) fn mark_error(span: &tracing::Span, error_type: &str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "ERROR");
}

/// The metrics recorded when work ends; implemented once per integration
/// whose measurements differ from "one duration histogram".
pub(crate) trait Measure {
    /// Records work that took `elapsed` seconds and ended with `error`;
    /// `span` is the work's span, for attributes known only at the end.
    fn measure(self, span: &tracing::Span, elapsed: f64, error: Option<&ErrorType>);
}

/// The common case: one duration histogram with a fixed attribute set, plus
/// `error.type` on failure.
#[cfg_attr(
    not(any(
        feature = "reqwest",
        feature = "nats",
        feature = "jsonrpc",
        feature = "llm",
        feature = "mcp",
        feature = "sqlx",
        feature = "redis"
    )),
    allow(dead_code)
)]
#[derive(Debug)]
pub(crate) struct Duration {
    pub(crate) histogram: Histogram<f64>,
    pub(crate) attrs: Vec<KeyValue>,
}

impl Measure for Duration {
    fn measure(mut self, _span: &tracing::Span, elapsed: f64, error: Option<&ErrorType>) {
        if let Some(e) = error {
            self.attrs
                .push(KeyValue::new("error.type", e.clone().into_owned()));
        }
        self.histogram.record(elapsed, &self.attrs);
    }
}

/// A span and its measurements, recorded once when the work finishes or,
/// failing that, when the guard is dropped.
#[derive(Debug)]
pub(crate) struct OutcomeGuard<M: Measure> {
    span: tracing::Span,
    start: Instant,
    /// `None` once recorded.
    measure: Option<M>,
}

impl<M: Measure> OutcomeGuard<M> {
    /// Starts timing now.
    pub(crate) fn new(span: tracing::Span, measure: M) -> Self {
        OutcomeGuard {
            span,
            start: Instant::now(),
            measure: Some(measure),
        }
    }

    /// The work's span.
    #[cfg_attr(
        not(any(
            feature = "axum",
            feature = "actix",
            feature = "grpc",
            feature = "jsonrpc",
            feature = "llm",
            feature = "mcp",
            feature = "nats"
        )),
        allow(dead_code)
    )]
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The measurements still to be recorded (to add what is learnt while
    /// the work runs, such as a status code); `None` once finished.
    #[cfg_attr(
        not(any(
            feature = "axum",
            feature = "actix",
            feature = "reqwest",
            feature = "jsonrpc",
            feature = "llm",
            feature = "grpc",
            feature = "sqlx"
        )),
        allow(dead_code)
    )]
    pub(crate) fn measure_mut(&mut self) -> Option<&mut M> {
        self.measure.as_mut()
    }

    /// Records the outcome (`None`: success); later calls do nothing.
    pub(crate) fn finish(&mut self, error: Option<ErrorType>) {
        let Some(measure) = self.measure.take() else {
            return;
        };
        if let Some(e) = &error {
            mark_error(&self.span, e);
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        measure.measure(&self.span, elapsed, error.as_ref());
    }

    /// Records the outcome of `result`: success, or its error named by
    /// `error_type`.
    #[cfg_attr(not(any(feature = "nats", feature = "redis")), allow(dead_code))]
    pub(crate) fn finish_result<T, E>(
        &mut self,
        result: &Result<T, E>,
        error_type: impl Fn(&E) -> &'static str,
    ) {
        self.finish(
            result
                .as_ref()
                .err()
                .map(|e| ErrorType::Borrowed(error_type(e))),
        );
    }
}

impl<M: Measure> Drop for OutcomeGuard<M> {
    fn drop(&mut self) {
        self.finish(Some(Cow::Borrowed(CANCELLED)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Seen<'a>(&'a std::cell::RefCell<Vec<Option<String>>>);

    impl Measure for Seen<'_> {
        fn measure(self, _span: &tracing::Span, _elapsed: f64, error: Option<&ErrorType>) {
            self.0.borrow_mut().push(error.map(|e| e.to_string()));
        }
    }

    #[test]
    fn finishes_once_and_drop_is_cancelled() {
        let seen = std::cell::RefCell::new(Vec::new());
        let mut g = OutcomeGuard::new(tracing::Span::none(), Seen(&seen));
        g.finish(None);
        g.finish(Some("late".into()));
        drop(g);
        drop(OutcomeGuard::new(tracing::Span::none(), Seen(&seen)));
        assert_eq!(*seen.borrow(), vec![None, Some(CANCELLED.to_string())]);
    }
}
