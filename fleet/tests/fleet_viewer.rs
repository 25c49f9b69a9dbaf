//! The fleet's default run, with no collector: the engines export OTLP to
//! the launcher's embedded viewer, which shows an accepted payment's trace
//! whole — every engine on its path with the right parentage, the trace's
//! log lines, the clearing window that netted it — over its HTTP API, its
//! page and `deltran trace`, during the run and after it from the run
//! directory; and the run's summary agrees with what the traces counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Launcher;
use common::viewer::{PATH, get_json, service, settled_payment};
use otlp_viewer::TraceDetail;
use telemetry::testing::{SpanKind, SpanStatus};

fn deltran_trace(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_deltran"))
        .arg("trace")
        .args(args)
        .env_remove("DELTRAN_VIEWER_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_embedded_viewer_shows_a_payment_across_every_engine_with_its_logs_and_window() {
    let mut launcher = Launcher::start(&["--rate", "10", "--duration", "25s"], &[]);
    let viewer = launcher
        .fleet
        .viewer_url
        .clone()
        .unwrap_or_else(|| panic!("no viewer in fleet.json:\n{}", launcher.logs()));
    assert!(viewer.starts_with("http://127.0.0.1:"), "{viewer}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let trace = loop {
        if let Some(t) = settled_payment(&viewer) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no settled payment in the viewer within 60 s:\n{}",
            launcher.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let id = trace.summary.trace_id.clone();

    // Parentage: one root, the gateway's request; every other span's parent is in the trace.
    let by_id: BTreeMap<&str, &telemetry::testing::ReceivedSpan> = trace
        .spans
        .iter()
        .map(|s| (s.span_id.as_str(), s))
        .collect();
    let roots: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    assert_eq!(roots.len(), 1, "{:#?}", trace.spans);
    assert_eq!(
        (service(roots[0]), roots[0].name.as_str()),
        ("gateway", "POST /payments")
    );
    for span in &trace.spans {
        if let Some(parent) = span.parent_span_id.as_deref() {
            let parent = by_id
                .get(parent)
                .unwrap_or_else(|| panic!("{} has its parent outside the trace", span.name));
            if span.kind == SpanKind::Server {
                // Every engine the gateway calls: a server span under the gateway's client span.
                assert_eq!(
                    (service(parent), parent.kind),
                    ("gateway", SpanKind::Client),
                    "{}",
                    span.name
                );
                assert_eq!(span.parent_is_remote(), Some(true), "{}", span.name);
            }
        }
        assert!(
            !matches!(span.status, SpanStatus::Error(_)),
            "accepted payment has an error span: {span:?}"
        );
    }
    // Its log lines, under their spans.
    assert!(
        trace
            .logs
            .iter()
            .all(|l| l.trace_id.as_deref() == Some(id.as_str()))
    );
    let received = trace
        .logs
        .iter()
        .find(|l| l.body.as_deref() == Some("payment received"))
        .unwrap_or_else(|| panic!("no 'payment received' line: {:#?}", trace.logs));
    assert_eq!(received.span_id.as_deref(), Some(roots[0].span_id.as_str()));
    // The clearing window that netted it links here, and its trace is held too.
    let window = trace
        .linked_from
        .iter()
        .find(|l| l.span_name == "clear window" && l.service == "clearing-engine")
        .unwrap_or_else(|| panic!("no window link: {:?}", trace.linked_from));
    let window_trace: TraceDetail =
        get_json(&format!("{viewer}/api/traces/{}", window.trace_id)).expect("window trace");
    assert!(
        window_trace
            .spans
            .iter()
            .any(|s| s.links.iter().any(|l| l.trace_id == id))
    );

    // The page and the terminal show the same trace.
    let (code, page) = testkit::http_get(&format!("{viewer}/trace/{id}")).unwrap();
    assert_eq!(code, 200);
    for engine in PATH {
        assert!(
            page.contains(&format!(r#"data-service="{engine}""#)),
            "page lacks {engine}"
        );
    }
    let (ok, waterfall, err) = deltran_trace(&[&id, "--viewer", &viewer]);
    assert!(ok, "{err}");
    for engine in PATH {
        assert!(
            waterfall.contains(engine),
            "waterfall lacks {engine}:\n{waterfall}"
        );
    }
    assert!(
        waterfall.contains("payment received") && waterfall.contains("clear window"),
        "{waterfall}"
    );

    let status = launcher.wait_for_end(Duration::from_secs(120));
    assert!(status.success(), "{}", launcher.logs());

    // After the run, from the run directory.
    let run_dir = launcher.run_dir();
    let (ok, after, err) = deltran_trace(&[&id, "--run-dir", run_dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        after.contains("POST /payments") && after.contains("settlement-engine"),
        "{after}"
    );
    let (ok, _, err) = deltran_trace(&["not-an-id", "--run-dir", run_dir.to_str().unwrap()]);
    assert!(!ok && err.contains("32 hexadecimal characters"), "{err}");

    // The summary's per-engine requests (each engine's own counter) equal the
    // server spans the viewer received from it: two signals, one count.
    let (traces, skipped) =
        otlp_viewer::read_dump(&run_dir.join("traces.jsonl.gz")).expect("the run's traces");
    assert_eq!(skipped, 0);
    let mut server_spans: BTreeMap<String, u64> = BTreeMap::new();
    for t in &traces {
        for s in &t.spans {
            if s.kind == SpanKind::Server {
                *server_spans.entry(service(s).to_string()).or_default() += 1;
            }
        }
    }
    let kept = launcher
        .last_line_starting("deltran: viewer received ")
        .expect("viewer line");
    assert!(
        kept.contains("(0 evicted"),
        "the comparison needs every trace: {kept}"
    );
    let lost = launcher
        .last_line_starting("deltran: telemetry lost per engine: ")
        .expect("telemetry line");
    assert!(
        !lost.contains("dropped 1") && !lost.contains("failed 1"),
        "{lost}"
    );
    let per_engine = launcher
        .last_line_starting("deltran: requests per engine: ")
        .expect("per-engine line");
    let mut engines_seen = BTreeSet::new();
    for part in per_engine["deltran: requests per engine: ".len()..].split(", ") {
        let mut words = part.split_whitespace();
        let (name, count) = (words.next().unwrap(), words.next().unwrap());
        let count: u64 = count.parse().unwrap();
        assert_eq!(
            server_spans.get(name).copied().unwrap_or(0),
            count,
            "{name}: summary says {count} requests; the viewer holds {:?} server spans\n{per_engine}",
            server_spans.get(name)
        );
        engines_seen.insert(name.to_string());
    }
    assert_eq!(engines_seen.len(), 8, "{per_engine}");
}

/// `--viewer on` beside a collector: the engines export to the viewer, which
/// passes every export on; the collector gets exactly what the viewer got.
#[test]
fn asked_for_beside_a_collector_the_viewer_forwards_everything_to_it() {
    let collector = telemetry::testing::OtlpReceiver::start().unwrap();
    let mut launcher = Launcher::start(
        &["--rate", "10", "--duration", "8s", "--viewer", "on"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", collector.grpc_endpoint())],
    );
    assert!(launcher.fleet.viewer_url.is_some(), "{}", launcher.logs());
    let status = launcher.wait_for_end(Duration::from_secs(120));
    assert!(status.success(), "{}", launcher.logs());
    let forwarded = launcher
        .last_line_starting("deltran: viewer forwarded ")
        .unwrap_or_else(|| panic!("no forwarding line:\n{}", launcher.logs()));
    assert!(forwarded.contains("(0 failed, 0 dropped"), "{forwarded}");
    let kept = launcher
        .last_line_starting("deltran: viewer received ")
        .unwrap();
    let received: usize = kept["deltran: viewer received ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{kept}"));
    assert!(received > 100, "{kept}");
    let spans = collector.wait_for_spans(Duration::from_secs(10), |s| s.len() >= received);
    assert_eq!(
        spans.len(),
        received,
        "the collector got every span the viewer got"
    );
    let services: BTreeSet<&str> = spans.iter().map(service).collect();
    for engine in PATH {
        assert!(
            services.contains(engine),
            "{engine} missing at the collector"
        );
    }
    // The engines' resource reached the collector untouched.
    assert!(
        spans
            .iter()
            .all(|s| s.resource.str("service.namespace") == Some("deltran"))
    );
}

#[test]
fn viewer_on_with_per_signal_endpoints_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::launcher_command(
        &["--viewer", "on", "--duration", "1s"],
        &[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4317".to_string(),
        )],
        &dir.path().join("run"),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set")
            && err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{err}"
    );
}
