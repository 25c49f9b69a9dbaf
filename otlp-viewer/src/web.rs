//! The viewer's web side: server-rendered HTML pages (no JavaScript at all:
//! charts and the service map are SVG drawn here) and a JSON API, served on
//! loopback only. Everything received is shown through maud, which escapes
//! every value; a strict Content-Security-Policy forbids scripts besides, so
//! a `<script>` in a span attribute is text twice over.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use otlp_receiver::{ReceivedLog, ReceivedSpan, SpanStatus};
use serde::Deserialize;

use crate::store::{Edge, ServiceSeries, Store, TraceDetail, TraceFilter, display_value};
use crate::tree::{log_time, service, tree};
use crate::waterfall::COMMON_KEYS;

/// No scripts, no external anything: the page is HTML, inline styles and SVG.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Longest search text honoured; the rest is ignored.
const MAX_SEARCH: usize = 200;

#[derive(Clone)]
struct App {
    store: Arc<Store>,
    port: u16,
}

/// The router: pages and `/api/*`, for the address bound on `port`.
pub fn router(store: Arc<Store>, port: u16) -> Router {
    let app = App { store, port };
    Router::new()
        .route("/", get(overview))
        .route("/trace/{id}", get(trace_page))
        .route("/logs", get(logs_page))
        .route("/points", get(points_page))
        .route("/api/stats", get(api_stats))
        .route("/api/traces", get(api_traces))
        .route("/api/traces/{id}", get(api_trace))
        .route("/api/logs", get(api_logs))
        .route("/api/map", get(api_map))
        .route("/api/series", get(api_series))
        .route("/api/points", get(api_points))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Loopback only, also against DNS rebinding: a page on another site that
/// resolves its name to 127.0.0.1 sends its own Host, which is refused.
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let allowed = [
        format!("127.0.0.1:{}", app.port),
        format!("localhost:{}", app.port),
        format!("[::1]:{}", app.port),
    ];
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this viewer answers only requests addressed to 127.0.0.1, localhost or [::1] on its port\n",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The trace list's query string.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    service: Option<String>,
    status: Option<String>,
    min_ms: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    limit: Option<String>,
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

impl ListQuery {
    fn filter(&self) -> Result<TraceFilter, String> {
        let number = |name: &str, v: &Option<String>| -> Result<Option<u64>, String> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| {
                    format!("{name}={v:?} is not a whole number; use e.g. {name}=100")
                }),
            }
        };
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("") | Some("any") => None,
            Some(s @ ("error" | "ok")) => Some(s.to_string()),
            Some(other) => {
                return Err(format!(
                    "status={other:?} is not a status; use status=error, status=ok or leave it out"
                ));
            }
        };
        let slowest_first = match self.sort.as_deref().map(str::trim) {
            None | Some("") | Some("newest") => false,
            Some("slowest") => true,
            Some(other) => {
                return Err(format!("sort={other:?}: use sort=newest or sort=slowest"));
            }
        };
        Ok(TraceFilter {
            service: self.service.clone().filter(|s| !s.trim().is_empty()),
            status,
            min_duration_ms: number("min_ms", &self.min_ms)?,
            search: self
                .q
                .as_deref()
                .map(|q| q.chars().take(MAX_SEARCH).collect::<String>())
                .filter(|q| !q.trim().is_empty()),
            slowest_first,
            limit: number("limit", &self.limit)?.map(|l| l as usize),
        })
    }
}

fn valid_trace_id(id: &str) -> Result<String, Box<Response>> {
    if id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(Box::new(bad_request(format!(
            "{:?} is not a trace id; a trace id is 32 hexadecimal characters",
            id.chars().take(64).collect::<String>()
        ))))
    }
}

// ---------------------------------------------------------------------------------------------
// JSON API

async fn api_stats(State(app): State<App>) -> Response {
    axum::Json(app.store.stats()).into_response()
}

async fn api_traces(State(app): State<App>, Query(query): Query<ListQuery>) -> Response {
    match query.filter() {
        Ok(filter) => axum::Json(app.store.traces(&filter)).into_response(),
        Err(message) => bad_request(message),
    }
}

async fn api_trace(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match valid_trace_id(&id) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match app.store.trace(&id) {
        Some(trace) => axum::Json(trace).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("trace {id} is not held (never received, or evicted as the oldest)\n"),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    trace_id: Option<String>,
}

async fn api_logs(State(app): State<App>, Query(query): Query<LogsQuery>) -> Response {
    let id = match query.trace_id.as_deref().filter(|t| !t.is_empty()) {
        Some(id) => match valid_trace_id(id.trim()) {
            Ok(id) => Some(id),
            Err(response) => return *response,
        },
        None => None,
    };
    axum::Json(app.store.logs(id.as_deref(), 1000)).into_response()
}

async fn api_map(State(app): State<App>) -> Response {
    axum::Json(app.store.edges()).into_response()
}

async fn api_series(State(app): State<App>) -> Response {
    axum::Json(app.store.series()).into_response()
}

async fn api_points(State(app): State<App>) -> Response {
    axum::Json(app.store.latest_points(None)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Pages

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
    table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;vertical-align:top}\
    tr:nth-child(even){background:#f6f6f6}.err{color:#b00020;font-weight:600}\
    .mono{font-family:ui-monospace,monospace;font-size:12px}.muted{color:#777}\
    .bar{position:relative;height:10px;width:260px;background:#eee}\
    .bar span{position:absolute;height:10px;background:#3b73c4}.bar span.e{background:#b00020}\
    .log td{color:#555;font-size:12px}nav a{margin-right:1em}\
    svg text{font:11px system-ui,sans-serif}#waterfall td:nth-child(-n+4){white-space:nowrap}";

fn page(title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav { a href="/" { "traces" } a href="/logs" { "logs" } a href="/points" { "metrics" } }
                (body)
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

fn ms(nanos: u64) -> String {
    format!("{:.1} ms", nanos as f64 / 1e6)
}

async fn overview(State(app): State<App>, Query(query): Query<ListQuery>) -> Response {
    let filter = match query.filter() {
        Ok(f) => f,
        Err(message) => return bad_request(message),
    };
    let store = &app.store;
    let settings = store.settings();
    let stats = store.stats();
    let traces = store.traces(&filter);
    let edges = store.edges();
    let series = store.series();
    let mut services: Vec<String> = series.iter().map(|s| s.service.clone()).collect();
    for e in &edges {
        for s in [&e.from, &e.to] {
            if !services.contains(s) {
                services.push(s.clone());
            }
        }
    }
    services.sort();
    let body = html! {
        h1 { (settings.title) }
        p.muted {
            (stats.traces) " traces, " (stats.spans) " spans, " (stats.logs) " log lines held; "
            (stats.traces_evicted) " traces evicted (oldest first) to stay within "
            (store.limits().max_spans) " spans / " (store.limits().max_logs) " log lines."
        }
        h2 { "Service map" }
        (service_map(&edges))
        h2 { "Requests per service" }
        (charts(&series))
        h2 { "Traces" }
        form method="get" action="/" {
            label { "service " select name="service" {
                option value="" { "any" }
                @for s in &services {
                    option value=(s) selected[filter.service.as_deref() == Some(s.as_str())] { (s) }
                }
            } }
            " "
            label { "status " select name="status" {
                option value="" { "any" }
                option value="error" selected[filter.status.as_deref() == Some("error")] { "error" }
                option value="ok" selected[filter.status.as_deref() == Some("ok")] { "ok" }
            } }
            " "
            label { "min ms " input name="min_ms" size="5" value=(query.min_ms.clone().unwrap_or_default()); }
            " "
            label { (settings.search_label) " " input name="q" size="38" value=(filter.search.clone().unwrap_or_default()); }
            " "
            label { "sort " select name="sort" {
                option value="newest" { "newest" }
                option value="slowest" selected[filter.slowest_first] { "slowest" }
            } }
            " "
            button type="submit" { "filter" }
        }
        (trace_table(&traces, settings.search_attribute.as_str(), settings.search_label.as_str()))
    };
    page(&settings.title, body)
}

fn trace_table(
    traces: &[crate::store::TraceSummary],
    search_attribute: &str,
    search_label: &str,
) -> Markup {
    html! {
        table id="traces" {
            tr { th { "start" } th { "root" } th { "duration" } th { "spans" } th { "services" } th { "status" } th { (search_label) } th { "trace id" } }
            @for t in traces {
                tr {
                    td.mono { (clock(t.start_unix_nanos)) }
                    td { (t.root_service) ": " (t.root_name) }
                    td { (ms(t.duration_nanos)) }
                    td { (t.spans) }
                    td { (t.services.len()) }
                    td { @if t.error { span.err { "error" } } @else { "ok" } }
                    td.mono { (t.key_attributes.get(search_attribute).cloned().unwrap_or_default()) }
                    td.mono { a href={ "/trace/" (t.trace_id) } { (t.trace_id) } }
                }
            }
        }
        @if traces.is_empty() { p.muted { "no trace matches" } }
    }
}

/// Wall-clock time of day (UTC) with milliseconds, from unix nanoseconds.
fn clock(nanos: u64) -> String {
    let ms_of_day = (nanos / 1_000_000) % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

async fn trace_page(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match valid_trace_id(&id) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let Some(trace) = app.store.trace(&id) else {
        let body = html! {
            h1 { "Trace " span.mono { (id) } }
            p { "Not held: never received, or evicted as the oldest." }
        };
        let mut response = page("trace not found", body);
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let keys: Vec<String> = app
        .store
        .settings()
        .key_attributes
        .iter()
        .cloned()
        .chain(COMMON_KEYS.iter().map(|k| k.to_string()))
        .collect();
    page(&format!("trace {id}"), waterfall(&trace, &keys))
}

fn waterfall(trace: &TraceDetail, keys: &[String]) -> Markup {
    let s = &trace.summary;
    let total = s.duration_nanos.max(1) as f64;
    let tree = tree(trace);
    let rows = &tree.spans[..];
    let logs_by_span = &tree.logs;
    html! {
        h1 { "Trace " span.mono { (s.trace_id) } }
        p {
            (s.spans) " spans across " (s.services.len()) " services, " (s.logs) " log lines, " (ms(s.duration_nanos)) ". "
            @if s.error { span.err { "error" } } @else { "ok" }
        }
        @for (k, v) in &s.key_attributes { p.mono { (k) ": " (v) } }
        p { a href={ "/logs?trace_id=" (s.trace_id) } { "all log lines of this trace" } }
        table id="waterfall" {
            tr { th { "service" } th { "span" } th { "offset" } th { "duration" } th { "timeline" } th { "status" } th { "attributes" } }
            @for (span, depth) in rows {
                @let offset = span.start_unix_nanos.saturating_sub(s.start_unix_nanos);
                @let duration = span.end_unix_nanos.saturating_sub(span.start_unix_nanos);
                @let left = offset as f64 / total * 100.0;
                @let width = (duration as f64 / total * 100.0).max(0.5);
                @let error = matches!(span.status, SpanStatus::Error(_));
                tr.span data-service=(service(span)) {
                    td { (service(span)) }
                    td style={ "padding-left:" (depth * 16 + 8) "px" } { (span.name) }
                    td { (ms(offset)) }
                    td { (ms(duration)) }
                    td { div.bar { span class=[error.then_some("e")] style={ "left:" (format!("{left:.2}")) "%;width:" (format!("{width:.2}")) "%" } {} } }
                    td { @match &span.status { SpanStatus::Error(m) => span.err { "error " (m) }, SpanStatus::Ok => "ok", SpanStatus::Unset => "" } }
                    td.mono {
                        (span_attributes(span, keys))
                        @for link in &span.links { br; "→ links to " a href={ "/trace/" (link.trace_id) } { (link.trace_id) } }
                    }
                }
                @if let Some(logs) = logs_by_span.get(span.span_id.as_str()) {
                    @for log in logs { (log_row(log, *depth + 1, s.start_unix_nanos)) }
                }
            }
        }
        @if !trace.linked_from.is_empty() {
            h2 { "Linked from" }
            ul id="linked-from" {
                @for link in &trace.linked_from {
                    li { (link.span_name) " (" (link.service) ") in trace "
                        a href={ "/trace/" (link.trace_id) } { (link.trace_id) } }
                }
            }
        }
    }
}

fn span_attributes(span: &ReceivedSpan, keys: &[String]) -> String {
    let mut out = String::new();
    for key in keys {
        if let Some(v) = span.attributes.get(key) {
            let _ = write!(out, "{key}={} ", display_value(v));
        }
    }
    out
}

fn log_row(log: &ReceivedLog, depth: usize, start: u64) -> Markup {
    let time = log_time(log);
    let attributes: String = log
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={} ", display_value(v)))
        .collect();
    html! {
        tr.log {
            td { (log.resource.str("service.name").unwrap_or("")) }
            td colspan="6" style={ "padding-left:" (depth * 16 + 8) "px" } {
                "+" (ms(time.saturating_sub(start))) " " (log.severity_text) " "
                span.logbody { (log.body.as_deref().unwrap_or("")) } " "
                span.mono { (attributes) }
            }
        }
    }
}

async fn logs_page(State(app): State<App>, Query(query): Query<LogsQuery>) -> Response {
    let id = match query
        .trace_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(id) => match valid_trace_id(id) {
            Ok(id) => Some(id),
            Err(response) => return *response,
        },
        None => None,
    };
    let logs = app.store.logs(id.as_deref(), 1000);
    let body = html! {
        h1 { "Logs" }
        form method="get" action="/logs" {
            label { "trace id " input name="trace_id" size="34" value=(id.clone().unwrap_or_default()); }
            " " button type="submit" { "search" }
        }
        @match &id {
            Some(id) => p { "Log lines of trace " a href={ "/trace/" (id) } { (id) } " (" (logs.len()) ")" },
            None => p.muted { "Latest log lines without a trace (" (logs.len()) "). Enter a trace id for its lines." },
        }
        table id="logs" {
            tr { th { "time" } th { "service" } th { "severity" } th { "body" } th { "attributes" } th { "span" } }
            @for log in &logs {
                tr {
                    td.mono { (clock(log_time(log))) }
                    td { (log.resource.str("service.name").unwrap_or("")) }
                    td { (log.severity_text) }
                    td.logbody { (log.body.as_deref().unwrap_or("")) }
                    td.mono { @for (k, v) in log.attributes.iter() { (k) "=" (display_value(v)) " " } }
                    td.mono { (log.span_id.as_deref().unwrap_or("")) }
                }
            }
        }
    };
    page("logs", body)
}

async fn points_page(State(app): State<App>) -> Response {
    let points = app.store.latest_points(None);
    let stats = app.store.stats();
    let body = html! {
        h1 { "Metrics: latest point per series" }
        p.muted { (stats.series) " series; " (stats.points_refused) " points refused past the bound of "
            (app.store.limits().max_series) " series." }
        table id="points" {
            tr { th { "service" } th { "metric" } th { "attributes" } th { "value" } th { "unit" } }
            @for p in &points {
                tr {
                    td { (p.service) } td.mono { (p.metric) } td.mono { (p.attributes) }
                    td { (p.value) @if let Some(sum) = p.sum { " (sum " (sum) ")" } }
                    td { (p.unit) }
                }
            }
        }
    };
    page("metrics", body)
}

// ---------------------------------------------------------------------------------------------
// SVG

fn service_map(edges: &[Edge]) -> Markup {
    let mut nodes: Vec<&str> = Vec::new();
    for e in edges {
        for s in [e.from.as_str(), e.to.as_str()] {
            if !nodes.contains(&s) {
                nodes.push(s);
            }
        }
    }
    if nodes.is_empty() {
        return html! { p.muted { "No calls between services yet." } };
    }
    nodes.sort_unstable();
    // Column = longest chain of callers; bounded passes so cycles terminate.
    let mut depth: BTreeMap<&str, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    for _ in 0..nodes.len().min(12) {
        for e in edges {
            let from = depth.get(e.from.as_str()).copied().unwrap_or(0);
            let to = depth.entry(e.to.as_str()).or_insert(0);
            if *to < from + 1 && from < 12 {
                *to = from + 1;
            }
        }
    }
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut position: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for n in &nodes {
        let column = depth.get(n).copied().unwrap_or(0);
        let row = rows.entry(column).or_insert(0);
        position.insert(n, (20.0 + column as f64 * 260.0, 20.0 + *row as f64 * 70.0));
        *row += 1;
    }
    let width = 20.0 + (rows.keys().max().copied().unwrap_or(0) + 1) as f64 * 260.0;
    let height = 30.0 + rows.values().max().copied().unwrap_or(1) as f64 * 70.0;
    html! {
        svg id="service-map" xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) role="img" {
            title { "Calls between services over the held traces" }
            defs { marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse" { path d="M 0 0 L 10 5 L 0 10 z" fill="#555" {} } }
            @for e in edges {
                @if let (Some((x1, y1)), Some((x2, y2))) = (position.get(e.from.as_str()), position.get(e.to.as_str())) {
                    @let (ax, ay, bx, by) = (x1 + 160.0, y1 + 15.0, *x2, y2 + 15.0);
                    line x1=(ax) y1=(ay) x2=(bx) y2=(by) stroke=(if e.errors > 0 { "#b00020" } else { "#555" }) marker-end="url(#arrow)" {}
                    text x=((ax + bx) / 2.0 - 40.0) y=((ay + by) / 2.0 - 4.0) {
                        (format!("{:.1}/s", e.rate_per_second)) " · "
                        (format!("{:.1}% err", if e.calls > 0 { e.errors as f64 * 100.0 / e.calls as f64 } else { 0.0 })) " · p95 "
                        (format!("{:.1} ms", e.p95_ms))
                    }
                }
            }
            @for n in &nodes {
                @if let Some((x, y)) = position.get(n) {
                    g.node {
                        rect x=(x) y=(y) width="160" height="30" rx="4" fill="#e8eef8" stroke="#3b73c4" {}
                        text x=(x + 8.0) y=(y + 19.0) { (n) }
                    }
                }
            }
        }
    }
}

fn charts(series: &[ServiceSeries]) -> Markup {
    if series.is_empty() {
        return html! { p.muted { "No requests yet." } };
    }
    html! {
        table id="charts" {
            tr { th { "service" } th { "requests/s" } th { "errors/s" } th { "p95 ms" } }
            @for s in series {
                tr {
                    td { (s.service) }
                    td { (sparkline(s.points.iter().map(|p| p.rate_per_second).collect(), "#3b73c4")) }
                    td { (sparkline(s.points.iter().map(|p| p.errors_per_second).collect(), "#b00020")) }
                    td { (sparkline(s.points.iter().map(|p| p.p95_ms.unwrap_or(0.0)).collect(), "#6a4c93")) }
                }
            }
        }
    }
}

fn sparkline(values: Vec<f64>, colour: &str) -> Markup {
    const W: f64 = 240.0;
    const H: f64 = 40.0;
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let last = values.last().copied().unwrap_or(0.0);
    let step = if values.len() > 1 {
        W / (values.len() - 1) as f64
    } else {
        0.0
    };
    let mut points = String::new();
    for (i, v) in values.iter().enumerate() {
        let y = if max > 0.0 {
            H - v / max * (H - 2.0)
        } else {
            H
        };
        let _ = write!(points, "{:.1},{:.1} ", i as f64 * step, y);
    }
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(W + 70.0) height=(H + 4.0) {
            polyline points=(points) fill="none" stroke=(colour) stroke-width="1.5" {}
            text x=(W + 4.0) y="14" { (format!("{last:.1}")) }
            text x=(W + 4.0) y="34" fill="#777" { (format!("max {max:.1}")) }
        }
    }
}
