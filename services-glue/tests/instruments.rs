//! Business instruments declared once arrive with their declared names,
//! units, attributes and buckets, through telemetry's in-memory pipeline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use telemetry::Telemetry;
use telemetry::testing::{InMemory, MetricData, find_metric};

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

    let metrics = sink.metrics();
    let metric = |name: &str| {
        find_metric(&metrics, name).unwrap_or_else(|| {
            panic!(
                "{name} not exported: {:?}",
                metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
            )
        })
    };

    let minted = metric("tokens.minted");
    assert_eq!(minted.unit, "{token}");
    assert!(
        matches!(
            minted.data,
            MetricData::Sum {
                monotonic: true,
                ..
            }
        ),
        "tokens.minted is a counter: {minted:?}"
    );
    let mut points: Vec<(String, f64)> = minted
        .number_points()
        .iter()
        .map(|p| {
            assert!(p.is_int, "tokens.minted counts in integers: {p:?}");
            (
                p.attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().expect("a string attribute")))
                    .collect(),
                p.value,
            )
        })
        .collect();
    points.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        points,
        vec![
            ("token.kind=eur".into(), 2.0),
            ("token.kind=usd".into(), 10.0)
        ]
    );

    let active = metric("tokens.active");
    assert!(
        matches!(
            active.data,
            MetricData::Sum {
                monotonic: false,
                ..
            }
        ),
        "tokens.active is an up-down counter: {active:?}"
    );
    let p = &active.number_points()[0];
    assert!(p.is_int, "tokens.active counts in integers: {p:?}");
    assert_eq!(p.value, 7.0);

    let value = metric("tokens.value");
    let p = value
        .histogram_points()
        .first()
        .unwrap_or_else(|| panic!("tokens.value is a histogram with a point: {value:?}"));
    assert_eq!(
        p.bounds,
        vec![
            100.0,
            1_000.0,
            10_000.0,
            100_000.0,
            1_000_000.0,
            10_000_000.0
        ]
    );
    assert_eq!(p.count, 1);

    let transferred = metric("tokens.transferred");
    assert!(
        matches!(
            transferred.data,
            MetricData::Sum {
                monotonic: true,
                ..
            }
        ),
        "tokens.transferred is a counter: {transferred:?}"
    );
    assert_eq!(transferred.number_points()[0].attributes.len(), 2);

    let reserve = metric("tokens.reserve.ratio");
    assert!(
        matches!(reserve.data, MetricData::Gauge { .. }),
        "tokens.reserve.ratio is a gauge: {reserve:?}"
    );
    let p = &reserve.number_points()[0];
    assert!(!p.is_int, "tokens.reserve.ratio is a float gauge: {p:?}");
    assert_eq!(p.value, 1.05);

    let burned = metric("tokens.burned");
    assert!(
        matches!(
            burned.data,
            MetricData::Sum {
                monotonic: true,
                ..
            }
        ),
        "tokens.burned is a counter: {burned:?}"
    );
}
