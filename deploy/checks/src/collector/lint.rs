//! What `otelcol validate` would refuse and what it would let through but
//! an operator would regret, checked on a merged configuration: dangling
//! and unused components, components the slim build lacks, processor
//! order, each tier's duties, sending queues, bindings, production
//! transport security, and undocumented environment variables.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

use super::builder::{Kind, Manifest, module_of};
use super::{Deployment, Environment, Role, env_references, key_path};

/// What the checks compare a configuration with.
#[derive(Clone, Debug)]
pub struct Context {
    /// Environment variables the README documents.
    pub documented_env: BTreeSet<String>,
    /// The builder manifest.
    pub manifest: Manifest,
    /// The latency objective the tail sampler must keep every slower trace of.
    pub latency_objective_ms: u64,
    /// The span attribute carrying a payment's outcome.
    pub payment_outcome_attribute: String,
}

/// Components a tier defines (through the shared base) and deliberately
/// does not run: gateways receive spans the agents already enriched,
/// redacted and counted.
pub fn deliberately_unused(deployment: Deployment) -> &'static [&'static str] {
    match deployment.role {
        Role::Gateway => &[
            "resourcedetection",
            "redaction",
            "transform/redact",
            "spanmetrics",
        ],
        Role::Single | Role::Agent => &[],
    }
}

const TOP_LEVEL: [&str; 6] = [
    "receivers",
    "processors",
    "exporters",
    "connectors",
    "extensions",
    "service",
];

/// Processors that hold data back and release it in batches or after a
/// decision: whatever enriches or masks must run before them.
const BATCHING: [&str; 3] = ["batch", "tail_sampling", "groupbytrace"];
/// Processors that drop traces: span metrics must be fed before them.
const SAMPLING: [&str; 2] = ["tail_sampling", "probabilistic_sampler"];

/// The type of a component id (`otlphttp/loki` → `otlphttp`).
pub fn type_of(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

fn ids(section: &Value) -> Vec<String> {
    section
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// A pipeline: its id and its component lists.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// `traces`, `metrics/spanmetrics`, …
    pub id: String,
    /// Receivers (and connectors feeding it).
    pub receivers: Vec<String>,
    /// Processors, in order.
    pub processors: Vec<String>,
    /// Exporters (and connectors it feeds).
    pub exporters: Vec<String>,
}

impl Pipeline {
    /// The signal (`traces` of `traces/sampled`).
    pub fn signal(&self) -> &str {
        type_of(&self.id)
    }
}

/// The pipelines of a merged configuration.
pub fn pipelines(config: &Value) -> Vec<Pipeline> {
    config["service"]["pipelines"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(id, p)| {
            Some(Pipeline {
                id: id.as_str()?.to_string(),
                receivers: names(&p["receivers"]),
                processors: names(&p["processors"]),
                exporters: names(&p["exporters"]),
            })
        })
        .collect()
}

/// Every problem of `config` as `deployment`, each naming the key and what
/// to change. Empty when the configuration is right.
pub fn lint(config: &Value, deployment: Deployment, context: &Context) -> Vec<String> {
    let mut out = Vec::new();
    top_level(config, &mut out);
    references(config, &mut out);
    unused(config, deployment, &mut out);
    in_manifest(config, &context.manifest, &mut out);
    processor_order(config, &mut out);
    duties(config, deployment, context, &mut out);
    queues(config, deployment, &mut out);
    bindings(config, &mut out);
    if deployment.environment == Environment::Prod {
        production_security(config, &mut out);
    }
    environment_documented(config, context, &mut out);
    own_metrics(config, &mut out);
    out.into_iter()
        .map(|problem| format!("{deployment}: {problem}"))
        .collect()
}

fn top_level(config: &Value, out: &mut Vec<String>) {
    for key in ids(config) {
        if !TOP_LEVEL.contains(&key.as_str()) {
            out.push(format!(
                "top-level key {key:?} is refused by the collector; use one of {TOP_LEVEL:?}"
            ));
        }
    }
}

fn references(config: &Value, out: &mut Vec<String>) {
    let defined = |section: &str| ids(&config[section]);
    let receivers: Vec<String> = [defined("receivers"), defined("connectors")].concat();
    let exporters: Vec<String> = [defined("exporters"), defined("connectors")].concat();
    let processors = defined("processors");
    for p in pipelines(config) {
        for (list, known, what) in [
            (&p.receivers, &receivers, "receiver"),
            (&p.processors, &processors, "processor"),
            (&p.exporters, &exporters, "exporter"),
        ] {
            for id in list {
                if !known.contains(id) {
                    out.push(format!(
                        "service.pipelines.{}: {what} {id:?} is not defined; define it or remove it from the pipeline",
                        p.id
                    ));
                }
            }
        }
        if p.receivers.is_empty() || p.exporters.is_empty() {
            out.push(format!(
                "service.pipelines.{}: needs at least one receiver and one exporter",
                p.id
            ));
        }
    }
    for connector in defined("connectors") {
        let fed = pipelines(config)
            .iter()
            .any(|p| p.exporters.contains(&connector));
        let feeds = pipelines(config)
            .iter()
            .any(|p| p.receivers.contains(&connector));
        if fed != feeds {
            out.push(format!(
                "connectors.{connector}: used as {} only; a connector must end one pipeline and start another",
                if fed { "an exporter" } else { "a receiver" }
            ));
        }
    }
    let enabled = names(&config["service"]["extensions"]);
    let extensions = defined("extensions");
    for id in &enabled {
        if !extensions.contains(id) {
            out.push(format!(
                "service.extensions: {id:?} is not defined under extensions"
            ));
        }
    }
    let mut used = Vec::new();
    extension_uses(config, &mut Vec::new(), &mut used);
    for (path, id) in used {
        if !enabled.contains(&id) {
            out.push(format!(
                "{path} names extension {id:?}, which service.extensions does not start (the overlay must restate the whole list)"
            ));
        }
    }
}

/// Every `authenticator:` and `storage:` value: an extension a component needs running.
fn extension_uses(value: &Value, path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
    if let Some(map) = value.as_mapping() {
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default().to_string();
            path.push(key.clone());
            if (key == "authenticator" || key == "storage")
                && path.first().map(String::as_str) != Some("extensions")
                && let Some(id) = v.as_str()
            {
                out.push((path.join("."), id.to_string()));
            }
            extension_uses(v, path, out);
            path.pop();
        }
    }
}

fn used_ids(config: &Value) -> BTreeSet<String> {
    let mut used: BTreeSet<String> = names(&config["service"]["extensions"])
        .into_iter()
        .collect();
    for p in pipelines(config) {
        used.extend(p.receivers);
        used.extend(p.processors);
        used.extend(p.exporters);
    }
    used
}

fn unused(config: &Value, deployment: Deployment, out: &mut Vec<String>) {
    let used = used_ids(config);
    let allowed = deliberately_unused(deployment);
    for kind in Kind::ALL {
        for id in ids(&config[kind.section()]) {
            let is_used = used.contains(&id);
            if !is_used && !allowed.contains(&id.as_str()) {
                out.push(format!(
                    "{}.{id} is defined but no pipeline or service.extensions uses it; use it, remove it, or list it as deliberately unused",
                    kind.section()
                ));
            }
            if is_used && allowed.contains(&id.as_str()) {
                out.push(format!(
                    "{}.{id} is listed as deliberately unused by this tier but a pipeline runs it",
                    kind.section()
                ));
            }
        }
    }
}

fn in_manifest(config: &Value, manifest: &Manifest, out: &mut Vec<String>) {
    let modules = manifest.component_modules();
    for kind in Kind::ALL {
        for id in ids(&config[kind.section()]) {
            let ty = type_of(&id);
            match module_of(kind, ty) {
                None => out.push(format!(
                    "{}.{id}: component type {ty:?} is unknown to deploy-checks; add its Go module to builder::module_of and to builder-config.yaml",
                    kind.section()
                )),
                Some(module) => {
                    if !modules.contains(&(kind.section().to_string(), module.to_string())) {
                        out.push(format!(
                            "{}.{id}: builder-config.yaml lacks `{module}` under {}; the slim collector would refuse this config",
                            kind.section(),
                            kind.section()
                        ));
                    }
                }
            }
        }
    }
}

/// Manifest modules no configuration uses (the slim build should not carry them).
pub fn manifest_unused(configs: &[&Value], manifest: &Manifest) -> Vec<String> {
    let mut needed = BTreeSet::new();
    for config in configs {
        for kind in Kind::ALL {
            for id in ids(&config[kind.section()]) {
                if let Some(module) = module_of(kind, type_of(&id)) {
                    needed.insert((kind.section().to_string(), module.to_string()));
                }
            }
        }
    }
    manifest
        .component_modules()
        .into_iter()
        .filter(|m| !needed.contains(m))
        .map(|(section, path)| {
            format!("builder-config.yaml: {section} lists {path}, which no configuration uses; remove it")
        })
        .collect()
}

fn processor_order(config: &Value, out: &mut Vec<String>) {
    for p in pipelines(config) {
        if p.processors.first().map(String::as_str) != Some("memory_limiter") {
            out.push(format!(
                "service.pipelines.{}: memory_limiter must be the first processor (it is {:?})",
                p.id,
                p.processors.first()
            ));
        }
        for (i, id) in p.processors.iter().enumerate() {
            let ty = type_of(id);
            if ty == "batch" {
                out.push(format!(
                    "service.pipelines.{}: processor {id}: batch in the exporters' sending_queue.batch instead (a batch processor loses data the queue would keep)",
                    p.id
                ));
            }
            if BATCHING.contains(&ty) {
                for later in &p.processors[i + 1..] {
                    if matches!(
                        type_of(later),
                        "resourcedetection" | "k8sattributes" | "redaction" | "transform"
                    ) {
                        out.push(format!(
                            "service.pipelines.{}: {later} runs after {id}; enrich and mask before anything that batches (k8sattributes needs the sender's connection)",
                            p.id
                        ));
                    }
                }
            }
        }
        let k8s = p
            .processors
            .iter()
            .position(|x| type_of(x) == "k8sattributes");
        let detect = p
            .processors
            .iter()
            .position(|x| type_of(x) == "resourcedetection");
        if let (Some(k), Some(d)) = (k8s, detect)
            && k < d
        {
            out.push(format!(
                "service.pipelines.{}: resourcedetection must run before k8sattributes",
                p.id
            ));
        }
    }
}

fn has(list: &[String], id: &str) -> bool {
    list.iter().any(|x| x == id)
}

fn duties(config: &Value, deployment: Deployment, context: &Context, out: &mut Vec<String>) {
    let pipelines = pipelines(config);
    for p in &pipelines {
        if has(&p.exporters, "spanmetrics") {
            for sampler in &p.processors {
                if SAMPLING.contains(&type_of(sampler)) {
                    out.push(format!(
                        "service.pipelines.{}: feeds spanmetrics after {sampler}; span metrics must count every span, before sampling",
                        p.id
                    ));
                }
            }
        }
        if has(&p.exporters, "debug") && deployment.environment != Environment::Dev {
            out.push(format!(
                "service.pipelines.{}: the debug exporter is for dev only",
                p.id
            ));
        }
        let samples = p.processors.iter().any(|x| type_of(x) == "tail_sampling");
        if samples && deployment.role != Role::Gateway {
            out.push(format!(
                "service.pipelines.{}: tail sampling belongs on the gateway tier, where the load-balancing exporter brings all spans of a trace",
                p.id
            ));
        }
    }
    let signal = |s: &'static str| pipelines.iter().filter(move |p| p.signal() == s);
    match deployment.role {
        Role::Single | Role::Agent => {
            for s in ["traces", "metrics", "logs"] {
                if signal(s).next().is_none() {
                    out.push(format!("service.pipelines: no {s} pipeline"));
                }
            }
            for p in signal("metrics") {
                if !has(&p.processors, "redaction") {
                    out.push(format!(
                        "service.pipelines.{}: lacks redaction; card numbers and IBANs must be masked in every signal, metric attributes too",
                        p.id
                    ));
                }
            }
            for p in signal("traces").chain(signal("logs")) {
                for masking in ["redaction", "transform/redact"] {
                    if !has(&p.processors, masking) {
                        out.push(format!(
                            "service.pipelines.{}: lacks {masking}; card numbers and IBANs must be masked in traces and logs",
                            p.id
                        ));
                    }
                }
            }
            if config["connectors"]["spanmetrics"]["exemplars"]["enabled"].as_bool() != Some(true) {
                out.push(
                    "connectors.spanmetrics.exemplars.enabled must be true: a latency panel links to its traces through them"
                        .to_string(),
                );
            }
            if !signal("traces").any(|p| has(&p.exporters, "spanmetrics"))
                || !signal("metrics").any(|p| has(&p.receivers, "spanmetrics"))
            {
                out.push(
                    "spanmetrics must be fed by the traces pipeline and feed a metrics pipeline"
                        .to_string(),
                );
            }
            for p in &pipelines {
                let enriches = has(&p.processors, "k8sattributes");
                if deployment.in_kubernetes() && !enriches {
                    out.push(format!(
                        "service.pipelines.{}: lacks k8sattributes (Kubernetes environments attach pod, namespace and deployment)",
                        p.id
                    ));
                }
                if !deployment.in_kubernetes() && enriches {
                    out.push(format!(
                        "service.pipelines.{}: k8sattributes outside Kubernetes fails at start (no API server)",
                        p.id
                    ));
                }
            }
        }
        Role::Gateway => {}
    }
    if deployment.role == Role::Agent {
        let lb = &config["exporters"]["loadbalancing"];
        if lb["routing_key"].as_str() != Some("traceID") {
            out.push(
                "exporters.loadbalancing.routing_key must be traceID: all spans of a trace must meet in one gateway"
                    .to_string(),
            );
        }
        if !signal("traces").all(|p| has(&p.exporters, "loadbalancing")) {
            out.push(
                "every traces pipeline of an agent must export through loadbalancing".to_string(),
            );
        }
    }
    if deployment.role == Role::Gateway {
        tail_sampling(config, context, out);
        if !signal("traces").any(|p| p.processors.iter().any(|x| x == "tail_sampling")) {
            out.push("the gateway's traces pipeline must run tail_sampling".to_string());
        }
    }
}

fn tail_sampling(config: &Value, context: &Context, out: &mut Vec<String>) {
    let policies = config["processors"]["tail_sampling"]["policies"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let of_type = |ty: &str| policies.iter().find(|p| p["type"].as_str() == Some(ty));
    match of_type("status_code") {
        Some(p) if names(&p["status_code"]["status_codes"]).contains(&"ERROR".to_string()) => {}
        _ => out.push(
            "processors.tail_sampling: needs a status_code policy keeping ERROR (every error trace)"
                .to_string(),
        ),
    }
    match of_type("latency").and_then(|p| p["latency"]["threshold_ms"].as_u64()) {
        Some(ms) if ms == context.latency_objective_ms => {}
        other => out.push(format!(
            "processors.tail_sampling: the latency policy's threshold_ms is {other:?}; it must equal the latency objective, {} ms (deploy/slo)",
            context.latency_objective_ms
        )),
    }
    let keeps_outcomes = policies.iter().any(|p| {
        p["type"].as_str() == Some("string_attribute")
            && p["string_attribute"]["key"].as_str()
                == Some(context.payment_outcome_attribute.as_str())
            && ["rejected", "held"]
                .iter()
                .all(|o| names(&p["string_attribute"]["values"]).contains(&o.to_string()))
    });
    if !keeps_outcomes {
        out.push(format!(
            "processors.tail_sampling: needs a string_attribute policy on {} keeping rejected and held payments",
            context.payment_outcome_attribute
        ));
    }
    match of_type("probabilistic").and_then(|p| p["probabilistic"]["sampling_percentage"].as_f64())
    {
        Some(pct) if pct > 0.0 && pct < 100.0 => {}
        other => out.push(format!(
            "processors.tail_sampling: needs a probabilistic policy keeping a share (0-100 %) of the rest; found {other:?}"
        )),
    }
}

fn queues(config: &Value, deployment: Deployment, out: &mut Vec<String>) {
    let used = used_ids(config);
    for id in ids(&config["exporters"]) {
        if type_of(&id) == "debug" || !used.contains(&id) {
            continue;
        }
        let exporter = &config["exporters"][id.as_str()];
        let queue = &exporter["sending_queue"];
        let at = |k: &str| key_path(&["exporters", &id, k]);
        if queue["enabled"].as_bool() != Some(true) || !queue["batch"].is_mapping() {
            out.push(format!(
                "{}: needs enabled: true and a batch: block (batching happens in the exporters' queues)",
                at("sending_queue")
            ));
        }
        if let (Some(min), Some(max)) = (
            queue["batch"]["min_size"].as_u64(),
            queue["batch"]["max_size"].as_u64(),
        ) && min > max
        {
            out.push(format!(
                "{}: batch.min_size {min} exceeds batch.max_size {max}",
                at("sending_queue")
            ));
        }
        if exporter["retry_on_failure"]["enabled"].as_bool() != Some(true) {
            out.push(format!("{}: must be enabled", at("retry_on_failure")));
        }
        if deployment.environment == Environment::Prod {
            match queue["storage"].as_str() {
                Some(storage)
                    if type_of(storage) == "file_storage"
                        && config["extensions"][storage]["fsync"].as_bool() == Some(true) => {}
                other => out.push(format!(
                    "{}: prod queues must persist to a file_storage extension with fsync: true (storage is {other:?})",
                    at("sending_queue")
                )),
            }
            let elapsed = exporter["retry_on_failure"]["max_elapsed_time"]
                .as_str()
                .and_then(minutes);
            if elapsed.is_none_or(|m| m < 10) {
                out.push(format!(
                    "{}: max_elapsed_time must outlast a backend outage of minutes (at least 10m)",
                    at("retry_on_failure")
                ));
            }
        }
    }
}

/// `30m`, `1h`, `600s` in whole minutes.
fn minutes(duration: &str) -> Option<u64> {
    let (number, unit) = duration.split_at(duration.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(n / 60),
        "m" => Some(n),
        "h" => Some(n * 60),
        _ => None,
    }
}

fn bindings(config: &Value, out: &mut Vec<String>) {
    const BIND: &str = "${env:COLLECTOR_BIND_ADDRESS}:";
    let protocols = &config["receivers"]["otlp"]["protocols"];
    if protocols["grpc"]["max_recv_msg_size_mib"]
        .as_u64()
        .is_none()
    {
        out.push(
            "receivers.otlp.protocols.grpc.max_recv_msg_size_mib: bound the message size a sender may make the collector decode"
                .to_string(),
        );
    }
    if protocols["http"]["max_request_body_size"]
        .as_u64()
        .is_none()
    {
        out.push(
            "receivers.otlp.protocols.http.max_request_body_size: bound the body size a sender may make the collector read"
                .to_string(),
        );
    }
    for (protocol, settings) in config["receivers"]["otlp"]["protocols"]
        .as_mapping()
        .into_iter()
        .flatten()
    {
        let protocol = protocol.as_str().unwrap_or_default();
        match settings["endpoint"].as_str() {
            Some(e) if e.starts_with(BIND) => {}
            other => out.push(format!(
                "receivers.otlp.protocols.{protocol}.endpoint is {other:?}; bind it explicitly to {BIND}<port> (the collector defaults to localhost, which refuses other containers)"
            )),
        }
    }
    for local in ["pprof", "zpages"] {
        let endpoint = config["extensions"][local]["endpoint"]
            .as_str()
            .unwrap_or_default();
        if !(endpoint.starts_with("127.0.0.1:") || endpoint.starts_with("localhost:")) {
            out.push(format!(
                "extensions.{local}.endpoint is {endpoint:?}; keep it on 127.0.0.1"
            ));
        }
    }
    match config["extensions"]["health_check"]["endpoint"].as_str() {
        Some(e) if e.starts_with(BIND) => {}
        other => out.push(format!(
            "extensions.health_check.endpoint is {other:?}; bind it to {BIND}13133 so probes reach it"
        )),
    }
}

fn insecure_paths(value: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    if let Some(map) = value.as_mapping() {
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default().to_string();
            path.push(key.clone());
            if (key == "insecure" || key == "insecure_skip_verify") && v.as_bool() == Some(true) {
                out.push(path.join("."));
            }
            insecure_paths(v, path, out);
            path.pop();
        }
    }
}

fn production_security(config: &Value, out: &mut Vec<String>) {
    let mut insecure = Vec::new();
    insecure_paths(config, &mut Vec::new(), &mut insecure);
    for path in insecure {
        out.push(format!(
            "{path}: true is not allowed in prod; configure tls"
        ));
    }
    for kind in ["receivers"] {
        for id in ids(&config[kind]) {
            let protocols = &config[kind][id.as_str()]["protocols"];
            for (protocol, settings) in protocols.as_mapping().into_iter().flatten() {
                let protocol = protocol.as_str().unwrap_or_default();
                let at = format!("{kind}.{id}.protocols.{protocol}");
                for key in ["cert_file", "key_file", "client_ca_file"] {
                    if settings["tls"][key].as_str().is_none_or(str::is_empty) {
                        out.push(format!(
                            "{at}.tls.{key} is missing: prod receivers take TLS with client certificates only"
                        ));
                    }
                }
                if settings["auth"]["authenticator"].as_str().is_none() {
                    out.push(format!(
                        "{at}.auth.authenticator is missing: prod receivers require the ingest token"
                    ));
                }
            }
        }
    }
    for id in ids(&config["exporters"]) {
        let exporter = &config["exporters"][id.as_str()];
        let tls = if type_of(&id) == "loadbalancing" {
            &exporter["protocol"]["otlp"]["tls"]
        } else {
            &exporter["tls"]
        };
        if tls["ca_file"].as_str().is_none_or(str::is_empty) {
            out.push(format!(
                "exporters.{id}: prod exporters verify their backend: set tls.ca_file"
            ));
        }
        if let Some(endpoint) = exporter["endpoint"].as_str()
            && endpoint.starts_with("http://")
        {
            out.push(format!(
                "exporters.{id}.endpoint {endpoint:?} is plain HTTP in prod; use https://"
            ));
        }
    }
}

fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Sequence(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Mapping(map) => map.iter().for_each(|(_, v)| strings(v, out)),
        Value::Tagged(tagged) => strings(&tagged.value, out),
        _ => {}
    }
}

/// Every environment variable the merged configuration reads: `${env:…}`
/// references, and the variable `k8sattributes` takes the node name from.
pub fn environment_variables(config: &Value) -> BTreeSet<String> {
    let mut all = Vec::new();
    strings(config, &mut all);
    let mut vars: BTreeSet<String> = all
        .iter()
        .flat_map(|s| env_references(s))
        .map(|r| r.name)
        .collect();
    for id in ids(&config["processors"]) {
        if let Some(var) = config["processors"][id.as_str()]["filter"]["node_from_env_var"].as_str()
        {
            vars.insert(var.to_string());
        }
    }
    vars
}

fn environment_documented(config: &Value, context: &Context, out: &mut Vec<String>) {
    for var in environment_variables(config) {
        if !context.documented_env.contains(&var) {
            out.push(format!(
                "reads environment variable {var}, which otel-collector/README.md does not document; add it to the table with what sets it"
            ));
        }
    }
}

fn own_metrics(config: &Value, out: &mut Vec<String>) {
    let exported = config["service"]["telemetry"]["metrics"]["readers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .any(|r| r["pull"]["exporter"]["prometheus"]["port"].as_u64() == Some(8888));
    if !exported {
        out.push(
            "service.telemetry.metrics.readers: the collector's own metrics must be served for Prometheus (pull, prometheus exporter, port 8888)"
                .to_string(),
        );
    }
}
