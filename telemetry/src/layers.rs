//! The `tracing` layers telemetry contributes — stdout, spans to
//! OpenTelemetry, events to OpenTelemetry logs — built for any subscriber,
//! so they can go into telemetry's own dispatcher or a registry the service
//! owns ([`Telemetry::layer`](crate::Telemetry::layer)).

use std::sync::Arc;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::registry::LookupSpan;

use crate::SamplerConfig;
use crate::config::LogFormat;
use crate::resource::ServiceIdentity;
use crate::sampling::ParentDecides;
use crate::stdout::JsonLayer;

/// A layer for a subscriber `S`, boxed so the stack can vary at run time.
pub(crate) type DynLayer<S> = Box<dyn Layer<S> + Send + Sync + 'static>;

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
    /// Spans are recorded with this tracer; `None` when traces go nowhere.
    pub(crate) tracer: Option<SdkTracer>,
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
            .field("traces", &self.tracer.is_some())
            .field("logs", &self.logger_provider.is_some())
            .field("pass_through", &self.pass_through)
            .finish_non_exhaustive()
    }
}

/// The tracer spans are recorded with: scoped to the service, so backends
/// show which build produced them.
///
/// Every span carries a copy of its scope (and an exporter handed the spans
/// by value, such as the console one, copies them per attempt). Owned
/// strings would make each copy two allocations (and two frees); the name
/// and version are therefore made `'static`, once per built pipeline (a few
/// bytes, kept for the life of the process).
pub(crate) fn service_tracer(
    provider: &SdkTracerProvider,
    identity: &ServiceIdentity,
) -> SdkTracer {
    let scope = InstrumentationScope::builder(leak(&identity.name))
        .with_version(leak(&identity.version))
        .build();
    provider.tracer_with_scope(scope)
}

/// `text` as a `&'static str` whose copies are free.
fn leak(text: &str) -> &'static str {
    Box::leak(text.into())
}

impl LayerRecipe {
    /// A fresh stack of telemetry's layers for a subscriber `S`.
    pub(crate) fn layers<S>(&self) -> Vec<DynLayer<S>>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
    {
        let writer = self.writer.clone();
        let mut layers: Vec<DynLayer<S>> = vec![match self.format {
            LogFormat::Json => Box::new(JsonLayer::new(writer)),
            LogFormat::Text => Box::new(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(crate::redact::MaskingFields)
                    .with_writer(writer)
                    .with_ansi(false),
            ),
        }];
        if let Some(tracer) = &self.tracer {
            layers.push(Box::new(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer.clone())
                    .with_early_sampler(ParentDecides::new(self.sampler))
                    .with_location(self.code_location)
                    .with_threads(false)
                    .with_tracked_inactivity(false),
            ));
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
            layers.push(Box::new(
                tracing_opentelemetry::layer()
                    .with_tracer(opentelemetry::trace::noop::NoopTracer::new())
                    .with_location(false)
                    .with_threads(false)
                    .with_tracked_inactivity(false),
            ));
        }
        if let Some(provider) = &self.logger_provider {
            layers.push(Box::new(
                opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider),
            ));
        }
        layers
    }
}
