//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` and
//! `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION` change what
//! reaches a real OTLP receiver, over gRPC and HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use telemetry::Telemetry;
use telemetry::testing::{MetricData, OtlpReceiver, ReceivedMetric};

/// Records through a counter and an up-down counter in two collections,
/// flushing after each; returns what the receiver got.
fn two_collections(extra: &[(&str, &str)], protocol: &str) -> Vec<ReceivedMetric> {
    let receiver = OtlpReceiver::start().unwrap();
    let mut env = common::otlp_env(&receiver, protocol);
    env.insert("OTEL_METRICS_EXPORTER".into(), "otlp".into());
    // Long interval: the two collections are the test's flushes.
    env.insert("OTEL_METRIC_EXPORT_INTERVAL".into(), "600000".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let t = Telemetry::builder("aggregation-engine")
        .with_env(env)
        .build()
        .unwrap();
    let meter = t.meter();
    let orders = meter.u64_counter("orders").build();
    let open = meter.i64_up_down_counter("orders.open").build();
    let provider = t.meter_provider().expect("a meter provider").clone();
    orders.add(5, &[]);
    open.add(2, &[]);
    provider.force_flush().unwrap();
    orders.add(3, &[]);
    open.add(2, &[]);
    provider.force_flush().unwrap();
    t.shutdown().unwrap();
    receiver.wait_for_metrics(Duration::from_secs(5), |m| {
        m.iter().filter(|m| m.name == "orders").count() >= 2
    })
}

/// (values in export order, cumulative flag) of a sum.
fn sums(metrics: &[ReceivedMetric], name: &str) -> (Vec<f64>, Vec<bool>) {
    let mut values = Vec::new();
    let mut flags = Vec::new();
    for m in metrics.iter().filter(|m| m.name == name) {
        if let MetricData::Sum {
            cumulative, points, ..
        } = &m.data
        {
            for p in points {
                values.push(p.value);
                flags.push(*cumulative);
            }
        }
    }
    (values, flags)
}

#[test]
fn temporality_preference_is_what_reaches_the_wire() {
    for protocol in ["grpc", "http/protobuf"] {
        // Default: cumulative.
        let m = two_collections(&[], protocol);
        let (orders, cumulative) = sums(&m, "orders");
        assert_eq!(&orders[..2], &[5.0, 8.0], "{protocol}");
        assert!(cumulative.iter().all(|c| *c));

        let m = two_collections(
            &[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta")],
            protocol,
        );
        let (orders, cumulative) = sums(&m, "orders");
        assert_eq!(
            &orders[..2],
            &[5.0, 3.0],
            "{protocol}: each export the change"
        );
        assert!(cumulative.iter().all(|c| !c));
        // Up-down counters stay cumulative under delta, as the specification says.
        let (open, cumulative) = sums(&m, "orders.open");
        assert_eq!(&open[..2], &[2.0, 4.0]);
        assert!(cumulative.iter().all(|c| *c));

        let m = two_collections(
            &[(
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                "lowmemory",
            )],
            protocol,
        );
        let (orders, cumulative) = sums(&m, "orders");
        assert_eq!(
            &orders[..2],
            &[5.0, 3.0],
            "{protocol}: synchronous counters as deltas"
        );
        assert!(cumulative.iter().all(|c| !c));
        let (open, cumulative) = sums(&m, "orders.open");
        assert_eq!(&open[..2], &[2.0, 4.0]);
        assert!(cumulative.iter().all(|c| *c));
    }
}

#[test]
fn exponential_histograms_arrive_with_a_fitting_scale_and_exact_counts() {
    let receiver = OtlpReceiver::start().unwrap();
    let mut env = common::otlp_env(&receiver, "grpc");
    env.insert("OTEL_METRICS_EXPORTER".into(), "otlp".into());
    env.insert(
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION".into(),
        "base2_exponential_bucket_histogram".into(),
    );
    let t = Telemetry::builder("aggregation-engine")
        .with_env(env)
        .build()
        .unwrap();
    let latency = t
        .meter()
        .f64_histogram("checkout.latency")
        .with_unit("ms")
        .build();
    // Even explicit bucket advice yields to the configured aggregation.
    let seconds = t
        .meter()
        .f64_histogram("checkout.duration")
        .with_unit("s")
        .with_boundaries(vec![0.1, 1.0])
        .build();
    for v in 1..=1000 {
        latency.record(f64::from(v), &[]);
    }
    seconds.record(0.25, &[]);
    t.shutdown().unwrap();
    let metrics = receiver.wait_for_metrics(Duration::from_secs(5), |m| {
        m.iter().any(|m| m.name == "checkout.latency")
    });
    let point = metrics
        .iter()
        .rev()
        .find(|m| m.name == "checkout.latency")
        .and_then(|m| m.exponential_points().last().cloned())
        .unwrap_or_else(|| panic!("no exponential point: {metrics:#?}"));
    assert_eq!(point.count, 1000);
    assert_eq!(point.sum, Some(500_500.0));
    assert_eq!((point.min, point.max), (Some(1.0), Some(1000.0)));
    // Buckets are (base^i, base^(i+1)], so at scale 4 (16 per octave) the
    // value 1 falls in bucket -1 and 1000 in bucket 159: 161 buckets, one
    // more than the 160 allowed, so the SDK settles one scale lower, at 3.
    assert_eq!(point.scale, 3);
    assert!(point.positive_counts.len() <= 160);
    assert_eq!(point.zero_count, 0);
    // Every bucket holds exactly the values in (base^i, base^(i+1)].
    let per_octave = f64::from(1 << point.scale);
    let mut expected = vec![0u64; point.positive_counts.len()];
    for v in 1..=1000 {
        let index = (f64::from(v).log2() * per_octave).ceil() as i32 - 1;
        expected[(index - point.positive_offset) as usize] += 1;
    }
    assert_eq!(point.positive_counts, expected);
    assert!(
        metrics
            .iter()
            .any(|m| m.name == "checkout.duration" && !m.exponential_points().is_empty())
    );
}

#[test]
fn explicit_buckets_stay_the_default() {
    let receiver = OtlpReceiver::start().unwrap();
    let mut env = common::otlp_env(&receiver, "http/protobuf");
    env.insert("OTEL_METRICS_EXPORTER".into(), "otlp".into());
    let t = Telemetry::builder("aggregation-engine")
        .with_env(env)
        .build()
        .unwrap();
    t.meter()
        .f64_histogram("checkout.duration")
        .with_unit("s")
        .build()
        .record(0.25, &[]);
    t.shutdown().unwrap();
    let metrics = receiver.wait_for_metrics(Duration::from_secs(5), |m| {
        m.iter().any(|m| m.name == "checkout.duration")
    });
    let m = metrics
        .iter()
        .find(|m| m.name == "checkout.duration")
        .unwrap();
    assert!(!m.histogram_points().is_empty() && m.exponential_points().is_empty());
}
