//! LLM calls with the `gen_ai.*` conventions: a CLIENT span
//! `{operation} {model}`, `gen_ai.client.operation.duration` (s) and
//! `gen_ai.client.token.usage` ({token}, input and output) by provider,
//! model and outcome.
//!
//! ```
//! use services_glue::llm::GenAiTelemetry;
//! let meter = opentelemetry::global::meter("analysis-agent");
//! let llm = GenAiTelemetry::new(&meter);
//! let call = llm.start("chat", "openai", "gpt-4o");
//! // ... send the request ...
//! call.finish_ok(812, 164);
//! let failed = llm.start("chat", "anthropic", "claude-sonnet");
//! failed.finish_err("rate_limited");
//! ```

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tracing::field::Empty;

use crate::outcome::{Duration, ErrorType, OutcomeGuard};

const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
];

/// gen_ai instruments; cheap to clone.
#[derive(Clone, Debug)]
pub struct GenAiTelemetry {
    duration: Histogram<f64>,
    tokens: Histogram<u64>,
}

impl GenAiTelemetry {
    /// Creates the instruments (semconv bucket advice included).
    pub fn new(meter: &Meter) -> Self {
        GenAiTelemetry {
            duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("GenAI operation duration")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
        }
    }

    /// Starts a call. `operation` is e.g. `chat`, `embeddings`; `provider` and
    /// `model` should be constants of the service, not user input.
    pub fn start(
        &self,
        operation: &'static str,
        provider: &'static str,
        model: &'static str,
    ) -> GenAiCall {
        let span = tracing::info_span!(
            "gen_ai",
            otel.name = %format!("{operation} {model}"),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = operation,
            gen_ai.provider.name = provider,
            gen_ai.request.model = model,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            error.type = Empty,
        );
        GenAiCall {
            tokens: self.tokens.clone(),
            outcome: OutcomeGuard::new(
                span,
                Duration {
                    histogram: self.duration.clone(),
                    attrs: vec![
                        KeyValue::new("gen_ai.operation.name", operation),
                        KeyValue::new("gen_ai.provider.name", provider),
                        KeyValue::new("gen_ai.request.model", model),
                    ],
                },
            ),
        }
    }
}

/// One call in flight; dropping it unfinished records `error.type=cancelled`.
#[derive(Debug)]
pub struct GenAiCall {
    tokens: Histogram<u64>,
    outcome: OutcomeGuard<Duration>,
}

impl GenAiCall {
    /// The CLIENT span, to instrument the request with.
    pub fn span(&self) -> &tracing::Span {
        self.outcome.span()
    }

    /// Success, with the token counts the provider reported.
    pub fn finish_ok(mut self, input_tokens: u64, output_tokens: u64) {
        let span = self.outcome.span();
        span.record("gen_ai.usage.input_tokens", input_tokens as i64);
        span.record("gen_ai.usage.output_tokens", output_tokens as i64);
        if let Some(m) = self.outcome.measure_mut() {
            for (kind, n) in [("input", input_tokens), ("output", output_tokens)] {
                let mut attrs = m.attrs.clone();
                attrs.push(KeyValue::new("gen_ai.token.type", kind));
                self.tokens.record(n, &attrs);
            }
        }
        self.outcome.finish(None);
    }

    /// Failure; `kind` is a short bounded string (`timeout`, `rate_limited`, an HTTP status).
    pub fn finish_err(mut self, kind: &'static str) {
        self.outcome.finish(Some(ErrorType::Borrowed(kind)));
    }
}
