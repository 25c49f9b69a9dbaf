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

services_glue::instruments! {
    /// Two keys each, to see value sets kept apart.
    pub struct PairInstruments {
        /// Counted per pair.
        counted: counter("pairs.counted", "1", "Counted", ["left", "right"]),
        /// Up and down per pair.
        level: up_down_counter("pairs.level", "1", "Level", ["left", "right"]),
        /// Observed per pair.
        observed: histogram("pairs.observed", "1", "Observed", ["left", "right"], [10.0]),
    }
}

#[test]
fn every_value_set_adds_up_exactly_past_the_bound_handles_too() {
    let sink = InMemory::new();
    let t = Telemetry::builder("pairs-engine")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    let m = PairInstruments::new(&t.meter());
    // 300 sets: more than an instrument keeps bound handles for (the rest
    // take the plain path), each measured three times; and two sets whose
    // values join to the same text.
    for round in 0..3 {
        for i in 0..300u64 {
            let left = format!("l{i}");
            m.counted.add(i + 1, [&left, "r"]);
            m.level.add(if round == 2 { -1 } else { 2 }, [&left, "r"]);
            m.observed.record(i as f64, [&left, "r"]);
        }
        m.counted.add(1, ["a", "bc"]);
        m.counted.add(10, ["ab", "c"]);
    }
    t.shutdown().unwrap();

    let metrics = sink.metrics();
    let key = |left: Option<&str>, right: Option<&str>| {
        format!("left={},right={}", left.unwrap(), right.unwrap())
    };
    let counted: std::collections::HashMap<String, f64> = find_metric(&metrics, "pairs.counted")
        .unwrap()
        .number_points()
        .iter()
        .map(|p| {
            (
                key(p.attributes.str("left"), p.attributes.str("right")),
                p.value,
            )
        })
        .collect();
    assert_eq!(counted.len(), 302, "{counted:?}");
    for i in 0..300u64 {
        assert_eq!(counted[&format!("left=l{i},right=r")], (3 * (i + 1)) as f64);
    }
    assert_eq!(counted["left=a,right=bc"], 3.0);
    assert_eq!(counted["left=ab,right=c"], 30.0);
    let level = find_metric(&metrics, "pairs.level")
        .unwrap()
        .number_points();
    assert_eq!(level.len(), 300);
    assert!(level.iter().all(|p| p.value == 3.0), "{level:?}");
    let observed = find_metric(&metrics, "pairs.observed").unwrap();
    let counts: Vec<u64> = observed
        .histogram_points()
        .iter()
        .map(|p| p.count)
        .collect();
    assert_eq!(counts.len(), 300);
    assert!(counts.iter().all(|c| *c == 3), "{counts:?}");
}
