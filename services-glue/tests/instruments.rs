//! Business instruments declared once arrive with their declared names,
//! units, attributes and buckets, through telemetry's in-memory pipeline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use telemetry::Telemetry;
use telemetry::testing::InMemory;

services_glue::instruments! {
    /// The DelTran token family.
    pub struct TokenInstruments {
        /// Tokens minted.
        minted: counter("tokens.minted", "{token}", "Tokens minted", ["token.kind"]),
        /// Tokens burned.
        burned: counter("tokens.burned", "{token}", "Tokens burned", ["token.kind"]),
        /// Tokens transferred.
        transferred: counter("tokens.transferred", "{token}", "Tokens transferred", ["token.kind", "outcome"]),
        /// Tokens in circulation.
        active: up_down_counter("tokens.active", "{token}", "Tokens in circulation", ["token.kind"]),
        /// Reserve ratio.
        reserve: gauge("tokens.reserve.ratio", "1", "Reserve ratio", []),
        /// Token value.
        value: histogram("tokens.value", "USD", "Value per mint", ["token.kind"],
                         [100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0]),
    }
}

#[test]
fn declared_instruments_export_as_declared() {
    let sink = InMemory::new();
    let t = Telemetry::builder("token-engine")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    let m = TokenInstruments::new(&t.meter());
    let hot = m.minted.bind(["usd"]);
    for _ in 0..10 {
        hot.add(1);
    }
    m.minted.add(2, ["eur"]);
    m.burned.add(3, ["usd"]);
    m.transferred.add(4, ["usd", "ok"]);
    m.active.add(10, ["usd"]);
    m.active.add(-3, ["usd"]);
    m.reserve.record(1.05, []);
    m.value.record(2_500.0, ["usd"]);
    t.shutdown().unwrap();

    let last = sink.metrics().pop().unwrap();
    let mut seen = Vec::new();
    for scope in last.scope_metrics() {
        for metric in scope.metrics() {
            seen.push(metric.name().to_string());
            match (metric.name(), metric.data()) {
                ("tokens.minted", AggregatedMetrics::U64(MetricData::Sum(s))) => {
                    assert_eq!(metric.unit(), "{token}");
                    let mut points: Vec<(String, u64)> = s
                        .data_points()
                        .map(|p| {
                            (
                                p.attributes()
                                    .map(|kv| format!("{}={}", kv.key, kv.value))
                                    .collect(),
                                p.value(),
                            )
                        })
                        .collect();
                    points.sort();
                    assert_eq!(
                        points,
                        vec![("token.kind=eur".into(), 2), ("token.kind=usd".into(), 10)]
                    );
                }
                ("tokens.active", AggregatedMetrics::I64(MetricData::Sum(s))) => {
                    assert!(!s.is_monotonic());
                    assert_eq!(s.data_points().next().unwrap().value(), 7);
                }
                ("tokens.value", AggregatedMetrics::F64(MetricData::Histogram(h))) => {
                    let p = h.data_points().next().unwrap();
                    let bounds: Vec<f64> = p.bounds().collect();
                    assert_eq!(
                        bounds,
                        vec![
                            100.0,
                            1_000.0,
                            10_000.0,
                            100_000.0,
                            1_000_000.0,
                            10_000_000.0
                        ]
                    );
                    assert_eq!(p.count(), 1);
                }
                ("tokens.transferred", AggregatedMetrics::U64(MetricData::Sum(s))) => {
                    let p = s.data_points().next().unwrap();
                    assert_eq!(p.attributes().count(), 2);
                }
                ("tokens.reserve.ratio", AggregatedMetrics::F64(MetricData::Gauge(g))) => {
                    assert_eq!(g.data_points().next().unwrap().value(), 1.05);
                }
                _ => {}
            }
        }
    }
    for name in [
        "tokens.minted",
        "tokens.burned",
        "tokens.transferred",
        "tokens.active",
        "tokens.reserve.ratio",
        "tokens.value",
    ] {
        assert!(
            seen.iter().any(|s| s == name),
            "{name} not exported: {seen:?}"
        );
    }
}
