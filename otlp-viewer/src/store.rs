//! The bounded store: recent traces (spans and their log lines), untraced log
//! lines, the latest point of each metric series, and per-service request
//! series over the whole run. Every collection has a bound; what goes past
//! it is the oldest, and it is counted.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use otlp_receiver::{
    AttrValue, Attributes, Batch, MetricData, ReceivedLink, ReceivedLog, ReceivedMetric,
    ReceivedSpan, RequestInfo, RequestOutcome, Sink, SpanKind, SpanStatus,
};
use serde::{Deserialize, Serialize};

use crate::histogram::LatencyHistogram;
use crate::size;
use crate::tree::log_time;

/// How much the viewer keeps. The defaults hold about half a minute of a
/// fleet at 200 payments/s in well under 512 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Spans over all stored traces; past it whole traces go, oldest first.
    pub max_spans: usize,
    /// Traces, whatever their size.
    pub max_traces: usize,
    /// Log records, with a trace id or without.
    pub max_logs: usize,
    /// Metric series (service, metric, point attributes) whose latest point is kept.
    pub max_series: usize,
    /// Services with a request series; spans of further services are not charted.
    pub max_services: usize,
    /// Buckets of [`BUCKET_SECONDS`] each per service series (the oldest go).
    pub max_buckets: usize,
    /// Incoming links remembered per trace (e.g. clearing windows linking to a payment).
    pub max_links_per_trace: usize,
    /// Estimated bytes of the stored spans and log records (their strings,
    /// attributes, events and links, and resources too large to share):
    /// the count bounds alone would let a few senders of huge attributes
    /// take all memory. Past it, untraced log lines go first, then whole
    /// traces, oldest first.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_spans: 100_000,
            max_traces: 20_000,
            max_logs: 100_000,
            max_series: 10_000,
            max_services: 64,
            max_buckets: 720,
            max_links_per_trace: 64,
            max_bytes: 256 << 20,
        }
    }
}

/// Width of one bucket of a service's request series.
pub const BUCKET_SECONDS: u64 = 5;

/// What the viewer needs to know about the system it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerSettings {
    /// Span or log attributes shown beside a trace in lists (e.g. a payment id).
    pub key_attributes: Vec<String>,
    /// The attribute the trace list's search box matches (e.g. `deltran.payment.id`).
    pub search_attribute: String,
    /// How the search attribute is named on the page (e.g. "payment id").
    pub search_label: String,
    /// Page title.
    pub title: String,
}

impl Default for ViewerSettings {
    fn default() -> Self {
        ViewerSettings {
            key_attributes: Vec::new(),
            search_attribute: String::new(),
            search_label: "attribute".to_string(),
            title: "OTLP viewer".to_string(),
        }
    }
}

/// A trace at a glance, for lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// 32 lowercase hex characters.
    pub trace_id: String,
    /// Name of the root span (the first span without a parent in the trace), or of the
    /// earliest span while the root has not arrived.
    pub root_name: String,
    /// Service of that span.
    pub root_service: String,
    /// Earliest start of any span.
    pub start_unix_nanos: u64,
    /// Latest end minus earliest start.
    pub duration_nanos: u64,
    /// Spans stored.
    pub spans: usize,
    /// Log records stored.
    pub logs: usize,
    /// Services with a span in the trace, in order of first arrival.
    pub services: Vec<String>,
    /// Whether any span has status error.
    pub error: bool,
    /// First value seen for each configured key attribute.
    pub key_attributes: BTreeMap<String, String>,
}

/// A span of another trace that links to this one (e.g. the clearing window
/// that netted this payment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingLink {
    /// Trace of the linking span.
    pub trace_id: String,
    /// The linking span.
    pub span_id: String,
    /// Its name.
    pub span_name: String,
    /// Its service.
    pub service: String,
    /// The span of this trace it links to.
    pub target_span_id: String,
}

/// One trace with everything the viewer holds of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceDetail {
    /// The summary line.
    pub summary: TraceSummary,
    /// Spans, by start time; their resource cut to who sent them (service
    /// name, namespace, version, instance id, deployment environment).
    pub spans: Vec<ReceivedSpan>,
    /// Log records of the trace, by time.
    pub logs: Vec<ReceivedLog>,
    /// Spans of other traces that link to spans of this one.
    pub linked_from: Vec<IncomingLink>,
}

/// Filters of the trace list; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFilter {
    /// Only traces with a span of this service.
    pub service: Option<String>,
    /// `error` or `ok`.
    pub status: Option<String>,
    /// Only traces at least this long.
    pub min_duration_ms: Option<u64>,
    /// Only traces whose search attribute contains this (or whose trace id starts with it).
    pub search: Option<String>,
    /// Slowest first instead of newest first.
    pub slowest_first: bool,
    /// At most this many (capped at 1,000).
    pub limit: Option<usize>,
}

/// Calls from one service to another, drawn from parent/child spans across services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// Service of the parent span.
    pub from: String,
    /// Service of the child span.
    pub to: String,
    /// Child spans seen over the stored traces.
    pub calls: u64,
    /// Of those, with status error.
    pub errors: u64,
    /// Calls per second over the stored time range.
    pub rate_per_second: f64,
    /// 95th percentile of the child spans' duration, milliseconds.
    pub p95_ms: f64,
}

/// One bucket of a service's request series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Bucket start, unix seconds.
    pub start_unix_seconds: u64,
    /// Requests per second in the bucket.
    pub rate_per_second: f64,
    /// Errors per second in the bucket.
    pub errors_per_second: f64,
    /// 95th percentile duration, milliseconds (upper bound of its histogram bucket).
    pub p95_ms: Option<f64>,
}

/// Requests handled by one service (its server and consumer spans) over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSeries {
    /// Service name.
    pub service: String,
    /// Buckets, oldest first.
    pub points: Vec<SeriesPoint>,
}

/// The latest point of one metric series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestPoint {
    /// Service that exported it.
    pub service: String,
    /// Metric name.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Point attributes, rendered `k=v` and sorted.
    pub attributes: String,
    /// Sum/gauge value, or histogram count.
    pub value: f64,
    /// Histogram sum, when a histogram.
    pub sum: Option<f64>,
    /// Point time.
    pub time_unix_nanos: u64,
}

/// What the store holds and what it let go, so nobody mistakes a bound for a bug.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreStats {
    /// The bounds in force.
    pub limits: Option<Limits>,
    /// Traces stored.
    pub traces: usize,
    /// Spans stored.
    pub spans: usize,
    /// Log records stored.
    pub logs: usize,
    /// Metric series with a latest point.
    pub series: usize,
    /// Estimated bytes of the stored spans and log records.
    pub bytes: usize,
    /// Spans received since start.
    pub spans_received: u64,
    /// Log records received since start.
    pub logs_received: u64,
    /// Metric points received since start.
    pub points_received: u64,
    /// Traces evicted (with their spans and logs) to stay inside the bounds.
    pub traces_evicted: u64,
    /// Spans evicted with their traces.
    pub spans_evicted: u64,
    /// Log records evicted.
    pub logs_evicted: u64,
    /// Metric points not kept because the series bound was reached.
    pub points_refused: u64,
    /// Export requests that could not be decoded.
    pub invalid_requests: u64,
}

/// Durations of the child spans of one edge, and how many failed.
type EdgeSamples = (Vec<u64>, u64);

/// A span as stored: its resource shared with every span of the same process.
#[derive(Debug, Clone)]
struct StoredSpan {
    resource: Arc<Attributes>,
    service: Arc<str>,
    span: ReceivedSpan,
}

#[derive(Debug, Clone)]
struct StoredLog {
    resource: Arc<Attributes>,
    log: ReceivedLog,
    /// Its share of [`Inner::bytes`].
    bytes: usize,
}

#[derive(Debug, Default)]
struct Trace {
    spans: Vec<StoredSpan>,
    logs: Vec<StoredLog>,
    /// Its share of [`Inner::bytes`], spans and logs.
    bytes: usize,
    start: u64,
    end: u64,
    error: bool,
    root: Option<(String, Arc<str>)>,
    services: Vec<Arc<str>>,
    key_attributes: BTreeMap<String, String>,
    linked_from: Vec<IncomingLink>,
}

#[derive(Debug, Default)]
struct Bucket {
    start: u64,
    count: u64,
    errors: u64,
    latency: LatencyHistogram,
}

#[derive(Debug, Default)]
struct Inner {
    traces: HashMap<String, Trace>,
    order: VecDeque<String>,
    untraced_logs: VecDeque<StoredLog>,
    spans: usize,
    logs: usize,
    /// Estimated bytes of every stored span and log record.
    bytes: usize,
    resources: Vec<Arc<Attributes>>,
    series: BTreeMap<Arc<str>, VecDeque<Bucket>>,
    latest: HashMap<(String, String, String), LatestPoint>,
    stats: StoreStats,
}

/// The viewer's memory: a [`Sink`] for the OTLP receiver, and the queries the
/// pages, the API and the terminal ask. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    settings: ViewerSettings,
    inner: Mutex<Inner>,
}

/// Resources remembered for sharing; a fleet has a handful of processes.
const MAX_SHARED_RESOURCES: usize = 256;
/// Larger resources are not remembered: each item holding one counts it.
const MAX_SHARED_RESOURCE_BYTES: usize = 64 << 10;
/// Metric series are kept by count; their strings are cut to these.
const MAX_SERIES_NAME_BYTES: usize = 256;
const MAX_SERIES_ATTRIBUTES_BYTES: usize = 1024;

fn service_of(resource: &Attributes) -> &str {
    resource.str("service.name").unwrap_or("unknown_service")
}

/// Renders an attribute value as a person reads it.
pub fn display_value(value: &AttrValue) -> String {
    match value {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::I64(i) => i.to_string(),
        AttrValue::F64(f) => f.to_string(),
        AttrValue::Bytes(b) => format!("<{} bytes>", b.len()),
        AttrValue::Array(items) => {
            let parts: Vec<String> = items.iter().map(display_value).collect();
            format!("[{}]", parts.join(", "))
        }
        AttrValue::Map(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", display_value(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        AttrValue::Empty => String::new(),
    }
}

impl Store {
    /// An empty store with these bounds.
    pub fn new(limits: Limits, settings: ViewerSettings) -> Store {
        Store {
            limits,
            settings,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// What the viewer was told about the system it shows.
    pub fn settings(&self) -> &ViewerSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the viewer down with it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds received spans.
    pub fn add_spans(&self, spans: Vec<ReceivedSpan>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.stats.spans_received += spans.len() as u64;
        let mut batch_resource = BatchResource::default();
        for mut span in spans {
            let (resource, resource_bytes) =
                batch_resource.share(&mut inner.resources, &span.resource);
            // The span holds the stored resource, so the batch's own copy
            // goes once its items do, and nothing uncounted stays alive.
            span.resource = Arc::clone(&resource);
            let mut bytes = size::span(&span) + resource_bytes;
            let service: Arc<str> = Arc::from(service_of(&resource));
            self.chart(inner, &service, &span);
            for link in &span.links {
                add_incoming(
                    inner,
                    &service,
                    &span,
                    link,
                    self.limits.max_links_per_trace,
                );
            }
            let trace = trace_entry(inner, &span.trace_id);
            trace.error |= matches!(span.status, SpanStatus::Error(_));
            if trace.spans.is_empty() || span.start_unix_nanos < trace.start {
                trace.start = span.start_unix_nanos;
            }
            trace.end = trace.end.max(span.end_unix_nanos);
            if span.parent_span_id.is_none() && trace.root.is_none() {
                bytes += span.name.len();
                trace.root = Some((span.name.clone(), Arc::clone(&service)));
            }
            if !trace.services.iter().any(|s| **s == *service) && trace.services.len() < 64 {
                trace.services.push(Arc::clone(&service));
            }
            for key in &self.settings.key_attributes {
                if !trace.key_attributes.contains_key(key)
                    && let Some(value) = span.attributes.get(key)
                {
                    let shown = display_value(value);
                    bytes += key.len() + shown.len();
                    trace.key_attributes.insert(key.clone(), shown);
                }
            }
            trace.bytes += bytes;
            trace.spans.push(StoredSpan {
                resource,
                service,
                span,
            });
            inner.spans += 1;
            inner.bytes += bytes;
        }
        self.evict(inner);
    }

    /// Adds received log records: those with a trace id go with their trace.
    pub fn add_logs(&self, logs: Vec<ReceivedLog>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.stats.logs_received += logs.len() as u64;
        let mut batch_resource = BatchResource::default();
        for mut log in logs {
            let (resource, resource_bytes) =
                batch_resource.share(&mut inner.resources, &log.resource);
            log.resource = Arc::clone(&resource);
            let bytes = size::log(&log) + resource_bytes;
            let mut stored = StoredLog {
                resource,
                log,
                bytes,
            };
            let added = match stored.log.trace_id.clone() {
                Some(trace_id) => {
                    let trace = trace_entry(inner, &trace_id);
                    for key in &self.settings.key_attributes {
                        if !trace.key_attributes.contains_key(key)
                            && let Some(value) = stored.log.attributes.get(key)
                        {
                            let shown = display_value(value);
                            stored.bytes += key.len() + shown.len();
                            trace.key_attributes.insert(key.clone(), shown);
                        }
                    }
                    let added = stored.bytes;
                    trace.bytes += added;
                    trace.logs.push(stored);
                    added
                }
                None => {
                    let added = stored.bytes;
                    inner.untraced_logs.push_back(stored);
                    added
                }
            };
            inner.bytes += added;
            inner.logs += 1;
        }
        self.evict(inner);
    }

    /// Keeps the latest point of every series, up to the series bound.
    pub fn add_metrics(&self, metrics: Vec<ReceivedMetric>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        for metric in metrics {
            let service = size::clipped(
                service_of(&metric.resource).to_string(),
                MAX_SERIES_NAME_BYTES,
            );
            let name = size::clipped(metric.name.clone(), MAX_SERIES_NAME_BYTES);
            let unit = size::clipped(metric.unit.clone(), MAX_SERIES_NAME_BYTES);
            let rendered =
                |a: &Attributes| size::clipped(render_attributes(a), MAX_SERIES_ATTRIBUTES_BYTES);
            let points: Vec<(String, f64, Option<f64>, u64)> = match &metric.data {
                MetricData::Sum { points, .. } | MetricData::Gauge { points } => points
                    .iter()
                    .map(|p| (rendered(&p.attributes), p.value, None, p.time_unix_nanos))
                    .collect(),
                MetricData::Histogram { points, .. } => points
                    .iter()
                    .map(|p| {
                        (
                            rendered(&p.attributes),
                            p.count as f64,
                            p.sum,
                            p.time_unix_nanos,
                        )
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for (attributes, value, sum, time) in points {
                inner.stats.points_received += 1;
                let key = (service.clone(), name.clone(), attributes);
                if let Some(latest) = inner.latest.get_mut(&key) {
                    latest.value = value;
                    latest.sum = sum;
                    latest.time_unix_nanos = time;
                } else if inner.latest.len() < self.limits.max_series {
                    let point = LatestPoint {
                        service: key.0.clone(),
                        metric: key.1.clone(),
                        unit: unit.clone(),
                        attributes: key.2.clone(),
                        value,
                        sum,
                        time_unix_nanos: time,
                    };
                    inner.latest.insert(key, point);
                } else {
                    inner.stats.points_refused += 1;
                }
            }
        }
    }

    fn chart(&self, inner: &mut Inner, service: &Arc<str>, span: &ReceivedSpan) {
        if !matches!(span.kind, SpanKind::Server | SpanKind::Consumer) {
            return;
        }
        if !inner.series.contains_key(service) && inner.series.len() >= self.limits.max_services {
            return;
        }
        let buckets = inner.series.entry(Arc::clone(service)).or_default();
        let second = span.end_unix_nanos / 1_000_000_000;
        let start = second - second % BUCKET_SECONDS;
        let index = match buckets.iter().rposition(|b| b.start <= start) {
            Some(i) if buckets[i].start == start => i,
            Some(i) => {
                buckets.insert(
                    i + 1,
                    Bucket {
                        start,
                        ..Bucket::default()
                    },
                );
                i + 1
            }
            None if buckets.len() < self.limits.max_buckets => {
                buckets.push_front(Bucket {
                    start,
                    ..Bucket::default()
                });
                0
            }
            // Older than everything kept: the chart has moved on.
            None => return,
        };
        if let Some(bucket) = buckets.get_mut(index) {
            bucket.count += 1;
            if matches!(span.status, SpanStatus::Error(_)) {
                bucket.errors += 1;
            }
            bucket
                .latency
                .record(span.end_unix_nanos.saturating_sub(span.start_unix_nanos));
        }
        while buckets.len() > self.limits.max_buckets {
            buckets.pop_front();
        }
    }

    fn evict(&self, inner: &mut Inner) {
        while inner.spans > self.limits.max_spans
            || inner.traces.len() > self.limits.max_traces
            || inner.logs > self.limits.max_logs
            || inner.bytes > self.limits.max_bytes
        {
            // Untraced log lines go first when logs or bytes overflow.
            if (inner.logs > self.limits.max_logs || inner.bytes > self.limits.max_bytes)
                && let Some(old) = inner.untraced_logs.pop_front()
            {
                inner.logs -= 1;
                inner.bytes -= old.bytes;
                inner.stats.logs_evicted += 1;
                continue;
            }
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(trace) = inner.traces.remove(&oldest) {
                inner.spans -= trace.spans.len();
                inner.logs -= trace.logs.len();
                inner.bytes -= trace.bytes;
                inner.stats.traces_evicted += 1;
                inner.stats.spans_evicted += trace.spans.len() as u64;
                inner.stats.logs_evicted += trace.logs.len() as u64;
                for span in &trace.spans {
                    for link in &span.span.links {
                        if let Some(target) = inner.traces.get_mut(&link.trace_id) {
                            let mut freed = 0;
                            target.linked_from.retain(|l| {
                                let keep = l.trace_id != span.span.trace_id;
                                if !keep {
                                    freed += incoming_bytes(l);
                                }
                                keep
                            });
                            target.bytes -= freed;
                            inner.bytes -= freed;
                        }
                    }
                }
            }
        }
    }

    /// Counts and bounds.
    pub fn stats(&self) -> StoreStats {
        let inner = self.lock();
        StoreStats {
            limits: Some(self.limits),
            traces: inner.traces.len(),
            spans: inner.spans,
            logs: inner.logs,
            series: inner.latest.len(),
            bytes: inner.bytes,
            ..inner.stats.clone()
        }
    }

    /// Trace list, newest (or slowest) first.
    pub fn traces(&self, filter: &TraceFilter) -> Vec<TraceSummary> {
        let limit = filter.limit.unwrap_or(100).min(1000);
        let inner = self.lock();
        let mut out: Vec<TraceSummary> = inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.traces.get(id).map(|t| (id, t)))
            .filter(|(id, t)| self.matches(id, t, filter))
            .map(|(id, t)| summarize(id, t))
            .collect();
        if filter.slowest_first {
            out.sort_by_key(|t| std::cmp::Reverse(t.duration_nanos));
        }
        out.truncate(limit);
        out
    }

    fn matches(&self, id: &str, trace: &Trace, filter: &TraceFilter) -> bool {
        if trace.spans.is_empty() {
            return false;
        }
        if let Some(service) = filter.service.as_deref().filter(|s| !s.is_empty())
            && !trace.services.iter().any(|s| &**s == service)
        {
            return false;
        }
        match filter.status.as_deref() {
            Some("error") if !trace.error => return false,
            Some("ok") if trace.error => return false,
            _ => {}
        }
        if let Some(min) = filter.min_duration_ms
            && trace.end.saturating_sub(trace.start) < min.saturating_mul(1_000_000)
        {
            return false;
        }
        if let Some(search) = filter
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let by_id = id.starts_with(&search.to_ascii_lowercase());
            let by_attribute = trace
                .key_attributes
                .get(&self.settings.search_attribute)
                .is_some_and(|v| v.contains(search));
            if !by_id && !by_attribute {
                return false;
            }
        }
        true
    }

    /// One trace, with its logs and incoming links.
    pub fn trace(&self, trace_id: &str) -> Option<TraceDetail> {
        let inner = self.lock();
        let trace = inner.traces.get(&trace_id.to_ascii_lowercase())?;
        let mut spans: Vec<ReceivedSpan> = trace
            .spans
            .iter()
            .map(|s| {
                let mut span = s.span.clone();
                span.resource = Arc::new(identity(&s.resource));
                span
            })
            .collect();
        spans.sort_by_key(|s| s.start_unix_nanos);
        let mut logs: Vec<ReceivedLog> = trace
            .logs
            .iter()
            .map(|l| with_resource(&l.log, &l.resource))
            .collect();
        logs.sort_by_key(log_time);
        Some(TraceDetail {
            summary: summarize(trace_id, trace),
            spans,
            logs,
            linked_from: trace.linked_from.clone(),
        })
    }

    /// Log records of one trace (or, with `None`, the latest untraced ones), by time.
    pub fn logs(&self, trace_id: Option<&str>, limit: usize) -> Vec<ReceivedLog> {
        let inner = self.lock();
        let mut logs: Vec<ReceivedLog> = match trace_id {
            Some(id) => inner
                .traces
                .get(&id.to_ascii_lowercase())
                .map(|t| {
                    t.logs
                        .iter()
                        .map(|l| with_resource(&l.log, &l.resource))
                        .collect()
                })
                .unwrap_or_default(),
            None => inner
                .untraced_logs
                .iter()
                .rev()
                .take(limit)
                .map(|l| with_resource(&l.log, &l.resource))
                .collect(),
        };
        logs.sort_by_key(log_time);
        logs.truncate(limit);
        logs
    }

    /// Who calls whom, over the stored traces.
    pub fn edges(&self) -> Vec<Edge> {
        let inner = self.lock();
        let mut durations: BTreeMap<(Arc<str>, Arc<str>), EdgeSamples> = BTreeMap::new();
        let (mut first, mut last) = (u64::MAX, 0u64);
        for trace in inner.traces.values() {
            if trace.spans.is_empty() {
                continue;
            }
            first = first.min(trace.start);
            last = last.max(trace.end);
            let by_id: HashMap<&str, &Arc<str>> = trace
                .spans
                .iter()
                .map(|s| (s.span.span_id.as_str(), &s.service))
                .collect();
            for child in &trace.spans {
                let Some(parent) = child.span.parent_span_id.as_deref() else {
                    continue;
                };
                let Some(parent_service) = by_id.get(parent) else {
                    continue;
                };
                if **parent_service == child.service {
                    continue;
                }
                let entry = durations
                    .entry((Arc::clone(parent_service), Arc::clone(&child.service)))
                    .or_default();
                entry.0.push(
                    child
                        .span
                        .end_unix_nanos
                        .saturating_sub(child.span.start_unix_nanos),
                );
                if matches!(child.span.status, SpanStatus::Error(_)) {
                    entry.1 += 1;
                }
            }
        }
        let seconds = (last.saturating_sub(first) as f64 / 1e9).max(1.0);
        durations
            .into_iter()
            .map(|((from, to), (mut d, errors))| {
                d.sort_unstable();
                let p95 = d
                    .get(((d.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
                    .copied()
                    .unwrap_or(0);
                Edge {
                    from: from.to_string(),
                    to: to.to_string(),
                    calls: d.len() as u64,
                    errors,
                    rate_per_second: d.len() as f64 / seconds,
                    p95_ms: p95 as f64 / 1e6,
                }
            })
            .collect()
    }

    /// Request rate, errors and p95 per service over the run.
    pub fn series(&self) -> Vec<ServiceSeries> {
        let inner = self.lock();
        inner
            .series
            .iter()
            .map(|(service, buckets)| ServiceSeries {
                service: service.to_string(),
                points: buckets
                    .iter()
                    .map(|b| SeriesPoint {
                        start_unix_seconds: b.start,
                        rate_per_second: b.count as f64 / BUCKET_SECONDS as f64,
                        errors_per_second: b.errors as f64 / BUCKET_SECONDS as f64,
                        p95_ms: b.latency.quantile(0.95).map(|n| n as f64 / 1e6),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The latest point of every kept series, by service and metric.
    pub fn latest_points(&self, service: Option<&str>) -> Vec<LatestPoint> {
        let inner = self.lock();
        let mut out: Vec<LatestPoint> = inner
            .latest
            .values()
            .filter(|p| service.is_none_or(|s| p.service == s))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (&a.service, &a.metric, &a.attributes).cmp(&(&b.service, &b.metric, &b.attributes))
        });
        out
    }

    /// Ids of every stored trace, oldest first (ask [`Store::trace`] for each).
    pub fn trace_ids(&self) -> Vec<String> {
        self.lock().order.iter().cloned().collect()
    }
}

/// Resource attributes a trace's spans and logs carry out of the store: who
/// sent it. The rest (host, process, SDK) is the same for every span of a
/// process and would multiply the size of every answer and dump.
const RESOURCE_KEYS: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.version",
    "service.instance.id",
    "deployment.environment.name",
];

fn identity(resource: &Attributes) -> Attributes {
    Attributes(
        resource
            .iter()
            .filter(|(k, _)| RESOURCE_KEYS.contains(k))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn with_resource(log: &ReceivedLog, resource: &Arc<Attributes>) -> ReceivedLog {
    let mut log = log.clone();
    log.resource = Arc::new(identity(resource));
    log
}

fn render_attributes(attributes: &Attributes) -> String {
    let parts: Vec<String> = attributes
        .iter()
        .map(|(k, v)| format!("{k}={}", display_value(v)))
        .collect();
    parts.join(",")
}

/// The last resource of a batch that was looked up: the items of one
/// `ResourceSpans` hold one `Arc`, so it is compared with the stored
/// resources once, not once per item.
#[derive(Default)]
struct BatchResource(Option<(Arc<Attributes>, Arc<Attributes>, usize)>);

impl BatchResource {
    fn share(
        &mut self,
        shared: &mut Vec<Arc<Attributes>>,
        resource: &Arc<Attributes>,
    ) -> (Arc<Attributes>, usize) {
        if let Some((batch, stored, bytes)) = &self.0
            && Arc::ptr_eq(batch, resource)
        {
            return (Arc::clone(stored), *bytes);
        }
        let (stored, bytes) = share_resource(shared, resource);
        self.0 = Some((Arc::clone(resource), Arc::clone(&stored), bytes));
        (stored, bytes)
    }
}

/// The item's resource, shared with earlier items where it is the same, and
/// the bytes the item must count for it (0 when shared).
fn share_resource(
    shared: &mut Vec<Arc<Attributes>>,
    resource: &Arc<Attributes>,
) -> (Arc<Attributes>, usize) {
    let bytes = size::attributes(resource);
    if bytes > MAX_SHARED_RESOURCE_BYTES {
        return (Arc::clone(resource), bytes);
    }
    if let Some(known) = shared
        .iter()
        .find(|r| Arc::ptr_eq(r, resource) || ***r == **resource)
    {
        return (Arc::clone(known), 0);
    }
    if shared.len() < MAX_SHARED_RESOURCES {
        shared.push(Arc::clone(resource));
        return (Arc::clone(resource), 0);
    }
    (Arc::clone(resource), bytes)
}

fn trace_entry<'a>(inner: &'a mut Inner, trace_id: &str) -> &'a mut Trace {
    match inner.traces.entry(trace_id.to_string()) {
        Entry::Occupied(trace) => trace.into_mut(),
        Entry::Vacant(slot) => {
            inner.order.push_back(trace_id.to_string());
            // The id is held twice: as the map's key and in the eviction order.
            let bytes = 2 * size::text(trace_id);
            inner.bytes += bytes;
            slot.insert(Trace {
                bytes,
                ..Trace::default()
            })
        }
    }
}

fn add_incoming(
    inner: &mut Inner,
    service: &Arc<str>,
    span: &ReceivedSpan,
    link: &ReceivedLink,
    max: usize,
) {
    // Only links into traces the viewer holds; a link to an evicted or
    // never-seen trace has nothing to show.
    if let Some(target) = inner.traces.get_mut(&link.trace_id)
        && target.linked_from.len() < max
    {
        let incoming = IncomingLink {
            trace_id: span.trace_id.clone(),
            span_id: span.span_id.clone(),
            span_name: size::clipped(span.name.clone(), MAX_SERIES_NAME_BYTES),
            service: service.to_string(),
            target_span_id: link.span_id.clone(),
        };
        let bytes = incoming_bytes(&incoming);
        target.bytes += bytes;
        inner.bytes += bytes;
        target.linked_from.push(incoming);
    }
}

fn incoming_bytes(l: &IncomingLink) -> usize {
    std::mem::size_of::<IncomingLink>()
        + size::text(&l.trace_id)
        + size::text(&l.span_id)
        + size::text(&l.span_name)
        + size::text(&l.service)
        + size::text(&l.target_span_id)
}

fn summarize(trace_id: &str, trace: &Trace) -> TraceSummary {
    let (root_name, root_service) = match &trace.root {
        Some((name, service)) => (name.clone(), service.to_string()),
        None => trace
            .spans
            .iter()
            .min_by_key(|s| s.span.start_unix_nanos)
            .map(|s| (s.span.name.clone(), s.service.to_string()))
            .unwrap_or_default(),
    };
    TraceSummary {
        trace_id: trace_id.to_string(),
        root_name,
        root_service,
        start_unix_nanos: trace.start,
        duration_nanos: trace.end.saturating_sub(trace.start),
        spans: trace.spans.len(),
        logs: trace.logs.len(),
        services: trace.services.iter().map(|s| s.to_string()).collect(),
        error: trace.error,
        key_attributes: trace.key_attributes.clone(),
    }
}

impl Sink for Store {
    fn receive(&self, _request: RequestInfo, batch: Option<Batch>) -> RequestOutcome {
        match batch {
            None => {
                self.lock().stats.invalid_requests += 1;
                RequestOutcome::Invalid
            }
            Some(Batch::Spans(spans)) => {
                self.add_spans(spans);
                RequestOutcome::Accepted
            }
            Some(Batch::Logs(logs)) => {
                self.add_logs(logs);
                RequestOutcome::Accepted
            }
            Some(Batch::Metrics(metrics)) => {
                self.add_metrics(metrics);
                RequestOutcome::Accepted
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use otlp_receiver::{Signal, Transport};
    use prost::Message as _;

    fn batch(span_id: u8) -> Vec<ReceivedSpan> {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("svc".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![span_id; 8],
                        name: "op".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        match Batch::decode(Signal::Traces, Transport::Http, &request.encode_to_vec()) {
            Ok(Batch::Spans(spans)) => spans,
            other => panic!("{other:?}"),
        }
    }

    /// Batches decoded apart carry equal resources in separate allocations;
    /// each stored span holds the one stored resource, so no batch's copy
    /// stays alive uncounted.
    #[test]
    fn spans_hold_the_stored_resource_not_their_batchs_copy() {
        let store = Store::new(Limits::default(), ViewerSettings::default());
        let (first, second) = (batch(1), batch(2));
        assert!(!Arc::ptr_eq(&first[0].resource, &second[0].resource));
        let second_copy = Arc::downgrade(&second[0].resource);
        store.add_spans(first);
        store.add_spans(second);
        let inner = store.lock();
        let spans: Vec<&StoredSpan> = inner.traces.values().flat_map(|t| &t.spans).collect();
        assert_eq!(spans.len(), 2);
        for s in &spans {
            assert!(Arc::ptr_eq(&s.resource, &s.span.resource));
            assert!(Arc::ptr_eq(&s.resource, &spans[0].resource));
        }
        assert!(
            second_copy.upgrade().is_none(),
            "the second batch's resource is still held"
        );
    }
}
