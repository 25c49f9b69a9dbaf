//! `OTEL_CONFIG_FILE`: the declarative configuration file builds the same
//! pipelines as the equivalent environment, refuses what it does not know by
//! key path, substitutes variables to the specification's letter, and wins
//! over the environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use telemetry::config::{Config, SamplerConfig};
use telemetry::testing::{AttrValue, MetricData, OtlpReceiver};
use telemetry::{ConfigErrors, Telemetry};

/// Writes `yaml` to a fresh `.yaml` file; the directory lives as long as the
/// returned guard.
fn write(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otel.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

fn file_env(path: &Path, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = common::env(extra);
    env.insert("OTEL_CONFIG_FILE".into(), path.display().to_string());
    env
}

fn refused(yaml: &str, extra: &[(&str, &str)]) -> String {
    let (_dir, path) = write(yaml);
    let err: ConfigErrors = Config::from_env(&file_env(&path, extra)).unwrap_err();
    err.to_string()
}

/// A file and an environment that say the same thing, the endpoint
/// substituted from `${ENDPOINT}`.
const EQUIVALENT_FILE: &str = r#"
file_format: "1.0"
disabled: false
resource:
  attributes:
    - name: service.namespace
      value: payments
    - name: deployment.environment.name
      value: test-env
attribute_limits:
  attribute_count_limit: 64
propagator:
  composite:
    - tracecontext:
    - baggage:
    - b3:
tracer_provider:
  processors:
    - batch:
        schedule_delay: 100
        max_queue_size: 4096
        max_export_batch_size: 256
        exporter:
          otlp_grpc:
            endpoint: ${ENDPOINT}
            headers:
              - name: x-tenant
                value: acme
            timeout: 5000
  limits:
    event_count_limit: 32
  sampler:
    parent_based:
      root:
        trace_id_ratio_based:
          ratio: 1.0
meter_provider:
  readers:
    - periodic:
        interval: 600000
        exporter:
          otlp_grpc:
            endpoint: ${ENDPOINT}
            headers:
              - name: x-tenant
                value: acme
            timeout: 5000
            temporality_preference: delta
logger_provider:
  processors:
    - batch:
        schedule_delay: 100
        exporter:
          otlp_grpc:
            endpoint: ${ENDPOINT}
            headers:
              - name: x-tenant
                value: acme
            timeout: 5000
"#;

fn equivalent_env(endpoint: &str) -> HashMap<String, String> {
    common::env(&[
        ("OTEL_SDK_DISABLED", "false"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=payments,deployment.environment.name=test-env",
        ),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "64"),
        ("OTEL_PROPAGATORS", "tracecontext,baggage,b3"),
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "256"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "32"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.0"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
    ])
}

#[test]
fn a_file_equivalent_to_an_environment_parses_to_the_same_configuration() {
    let endpoint = "http://127.0.0.1:4317";
    let (_dir, path) = write(EQUIVALENT_FILE);
    let from_env = Config::from_env(&equivalent_env(endpoint)).unwrap();
    let mut from_file = Config::from_env(&file_env(&path, &[("ENDPOINT", endpoint)])).unwrap();
    assert_eq!(
        from_file.config_file.as_deref(),
        Some(path.to_str().unwrap())
    );
    // The file's attributes are typed; as strings they are the variable's.
    let typed: Vec<(String, String)> = from_file
        .typed_resource_attributes
        .drain(..)
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    assert_eq!(from_file.resource_attributes, []);
    from_file.resource_attributes = typed;
    from_file.config_file = None;
    assert_eq!(from_file, from_env);
}

/// Runs one service with `env`: a span with an event and an attribute, a
/// log line inside it, a counter and a histogram; returns what `receiver`
/// got.
fn one_request(env: HashMap<String, String>, receiver: &OtlpReceiver) {
    let t = Telemetry::builder("file-engine")
        .with_env(env)
        .build()
        .unwrap();
    let meter = t.meter();
    let payments = meter.u64_counter("payments").build();
    let latency = meter
        .f64_histogram("payment.duration")
        .with_unit("s")
        .build();
    tracing::dispatcher::with_default(t.dispatch(), || {
        let span = tracing::info_span!("settle", payment.currency = "EUR");
        let _entered = span.enter();
        tracing::info!(amount = 10, "settled");
    });
    payments.add(3, &[opentelemetry::KeyValue::new("currency", "EUR")]);
    latency.record(0.2, &[]);
    t.shutdown().unwrap();
    receiver.wait_for_logs(Duration::from_secs(5), |l| !l.is_empty());
    receiver.wait_for_metrics(Duration::from_secs(5), |m| {
        m.iter().any(|m| m.name == "payment.duration")
    });
}

/// The parts of a resource that do not change from one process to the next.
fn stable(resource: &telemetry::testing::Attributes) -> Vec<(String, String)> {
    resource
        .iter()
        .filter(|(k, _)| !matches!(*k, "service.instance.id" | "process.pid"))
        .map(|(k, v)| (k.to_string(), format!("{v:?}")))
        .collect()
}

#[test]
fn a_file_equivalent_to_an_environment_exports_the_same_data() {
    let by_env = OtlpReceiver::start().unwrap();
    let by_file = OtlpReceiver::start().unwrap();
    one_request(equivalent_env(&by_env.grpc_endpoint()), &by_env);
    let (_dir, path) = write(EQUIVALENT_FILE);
    one_request(
        file_env(&path, &[("ENDPOINT", &by_file.grpc_endpoint())]),
        &by_file,
    );

    let (env_spans, file_spans) = (by_env.spans(), by_file.spans());
    assert_eq!(env_spans.len(), 1);
    assert_eq!(file_spans.len(), 1);
    assert_eq!(
        stable(&env_spans[0].resource),
        stable(&file_spans[0].resource)
    );
    assert_eq!(
        file_spans[0].resource.str("service.namespace"),
        Some("payments")
    );
    assert_eq!(env_spans[0].name, file_spans[0].name);
    assert_eq!(env_spans[0].attributes, file_spans[0].attributes);

    let (env_logs, file_logs) = (by_env.logs(), by_file.logs());
    assert_eq!(env_logs.len(), file_logs.len());
    assert_eq!(env_logs[0].body, file_logs[0].body);
    assert_eq!(
        stable(&env_logs[0].resource),
        stable(&file_logs[0].resource)
    );

    for name in ["payments", "payment.duration"] {
        let shape = |r: &OtlpReceiver| {
            let metrics = r.metrics();
            let m = telemetry::testing::find_metric(&metrics, name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .clone();
            (
                stable(&m.resource),
                format!("{:?}", m.data).replace(char::is_numeric, ""),
                m.points_len(),
            )
        };
        let (env_metric, file_metric) = (shape(&by_env), shape(&by_file));
        assert_eq!(env_metric.0, file_metric.0, "{name}");
        assert_eq!(env_metric.2, file_metric.2, "{name}");
    }
    // Delta temporality came from the file, as from the variable.
    let metrics = by_file.metrics();
    let payments = telemetry::testing::find_metric(&metrics, "payments").unwrap();
    assert!(
        matches!(
            &payments.data,
            MetricData::Sum {
                cumulative: false,
                ..
            }
        ),
        "{:?}",
        payments.data
    );

    // The header reached the wire on every signal, both ways.
    for receiver in [&by_env, &by_file] {
        let requests = receiver.requests();
        assert!(requests.len() >= 3);
        assert!(
            requests
                .iter()
                .all(|r| r.header("x-tenant") == Some("acme")),
            "{requests:?}"
        );
    }
}

#[test]
fn typed_attributes_and_views_reach_the_wire() {
    let receiver = OtlpReceiver::start().unwrap();
    let (_dir, path) = write(
        r#"
file_format: "1.0"
resource:
  attributes:
    - name: service.namespace
      value: ${NAMESPACE}
    - name: cell
      value: 7
      type: int
    - name: canary
      value: "true"
      type: bool
    - name: weight
      value: 0.25
      type: double
    - name: zones
      value: [a, b]
      type: string_array
tracer_provider:
  processors:
    - batch:
        schedule_delay: 100
        exporter:
          otlp_http:
            endpoint: ${ENDPOINT}/v1/traces
meter_provider:
  readers:
    - periodic:
        exporter:
          otlp_http:
            endpoint: ${ENDPOINT}/v1/metrics
  views:
    - selector:
        instrument_name: payments
      stream:
        name: payments.settled
        attribute_keys:
          included: [currency]
    - selector:
        instrument_name: "debug.*"
      stream:
        aggregation:
          drop:
    - selector:
        instrument_type: histogram
        unit: s
      stream:
        aggregation:
          explicit_bucket_histogram:
            boundaries: [0.1, 1.0]
"#,
    );
    let env = file_env(
        &path,
        &[
            ("ENDPOINT", &receiver.http_endpoint()),
            ("NAMESPACE", "payments"),
        ],
    );
    let t = Telemetry::builder("view-engine")
        .with_env(env)
        .build()
        .unwrap();
    let meter = t.meter();
    meter.u64_counter("payments").build().add(
        1,
        &[
            opentelemetry::KeyValue::new("currency", "EUR"),
            opentelemetry::KeyValue::new("card", "4111"),
        ],
    );
    meter.u64_counter("debug.noise").build().add(1, &[]);
    meter
        .f64_histogram("payment.duration")
        .with_unit("s")
        .build()
        .record(0.5, &[]);
    t.meter_provider().unwrap().force_flush().unwrap();
    tracing::dispatcher::with_default(t.dispatch(), || {
        let _span = tracing::info_span!("typed").entered();
    });
    t.shutdown().unwrap();

    let spans = receiver.wait_for_spans(Duration::from_secs(5), |s| !s.is_empty());
    let resource = &spans[0].resource;
    assert_eq!(resource.str("service.namespace"), Some("payments"));
    assert_eq!(resource.i64("cell"), Some(7));
    assert_eq!(resource.bool("canary"), Some(true));
    assert_eq!(resource.f64("weight"), Some(0.25));
    assert!(
        matches!(resource.get("zones"), Some(AttrValue::Array(a)) if a.len() == 2),
        "{:?}",
        resource.get("zones")
    );

    let metrics = receiver.wait_for_metrics(Duration::from_secs(5), |m| {
        m.iter().any(|m| m.name == "payment.duration")
    });
    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains(&"payments.settled"), "{names:?}");
    assert!(!names.contains(&"payments"), "renamed: {names:?}");
    assert!(!names.contains(&"debug.noise"), "dropped: {names:?}");
    let settled = telemetry::testing::find_metric(&metrics, "payments.settled").unwrap();
    let point = &settled.number_points()[0];
    assert_eq!(point.attributes.str("currency"), Some("EUR"));
    assert!(
        !point.attributes.contains_key("card"),
        "only included keys kept"
    );
    let duration = telemetry::testing::find_metric(&metrics, "payment.duration").unwrap();
    assert_eq!(duration.histogram_points()[0].bounds, [0.1, 1.0]);
}

#[test]
fn the_file_wins_over_the_environment_except_where_it_references_it() {
    let (_dir, path) = write(
        r#"
file_format: "1.0"
resource:
  attributes:
    - name: service.name
      value: ${OTEL_SERVICE_NAME:-fallback}
tracer_provider:
  processors:
    - batch:
        exporter:
          otlp_grpc:
            endpoint: http://collector.file:4317
  sampler:
    always_on:
"#,
    );
    let c = Config::from_env(&file_env(
        &path,
        &[
            ("OTEL_TRACES_SAMPLER", "always_off"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.env:4317"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_SERVICE_NAME", "from-env"),
            ("RUST_LOG", "warn"),
        ],
    ))
    .unwrap();
    assert_eq!(c.sampler, SamplerConfig::AlwaysOn);
    assert_eq!(c.otlp_traces.endpoint, "http://collector.file:4317");
    assert_eq!(c.metrics_exporters, [], "no meter_provider: metrics off");
    assert_eq!(c.logs_exporters, [], "no logger_provider: logs off");
    assert_eq!(c.propagators, [], "no propagator: none");
    assert_eq!(
        c.service_name, None,
        "OTEL_SERVICE_NAME is not read beside a file"
    );
    assert_eq!(
        c.typed_resource_attributes[0].value.to_string(),
        "from-env",
        "but a reference to it is substituted"
    );
    assert_eq!(
        c.log_filter, "warn",
        "RUST_LOG has no place in the file and stays"
    );
}

#[test]
fn substitution_follows_the_specification() {
    let (_dir, path) = write(
        r#"
file_format: "${FORMAT}"
disabled: ${DISABLED:-false}
tracer_provider:
  processors:
    - batch:
        max_queue_size: ${QUEUE}
        max_export_batch_size: ${UNSET}
        exporter:
          otlp_http:
            endpoint: http://${HOST}:4318/v1/traces
            headers:
              - name: x-literal
                value: "$${NOT_A_REFERENCE}"
              - name: x-dollar
                value: a$$b$c
              - name: x-dropped
                value: ${UNSET}
              - name: x-fallback
                value: ${UNSET:-$${KEEP}}
"#,
    );
    let env = file_env(
        &path,
        &[
            ("FORMAT", "1.0"),
            ("QUEUE", "4096"),
            ("HOST", "collector"),
            ("NOT_A_REFERENCE", "leaked"),
        ],
    );
    let c = Config::from_env(&env).unwrap();
    assert!(!c.sdk_disabled, "default after :-");
    assert_eq!(c.span_batch.max_queue_size, 4096, "a number from text");
    assert_eq!(
        c.span_batch.max_export_batch_size, 512,
        "unset: null, the default"
    );
    assert_eq!(c.otlp_traces.endpoint, "http://collector:4318/v1/traces");
    let headers: HashMap<_, _> = c.otlp_traces.headers.iter().cloned().collect();
    assert_eq!(headers["x-literal"], "${NOT_A_REFERENCE}");
    assert_eq!(headers["x-dollar"], "a$b$c");
    assert_eq!(headers["x-fallback"], "${KEEP}");
    assert!(
        !headers.contains_key("x-dropped"),
        "a null value drops the header"
    );

    let disabled = Config::from_env(&file_env(&path, &[("FORMAT", "1.0"), ("DISABLED", "true")]));
    assert!(disabled.unwrap().sdk_disabled, "a boolean from text");

    let err = refused("file_format: \"1.0\"\nlog_level: ${1BAD}\n", &[]);
    assert!(err.contains("log_level"), "{err}");
    assert!(err.contains("${1BAD} is not a valid reference"), "{err}");
    // Keys are not substituted: `${X}` stays a (refused) key.
    let err = refused("file_format: \"1.0\"\n${X}: 1\n", &[("X", "disabled")]);
    assert!(err.contains("unknown field `${X}`"), "{err}");
}

#[test]
fn unknown_and_invalid_keys_fail_start_up_with_the_key_path() {
    let exporter = |body: &str| {
        format!(
            "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n{body}"
        )
    };
    for (yaml, wanted) in [
        (
            "file_format: \"1.0\"\ntracer_providers: {}\n".to_string(),
            vec!["OTEL_CONFIG_FILE", "unknown field `tracer_providers`", "expected one of", "`tracer_provider`"],
        ),
        (
            exporter("          otlp_grpc:\n            endpont: http://x:4317\n"),
            vec!["tracer_provider.processors[0].batch.exporter.otlp_grpc", "unknown field `endpont`", "`endpoint`"],
        ),
        (
            exporter("          zipkin:\n            endpoint: http://x:9411\n"),
            vec!["tracer_provider.processors[0].batch.exporter.zipkin", "does not support it"],
        ),
        (
            "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - simple:\n        exporter:\n          console:\n".to_string(),
            vec!["tracer_provider.processors[0].simple", "use batch"],
        ),
        (
            exporter("          otlp_grpc:\n            timeout: soon\n"),
            vec!["tracer_provider.processors[0].batch.exporter.otlp_grpc.timeout=\"soon\"", "milliseconds"],
        ),
        (
            exporter("          otlp_grpc:\n            encoding: json\n"),
            vec!["otlp_grpc.encoding", "otlp_http setting"],
        ),
        (
            exporter("          otlp_grpc:\n          console:\n"),
            vec!["tracer_provider.processors[0].batch.exporter", "exactly one of"],
        ),
        (
            "file_format: \"1.0\"\ntracer_provider:\n  sampler:\n    trace_id_ratio_based:\n      ratio: 2\n".to_string(),
            vec!["tracer_provider.sampler.trace_id_ratio_based.ratio=\"2\""],
        ),
        (
            "file_format: \"1.0\"\ntracer_provider:\n  sampler:\n    parent_based:\n      remote_parent_not_sampled:\n        always_on:\n".to_string(),
            vec!["tracer_provider.sampler.parent_based.remote_parent_not_sampled", "always_off"],
        ),
        (
            "file_format: \"0.3\"\n".to_string(),
            vec!["file_format=\"0.3\"", "1.x"],
        ),
        ("disabled: false\n".to_string(), vec!["file_format", "required"]),
        (
            "file_format: \"1.0\"\npropagator:\n  composite:\n    - ottrace:\n".to_string(),
            vec!["propagator.composite[0].ottrace", "not built into telemetry"],
        ),
        (
            "file_format: \"1.0\"\nmeter_provider:\n  readers:\n    - pull:\n        exporter:\n          prometheus/development:\n            translation_strategy: NoTranslation\n".to_string(),
            vec!["meter_provider.readers[0].pull.exporter.prometheus/development.translation_strategy"],
        ),
        (
            "file_format: \"1.0\"\nmeter_provider:\n  readers: []\n  views:\n    - selector:\n        instrument_name: \"http.*\"\n      stream:\n        name: http\n".to_string(),
            vec!["meter_provider.views[0].stream.name", "names exactly one instrument"],
        ),
        (
            "file_format: \"1.0\"\nmeter_provider:\n  readers: []\n  views:\n    - selector: {}\n      stream:\n        aggregation:\n          explicit_bucket_histogram:\n            boundaries: [5, 1]\n".to_string(),
            vec!["meter_provider.views[0].stream.aggregation.explicit_bucket_histogram.boundaries", "increasing"],
        ),
        (
            "file_format: \"1.0\"\nmeter_provider:\n  readers: []\n  exemplar_filter: trace_based\n".to_string(),
            vec!["meter_provider.exemplar_filter=\"trace_based\"", "always_off"],
        ),
        (
            "file_format: \"1.0\"\nresource:\n  attributes:\n    - name: cell\n      value: seven\n      type: int\n".to_string(),
            vec!["resource.attributes[0].value=\"seven\"", "an integer"],
        ),
        (
            "file_format: \"1.0\"\nresource:\n  attributes:\n    - name: cell\n      value: 7\n      type: integer\n".to_string(),
            vec!["resource.attributes[0].type=\"integer\"", "int_array"],
        ),
        (
            "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n          otlp_grpc:\n    - batch:\n        exporter:\n          otlp_http:\n".to_string(),
            vec!["tracer_provider.processors[1].batch.exporter.otlp_http", "one OTLP exporter per signal"],
        ),
        (
            "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        schedule_delay: 100\n        exporter:\n          otlp_grpc:\n    - batch:\n        exporter:\n          console:\n".to_string(),
            vec!["tracer_provider.processors[1].batch", "same batch settings"],
        ),
        (
            "file_format: \"1.0\"\nmeter_provider:\n  readers:\n    - periodic:\n        exporter:\n          otlp_grpc:\n            temporality_preference: sometimes\n".to_string(),
            vec!["temporality_preference=\"sometimes\"", "cumulative, delta, lowmemory"],
        ),
        (
            "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n          otlp_grpc:\n            temporality_preference: delta\n".to_string(),
            vec!["otlp_grpc.temporality_preference", "outside meter_provider"],
        ),
        (
            "file_format: \"1.0\"\ntracer_provider: [1, 2]\n".to_string(),
            vec!["tracer_provider", "invalid type"],
        ),
        (
            "file_format: \"1.0\"\nlog_level: loud\n".to_string(),
            vec!["log_level=\"loud\"", "trace, debug, info"],
        ),
        // The SDK reserves the whole limit per instrument; a billion would
        // abort the service at its first instrument.
        (
            view_limit("1000000000"),
            vec!["meter_provider.views[0].stream.aggregation_cardinality_limit=\"1000000000\"", "up to 100000"],
        ),
        (
            view_limit("100001"),
            vec!["aggregation_cardinality_limit=\"100001\"", "up to 100000"],
        ),
        (
            view_limit("0"),
            vec!["aggregation_cardinality_limit=\"0\"", "a positive integer"],
        ),
    ] {
        let err = refused(&yaml, &[]);
        for w in &wanted {
            assert!(err.contains(w), "wanted {w:?} in:\n{err}\nfor:\n{yaml}");
        }
    }

    // Every bad value is reported at once.
    let err = refused(
        "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        max_queue_size: lots\n        exporter:\n          otlp_grpc:\n            endpoint: nowhere\n",
        &[],
    );
    assert!(err.contains("batch.max_queue_size=\"lots\""), "{err}");
    assert!(err.contains("otlp_grpc.endpoint=\"nowhere\""), "{err}");
}

/// A file whose one view sets `aggregation_cardinality_limit: limit` on
/// every instrument.
fn view_limit(limit: &str) -> String {
    format!(
        "file_format: \"1.0\"\nmeter_provider:\n  readers: []\n  views:\n    - selector:\n        instrument_name: \"*\"\n      stream:\n        aggregation_cardinality_limit: {limit}\n"
    )
}

/// The limit a view sets is the one the exported stream keeps to: beyond
/// it, attribute sets fold into the overflow series. The largest limit
/// accepted starts.
#[test]
fn a_views_cardinality_limit_bounds_the_series_exported() {
    let receiver = OtlpReceiver::start().unwrap();
    let readers = |limit: usize| {
        format!(
            "file_format: \"1.0\"\nmeter_provider:\n  readers:\n    - periodic:\n        interval: 3600000\n        exporter:\n          otlp_http:\n            endpoint: {}/v1/metrics\n  views:\n    - selector:\n        instrument_name: \"orders.*\"\n      stream:\n        aggregation_cardinality_limit: {limit}\n",
            receiver.http_endpoint()
        )
    };
    let (_big_dir, big) = write(&readers(telemetry::config::MAX_CARDINALITY_LIMIT));
    let t = Telemetry::builder("limit-engine")
        .with_env(file_env(&big, &[]))
        .build()
        .unwrap();
    t.meter()
        .u64_counter("orders.big")
        .build()
        .add(1, &[opentelemetry::KeyValue::new("id", 1)]);
    t.shutdown().unwrap();

    let (_dir, path) = write(&readers(5));
    let t = Telemetry::builder("limit-engine")
        .with_env(file_env(&path, &[]))
        .build()
        .unwrap();
    let orders = t.meter().u64_counter("orders.placed").build();
    for id in 0..50_i64 {
        orders.add(1, &[opentelemetry::KeyValue::new("id", id)]);
    }
    t.meter_provider().unwrap().force_flush().unwrap();
    let metrics = receiver.wait_for_metrics(Duration::from_secs(5), |m| {
        m.iter().any(|m| m.name == "orders.placed")
    });
    let placed = telemetry::testing::find_metric(&metrics, "orders.placed").unwrap();
    let points = placed.number_points();
    // The SDK keeps `limit` attribute sets, then one overflow series.
    assert_eq!(points.len(), 6, "{points:?}");
    let overflow: Vec<_> = points
        .iter()
        .filter(|p| p.attributes.bool("otel.metric.overflow") == Some(true))
        .collect();
    assert_eq!(overflow.len(), 1, "{points:?}");
    let total: f64 = points.iter().map(|p| p.value).sum();
    assert_eq!(total, 50.0, "nothing lost, only folded: {points:?}");
    t.shutdown().unwrap();
}

#[test]
fn the_file_itself_is_checked() {
    let env = |path: &str| common::env(&[("OTEL_CONFIG_FILE", path)]);
    let err = Config::from_env(&env("/nonexistent/otel.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("OTEL_CONFIG_FILE=\"/nonexistent/otel.yaml\""),
        "{err}"
    );
    assert!(err.contains("a readable file"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("otel.json");
    std::fs::write(&json, "{}").unwrap();
    let err = Config::from_env(&env(json.to_str().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(".yaml or .yml"), "{err}");

    let (_d, broken) = write("file_format: \"1.0\"\ntracer_provider: {processors: [\n");
    let err = Config::from_env(&env(broken.to_str().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("a YAML document"), "{err}");
    assert!(err.contains("line"), "the parser's position: {err}");

    // A hostile size is refused before it is parsed.
    let big = format!("file_format: \"1.0\"\n# {}\n", "x".repeat(2 * 1024 * 1024));
    let (_d, big) = write(&big);
    let err = Config::from_env(&env(big.to_str().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 1048576 bytes"), "{err}");

    // Deeply nested input fails cleanly instead of overflowing the stack.
    let deep = format!(
        "file_format: \"1.0\"\nresource: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let (_d, deep) = write(&deep);
    assert!(Config::from_env(&env(deep.to_str().unwrap())).is_err());

    // An empty file names the missing key.
    let (_d, empty) = write("");
    let err = Config::from_env(&env(empty.to_str().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("file_format"), "{err}");
}

#[test]
fn start_up_fails_with_the_path_through_the_builder_too() {
    let (_dir, path) = write("file_format: \"1.0\"\ntracer_provider:\n  procesors: []\n");
    let built = Telemetry::builder("x")
        .with_env(file_env(&path, &[]))
        .build();
    let Err(err) = built else {
        panic!("a misspelt key must stop start-up")
    };
    let err = err.to_string();
    assert!(err.contains("tracer_provider"), "{err}");
    assert!(err.contains("unknown field `procesors`"), "{err}");
}

#[test]
fn log_level_sets_the_sdk_targets_unless_rust_log_names_them() {
    let (_dir, path) = write("file_format: \"1.0\"\nlog_level: debug\n");
    let c = Config::from_env(&file_env(&path, &[])).unwrap();
    assert_eq!(c.log_filter, "info,opentelemetry=debug");
    let c = Config::from_env(&file_env(
        &path,
        &[("RUST_LOG", "warn,opentelemetry_sdk=trace")],
    ))
    .unwrap();
    assert_eq!(c.log_filter, "warn,opentelemetry_sdk=trace");
}

/// One file per section, each changing what a receiver gets (or, for the
/// propagator, what goes on an outgoing request).
#[test]
fn each_section_changes_what_is_exported() {
    let run = |tracer: &str, sections: &str| {
        let receiver = OtlpReceiver::start().unwrap();
        let (_dir, path) = write(&format!(
            "file_format: \"1.0\"\n\
             tracer_provider:\n{tracer}  processors:\n    - batch:\n        schedule_delay: 50\n        exporter:\n          otlp_grpc:\n            endpoint: ${{ENDPOINT}}\n\
             logger_provider:\n  processors:\n    - batch:\n        schedule_delay: 50\n        exporter:\n          otlp_grpc:\n            endpoint: ${{ENDPOINT}}\n\
             {sections}"
        ));
        let t = Telemetry::builder("section-engine")
            .with_env(file_env(&path, &[("ENDPOINT", &receiver.grpc_endpoint())]))
            .build()
            .unwrap();
        let mut carrier = HashMap::new();
        tracing::dispatcher::with_default(t.dispatch(), || {
            let span = tracing::info_span!("work", a = 1, b = 2, c = 3);
            let _entered = span.enter();
            tracing::info!("inside");
            let cx = tracing_opentelemetry::OpenTelemetrySpanExt::context(&span);
            opentelemetry::propagation::TextMapPropagator::inject_context(
                t.propagator(),
                &cx,
                &mut carrier,
            );
        });
        t.meter()
            .f64_histogram("work.duration")
            .with_unit("s")
            .build()
            .record(0.3, &[]);
        t.shutdown().unwrap();
        receiver.wait_for_logs(Duration::from_secs(5), |l| !l.is_empty());
        (receiver, carrier)
    };

    // The baseline: every attribute, W3C headers, no metrics.
    let (r, carrier) = run("", "propagator:\n  composite:\n    - tracecontext:\n");
    let spans = r.wait_for_spans(Duration::from_secs(5), |s| !s.is_empty());
    assert!(
        spans[0].attributes.contains_key("c"),
        "{:?}",
        spans[0].attributes
    );
    assert!(carrier.contains_key("traceparent"), "{carrier:?}");
    assert!(r.metrics().is_empty(), "no meter_provider: no metrics");

    // sampler
    let (r, _) = run("  sampler:\n    always_off:\n", "");
    assert!(r.spans().is_empty(), "always_off: no spans");
    assert!(!r.logs().is_empty(), "logs still flow");

    // limits
    let (r, _) = run("", "attribute_limits:\n  attribute_count_limit: 1\n");
    let spans = r.wait_for_spans(Duration::from_secs(5), |s| !s.is_empty());
    assert!(
        spans[0].attributes.len() <= 1 + 1,
        "{:?}",
        spans[0].attributes
    );
    assert!(
        !spans[0].attributes.contains_key("c"),
        "{:?}",
        spans[0].attributes
    );

    // propagator
    let (_, carrier) = run("", "propagator:\n  composite_list: b3multi\n");
    assert!(carrier.contains_key("x-b3-traceid"), "{carrier:?}");
    assert!(!carrier.contains_key("traceparent"), "{carrier:?}");

    // meter_provider, with exponential histograms
    let (r, _) = run(
        "",
        "meter_provider:\n  readers:\n    - periodic:\n        exporter:\n          otlp_grpc:\n            endpoint: ${ENDPOINT}\n            default_histogram_aggregation: base2_exponential_bucket_histogram\n",
    );
    let metrics = r.wait_for_metrics(Duration::from_secs(5), |m| {
        m.iter().any(|m| m.name == "work.duration")
    });
    let duration = telemetry::testing::find_metric(&metrics, "work.duration").unwrap();
    assert_eq!(
        duration.exponential_points().len(),
        1,
        "{:?}",
        duration.data
    );
    assert_eq!(duration.exponential_points()[0].count, 1);
}

/// The example in the configuration reference is a working file.
#[test]
fn the_documented_example_is_a_valid_file() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    let section = doc.split("## Configuration file").nth(1).unwrap();
    let example = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml example");
    let (_dir, path) = write(example);
    let c = Config::from_env(&file_env(&path, &[("OTLP_TOKEN", "secret")])).unwrap();
    assert_eq!(c.sampler, SamplerConfig::ParentBasedTraceIdRatio(0.1));
    assert_eq!(
        c.otlp_traces.headers,
        [("authorization".to_string(), "Bearer secret".to_string())]
    );
    assert_eq!(c.views.len(), 1);
    assert_eq!(c.metrics_exporters.len(), 2);
}
