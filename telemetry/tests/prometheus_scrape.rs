//! The pull path against a real Prometheus (Debian's `prometheus` 2.42):
//! telemetry serves `/metrics`, Prometheus scrapes it every second, and the
//! series, their names after translation, their labels and the second-scale
//! histogram buckets are asserted through Prometheus' own query API. The
//! endpoint body is also checked with `promtool check metrics`, and the
//! push path (OTLP) is shown to run at the same time with the same labels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use serde_json::Value;
use telemetry::testing::{MetricData, OtlpReceiver, find_metric};
use telemetry::{InitError, SECONDS_BUCKETS, Telemetry};
use testkit::{Prometheus, http_get, http_request, promtool_check_metrics};

const NAMESPACE: &str = "deltran";
const ENVIRONMENT: &str = "staging";
/// Bounded wait for anything Prometheus has to scrape first.
const WAIT: Duration = Duration::from_secs(15);

/// The pull-endpoint part of the environment.
fn prometheus_env(metrics_exporters: &str) -> HashMap<String, String> {
    common::env(&[
        ("OTEL_METRICS_EXPORTER", metrics_exporters),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=staging",
        ),
        ("TELEMETRY_LOG_FORMAT", "json"),
    ])
}

fn attrs() -> [KeyValue; 2] {
    [
        KeyValue::new("rail", "sepa"),
        KeyValue::new("currency", "EUR"),
    ]
}

/// Records a counter (7), an up-down counter (5 - 2 = 3) and 20 second-scale
/// observations (10 × 42 ms, 10 × 300 ms). Returns the histogram so a test
/// can record more between scrapes.
fn record(t: &Telemetry) -> Histogram<f64> {
    let meter = t.meter();
    let settled = meter
        .u64_counter("payments.settled")
        .with_description("Payments settled")
        .build();
    let duration = meter
        .f64_histogram("settlement.duration")
        .with_unit("s")
        .with_description("Time to settle one payment")
        .build();
    let inflight = meter
        .i64_up_down_counter("payments.inflight")
        .with_description("Payments being settled")
        .build();
    settled.add(7, &attrs());
    record_batch(&duration);
    inflight.add(5, &attrs());
    inflight.add(-2, &attrs());
    duration
}

fn record_batch(duration: &Histogram<f64>) {
    for _ in 0..10 {
        duration.record(0.042, &attrs());
        duration.record(0.3, &attrs());
    }
}

fn start_prometheus(job: &str, target: SocketAddr) -> Prometheus {
    Prometheus::builder(&format!(
        "- job_name: '{job}'\n  static_configs:\n    - targets: ['{target}']\n"
    ))
    .scrape_interval("1s")
    .start()
    .expect("start prometheus (apt-get install prometheus)")
}

/// The `value` of a one-element vector result, as f64.
fn single_value(result: &Value) -> Option<f64> {
    let arr = result.as_array()?;
    if arr.len() != 1 {
        return None;
    }
    arr[0]["value"][1].as_str()?.parse().ok()
}

fn labels(series: &Value) -> HashMap<String, String> {
    series["metric"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// Waits for a single-series query to return a finite value; panics with
/// Prometheus' log tail otherwise.
fn wait_value(prom: &Prometheus, promql: &str) -> (f64, HashMap<String, String>) {
    let result = prom
        .wait_for(promql, WAIT, |r| {
            single_value(r).is_some_and(|v| v.is_finite())
        })
        .unwrap_or_else(|e| panic!("{promql}: {e}"));
    (single_value(&result).unwrap(), labels(&result[0]))
}

fn assert_shared_labels(l: &HashMap<String, String>, service: &str, what: &str) {
    assert_eq!(
        l.get("service_name").map(String::as_str),
        Some(service),
        "{what}: {l:?}"
    );
    assert_eq!(
        l.get("service_namespace").map(String::as_str),
        Some(NAMESPACE),
        "{what}: {l:?}"
    );
    assert_eq!(
        l.get("deployment_environment_name").map(String::as_str),
        Some(ENVIRONMENT),
        "{what}: {l:?}"
    );
}

/// Everything Prometheus must see on the `job` scraping `service`.
fn assert_scraped(prom: &Prometheus, job: &str, service: &str, histogram: &Histogram<f64>) {
    let (up, _) = wait_value(prom, &format!("up{{job=\"{job}\"}}"));
    assert_eq!(up, 1.0, "target must be up");

    // Counter: OTel name translated, `_total` appended, attributes as labels.
    let (settled, l) = wait_value(prom, &format!("payments_settled_total{{job=\"{job}\"}}"));
    assert_eq!(settled, 7.0);
    assert_shared_labels(&l, service, "counter");
    assert_eq!(l.get("rail").map(String::as_str), Some("sepa"));
    assert_eq!(l.get("currency").map(String::as_str), Some("EUR"));

    // Up-down counter: a gauge, no `_total`.
    let (inflight, l) = wait_value(prom, &format!("payments_inflight{{job=\"{job}\"}}"));
    assert_eq!(inflight, 3.0);
    assert_shared_labels(&l, service, "up-down counter");
    assert!(
        prom.query(&format!("payments_inflight_total{{job=\"{job}\"}}"))
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty(),
        "an up-down counter is not a counter"
    );

    // Histogram: unit suffix `_seconds`, `le` = the semantic-convention buckets.
    let buckets = prom
        .wait_for(
            &format!("settlement_duration_seconds_bucket{{job=\"{job}\"}}"),
            WAIT,
            |r| r.as_array().is_some_and(|a| !a.is_empty()),
        )
        .unwrap();
    let les: BTreeSet<String> = buckets
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let l = labels(s);
            assert_shared_labels(&l, service, "histogram bucket");
            assert_eq!(l.get("rail").map(String::as_str), Some("sepa"));
            l["le"].clone()
        })
        .collect();
    for le in ["0.005", "0.25", "1", "10", "+Inf"] {
        assert!(les.contains(le), "le=\"{le}\" missing from {les:?}");
    }
    let mut got: Vec<f64> = les
        .iter()
        .filter(|l| *l != "+Inf")
        .map(|l| l.parse().unwrap())
        .collect();
    got.sort_by(f64::total_cmp);
    assert_eq!(got, SECONDS_BUCKETS, "bucket boundaries (le) are seconds");
    let (count, _) = wait_value(
        prom,
        &format!("settlement_duration_seconds_count{{job=\"{job}\"}}"),
    );
    assert_eq!(count, 20.0);
    let (sum, _) = wait_value(
        prom,
        &format!("settlement_duration_seconds_sum{{job=\"{job}\"}}"),
    );
    assert!((sum - 3.42).abs() < 1e-9, "sum {sum}");
    // Half the observations are 42 ms, half 300 ms: p95 lies in (0.25, 0.5].
    // With the SDK's millisecond defaults both would land in (0, 5] instead.
    let (p95, _) = wait_value(
        prom,
        &format!(
            "histogram_quantile(0.95, sum by (le) (settlement_duration_seconds_bucket{{job=\"{job}\"}}))"
        ),
    );
    assert!(p95 > 0.25 && p95 <= 0.5, "p95 {p95}");

    // The dashboard form, on a rate: needs an increase between two scrapes.
    record_batch(histogram);
    let (p95_rate, _) = wait_value(
        prom,
        &format!(
            "histogram_quantile(0.95, sum by (le) (rate(settlement_duration_seconds_bucket{{job=\"{job}\"}}[1m])))"
        ),
    );
    assert!(p95_rate > 0.25 && p95_rate <= 0.5, "p95 of rate {p95_rate}");

    // Every series from the target carries all three shared labels
    // (scrape-generated `up` and `scrape_*` aside).
    for (label, value) in [
        ("service_name", service),
        ("service_namespace", NAMESPACE),
        ("deployment_environment_name", ENVIRONMENT),
    ] {
        let q = format!("{{job=\"{job}\",__name__!~\"up|scrape_.+\",{label}!=\"{value}\"}}");
        let bad = prom.query(&q).unwrap();
        assert!(
            bad.as_array().unwrap().is_empty(),
            "series without {label}={value:?}: {bad}"
        );
    }
}

/// The endpoint itself: valid exposition text, 404 elsewhere, 405 for non-GET.
fn assert_endpoint(addr: SocketAddr) -> String {
    let url = format!("http://{addr}/metrics");
    let r = http_request("GET", &url, &[], None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = r.text();
    assert!(body.contains("payments_settled_total{"), "{body}");
    assert!(body.contains("# TYPE settlement_duration_seconds histogram"));
    promtool_check_metrics(&body).unwrap_or_else(|e| panic!("promtool: {e}\n{body}"));

    let (status, _) = http_get(&format!("http://{addr}/other")).unwrap();
    assert_eq!(status, 404);
    let post = http_request("POST", &url, &[("Content-Type", "text/plain")], Some(b"x")).unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));
    let delete = http_request("DELETE", &url, &[], None).unwrap();
    assert_eq!(delete.status, 405);
    body
}

#[test]
fn prometheus_scrapes_the_pull_endpoint() {
    let service = "settlement-engine";
    let mut env = prometheus_env("prometheus");
    env.insert("OTEL_TRACES_EXPORTER".into(), "none".into());
    env.insert("OTEL_LOGS_EXPORTER".into(), "none".into());
    let t = Telemetry::builder(service)
        .with_namespace(NAMESPACE)
        .with_env(env.clone())
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    let addr = t.prometheus_addr().expect("bound address");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "port 0 resolves to the real port");
    let histogram = record(&t);

    let body = assert_endpoint(addr);
    assert!(body.contains("service_namespace=\"deltran\""), "{body}");

    // A second telemetry on the same (taken) port fails to start, naming
    // the address and the variable to change.
    let mut taken = env.clone();
    taken.insert(
        "OTEL_EXPORTER_PROMETHEUS_PORT".into(),
        addr.port().to_string(),
    );
    let err = Telemetry::builder("second-engine")
        .with_env(taken)
        .with_stdout_writer(std::io::sink)
        .build()
        .expect_err("port is taken");
    match &err {
        InitError::PrometheusBind { address, source } => {
            assert_eq!(address, &addr.to_string());
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected PrometheusBind, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&addr.to_string()), "{msg}");
    assert!(msg.contains("OTEL_EXPORTER_PROMETHEUS_PORT"), "{msg}");

    let prom = start_prometheus("settlement", addr);
    assert_scraped(&prom, "settlement", service, &histogram);
    prom.stop().unwrap();

    // Shutdown closes the endpoint and frees the port.
    t.shutdown().unwrap();
    assert!(http_get(&format!("http://{addr}/metrics")).is_err());
    std::net::TcpListener::bind(addr).expect("port released on shutdown");
}

#[test]
fn otlp_and_prometheus_run_together_with_the_same_labels() {
    let service = "clearing-engine";
    let receiver = OtlpReceiver::start().unwrap();
    let mut env = common::otlp_env(&receiver, "grpc");
    env.extend(prometheus_env("otlp,prometheus"));
    let t = Telemetry::builder(service)
        .with_namespace(NAMESPACE)
        .with_env(env)
        .with_stdout_writer(std::io::sink)
        .build()
        .unwrap();
    let addr = t.prometheus_addr().expect("bound address");
    let histogram = record(&t);
    // A span and a log, so the self-metrics of those pipelines are on the
    // endpoint too (and must pass promtool).
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info_span!("settle").in_scope(|| tracing::info!("settled"));
    });

    // Push path: OTLP data points with the same identity as resource attributes.
    let metrics = receiver.wait_for_metrics(WAIT, |m| {
        find_metric(m, "payments.settled").is_some()
            && find_metric(m, "settlement.duration").is_some()
    });
    let settled = find_metric(&metrics, "payments.settled").expect("counter over OTLP");
    let r = &settled.resource;
    let otlp_identity = (
        r.str("service.name").unwrap().to_string(),
        r.str("service.namespace").unwrap().to_string(),
        r.str("deployment.environment.name").unwrap().to_string(),
    );
    match &settled.data {
        MetricData::Sum { points, .. } => {
            assert_eq!(points[0].value, 7.0);
            assert_eq!(points[0].attributes.str("rail"), Some("sepa"));
        }
        other => panic!("expected a sum, got {other:?}"),
    }
    let duration = find_metric(&metrics, "settlement.duration").unwrap();
    assert_eq!(duration.histogram_points()[0].bounds, SECONDS_BUCKETS);

    // Pull path, at the same time, from the same instruments.
    let body = assert_endpoint(addr);
    assert!(
        body.contains("otel_sdk_exporter_span_exported_total"),
        "self-metrics on the endpoint: {body}"
    );
    let prom = start_prometheus("clearing", addr);
    assert_scraped(&prom, "clearing", service, &histogram);
    let (_, l) = wait_value(&prom, "payments_settled_total{job=\"clearing\"}");
    let prom_identity = (
        l["service_name"].clone(),
        l["service_namespace"].clone(),
        l["deployment_environment_name"].clone(),
    );
    assert_eq!(
        prom_identity, otlp_identity,
        "pulled labels must equal pushed resource attributes"
    );
    assert_eq!(
        otlp_identity,
        (service.into(), NAMESPACE.into(), ENVIRONMENT.into())
    );
    prom.stop().unwrap();

    t.shutdown().unwrap();
    let status = t.health().signal(telemetry::Signal::Metrics).unwrap();
    assert!(status.exported > 0 && status.failed == 0, "{status:?}");
    receiver.shutdown();
}
