//! The viewer against real OTLP/HTTP exports (protobuf built here, sent over
//! a socket) and real HTTP requests to its page and API.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};
use otlp_viewer::{Limits, TraceDetail, TraceSummary, Viewer, ViewerConfig, ViewerSettings};
use prost::Message as _;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service)],
        ..Default::default()
    })
}

fn id(byte: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    v[len - 1] = byte;
    v[0] = 0xab;
    v
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone)]
struct SpanSpec {
    trace: Vec<u8>,
    span: Vec<u8>,
    parent: Vec<u8>,
    name: String,
    kind: SpanKind,
    start_ms: u64,
    duration_ms: u64,
    error: bool,
    attributes: Vec<KeyValue>,
    links: Vec<Link>,
}

fn span(trace: &[u8], span: &[u8], parent: &[u8], name: &str, kind: SpanKind) -> SpanSpec {
    SpanSpec {
        trace: trace.to_vec(),
        span: span.to_vec(),
        parent: parent.to_vec(),
        name: name.to_string(),
        kind,
        start_ms: 0,
        duration_ms: 10,
        error: false,
        attributes: Vec::new(),
        links: Vec::new(),
    }
}

const EPOCH_NANOS: u64 = 1_790_000_000_000_000_000;

fn spans_request(service: &str, spans: Vec<SpanSpec>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .into_iter()
                    .map(|s| Span {
                        trace_id: s.trace,
                        span_id: s.span,
                        parent_span_id: s.parent,
                        name: s.name,
                        kind: s.kind as i32,
                        start_time_unix_nano: EPOCH_NANOS + s.start_ms * 1_000_000,
                        end_time_unix_nano: EPOCH_NANOS + (s.start_ms + s.duration_ms) * 1_000_000,
                        attributes: s.attributes,
                        links: s.links,
                        status: Some(Status {
                            code: if s.error {
                                status::StatusCode::Error as i32
                            } else {
                                status::StatusCode::Unset as i32
                            },
                            message: if s.error {
                                "declined".into()
                            } else {
                                String::new()
                            },
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn log_request(
    service: &str,
    trace: &[u8],
    span: &[u8],
    body: &str,
    attrs: Vec<KeyValue>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: EPOCH_NANOS + 3_000_000,
                    severity_text: "INFO".into(),
                    severity_number: 9,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(body.to_string())),
                    }),
                    attributes: attrs,
                    trace_id: trace.to_vec(),
                    span_id: span.to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

struct Client {
    http: reqwest::Client,
    otlp: String,
    ui: String,
    rt: tokio::runtime::Runtime,
}

impl Client {
    fn new(viewer: &Viewer) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            otlp: viewer.otlp_http_endpoint(),
            ui: viewer.url(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    fn post(&self, path: &str, body: Vec<u8>) -> u16 {
        self.rt.block_on(async {
            self.http
                .post(format!("{}{path}", self.otlp))
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .expect("export")
                .status()
                .as_u16()
        })
    }

    fn traces(&self, req: ExportTraceServiceRequest) {
        assert_eq!(self.post("/v1/traces", req.encode_to_vec()), 200);
    }

    fn logs(&self, req: ExportLogsServiceRequest) {
        assert_eq!(self.post("/v1/logs", req.encode_to_vec()), 200);
    }

    /// GET with an optional Host header; (status, content-security-policy, body).
    fn get_as(&self, path: &str, host: Option<&str>) -> (u16, String, String) {
        self.rt.block_on(async {
            let mut req = self.http.get(format!("{}{path}", self.ui));
            if let Some(h) = host {
                req = req.header("host", h);
            }
            let resp = req.send().await.expect("get");
            let status = resp.status().as_u16();
            let csp = resp
                .headers()
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (status, csp, resp.text().await.expect("body"))
        })
    }

    fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.get_as(path, None);
        (status, body)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("json")
    }
}

fn payment_settings() -> ViewerSettings {
    ViewerSettings {
        key_attributes: vec!["payment.id".into()],
        search_attribute: "payment.id".into(),
        search_label: "payment id".into(),
        title: "test fleet".into(),
    }
}

fn start(limits: Limits) -> Viewer {
    Viewer::start(ViewerConfig {
        limits,
        settings: payment_settings(),
        ..ViewerConfig::default()
    })
    .expect("viewer starts")
}

#[test]
fn a_trace_across_services_comes_back_whole_with_its_logs_and_the_traces_linking_to_it() {
    let viewer = start(Limits::default());
    let c = Client::new(&viewer);
    let (t, window_trace) = (id(1, 16), id(2, 16));
    let (root, child, window) = (id(1, 8), id(2, 8), id(3, 8));
    let mut gateway = span(&t, &root, &[], "POST /payments", SpanKind::Server);
    gateway.duration_ms = 40;
    gateway.attributes = vec![kv("payment.id", "pay-42")];
    let mut risk = span(&t, &child, &root, "POST /check", SpanKind::Server);
    risk.start_ms = 5;
    risk.duration_ms = 20;
    risk.error = true;
    // The child arrives first, from another process: order must not matter.
    c.traces(spans_request("risk-engine", vec![risk]));
    c.traces(spans_request("gateway", vec![gateway]));
    c.logs(log_request(
        "risk-engine",
        &t,
        &child,
        "limit checked",
        vec![kv("payment.id", "pay-42")],
    ));
    let mut clear = span(
        &window_trace,
        &window,
        &[],
        "clear window",
        SpanKind::Internal,
    );
    clear.links = vec![Link {
        trace_id: t.clone(),
        span_id: root.clone(),
        ..Default::default()
    }];
    c.traces(spans_request("clearing-engine", vec![clear]));

    let detail: TraceDetail = c.json(&format!("/api/traces/{}", hex(&t)));
    assert_eq!(detail.spans.len(), 2);
    assert_eq!(detail.spans[0].name, "POST /payments", "sorted by start");
    assert_eq!(
        detail.spans[1].parent_span_id.as_deref(),
        Some(hex(&root).as_str())
    );
    assert_eq!(
        detail.spans[1].resource.str("service.name"),
        Some("risk-engine")
    );
    assert_eq!(detail.logs.len(), 1);
    assert_eq!(detail.logs[0].body.as_deref(), Some("limit checked"));
    assert_eq!(detail.summary.root_name, "POST /payments");
    assert_eq!(detail.summary.root_service, "gateway");
    assert_eq!(detail.summary.duration_nanos, 40_000_000);
    assert!(detail.summary.error);
    assert_eq!(
        detail
            .summary
            .key_attributes
            .get("payment.id")
            .map(String::as_str),
        Some("pay-42")
    );
    assert_eq!(detail.linked_from.len(), 1);
    assert_eq!(detail.linked_from[0].span_name, "clear window");
    assert_eq!(detail.linked_from[0].trace_id, hex(&window_trace));

    // Filters: by payment id, service, status, duration; slowest first.
    let by_payment: Vec<TraceSummary> = c.json("/api/traces?q=pay-42");
    assert_eq!(by_payment.len(), 1);
    assert_eq!(by_payment[0].trace_id, hex(&t));
    let errors: Vec<TraceSummary> = c.json("/api/traces?status=error");
    assert_eq!(
        errors
            .iter()
            .map(|t| t.trace_id.clone())
            .collect::<Vec<_>>(),
        vec![hex(&t)]
    );
    let ok: Vec<TraceSummary> = c.json("/api/traces?status=ok");
    assert_eq!(ok.len(), 1, "only the window trace is ok");
    let long: Vec<TraceSummary> = c.json("/api/traces?min_ms=30");
    assert_eq!(long.len(), 1);
    let risk_only: Vec<TraceSummary> = c.json("/api/traces?service=risk-engine");
    assert_eq!(risk_only.len(), 1);
    let slowest: Vec<TraceSummary> = c.json("/api/traces?sort=slowest");
    assert_eq!(slowest[0].trace_id, hex(&t));

    // The service map draws gateway → risk-engine with the error counted.
    let edges: Vec<otlp_viewer::Edge> = c.json("/api/map");
    assert_eq!(edges.len(), 1);
    assert_eq!(
        (edges[0].from.as_str(), edges[0].to.as_str()),
        ("gateway", "risk-engine")
    );
    assert_eq!((edges[0].calls, edges[0].errors), (1, 1));
    assert!((edges[0].p95_ms - 20.0).abs() < 1e-9);
    // Per-service series count server spans.
    let series: Vec<otlp_viewer::ServiceSeries> = c.json("/api/series");
    let names: Vec<&str> = series.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(names, vec!["gateway", "risk-engine"]);

    // The page shows the waterfall with both services and the log line.
    let (status, page) = c.get(&format!("/trace/{}", hex(&t)));
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"data-service="gateway""#)
            && page.contains(r#"data-service="risk-engine""#)
    );
    assert!(page.contains("limit checked"));
    assert!(
        page.contains(&format!("/trace/{}", hex(&window_trace))),
        "link to the window"
    );
    let (status, logs) = c.get(&format!("/logs?trace_id={}", hex(&t)));
    assert_eq!(status, 200);
    assert!(logs.contains("limit checked"));
    let (status, overview) = c.get("/");
    assert_eq!(status, 200);
    assert!(overview.contains(r#"id="service-map""#) && overview.contains("pay-42"));

    // The terminal waterfall: tree order, indentation, log under its span, links.
    let text = otlp_viewer::waterfall::render(&detail, &["payment.id".to_string()]);
    let lines: Vec<&str> = text.lines().collect();
    let gateway_line = lines
        .iter()
        .position(|l| l.contains("POST /payments"))
        .expect("root line");
    assert!(
        lines[gateway_line + 1].contains("  POST /check")
            && lines[gateway_line + 1].contains("ERROR: declined")
    );
    assert!(lines[gateway_line + 2].contains("limit checked"));
    assert!(text.contains("payment.id=pay-42"));
    assert!(text.contains(&format!(
        "clear window (clearing-engine) in trace {}",
        hex(&window_trace)
    )));
}

#[test]
fn hostile_values_are_shown_as_text_and_no_script_may_run() {
    let viewer = start(Limits::default());
    let c = Client::new(&viewer);
    let t = id(7, 16);
    let evil = r#"<script>alert("x")</script>"#;
    let quote = r#""><img src=x onerror=alert(1)>"#;
    let mut s = span(&t, &id(1, 8), &[], evil, SpanKind::Server);
    s.attributes = vec![
        kv("payment.id", quote),
        kv("http.route", "\u{1b}[2J\u{1b}[31mred"),
    ];
    c.traces(spans_request(evil, vec![s]));
    c.logs(log_request(
        quote,
        &t,
        &id(1, 8),
        evil,
        vec![kv(evil, quote)],
    ));

    for path in [
        "/".to_string(),
        format!("/trace/{}", hex(&t)),
        format!("/logs?trace_id={}", hex(&t)),
        format!("/?q={}", "%3Cscript%3E"),
    ] {
        let (status, csp, body) = c.get_as(&path, None);
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains("<script"), "{path} has a raw <script");
        assert!(!body.contains("<img"), "{path} has a raw <img");
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{path}: {csp}"
        );
    }
    let (_, page) = c.get(&format!("/trace/{}", hex(&t)));
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    // The terminal gets no escape sequences either.
    let detail: TraceDetail = c.json(&format!("/api/traces/{}", hex(&t)));
    let text = otlp_viewer::waterfall::render(&detail, &[]);
    assert!(
        !text.contains('\u{1b}'),
        "escape sequence reached the terminal"
    );
    assert!(text.contains("\u{fffd}[2J"));
}

/// A client that sends half a request to the page is cut at the header
/// deadline, and the page answers others meanwhile.
#[test]
fn half_sent_requests_to_the_page_are_closed() {
    let viewer = start(Limits::default());
    let addr = viewer.url().trim_start_matches("http://").to_string();
    let mut slow: Vec<_> = (0..20)
        .map(|_| testkit::half_sent_request(addr.as_str(), "/").unwrap())
        .collect();
    let (status, _) = Client::new(&viewer).get("/api/stats");
    assert_eq!(status, 200);
    for s in &mut slow {
        assert!(
            testkit::closed_by_server(s, Duration::from_secs(20)),
            "a half-sent request to the page is still held open"
        );
    }
}

#[test]
fn other_hosts_and_bad_parameters_are_refused_with_what_to_change() {
    let viewer = start(Limits::default());
    let c = Client::new(&viewer);
    let port = viewer.url().rsplit(':').next().unwrap_or("").to_string();
    let (status, _, body) = c.get_as("/", Some(&format!("attacker.example:{port}")));
    assert_eq!(status, 421, "DNS-rebinding Host is refused");
    assert!(body.contains("127.0.0.1"));
    let (status, _, _) = c.get_as("/api/stats", Some(&format!("localhost:{port}")));
    assert_eq!(status, 200);

    let (status, body) = c.get("/trace/not-a-trace");
    assert_eq!(status, 400);
    assert!(body.contains("32 hexadecimal characters"), "{body}");
    let (status, body) = c.get("/api/traces?min_ms=ten");
    assert_eq!(status, 400);
    assert!(
        body.contains("min_ms") && body.contains("whole number"),
        "{body}"
    );
    let (status, body) = c.get("/api/traces?status=broken");
    assert_eq!(status, 400);
    assert!(body.contains("status=error"), "{body}");
    let (status, body) = c.get(&format!("/api/traces/{}", "0".repeat(32)));
    assert_eq!(status, 404);
    assert!(body.contains("evicted"), "{body}");
    let long = "x".repeat(20_000);
    let (status, _) = c.get(&format!("/api/traces?q={long}"));
    assert_eq!(status, 200, "a huge search is cut, not fatal");

    assert!(matches!(
        Viewer::start(ViewerConfig {
            ui: "0.0.0.0:0".parse().expect("addr"),
            ..ViewerConfig::default()
        }),
        Err(otlp_viewer::ViewerError::NotLoopback(_))
    ));
}

#[test]
fn memory_stays_within_the_bounds_and_what_goes_is_counted() {
    let limits = Limits {
        max_spans: 300,
        max_traces: 80,
        max_logs: 50,
        max_series: 100,
        ..Limits::default()
    };
    let viewer = start(limits);
    let c = Client::new(&viewer);
    for n in 0..400u32 {
        let t = {
            let mut t = id(0, 16);
            t[12..16].copy_from_slice(&n.to_be_bytes());
            t
        };
        let spans = (1..=3u8)
            .map(|i| {
                span(
                    &t,
                    &id(i, 8),
                    if i == 1 {
                        &[]
                    } else {
                        &[0xab, 0, 0, 0, 0, 0, 0, 1]
                    },
                    "op",
                    SpanKind::Server,
                )
            })
            .collect();
        c.traces(spans_request("svc", spans));
        c.logs(log_request("svc", &t, &id(1, 8), "line", vec![]));
    }
    let stats = viewer.store().stats();
    assert!(
        stats.spans <= 300 && stats.traces <= 80 && stats.logs <= 50,
        "{stats:?}"
    );
    assert_eq!(stats.spans_received, 1200);
    assert_eq!(
        stats.spans + stats.spans_evicted as usize,
        1200,
        "every span is held or counted"
    );
    assert_eq!(
        stats.logs + stats.logs_evicted as usize,
        400,
        "every log line is held or counted"
    );
    assert_eq!(stats.traces + stats.traces_evicted as usize, 400);
    // The newest are the ones held.
    let newest: Vec<TraceSummary> = c.json("/api/traces?limit=1");
    assert!(
        newest[0].trace_id.ends_with(&format!("{:08x}", 399)),
        "{}",
        newest[0].trace_id
    );

    // A high-cardinality metric: 5,000 series against a bound of 100.
    let points = (0..5000)
        .map(|i| NumberDataPoint {
            attributes: vec![kv("user.id", &format!("u{i}"))],
            value: Some(number_data_point::Value::AsDouble(1.0)),
            ..Default::default()
        })
        .collect();
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("svc"),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(c.post("/v1/metrics", metrics.encode_to_vec()), 200);
    let stats = viewer.store().stats();
    assert_eq!(stats.series, 100);
    assert_eq!(stats.points_refused, 4900);
}

/// This process's resident memory, bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// The count bounds let a sender of huge attributes hold all memory: the
/// byte bound holds whatever each item carries, the newest stay, and what
/// goes is counted.
#[test]
fn huge_attributes_are_held_to_the_byte_bound_and_what_goes_is_counted() {
    let max_bytes = 48 << 20;
    let viewer = start(Limits {
        max_bytes,
        ..Limits::default()
    });
    let c = Client::new(&viewer);
    let before = resident_bytes();
    let payload = "x".repeat(1 << 20);
    // 300 MiB of attributes, each request well inside the body limit.
    for n in 0..300u32 {
        let mut t = id(0, 16);
        t[12..16].copy_from_slice(&n.to_be_bytes());
        let mut s = span(&t, &id(1, 8), &[], "upload", SpanKind::Server);
        s.attributes = vec![kv("payload", &payload), kv("payment.id", &format!("p{n}"))];
        c.traces(spans_request("svc", vec![s]));
    }
    // An untraced log line and a resource too large to share, 4 MiB each.
    let four = "y".repeat(4 << 20);
    c.logs(log_request("svc", &[], &[], &four, vec![]));
    let mut big_resource = spans_request(
        "svc",
        vec![span(&id(9, 16), &id(1, 8), &[], "r", SpanKind::Server)],
    );
    if let Some(r) = big_resource.resource_spans[0].resource.as_mut() {
        r.attributes.push(kv("host.notes", &four));
    }
    c.traces(big_resource);
    let grown = resident_bytes().saturating_sub(before);

    let stats = viewer.store().stats();
    assert!(stats.bytes <= max_bytes, "{stats:?}");
    assert_eq!(stats.spans_received, 301);
    assert_eq!(stats.spans + stats.spans_evicted as usize, 301, "{stats:?}");
    assert_eq!(stats.logs + stats.logs_evicted as usize, 1, "{stats:?}");
    // Most of the bound holds the newest megabyte spans.
    assert!(stats.spans >= 30, "{stats:?}");
    let newest: Vec<TraceSummary> = c.json("/api/traces?limit=2");
    assert!(
        newest
            .iter()
            .any(|t| t.trace_id.ends_with(&format!("{:08x}", 299))),
        "{newest:?}"
    );
    assert!(
        grown < 160 << 20,
        "resident memory grew by {} MiB with a bound of {} MiB",
        grown >> 20,
        max_bytes >> 20
    );
}

/// Metric series are bounded by count; the strings of each are cut.
#[test]
fn a_metric_series_keeps_its_strings_short() {
    let viewer = start(Limits::default());
    let c = Client::new(&viewer);
    let long = "z".repeat(100_000);
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(&long),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: long.clone(),
                    unit: long.clone(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![kv("user.note", &long)],
                            value: Some(number_data_point::Value::AsDouble(1.0)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(c.post("/v1/metrics", metrics.encode_to_vec()), 200);
    let points: Vec<otlp_viewer::LatestPoint> = c.json("/api/points");
    assert_eq!(points.len(), 1, "{}", points.len());
    let p = &points[0];
    for (what, value, max) in [
        ("service", &p.service, 256),
        ("metric", &p.metric, 256),
        ("unit", &p.unit, 256),
        ("attributes", &p.attributes, 1024),
    ] {
        assert!(
            value.len() <= max + '…'.len_utf8(),
            "{what}: {} bytes",
            value.len()
        );
        assert!(value.ends_with('…'), "{what} is marked as cut");
    }
}

#[test]
fn malformed_and_oversized_exports_are_refused_and_the_viewer_keeps_serving() {
    let mut config = ViewerConfig::default();
    config.otlp.max_body_bytes = 64 * 1024;
    let viewer = Viewer::start(config).expect("viewer");
    let c = Client::new(&viewer);
    assert_eq!(
        c.post("/v1/traces", b"\xff\xff\xff not protobuf".to_vec()),
        400
    );
    let huge = vec![0u8; 1024 * 1024];
    assert_eq!(c.post("/v1/traces", huge), 400);
    assert_eq!(
        viewer.store().stats().invalid_requests,
        2,
        "the garbage and the oversized body are both counted"
    );
    let (status, _) = c.get("/api/stats");
    assert_eq!(status, 200);
}

#[test]
fn a_finished_run_leaves_its_traces_readable() {
    let viewer = start(Limits::default());
    let c = Client::new(&viewer);
    for n in 1..=3u8 {
        c.traces(spans_request(
            "svc",
            vec![span(&id(n, 16), &id(1, 8), &[], "op", SpanKind::Server)],
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("traces.jsonl.gz");
    assert_eq!(
        otlp_viewer::write_dump(viewer.store(), &path).expect("dump"),
        3
    );
    viewer.shutdown();
    let found = otlp_viewer::find_in_dump(&path, &hex(&id(2, 16))).expect("read");
    assert_eq!(found.map(|t| t.summary.trace_id), Some(hex(&id(2, 16))));
    assert!(
        otlp_viewer::find_in_dump(&path, &"f".repeat(32))
            .expect("read")
            .is_none()
    );
    // A damaged line (appended as a second gzip member) is skipped, not fatal.
    {
        use std::io::Write as _;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        gz.write_all(b"not json\n").expect("write");
        gz.finish().expect("finish");
    }
    let (all, skipped) = otlp_viewer::read_dump(&path).expect("read");
    assert_eq!((all.len(), skipped), (3, 1));
}

#[test]
fn in_front_of_a_collector_every_export_is_passed_on_unchanged_with_its_headers() {
    for protocol in [
        otlp_viewer::ForwardProtocol::Grpc,
        otlp_viewer::ForwardProtocol::HttpProtobuf,
    ] {
        let collector = otlp_receiver::OtlpReceiver::start().unwrap();
        let endpoint = match protocol {
            otlp_viewer::ForwardProtocol::Grpc => collector.grpc_endpoint(),
            otlp_viewer::ForwardProtocol::HttpProtobuf => collector.http_endpoint(),
        };
        let viewer = Viewer::start(ViewerConfig {
            forward: Some(otlp_viewer::ForwardConfig::new(endpoint, protocol)),
            ..ViewerConfig::default()
        })
        .unwrap();
        let c = Client::new(&viewer);
        let t = id(9, 16);
        let request = spans_request(
            "svc",
            vec![
                span(&t, &id(1, 8), &[], "root", SpanKind::Server),
                span(&t, &id(2, 8), &id(1, 8), "child", SpanKind::Internal),
            ],
        );
        let status = c.rt.block_on(async {
            c.http
                .post(format!("{}/v1/traces", c.otlp))
                .header("content-type", "application/x-protobuf")
                .header("authorization", "Bearer tenant-7")
                .body(request.encode_to_vec())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
        assert_eq!(status, 200);
        let spans = collector.wait_for_spans(Duration::from_secs(10), |s| s.len() >= 2);
        assert_eq!(spans.len(), 2, "{protocol:?}");
        assert!(spans.iter().all(|s| s.trace_id == hex(&t)));
        let requests = collector.requests();
        assert_eq!(
            requests[0].header("authorization"),
            Some("Bearer tenant-7"),
            "{protocol:?}: the exporter's credentials go on to the collector"
        );
        assert_eq!(
            viewer.store().stats().spans,
            2,
            "and the viewer holds them too"
        );
        let stats = viewer.forwarded().unwrap();
        // The worker counts once the collector has answered.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stats.forwarded() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            (stats.forwarded(), stats.failed(), stats.dropped()),
            (1, 0, 0)
        );
    }
}

/// Behind a collector that never answers, the forward queue holds at most
/// its bytes: 20 exports of 256 KiB against a 1 MiB bound are mostly
/// dropped (counted), though the queue's count bound would take them all.
#[test]
fn the_forward_queue_is_bounded_in_bytes() {
    let tarpit = testkit::Tarpit::start().unwrap();
    let mut forward =
        otlp_viewer::ForwardConfig::new(tarpit.endpoint(), otlp_viewer::ForwardProtocol::Grpc);
    forward.queue_bytes = 1 << 20;
    forward.timeout = Duration::from_secs(2);
    let viewer = Viewer::start(ViewerConfig {
        forward: Some(forward),
        ..ViewerConfig::default()
    })
    .unwrap();
    let c = Client::new(&viewer);
    let name = "x".repeat(256 * 1024);
    let started = std::time::Instant::now();
    for n in 0..20u8 {
        c.traces(spans_request(
            "svc",
            vec![span(&id(n, 16), &id(1, 8), &[], &name, SpanKind::Server)],
        ));
    }
    // At most four fit the bound at once, plus one more for each send the
    // tarpit timed out while they were posted.
    let timed_out = started.elapsed().as_secs() / 2;
    let stats = std::sync::Arc::clone(viewer.forwarded().unwrap());
    assert!(
        stats.dropped() >= 20 - 4 - timed_out - 1,
        "{stats:?} after {:?}",
        started.elapsed()
    );
    viewer.shutdown();
}

#[test]
fn a_dead_collector_behind_the_viewer_costs_counted_forwards_not_answers() {
    // A collector that accepts connections and never answers: the worst kind.
    let tarpit = testkit::Tarpit::start().unwrap();
    let mut forward =
        otlp_viewer::ForwardConfig::new(tarpit.endpoint(), otlp_viewer::ForwardProtocol::Grpc);
    forward.queue = 4;
    forward.timeout = Duration::from_millis(300);
    let viewer = Viewer::start(ViewerConfig {
        forward: Some(forward),
        ..ViewerConfig::default()
    })
    .unwrap();
    let c = Client::new(&viewer);
    for n in 0..20u8 {
        c.traces(spans_request(
            "svc",
            vec![span(&id(n, 16), &id(1, 8), &[], "op", SpanKind::Server)],
        ));
    }
    assert_eq!(
        viewer.store().stats().traces,
        20,
        "every export answered and held"
    );
    let stats = std::sync::Arc::clone(viewer.forwarded().unwrap());
    viewer.shutdown();
    assert_eq!(stats.forwarded(), 0);
    assert!(stats.dropped() > 0, "a full queue drops: {stats:?}");
    assert!(stats.failed() + stats.dropped() <= 20);
    drop(tarpit);
    assert!(matches!(
        Viewer::start(ViewerConfig {
            forward: Some(otlp_viewer::ForwardConfig::new(
                "https://collector:4317",
                otlp_viewer::ForwardProtocol::Grpc
            )),
            ..ViewerConfig::default()
        }),
        Err(otlp_viewer::ViewerError::Forward(m)) if m.contains("only plain http://")
    ));
}
