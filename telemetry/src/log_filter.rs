//! `RUST_LOG` as the subscriber runs it.
//!
//! An [`EnvFilter`] keeps per-span state only for directives that name a
//! span or a field (`[request]=debug`, `[{order_id}]=trace`): with none, its
//! span callbacks can change nothing, yet each one still takes a lock and
//! searches a map — on every span's creation, enter, exit and close.
//! [`LogFilter`] asks `EnvFilter` every filtering question, and tells it
//! about spans only when a directive could use them.

use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};

/// The `RUST_LOG` filter telemetry's subscriber runs: an [`EnvFilter`]
/// that skips its span bookkeeping when no directive names a span or field.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let filter = telemetry::LogFilter::new("info,token_engine=debug".parse()?);
/// assert!(!filter.tracks_spans());
/// let subscriber = tracing_subscriber::registry().with(filter);
/// tracing::subscriber::with_default(subscriber, || tracing::info!("kept"));
/// assert!(telemetry::LogFilter::new("info,[request]=debug".parse()?).tracks_spans());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LogFilter {
    filter: EnvFilter,
    /// Some directive names a span or a field, so the filter's answers
    /// depend on which spans are entered.
    tracks_spans: bool,
}

impl LogFilter {
    /// Wraps `filter`, telling it about spans only when one of its
    /// directives names a span or a field.
    pub fn new(filter: EnvFilter) -> Self {
        // A directive with a span or field part prints it in brackets
        // (`target[span{field}]=level`), and a target cannot hold one.
        let tracks_spans = filter.to_string().contains('[');
        LogFilter {
            filter,
            tracks_spans,
        }
    }

    /// Whether the filter keeps state per span (a directive names a span or
    /// a field).
    pub fn tracks_spans(&self) -> bool {
        self.tracks_spans
    }
}

impl<S: Subscriber> Layer<S> for LogFilter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        Layer::<S>::register_callsite(&self.filter, metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.filter.max_level_hint()
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.filter.enabled(metadata, ctx)
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        Layer::<S>::event_enabled(&self.filter, event, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if self.tracks_spans {
            self.filter.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if self.tracks_spans {
            self.filter.on_record(id, values, ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if self.tracks_spans {
            self.filter.on_enter(id, ctx);
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        if self.tracks_spans {
            self.filter.on_exit(id, ctx);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if self.tracks_spans {
            self.filter.on_close(id, ctx);
        }
    }
}

/// The same filter as a per-layer one ([`Telemetry::layer`](crate::Telemetry::layer)):
/// the same questions to `EnvFilter`, the same span callbacks as the layer.
impl<S: Subscriber> Filter<S> for LogFilter {
    fn enabled(&self, meta: &Metadata<'_>, ctx: &Context<'_, S>) -> bool {
        Filter::<S>::enabled(&self.filter, meta, ctx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        Filter::<S>::callsite_enabled(&self.filter, meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.filter.max_level_hint()
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> bool {
        Filter::<S>::event_enabled(&self.filter, event, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        Layer::<S>::on_new_span(self, attrs, id, ctx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        Layer::<S>::on_record(self, id, values, ctx);
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        Layer::<S>::on_enter(self, id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        Layer::<S>::on_exit(self, id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        Layer::<S>::on_close(self, id, ctx);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::test_support::Lines;

    fn filter(directives: &str) -> LogFilter {
        LogFilter::new(EnvFilter::builder().parse(directives).unwrap())
    }

    #[test]
    fn only_span_and_field_directives_track_spans() {
        for static_only in [
            "info",
            "warn,token_engine=debug",
            "off",
            "token_engine::ledger=trace,h2=off",
            "",
        ] {
            assert!(!filter(static_only).tracks_spans(), "{static_only}");
        }
        for per_span in [
            "[request]=debug",
            "info,token_engine[settle]=trace",
            "[{order_id}]=trace",
            "warn,[request{method=GET}]=debug",
        ] {
            assert!(filter(per_span).tracks_spans(), "{per_span}");
        }
    }

    fn fmt_layer<S>(writer: &Lines) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let writer = writer.clone();
        tracing_subscriber::fmt::layer()
            .without_time()
            .with_ansi(false)
            .with_writer(move || writer.clone())
    }

    /// How a filter is put in front of the layers.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Placement {
        /// A subscriber level of its own: `registry().with(filter).with(layers)`.
        Global,
        /// One layer with the layers, as telemetry's dispatch has it:
        /// `registry().with(filter.and_then(layers))`.
        Composed,
        /// A per-layer filter.
        PerLayer,
    }

    /// What each filter lets through, placed each way, against the
    /// `EnvFilter` it wraps.
    fn logged(directives: &str, wrapped: bool, placement: Placement) -> String {
        let lines = Lines::default();
        let writer = lines.clone();
        let env = EnvFilter::builder().parse(directives).unwrap();
        let dispatch = match (wrapped, placement) {
            (true, Placement::Global) => tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(LogFilter::new(env))
                    .with(fmt_layer(&writer)),
            ),
            (true, Placement::Composed) => {
                let layers: Vec<crate::BoxedLayer> = vec![Box::new(fmt_layer(&writer))];
                tracing::Dispatch::new(
                    tracing_subscriber::registry().with(LogFilter::new(env).and_then(layers)),
                )
            }
            (true, Placement::PerLayer) => tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(fmt_layer(&writer).with_filter(LogFilter::new(env))),
            ),
            (false, Placement::Global | Placement::Composed) => tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(env)
                    .with(fmt_layer(&writer)),
            ),
            (false, Placement::PerLayer) => tracing::Dispatch::new(
                tracing_subscriber::registry().with(fmt_layer(&writer).with_filter(env)),
            ),
        };
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::debug!("debug outside");
            tracing::info!("info outside");
            tracing::info_span!("request", method = "GET").in_scope(|| {
                tracing::debug!("debug in request");
                tracing::trace!("trace in request");
                tracing::info_span!("settle").in_scope(|| tracing::debug!("debug in settle"));
            });
            tracing::info_span!("request", method = "POST")
                .in_scope(|| tracing::debug!("debug in POST request"));
            tracing::info_span!("other").in_scope(|| tracing::debug!("debug in other"));
        });
        let text = lines.text();
        text.lines()
            .map(|l| l.rsplit(": ").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("|")
    }

    #[test]
    fn lets_through_exactly_what_env_filter_does() {
        for directives in [
            "info",
            "debug",
            "warn",
            "info,[request]=debug",
            "info,[request{method=GET}]=debug",
            "info,[settle]=debug",
            "info,[{method}]=trace",
        ] {
            for placement in [Placement::Global, Placement::Composed, Placement::PerLayer] {
                let expected = logged(directives, false, placement);
                assert_eq!(
                    logged(directives, true, placement),
                    expected,
                    "{directives} ({placement:?})"
                );
            }
        }
        // The span directives do select by span: the comparison above is
        // not between two filters that ignore spans.
        assert_eq!(
            logged(
                "info,[request{method=GET}]=debug",
                true,
                Placement::Composed
            ),
            "info outside|debug in request|debug in settle"
        );
    }
}
