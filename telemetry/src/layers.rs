//! The `tracing` layers telemetry contributes — stdout, spans to
//! OpenTelemetry, events to OpenTelemetry logs — built for any subscriber,
//! so they can go into telemetry's own dispatcher or a registry the service
//! owns ([`Telemetry::layer`](crate::Telemetry::layer)).

use std::sync::Arc;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::SamplerConfig;
use crate::config::{LimitsConfig, LogFormat};
use crate::processors::QueueSpanProcessor;
use crate::recorded_spans::QueueSink;
use crate::resource::ServiceIdentity;
use crate::sampling::ParentDecides;
use crate::stdout::JsonLayer;

/// One stdout writer for every copy of the layers.
#[derive(Clone)]
pub(crate) struct SharedWriter(pub(crate) Arc<BoxMakeWriter>);

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedWriter")
    }
}

impl<'a> MakeWriter<'a> for SharedWriter {
    type Writer = <BoxMakeWriter as MakeWriter<'a>>::Writer;
    fn make_writer(&'a self) -> Self::Writer {
        self.0.make_writer()
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        self.0.make_writer_for(meta)
    }
}

/// What every copy of the layer stack is made from.
pub(crate) struct LayerRecipe {
    pub(crate) writer: SharedWriter,
    pub(crate) format: LogFormat,
    /// Where spans are recorded; `None` when traces go nowhere.
    pub(crate) traces: Option<ServiceTraces>,
    /// The tracer provider's sampler, also asked when a span is created so
    /// unsampled spans are never built (`crate::sampling`).
    pub(crate) sampler: SamplerConfig,
    pub(crate) logger_provider: Option<SdkLoggerProvider>,
    /// Carry incoming context through even when no span is recorded.
    pub(crate) pass_through: bool,
    pub(crate) code_location: bool,
}

impl std::fmt::Debug for LayerRecipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerRecipe")
            .field("format", &self.format)
            .field("traces", &self.traces.is_some())
            .field("logs", &self.logger_provider.is_some())
            .field("pass_through", &self.pass_through)
            .finish_non_exhaustive()
    }
}

/// Where the service's spans are recorded: the layer records them itself
/// and hands them to the span queues (`crate::recorded_spans`); the tracer
/// is the layer's for anything it leaves to the SDK.
#[derive(Debug, Clone)]
pub(crate) struct ServiceTraces {
    tracer: SdkTracer,
    sink: QueueSink,
}

/// The service's traces: scoped to the service, so backends show which
/// build produced them.
///
/// Every span carries a copy of its scope (and an exporter handed the spans
/// by value, such as the console one, copies them per attempt). Owned
/// strings would make each copy two allocations (and two frees); the name
/// and version are therefore made `'static`, once per built pipeline (a few
/// bytes, kept for the life of the process).
pub(crate) fn service_traces(
    provider: &SdkTracerProvider,
    identity: &ServiceIdentity,
    queues: Vec<QueueSpanProcessor>,
    limits: LimitsConfig,
) -> ServiceTraces {
    let scope = InstrumentationScope::builder(leak(&identity.name))
        .with_version(leak(&identity.version))
        .build();
    ServiceTraces {
        tracer: provider.tracer_with_scope(scope.clone()),
        sink: QueueSink::new(queues, scope, limits),
    }
}

/// `text` as a `&'static str` whose copies are free.
fn leak(text: &str) -> &'static str {
    Box::leak(text.into())
}

impl LayerRecipe {
    /// A fresh stack of telemetry's layers for a subscriber `S`: stdout,
    /// spans to OpenTelemetry, events to OpenTelemetry logs, in that order.
    ///
    /// Composed statically, so the layers that only handle events (stdout,
    /// logs) cost nothing on a span's creation, enter, exit and close: a
    /// list of boxed layers makes a dynamic call into every layer on every
    /// one of them. The span layer is boxed (its tracer's type varies) and
    /// reached through one call each.
    pub(crate) fn layers<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
    {
        let json = MaybeLayer(match self.format {
            LogFormat::Json => Some(JsonLayer::new(self.writer.clone())),
            LogFormat::None => Some(
                JsonLayer::new(self.writer.clone()).only_targets(crate::feedback::is_own_target),
            ),
            LogFormat::Text => None,
        });
        let text = MaybeLayer(matches!(self.format, LogFormat::Text).then(|| {
            tracing_subscriber::fmt::layer()
                .fmt_fields(crate::redact::MaskingFields)
                .with_writer(self.writer.clone())
                .with_ansi(false)
        }));
        let spans: Box<dyn Layer<S> + Send + Sync> = if let Some(traces) = &self.traces {
            Box::new(
                tracing_opentelemetry::layer()
                    .with_tracer(traces.tracer.clone())
                    .with_early_sampler(ParentDecides::new(self.sampler))
                    .with_span_sink(traces.sink.clone())
                    .with_location(self.code_location)
                    .with_threads(false)
                    .with_tracked_inactivity(false),
            )
        } else if self.pass_through {
            // No traces are recorded (`OTEL_TRACES_EXPORTER=none` or
            // `OTEL_SDK_DISABLED=true`), but "no exporter" must not cut the
            // traces passing through this service: without an OpenTelemetry
            // layer, `span.set_parent` and `span.context()` do nothing, so no
            // incoming context would reach outgoing calls. The no-op tracer
            // gives every span its parent's context (what the OpenTelemetry
            // API does without an SDK): the incoming `traceparent`,
            // `tracestate` and baggage go out unchanged. This service's own
            // span ids are not used, because those spans are never exported
            // and would leave the next service pointing at a parent no
            // backend has. No thread, socket or id generator is involved.
            Box::new(
                tracing_opentelemetry::layer()
                    .with_tracer(opentelemetry::trace::noop::NoopTracer::new())
                    .with_location(false)
                    .with_threads(false)
                    .with_tracked_inactivity(false),
            )
        } else {
            Box::new(tracing_subscriber::layer::Identity::new())
        };
        let logs = MaybeLayer(
            self.logger_provider
                .as_ref()
                .map(opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new),
        );
        json.and_then(text).and_then(spans).and_then(logs)
    }
}

/// A layer that may be absent, and then has no say in anything. Only for
/// layers nothing downcasts to: it does not forward `downcast_raw`.
///
/// Not `Option<L>`: `tracing-subscriber` gives an absent `Option` layer the
/// level hint `OFF`, and its rule for discounting that inside a stack of
/// layers left this whole subscriber's hint at `OFF`: every `info!` was
/// disabled at its callsite.
struct MaybeLayer<L>(Option<L>);

impl<S, L> Layer<S> for MaybeLayer<L>
where
    S: Subscriber,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        if let Some(layer) = &self.0 {
            layer.on_register_dispatch(subscriber);
        }
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        if let Some(layer) = &mut self.0 {
            layer.on_layer(subscriber);
        }
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        match &self.0 {
            Some(layer) => layer.register_callsite(metadata),
            None => Interest::always(),
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.0
            .as_ref()
            .is_none_or(|layer| layer.enabled(metadata, ctx))
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.as_ref().and_then(Layer::<S>::max_level_hint)
    }

    #[inline]
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(layer) = &self.0 {
            layer.on_new_span(attrs, id, ctx);
        }
    }

    #[inline]
    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(layer) = &self.0 {
            layer.on_record(id, values, ctx);
        }
    }

    #[inline]
    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        if let Some(layer) = &self.0 {
            layer.on_follows_from(id, follows, ctx);
        }
    }

    #[inline]
    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.0
            .as_ref()
            .is_none_or(|layer| layer.event_enabled(event, ctx))
    }

    #[inline]
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if let Some(layer) = &self.0 {
            layer.on_event(event, ctx);
        }
    }

    #[inline]
    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(layer) = &self.0 {
            layer.on_enter(id, ctx);
        }
    }

    #[inline]
    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(layer) = &self.0 {
            layer.on_exit(id, ctx);
        }
    }

    #[inline]
    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if let Some(layer) = &self.0 {
            layer.on_close(id, ctx);
        }
    }

    #[inline]
    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        if let Some(layer) = &self.0 {
            layer.on_id_change(old, new, ctx);
        }
    }
}
