//! A small model of Grafana dashboards (JSON model, schema version 39 as
//! Grafana 11 writes it), so the catalogue states what each panel shows and
//! the layout, ids, datasource references and defaults come out the same
//! everywhere.
//!
//! ```
//! use monitoring::grafana::{Dashboard, Panel, Row, Target, Variable};
//! let d = Dashboard::new("demo", "Demo", "What it answers.")
//!     .variable(Variable::datasource())
//!     .row(Row::new("Requests").panel(
//!         Panel::timeseries("Rate", "Requests per second.", "reqps")
//!             .target(Target::new("sum(rate(x_total[$__rate_interval]))", "rate")),
//!     ));
//! let json = d.to_json();
//! assert_eq!(json["panels"][1]["targets"][0]["expr"], "sum(rate(x_total[$__rate_interval]))");
//! ```

use serde_json::{Value, json};

/// The Prometheus datasource's provisioned uid (deploy/grafana/provisioning).
pub const PROMETHEUS_UID: &str = "prometheus";

/// How dashboards refer to the Prometheus picked in the datasource variable.
fn prometheus_ref() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

/// A dashboard template variable.
#[derive(Clone, Debug)]
pub enum Variable {
    /// `$datasource`: any Prometheus, the provisioned one by default.
    Datasource,
    /// A `label_values(metric, label)` variable.
    LabelValues {
        /// Variable name (`$name` in queries).
        name: &'static str,
        /// Shown label.
        label: &'static str,
        /// Series to read values from, with any filter (`m{a=~"$b"}`).
        series: String,
        /// The label whose values are offered.
        label_name: &'static str,
        /// Several values at once, with "All" (`.*`).
        multi: bool,
        /// The value selected when the dashboard opens (Grafana's first
        /// value, alphabetically, when `None` or when it has no such value).
        default: Option<&'static str>,
    },
}

impl Variable {
    /// The datasource variable.
    pub fn datasource() -> Self {
        Variable::Datasource
    }

    /// One value of `label_name` at a time.
    pub fn single(
        name: &'static str,
        label: &'static str,
        series: impl Into<String>,
        label_name: &'static str,
    ) -> Self {
        Self::label_values(name, label, series.into(), label_name, false)
    }

    /// Any values of `label_name`, "All" by default.
    pub fn multi(
        name: &'static str,
        label: &'static str,
        series: impl Into<String>,
        label_name: &'static str,
    ) -> Self {
        Self::label_values(name, label, series.into(), label_name, true)
    }

    fn label_values(
        name: &'static str,
        label: &'static str,
        series: String,
        label_name: &'static str,
        multi: bool,
    ) -> Self {
        Variable::LabelValues {
            name,
            label,
            series,
            label_name,
            multi,
            default: None,
        }
    }

    /// Opens on `value` (a single-value variable; "All" stays the default
    /// of a multi-value one).
    pub fn default_value(mut self, value: &'static str) -> Self {
        if let Variable::LabelValues { default, .. } = &mut self {
            *default = Some(value);
        }
        self
    }

    fn to_json(&self) -> Value {
        match self {
            Variable::Datasource => json!({
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": { "selected": true, "text": "Prometheus", "value": PROMETHEUS_UID },
                "hide": 0,
                "includeAll": false,
                "multi": false,
                "options": [],
                "refresh": 1,
                "regex": "",
                "skipUrlSync": false
            }),
            Variable::LabelValues {
                name,
                label,
                series,
                label_name,
                multi,
                default,
            } => {
                let query = format!("label_values({series}, {label_name})");
                let mut v = json!({
                    "name": name,
                    "label": label,
                    "type": "query",
                    "datasource": prometheus_ref(),
                    "definition": query,
                    "query": {
                        "qryType": 1,
                        "query": query,
                        "refId": "PrometheusVariableQueryEditor-VariableQuery"
                    },
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "hide": 0,
                    "multi": multi,
                    "includeAll": multi,
                    "current": {},
                    "options": [],
                    "skipUrlSync": false
                });
                if *multi {
                    v["allValue"] = json!(".*");
                    v["current"] =
                        json!({ "selected": true, "text": ["All"], "value": ["$__all"] });
                } else if let Some(value) = default {
                    v["current"] = json!({ "selected": true, "text": value, "value": value });
                }
                v
            }
        }
    }
}

/// One PromQL query of a panel.
#[derive(Clone, Debug)]
pub struct Target {
    expr: String,
    legend: String,
    instant: bool,
    exemplar: bool,
    heatmap: bool,
}

impl Target {
    /// A range query with a legend (`{{label}}` templates allowed).
    pub fn new(expr: impl Into<String>, legend: impl Into<String>) -> Self {
        Target {
            expr: expr.into(),
            legend: legend.into(),
            instant: false,
            exemplar: false,
            heatmap: false,
        }
    }

    /// Histogram buckets for a heatmap (`sum by (le) (rate(…_bucket))`):
    /// Grafana turns the cumulative buckets into counts per bucket.
    pub fn heatmap(mut self) -> Self {
        self.heatmap = true;
        self
    }

    /// An instant query (tables).
    pub fn instant(mut self) -> Self {
        self.instant = true;
        self
    }

    /// Show exemplars (trace links) on this query's series.
    pub fn with_exemplars(mut self) -> Self {
        self.exemplar = true;
        self
    }
}

/// The visualisations the catalogue uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Lines over time.
    TimeSeries,
    /// One big number per series.
    Stat,
    /// Discrete states over time (up/down, healthy/failing).
    StateTimeline,
    /// Rows of an instant query.
    Table,
    /// Histogram buckets over time (a distribution).
    Heatmap,
}

impl Kind {
    fn grafana_type(self) -> &'static str {
        match self {
            Kind::TimeSeries => "timeseries",
            Kind::Stat => "stat",
            Kind::StateTimeline => "state-timeline",
            Kind::Table => "table",
            Kind::Heatmap => "heatmap",
        }
    }
}

/// A panel: what it shows, in which unit, and what "No data" means.
#[derive(Clone, Debug)]
pub struct Panel {
    kind: Kind,
    title: String,
    description: String,
    unit: &'static str,
    targets: Vec<Target>,
    no_value: Option<String>,
    width: u32,
    height: u32,
    min: Option<f64>,
    max: Option<f64>,
    decimals: Option<u32>,
    thresholds: Vec<(f64, &'static str)>,
    threshold_lines: bool,
    mappings: Vec<(&'static str, &'static str, &'static str)>,
    links: Vec<(String, String)>,
}

impl Panel {
    fn new(kind: Kind, title: &str, description: &str, unit: &'static str) -> Self {
        Panel {
            kind,
            title: title.to_string(),
            description: description.to_string(),
            unit,
            targets: Vec::new(),
            no_value: None,
            width: 8,
            height: 8,
            min: None,
            max: None,
            decimals: None,
            thresholds: Vec::new(),
            threshold_lines: false,
            mappings: Vec::new(),
            links: Vec::new(),
        }
    }

    /// A time-series panel.
    pub fn timeseries(title: &str, description: &str, unit: &'static str) -> Self {
        Panel::new(Kind::TimeSeries, title, description, unit)
    }

    /// A stat panel (last value).
    pub fn stat(title: &str, description: &str, unit: &'static str) -> Self {
        Panel::new(Kind::Stat, title, description, unit)
    }

    /// A state timeline.
    pub fn state_timeline(title: &str, description: &str) -> Self {
        Panel::new(Kind::StateTimeline, title, description, "none")
    }

    /// A table of instant values.
    pub fn table(title: &str, description: &str, unit: &'static str) -> Self {
        Panel::new(Kind::Table, title, description, unit)
    }

    /// A heatmap of histogram buckets; `unit` is the buckets' (the y axis).
    pub fn heatmap(title: &str, description: &str, unit: &'static str) -> Self {
        Panel::new(Kind::Heatmap, title, description, unit)
    }

    /// Adds a query.
    pub fn target(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    /// What the panel says instead of "No data", for selections where the
    /// series cannot exist (an engine without a database, no collector).
    pub fn no_value(mut self, text: &str) -> Self {
        self.no_value = Some(text.to_string());
        self
    }

    /// Width in grid columns (24 across; default 8).
    pub fn width(mut self, w: u32) -> Self {
        self.width = w.clamp(1, 24);
        self
    }

    /// Height in grid rows (default 8).
    pub fn height(mut self, h: u32) -> Self {
        self.height = h.max(2);
        self
    }

    /// Axis / colour range.
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }

    /// Axis minimum only.
    pub fn min(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }

    /// Decimals shown (a 99.9% objective needs three).
    pub fn decimals(mut self, d: u32) -> Self {
        self.decimals = Some(d);
        self
    }

    /// Colour steps above a base of green: `(value, colour)`.
    pub fn thresholds(mut self, steps: &[(f64, &'static str)]) -> Self {
        self.thresholds = steps.to_vec();
        self
    }

    /// Draws the thresholds as dashed lines on a time series (an alert's
    /// threshold next to the value it watches).
    pub fn threshold_lines(mut self) -> Self {
        self.threshold_lines = true;
        self
    }

    /// Value → (text, colour) mappings, e.g. `("0", "DOWN", "red")`.
    pub fn mapping(mut self, value: &'static str, text: &'static str, color: &'static str) -> Self {
        self.mappings.push((value, text, color));
        self
    }

    /// A data link on every series (Grafana `${__field.labels.x}` allowed).
    pub fn link(mut self, title: &str, url: &str) -> Self {
        self.links.push((title.to_string(), url.to_string()));
        self
    }

    fn to_json(&self, id: u32, x: u32, y: u32) -> Value {
        let mut steps = vec![json!({ "color": "green", "value": null })];
        steps.extend(
            self.thresholds
                .iter()
                .map(|(v, c)| json!({ "color": c, "value": v })),
        );
        let mut defaults = json!({
            "unit": self.unit,
            "color": { "mode": if self.kind == Kind::TimeSeries { "palette-classic" } else { "thresholds" } },
            "thresholds": { "mode": "absolute", "steps": steps },
            "mappings": [],
            "links": self.links.iter().map(|(t, u)| json!({ "title": t, "url": u })).collect::<Vec<_>>(),
        });
        if let Some(text) = &self.no_value {
            defaults["noValue"] = json!(text);
        }
        if let Some(min) = self.min {
            defaults["min"] = json!(min);
        }
        if let Some(max) = self.max {
            defaults["max"] = json!(max);
        }
        if let Some(d) = self.decimals {
            defaults["decimals"] = json!(d);
        }
        if !self.mappings.is_empty() {
            let options: serde_json::Map<String, Value> = self
                .mappings
                .iter()
                .enumerate()
                .map(|(i, (v, t, c))| (v.to_string(), json!({ "text": t, "color": c, "index": i })))
                .collect();
            defaults["mappings"] = json!([{ "type": "value", "options": options }]);
        }
        let (custom, options) = match self.kind {
            Kind::TimeSeries => (
                json!({
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "spanNulls": false,
                    "axisSoftMin": 0
                }),
                json!({
                    "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                    "tooltip": { "mode": "multi", "sort": "desc" }
                }),
            ),
            Kind::Stat => (
                json!({}),
                json!({
                    "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                    "colorMode": "value",
                    "graphMode": "area",
                    "justifyMode": "auto",
                    "orientation": "auto",
                    "textMode": "auto"
                }),
            ),
            Kind::StateTimeline => (
                json!({ "fillOpacity": 80, "lineWidth": 0 }),
                json!({
                    "mergeValues": true,
                    "showValue": "auto",
                    "rowHeight": 0.9,
                    "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                    "tooltip": { "mode": "single", "sort": "none" }
                }),
            ),
            Kind::Table => (
                json!({ "align": "auto", "cellOptions": { "type": "auto" } }),
                json!({ "showHeader": true, "cellHeight": "sm" }),
            ),
            Kind::Heatmap => (
                json!({
                    "hideFrom": { "legend": false, "tooltip": false, "viz": false },
                    "scaleDistribution": { "type": "linear" }
                }),
                json!({
                    "calculate": false,
                    "cellGap": 1,
                    "color": {
                        "mode": "scheme",
                        "scheme": "Oranges",
                        "steps": 64,
                        "exponent": 0.5,
                        "fill": "dark-orange",
                        "reverse": false,
                        "scale": "exponential"
                    },
                    "filterValues": { "le": 1e-9 },
                    "legend": { "show": true },
                    "rowsFrame": { "layout": "le" },
                    "showValue": "never",
                    "tooltip": { "mode": "single", "yHistogram": true, "showColorScale": false },
                    "yAxis": { "axisPlacement": "left", "reverse": false, "unit": self.unit },
                    "exemplars": { "color": "rgba(255,0,255,0.7)" }
                }),
            ),
        };
        defaults["custom"] = custom;
        if self.threshold_lines {
            defaults["custom"]["thresholdsStyle"] = json!({ "mode": "line" });
        }
        let targets: Vec<Value> = self
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = json!({
                    "refId": ref_id(i),
                    "datasource": prometheus_ref(),
                    "expr": t.expr,
                    "legendFormat": t.legend,
                    "range": !t.instant,
                    "instant": t.instant,
                    "editorMode": "code",
                    "exemplar": t.exemplar
                });
                if t.instant {
                    v["format"] = json!("table");
                }
                if t.heatmap {
                    v["format"] = json!("heatmap");
                }
                v
            })
            .collect();
        let mut panel = json!({
            "id": id,
            "type": self.kind.grafana_type(),
            "title": self.title,
            "description": self.description,
            "datasource": prometheus_ref(),
            "gridPos": { "h": self.height, "w": self.width, "x": x, "y": y },
            "fieldConfig": { "defaults": defaults, "overrides": [] },
            "options": options,
            "targets": targets
        });
        if self.kind == Kind::Table {
            panel["transformations"] =
                json!([{ "id": "organize", "options": { "excludeByName": { "Time": true } } }]);
        }
        panel
    }
}

fn ref_id(i: usize) -> String {
    let letter = char::from(b'A' + (i % 26) as u8);
    if i < 26 {
        letter.to_string()
    } else {
        format!("{letter}{}", i / 26)
    }
}

/// A titled group of panels.
#[derive(Clone, Debug)]
pub struct Row {
    title: String,
    panels: Vec<Panel>,
}

impl Row {
    /// An empty row.
    pub fn new(title: &str) -> Self {
        Row {
            title: title.to_string(),
            panels: Vec::new(),
        }
    }

    /// Adds a panel, placed left to right and wrapped at 24 columns.
    pub fn panel(mut self, panel: Panel) -> Self {
        self.panels.push(panel);
        self
    }
}

/// A dashboard: identity, variables, rows.
#[derive(Clone, Debug)]
pub struct Dashboard {
    uid: &'static str,
    title: &'static str,
    description: &'static str,
    tag: &'static str,
    system: &'static str,
    variables: Vec<Variable>,
    rows: Vec<Row>,
}

/// The tag DelTran's dashboards carry (links between a system's
/// dashboards go by its tag).
pub const TAG: &str = "deltran";

impl Dashboard {
    /// A dashboard with a fixed uid (links and provisioning rely on it).
    pub fn new(uid: &'static str, title: &'static str, description: &'static str) -> Self {
        Dashboard {
            uid,
            title,
            description,
            tag: TAG,
            system: "DelTran",
            variables: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// The system the dashboard belongs to: its tag, and the name its
    /// dropdown of that system's dashboards shows (DelTran by default).
    pub fn system(mut self, tag: &'static str, name: &'static str) -> Self {
        self.tag = tag;
        self.system = name;
        self
    }

    /// Its uid.
    pub fn uid(&self) -> &'static str {
        self.uid
    }

    /// Adds a variable (in display order).
    pub fn variable(mut self, v: Variable) -> Self {
        self.variables.push(v);
        self
    }

    /// Adds a row.
    pub fn row(mut self, row: Row) -> Self {
        self.rows.push(row);
        self
    }

    /// The JSON model Grafana loads.
    pub fn to_json(&self) -> Value {
        let mut panels = Vec::new();
        let mut id = 1;
        let mut y = 0;
        for row in &self.rows {
            panels.push(json!({
                "id": id,
                "type": "row",
                "title": row.title,
                "collapsed": false,
                "gridPos": { "h": 1, "w": 24, "x": 0, "y": y },
                "panels": []
            }));
            id += 1;
            y += 1;
            let (mut x, mut line_height) = (0, 0);
            for p in &row.panels {
                if x + p.width > 24 {
                    x = 0;
                    y += line_height;
                    line_height = 0;
                }
                panels.push(p.to_json(id, x, y));
                id += 1;
                x += p.width;
                line_height = line_height.max(p.height);
            }
            y += line_height;
        }
        json!({
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": [self.tag],
            "timezone": "browser",
            "editable": true,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": { "from": "now-1h", "to": "now" },
            "fiscalYearStartMonth": 0,
            "liveNow": false,
            "weekStart": "",
            "annotations": { "list": [{
                "builtIn": 1,
                "datasource": { "type": "grafana", "uid": "-- Grafana --" },
                "enable": true,
                "hide": true,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard"
            }]},
            "links": [{
                "title": format!("{} dashboards", self.system),
                "type": "dashboards",
                "tags": [self.tag],
                "asDropdown": true,
                "includeVars": true,
                "keepTime": true,
                "icon": "external link",
                "targetBlank": false,
                "tooltip": "",
                "url": ""
            }],
            "templating": { "list": self.variables.iter().map(Variable::to_json).collect::<Vec<_>>() },
            "panels": panels
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn panels_wrap_at_24_columns_below_their_row() {
        let d = Dashboard::new("u", "T", "D").row(
            Row::new("r")
                .panel(Panel::stat("a", "a", "none").width(12))
                .panel(Panel::stat("b", "b", "none").width(12))
                .panel(Panel::stat("c", "c", "none").width(12).height(4)),
        );
        let j = d.to_json();
        let pos: Vec<(u64, u64)> = j["panels"].as_array().unwrap()[1..]
            .iter()
            .map(|p| {
                (
                    p["gridPos"]["x"].as_u64().unwrap(),
                    p["gridPos"]["y"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(pos, [(0, 1), (12, 1), (0, 9)]);
        let ids: Vec<u64> = j["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [1, 2, 3, 4]);
    }

    #[test]
    fn a_single_value_variable_opens_on_its_default() {
        let v = Variable::single("namespace", "Namespace", "m", "service_namespace")
            .default_value("cryptofunk")
            .to_json();
        assert_eq!(v["current"]["value"], "cryptofunk");
        assert_eq!(v["multi"], false);
        let plain = Variable::single("env", "Environment", "m", "x").to_json();
        assert_eq!(plain["current"], json!({}));
    }

    #[test]
    fn a_system_tags_its_dashboards_and_links_them() {
        let d = Dashboard::new("u", "T", "D")
            .system("cryptofunk", "CryptoFunk")
            .to_json();
        assert_eq!(d["tags"], json!(["cryptofunk"]));
        assert_eq!(d["links"][0]["tags"], json!(["cryptofunk"]));
        assert_eq!(d["links"][0]["title"], "CryptoFunk dashboards");
        assert_eq!(
            Dashboard::new("u", "T", "D").to_json()["tags"],
            json!([TAG])
        );
    }

    #[test]
    fn heatmaps_read_buckets_and_thresholds_can_be_lines() {
        let d = Dashboard::new("u", "T", "D").row(
            Row::new("r")
                .panel(
                    Panel::heatmap("h", "d", "percentunit")
                        .target(Target::new("sum by (le) (x_bucket)", "{{le}}").heatmap()),
                )
                .panel(
                    Panel::timeseries("t", "d", "percentunit")
                        .thresholds(&[(0.15, "red")])
                        .threshold_lines()
                        .target(Target::new("x", "x")),
                ),
        );
        let j = d.to_json();
        assert_eq!(j["panels"][1]["type"], "heatmap");
        assert_eq!(j["panels"][1]["targets"][0]["format"], "heatmap");
        assert_eq!(j["panels"][1]["options"]["yAxis"]["unit"], "percentunit");
        assert_eq!(
            j["panels"][2]["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"],
            "line"
        );
        assert_eq!(
            j["panels"][2]["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"],
            0.15
        );
    }

    #[test]
    fn multi_value_variables_offer_all_as_a_regex() {
        let v = Variable::multi("service", "Service", "m", "service_name").to_json();
        assert_eq!(v["allValue"], ".*");
        assert_eq!(v["query"]["query"], "label_values(m, service_name)");
        assert_eq!(v["includeAll"], true);
    }
}
