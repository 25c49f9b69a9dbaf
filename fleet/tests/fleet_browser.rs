//! The viewer's page in a real browser: Debian's Chromium, headless, driven
//! through ChromeDriver (W3C WebDriver) during a fleet run. It finds an
//! accepted payment by its id with the page's own search form, opens its
//! trace and sees every engine on the path in the waterfall; hostile values
//! exported into the viewer are shown as text and run nothing. Screenshots
//! are kept in the target directory as test artifacts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Launcher;
use common::viewer::{PATH, settled_payment};
use fantoccini::{ClientBuilder, Locator};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

const HOSTILE_NAME: &str = r#"<script>window.__pwned = 1</script>"#;
const HOSTILE_VALUE: &str = r#""><img src=x onerror="window.__pwned = 2">"#;

fn text(value: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(value.to_string())),
    })
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: text(value),
        ..Default::default()
    }
}

/// Sends a span and a log line full of markup to the viewer, the way any
/// service exporting OTLP/HTTP to it would.
fn export_hostile(otlp_http: &str, trace_id: &[u8; 16]) {
    let resource = Some(Resource {
        attributes: vec![attribute("service.name", HOSTILE_VALUE)],
        ..Default::default()
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource.clone(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.to_vec(),
                    span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                    name: HOSTILE_NAME.to_string(),
                    kind: 2,
                    start_time_unix_nano: now - 5_000_000,
                    end_time_unix_nano: now,
                    attributes: vec![
                        attribute("deltran.payment.id", HOSTILE_VALUE),
                        attribute("http.route", HOSTILE_NAME),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource,
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: now - 1_000_000,
                    severity_text: "WARN".into(),
                    body: text(HOSTILE_NAME),
                    attributes: vec![attribute(HOSTILE_NAME, HOSTILE_VALUE)],
                    trace_id: trace_id.to_vec(),
                    span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    for (path, body) in [
        ("/v1/traces", spans.encode_to_vec()),
        ("/v1/logs", logs.encode_to_vec()),
    ] {
        let (code, answer) = testkit::http_post(
            &format!("{otlp_http}{path}"),
            "application/x-protobuf",
            &body,
        )
        .unwrap();
        assert_eq!(code, 200, "{path}: {answer}");
    }
}

fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_page_finds_a_payment_and_shows_its_waterfall_in_chromium() {
    let driver = testkit::ChromeDriver::start().unwrap();
    let launcher = tokio::task::spawn_blocking(|| {
        Launcher::start(&["--rate", "10", "--duration", "90s"], &[])
    })
    .await
    .unwrap();
    let viewer = launcher.fleet.viewer_url.clone().expect("viewer url");
    let otlp_http = launcher
        .fleet
        .viewer_otlp_http
        .clone()
        .expect("viewer otlp");

    // A settled, accepted payment to look for (its id is what a user has).
    let deadline = Instant::now() + Duration::from_secs(60);
    let payment = loop {
        let v = viewer.clone();
        if let Some(t) = tokio::task::spawn_blocking(move || settled_payment(&v))
            .await
            .unwrap()
        {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no settled payment:\n{}",
            launcher.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let payment_id = payment.summary.key_attributes["deltran.payment.id"].clone();
    let hostile_trace = [0x7e_u8; 16];
    {
        let otlp = otlp_http.clone();
        tokio::task::spawn_blocking(move || export_hostile(&otlp, &hostile_trace))
            .await
            .unwrap();
    }

    let mut capabilities = serde_json::Map::new();
    if let serde_json::Value::Object(map) = driver.capabilities() {
        capabilities = map;
    }
    // ChromeDriver is plain http:// on loopback: no TLS stack in the test.
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("cannot start Chromium: {e}\n{}", driver.log_tail(40)));

    let result = async {
        // The overview: title, service map, charts, the search form.
        client.goto(&viewer).await?;
        assert_eq!(client.title().await?, "DelTran fleet");
        client.find(Locator::Id("service-map")).await?;
        client.find(Locator::Id("charts")).await?;
        let search = client.find(Locator::Css(r#"input[name="q"]"#)).await?;
        search.send_keys(&payment_id).await?;
        client
            .find(Locator::Css(r#"button[type="submit"]"#))
            .await?
            .click()
            .await?;
        // The overview lists traces too: look for the result row only once
        // the results page has replaced it, or the link found may belong to
        // the page being left (a stale element when clicked).
        let mut waited = 0;
        while !client
            .current_url()
            .await?
            .query_pairs()
            .any(|(k, _)| k == "q")
        {
            assert!(waited < 100, "the search did not navigate in 10 s");
            waited += 1;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // The result row links to the trace; open it as a user would.
        let link = client
            .wait()
            .for_element(Locator::Css("#traces td.mono a"))
            .await?;
        link.click().await?;
        client.wait().for_element(Locator::Id("waterfall")).await?;
        assert!(
            client
                .current_url()
                .await?
                .path()
                .ends_with(&payment.summary.trace_id)
        );
        let mut services = BTreeSet::new();
        for row in client.find_all(Locator::Css("#waterfall tr.span")).await? {
            if let Some(s) = row.attr("data-service").await? {
                services.insert(s);
            }
        }
        for engine in PATH {
            assert!(
                services.contains(engine),
                "waterfall lacks {engine}: {services:?}"
            );
        }
        let page_text = client.find(Locator::Css("body")).await?.text().await?;
        assert!(
            page_text.contains("payment received"),
            "the trace's log lines are in place"
        );
        assert!(
            page_text.contains("clear window"),
            "the clearing window's link is shown"
        );
        std::fs::write(artifact("payment-trace.png"), client.screenshot().await?).unwrap();

        // Hostile values: shown as the text they are; nothing runs.
        let hex: String = hostile_trace.iter().map(|b| format!("{b:02x}")).collect();
        client.goto(&format!("{viewer}/trace/{hex}")).await?;
        client.wait().for_element(Locator::Id("waterfall")).await?;
        let cells = client
            .find(Locator::Css("#waterfall tr.span"))
            .await?
            .text()
            .await?;
        assert!(
            cells.contains(HOSTILE_NAME),
            "span name shown as text: {cells}"
        );
        let body = client.find(Locator::Css("body")).await?.text().await?;
        assert!(body.contains(HOSTILE_VALUE), "attribute shown as text");
        assert!(
            client
                .find_all(Locator::Css("#waterfall img, #waterfall script"))
                .await?
                .is_empty()
        );
        for page in [
            format!("{viewer}/trace/{hex}"),
            format!("{viewer}/logs?trace_id={hex}"),
            format!("{viewer}/?q=%3Cscript%3E"),
            viewer.clone(),
        ] {
            client.goto(&page).await?;
            let pwned = client
                .execute("return window.__pwned === undefined;", vec![])
                .await?;
            assert_eq!(pwned, serde_json::Value::Bool(true), "script ran on {page}");
        }
        std::fs::write(artifact("hostile-trace.png"), client.screenshot().await?).unwrap();
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    if let Err(e) = result {
        panic!("browser step failed: {e}\n{}", driver.log_tail(40));
    }
    eprintln!("screenshots in {}", artifact("").display());
    drop(launcher);
}
