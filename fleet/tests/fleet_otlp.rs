//! The fleet exporting to the `telemetry` test harness as its OTLP
//! endpoint: one trace per payment across every engine on its path, every
//! declared business instrument exported with data, logs carrying trace
//! ids, and nothing queued lost when Ctrl-C stops the fleet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::traces::{SpanIndex, service};
use common::{Launcher, over_limit_payment, payment, post_payment};
use deltran_fleet::engines::EngineKind;
use telemetry::testing::OtlpReceiver;

const PAYMENTS: usize = 5;

#[test]
fn one_trace_per_payment_every_instrument_and_nothing_lost() {
    let receiver = OtlpReceiver::start().unwrap();
    let mut launcher = Launcher::start(
        &[
            "--rate",
            "3",
            "--websockets",
            "2",
            "--clearing-window-ms",
            "300",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "200".into()),
            ("DELTRAN_RISK_BREAKER_THRESHOLD", "3".into()),
            ("DELTRAN_RISK_BREAKER_COOLDOWN_MS", "60000".into()),
        ],
    );
    let gateway = launcher.fleet.gateway_url.clone();

    // Payments we follow, plus one of each rejection.
    let mut accepted = Vec::new();
    for i in 0..PAYMENTS {
        let (from, to) = if i % 2 == 0 {
            ("DEUTDEFF", "BNPAFRPP")
        } else {
            ("BNPAFRPP", "DEUTDEFF")
        };
        let (code, view) = post_payment(
            &gateway,
            &payment(
                from,
                to,
                1000.0 + i as f64,
                "Acme Manufacturing",
                "Globex Retail",
            ),
        );
        assert_eq!(code, 202, "{view}\n{}", launcher.logs());
        assert_eq!(view["status"], "accepted");
        accepted.push((
            view["id"].as_str().unwrap().to_string(),
            view["trace_id"].as_str().unwrap().to_string(),
        ));
    }
    let mut refused = Vec::new();
    for (amount, debtor, creditor, expected) in [
        (
            -5.0,
            "Acme Manufacturing",
            "Globex Retail",
            (422, "rejected"),
        ),
        (
            50.0,
            "Acme Manufacturing",
            "Volga Shell Trading",
            (403, "rejected"),
        ),
        (50.0, "Caspian Commodities", "Globex Retail", (202, "held")),
    ] {
        let (code, view) = post_payment(
            &gateway,
            &payment("DEUTDEFF", "BNPAFRPP", amount, debtor, creditor),
        );
        assert_eq!(
            (code, view["status"].as_str()),
            (expected.0, Some(expected.1)),
            "{view}"
        );
        let outcome = if code == 422 { "invalid" } else { expected.1 };
        refused.push((
            view["id"].as_str().unwrap().to_string(),
            view["trace_id"].as_str().unwrap().to_string(),
            outcome,
        ));
    }

    // Every followed payment settles.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (id, _) in &accepted {
        loop {
            let (_, text) = testkit::http_get(&format!("{gateway}/payments/{id}")).unwrap();
            if text.contains("\"settled\"") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "payment {id} not settled: {text}\n{}",
                launcher.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // Sustained limit breaches trip the risk circuit breaker.
    for _ in 0..3 {
        let (code, view) = post_payment(&gateway, &over_limit_payment());
        assert_eq!(code, 409, "{view}");
    }
    let (code, view) = post_payment(
        &gateway,
        &payment(
            "DEUTDEFF",
            "BNPAFRPP",
            10.0,
            "Acme Manufacturing",
            "Globex Retail",
        ),
    );
    assert_eq!(code, 409, "{view}");
    assert!(
        view["reason"]
            .as_str()
            .unwrap()
            .contains("circuit_breaker_open"),
        "{view}"
    );

    // Let a metric export see the last measurements, then Ctrl-C.
    std::thread::sleep(Duration::from_secs(2));
    let status = launcher.interrupt();
    assert!(
        status.success(),
        "launcher exit {status}:\n{}",
        launcher.logs()
    );

    let spans = receiver.spans();

    // Refused and held payments carry their outcome on the gateway's server span.
    for (id, trace_id, outcome) in &refused {
        let root = spans
            .iter()
            .find(|s| &s.trace_id == trace_id && s.parent_span_id.is_none())
            .unwrap_or_else(|| panic!("payment {id} ({outcome}): no root span"));
        assert_eq!(
            (
                root.name.as_str(),
                root.attributes.str("deltran.payment.id"),
                root.attributes.str("deltran.payment.outcome")
            ),
            ("POST /payments", Some(id.as_str()), Some(*outcome)),
            "{:?}",
            root.attributes
        );
    }

    // Every followed payment's trace is complete (common::traces says what
    // that means: every engine on its path under one root, HTTP and NATS
    // hops parent-child, its clearing window linked with the ledger writes),
    // and its root carries the payment's id and outcome (tail sampling keys
    // on the outcome).
    let index = SpanIndex::new(&spans);
    for (id, trace_id) in &accepted {
        let gaps = index.payment_trace_gaps(trace_id);
        assert!(gaps.is_empty(), "payment {id} ({trace_id}): {gaps:#?}");
        let root = index
            .trace(trace_id)
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .unwrap();
        assert_eq!(
            (
                root.attributes.str("deltran.payment.id"),
                root.attributes.str("deltran.payment.outcome")
            ),
            (Some(id.as_str()), Some("accepted")),
            "payment {id}: root attributes {:?}",
            root.attributes
        );
    }

    // Every declared business instrument of every engine, exported with data.
    let metrics = receiver.metrics();
    for kind in EngineKind::ALL {
        for name in kind.instrument_names() {
            let points: usize = metrics
                .iter()
                .filter(|m| m.name == *name && m.resource.str("service.name") == Some(kind.name()))
                .map(|m| m.points_len())
                .sum();
            assert!(points > 0, "{} exported no data for {name}", kind.name());
        }
        for name in [
            "http.server.request.duration",
            "process.uptime",
            "service.build.info",
        ] {
            assert!(
                metrics
                    .iter()
                    .any(|m| m.name == name && m.resource.str("service.name") == Some(kind.name())),
                "{} exported no {name}",
                kind.name()
            );
        }
    }
    for (engine, name) in [
        ("gateway", "http.client.request.duration"),
        ("obligation-engine", "messaging.client.sent.messages"),
        ("clearing-engine", "messaging.process.duration"),
        ("settlement-engine", "db.client.operation.duration"),
        ("settlement-engine", services_glue::db::POOL_CONNECTIONS),
        ("compliance-engine", "cache.lookups"),
        ("liquidity-router", "cache.lookups"),
    ] {
        assert!(
            metrics
                .iter()
                .any(|m| m.name == name && m.resource.str("service.name") == Some(engine)),
            "{engine}: no {name}"
        );
    }

    // Logs carry the trace ids of the payments they are about.
    let logs = receiver.logs();
    for (id, trace_id) in &accepted {
        assert!(
            logs.iter()
                .any(|l| l.trace_id.as_deref() == Some(trace_id.as_str())
                    && l.resource.str("service.name") == Some("gateway")),
            "no gateway log in trace {trace_id} (payment {id})"
        );
        assert!(
            logs.iter()
                .any(|l| l.trace_id.as_deref() == Some(trace_id.as_str())
                    && l.resource.str("service.name") == Some("token-engine")),
            "no token-engine log in trace {trace_id}"
        );
    }

    // Nothing queued was lost: each engine's final self-metrics say every span
    // and log it produced was exported, and the receiver has exactly those.
    let mut received: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for s in &spans {
        *received.entry((service(s), "span")).or_default() += 1;
    }
    for l in &logs {
        *received
            .entry((l.resource.str("service.name").unwrap_or(""), "log"))
            .or_default() += 1;
    }
    for kind in EngineKind::ALL {
        for item in ["span", "log"] {
            let exported = format!("otel.sdk.exporter.{item}.exported");
            let last = metrics
                .iter()
                .rev()
                .find(|m| m.name == exported && m.resource.str("service.name") == Some(kind.name()))
                .unwrap_or_else(|| panic!("{}: no {exported}", kind.name()));
            let ok: f64 = last
                .number_points()
                .iter()
                .filter(|p| !p.attributes.contains_key("error.type"))
                .map(|p| p.value)
                .sum();
            let failed: f64 = last
                .number_points()
                .iter()
                .filter(|p| p.attributes.contains_key("error.type"))
                .map(|p| p.value)
                .sum();
            assert_eq!(
                failed,
                0.0,
                "{}: {item}s lost in failed exports",
                kind.name()
            );
            let got = received.get(&(kind.name(), item)).copied().unwrap_or(0);
            assert_eq!(
                ok as u64,
                got,
                "{}: exported {ok} {item}s, receiver has {got}",
                kind.name()
            );
            let processed = format!("otel.sdk.processor.{item}.processed");
            let dropped: f64 = metrics
                .iter()
                .filter(|m| {
                    m.name == processed && m.resource.str("service.name") == Some(kind.name())
                })
                .flat_map(|m| m.number_points())
                .filter(|p| p.attributes.contains_key("error.type"))
                .map(|p| p.value)
                .fold(0.0, f64::max);
            assert_eq!(dropped, 0.0, "{}: {item}s dropped", kind.name());
        }
    }
}
