//! The collector configurations of `otel-collector/`, merged per collector
//! as the collector merges them, linted, checked against the builder
//! manifest, the dashboards, the SLO and the gateway, and their masking
//! applied to a corpus. Each lint is also shown to catch what it claims on
//! a broken copy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use deploy_checks::collector::builder::Manifest;
use deploy_checks::collector::lint::{Context, environment_variables, lint, manifest_unused};
use deploy_checks::collector::redaction::{
    MASK, OTTL_TARGETS, Redactor, blocked_values, ottl_masks, to_rust,
};
use deploy_checks::collector::{Deployment, config_dir, load};
use serde_yaml_ng::Value;

/// The variables in the README's table, each with what it is and what
/// sets it: a row without either fails here.
fn documented_env() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(config_dir().join("README.md")).unwrap();
    let mut names = BTreeSet::new();
    for line in readme.lines() {
        let Some(name) = line
            .strip_prefix("| `")
            .and_then(|l| l.split('`').next())
            .filter(|name| {
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
        else {
            continue;
        };
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert!(
            cells.len() == 4 && cells[1..].iter().all(|c| !c.is_empty()),
            "README row for {name} needs who reads it, what it is and what sets it: {line}"
        );
        names.insert(name.to_string());
    }
    names
}

/// The gateway's latency objective, from the SLO file the alerts are generated from.
fn latency_objective_ms() -> u64 {
    let slo: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            deploy_checks::repo_root().join("deploy/slo/gateway-payments.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let latency = slo["slos"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|s| s["sli"]["latency"].as_mapping())
        .expect("a latency SLO");
    // Seconds, as the histogram's buckets are.
    let seconds = latency
        .get("threshold")
        .and_then(Value::as_f64)
        .expect("latency.threshold in seconds");
    (seconds * 1000.0).round() as u64
}

fn context() -> Context {
    Context {
        documented_env: documented_env(),
        manifest: Manifest::read(&config_dir().join("builder-config.yaml")).unwrap(),
        latency_objective_ms: latency_objective_ms(),
        payment_outcome_attribute: deltran_fleet::engines::gateway::PAYMENT_OUTCOME.to_string(),
    }
}

fn loaded(deployment: Deployment) -> Value {
    load(deployment).unwrap_or_else(|e| panic!("{deployment}: {e}"))
}

fn deployment(name: &str) -> Deployment {
    *Deployment::ALL
        .iter()
        .find(|d| d.to_string() == name)
        .unwrap()
}

#[test]
fn every_collector_merged_passes_the_lint_and_the_manifest_holds_exactly_its_components() {
    let context = context();
    let configs: Vec<Value> = Deployment::ALL.iter().map(|d| loaded(*d)).collect();
    let mut problems = context.manifest.problems();
    for (d, config) in Deployment::ALL.iter().zip(&configs) {
        problems.extend(lint(config, *d, &context));
    }
    problems.extend(manifest_unused(
        &configs.iter().collect::<Vec<_>>(),
        &context.manifest,
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Where a real collector is installed, it has the last word.
    if let Some(otelcol) = which("otelcol-contrib") {
        for d in Deployment::ALL {
            let mut cmd = Command::new(&otelcol);
            cmd.arg("validate").current_dir(config_dir());
            for file in d.files() {
                cmd.arg(format!("--config={file}"));
            }
            for var in environment_variables(&loaded(d)) {
                cmd.env(var, "collector.invalid");
            }
            cmd.env("COLLECTOR_BIND_ADDRESS", "127.0.0.1");
            let out = testkit::run_command(cmd, None, Duration::from_secs(60)).unwrap();
            assert!(out.status.success(), "{d}: {}", out.combined());
        }
    } else {
        eprintln!("otelcol-contrib is not on the PATH: `otelcol-contrib validate` not run");
    }
}

fn which(binary: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(binary))
            .find(|p| p.is_file())
    })
}

#[test]
fn overlays_replace_lists_and_merge_maps_as_the_collector_does() {
    let base = deploy_checks::collector::read_yaml(&config_dir().join("base.yaml")).unwrap();
    let prod = loaded(deployment("prod agent"));
    // The extensions list is the overlay's, whole: base's three are restated, not appended to.
    let list = |v: &Value| -> Vec<String> {
        v["service"]["extensions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list(&base), ["health_check", "pprof", "zpages"]);
    assert_eq!(
        list(&prod),
        [
            "health_check",
            "pprof",
            "zpages",
            "bearertokenauth/ingest",
            "file_storage/queue"
        ]
    );
    // A map gains the overlay's keys and keeps base's.
    let grpc = &prod["receivers"]["otlp"]["protocols"]["grpc"];
    assert_eq!(
        grpc["endpoint"].as_str(),
        Some("${env:COLLECTOR_BIND_ADDRESS}:4317")
    );
    assert_eq!(
        grpc["tls"]["client_ca_file"].as_str(),
        Some("/etc/otelcol/tls/ca.crt")
    );
    assert_eq!(grpc["max_recv_msg_size_mib"].as_u64(), Some(16));
    // Anchors are resolved as the collector resolves them.
    assert_eq!(
        prod["exporters"]["otlphttp/loki"]["sending_queue"]["storage"].as_str(),
        Some("file_storage/queue")
    );
    // Without the overlay there is no pipeline at all (base alone is not a collector).
    assert!(base["service"]["pipelines"].is_null());
}

/// Applies `mutate` to a copy of `name`'s merged config and requires a
/// problem containing `expected`.
fn caught(name: &str, expected: &str, mutate: impl FnOnce(&mut Value)) {
    let context = context();
    let d = deployment(name);
    let clean = loaded(d);
    assert!(lint(&clean, d, &context).is_empty());
    let mut broken = clean.clone();
    mutate(&mut broken);
    let problems = lint(&broken, d, &context);
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "{name}: expected a problem containing {expected:?}, got {problems:#?}"
    );
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

fn processors<'a>(config: &'a mut Value, pipeline: &str) -> &'a mut Vec<Value> {
    config["service"]["pipelines"][pipeline]["processors"]
        .as_sequence_mut()
        .unwrap()
}

#[test]
fn the_lint_catches_each_thing_it_claims_to() {
    caught("prod agent", "memory_limiter must be the first", |c| {
        processors(c, "traces").remove(0);
    });
    caught("staging gateway", "memory_limiter must be the first", |c| {
        processors(c, "traces").reverse();
    });
    caught("prod agent", "not allowed in prod", |c| {
        c["exporters"]["loadbalancing"]["protocol"]["otlp"]["tls"]["insecure"] = Value::Bool(true);
    });
    caught("prod gateway", "auth.authenticator is missing", |c| {
        c["receivers"]["otlp"]["protocols"]["http"]
            .as_mapping_mut()
            .unwrap()
            .remove("auth");
    });
    caught("prod agent", "client_ca_file is missing", |c| {
        c["receivers"]["otlp"]["protocols"]["grpc"]["tls"]
            .as_mapping_mut()
            .unwrap()
            .remove("client_ca_file");
    });
    caught("prod agent", "set tls.ca_file", |c| {
        c["exporters"]["otlphttp/loki"]
            .as_mapping_mut()
            .unwrap()
            .remove("tls");
    });
    caught("prod agent", "service.extensions does not start", |c| {
        c["service"]["extensions"] = yaml("[health_check, pprof, zpages, bearertokenauth/ingest]");
    });
    caught("dev", "is not defined", |c| {
        c["service"]["pipelines"]["logs"]["exporters"] = yaml("[otlphttp/lokii]");
    });
    caught("dev", "defined but no pipeline", |c| {
        c["processors"]["filter/unused"] = yaml("{}");
    });
    caught("staging agent", "sending_queue.batch instead", |c| {
        c["processors"]["batch"] = yaml("{}");
        processors(c, "logs").push(yaml("batch"));
    });
    caught("staging gateway", "runs after tail_sampling", |c| {
        c["processors"]["resource/late"] = yaml("{}");
        c["processors"]["k8sattributes"] = yaml("{}");
        processors(c, "traces").push(yaml("k8sattributes"));
    });
    caught("staging agent", "before sampling", |c| {
        c["processors"]["tail_sampling"] = yaml("{policies: []}");
        processors(c, "traces").push(yaml("tail_sampling"));
    });
    caught(
        "staging agent",
        "tail sampling belongs on the gateway tier",
        |c| {
            c["processors"]["tail_sampling"] = yaml("{policies: []}");
            processors(c, "logs").push(yaml("tail_sampling"));
        },
    );
    caught("prod agent", "debug exporter is for dev only", |c| {
        c["exporters"]["debug"] = yaml("{}");
        c["service"]["pipelines"]["logs"]["exporters"] = yaml("[otlphttp/loki, debug]");
    });
    caught("prod gateway", "fsync: true", |c| {
        c["extensions"]["file_storage/queue"]["fsync"] = Value::Bool(false);
    });
    caught("prod gateway", "at least 10m", |c| {
        c["exporters"]["otlp/tempo"]["retry_on_failure"]["max_elapsed_time"] = yaml("2m");
    });
    caught("dev", "bind it explicitly", |c| {
        c["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = yaml("localhost:4318");
    });
    caught("dev", "keep it on 127.0.0.1", |c| {
        c["extensions"]["zpages"]["endpoint"] = yaml("0.0.0.0:55679");
    });
    caught("staging agent", "lacks redaction", |c| {
        processors(c, "logs").retain(|p| p.as_str() != Some("redaction"));
    });
    caught("prod agent", "masked in every signal", |c| {
        processors(c, "metrics").retain(|p| p.as_str() != Some("redaction"));
    });
    caught("dev", "max_request_body_size", |c| {
        c["receivers"]["otlp"]["protocols"]["http"]
            .as_mapping_mut()
            .unwrap()
            .remove("max_request_body_size");
    });
    caught("staging agent", "lacks k8sattributes", |c| {
        processors(c, "metrics").retain(|p| p.as_str() != Some("k8sattributes"));
    });
    caught("dev", "outside Kubernetes", |c| {
        c["processors"]["k8sattributes"] = yaml("{}");
        processors(c, "traces").insert(2, yaml("k8sattributes"));
    });
    caught("staging agent", "routing_key must be traceID", |c| {
        c["exporters"]["loadbalancing"]["routing_key"] = yaml("service");
    });
    caught("staging gateway", "latency objective", |c| {
        let policies = c["processors"]["tail_sampling"]["policies"]
            .as_sequence_mut()
            .unwrap();
        for p in policies {
            if p["type"].as_str() == Some("latency") {
                p["latency"]["threshold_ms"] = yaml("1000");
            }
        }
    });
    caught("prod gateway", "keeping rejected and held", |c| {
        let policies = c["processors"]["tail_sampling"]["policies"]
            .as_sequence_mut()
            .unwrap();
        policies.retain(|p| p["type"].as_str() != Some("string_attribute"));
    });
    caught("dev", "does not document", |c| {
        c["exporters"]["otlp/tempo"]["endpoint"] = yaml("${env:TEMPO_ENDPOINT_TYPO}");
    });
    caught("dev", "exemplars.enabled must be true", |c| {
        c["connectors"]["spanmetrics"]["exemplars"]["enabled"] = yaml("false");
    });
    caught("dev", "own metrics", |c| {
        c["service"]["telemetry"]["metrics"] = yaml("{level: normal}");
    });
    caught("dev", "component type \"zipkin\" is unknown", |c| {
        c["exporters"]["zipkin"] = yaml("{}");
        c["service"]["pipelines"]["traces"]["exporters"] = yaml("[spanmetrics, zipkin]");
    });

    // The manifest: a component the configs use, removed, is reported for it.
    let context = context();
    let mut manifest = context.manifest.clone();
    manifest
        .modules
        .retain(|m| !m.path.ends_with("/tailsamplingprocessor"));
    let problems = lint(
        &loaded(deployment("prod gateway")),
        deployment("prod gateway"),
        &Context {
            manifest,
            ..context.clone()
        },
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("builder-config.yaml lacks") && p.contains("tailsamplingprocessor")),
        "{problems:#?}"
    );
    // ... and one nothing uses is reported too.
    let mut manifest = context.manifest.clone();
    manifest
        .modules
        .push(deploy_checks::collector::builder::Module {
            section: "exporters".into(),
            path:
                "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/zipkinexporter"
                    .into(),
            version: "0.136.0".into(),
        });
    let configs: Vec<Value> = Deployment::ALL.iter().map(|d| loaded(*d)).collect();
    let unused = manifest_unused(&configs.iter().collect::<Vec<_>>(), &manifest);
    assert_eq!(unused.len(), 1, "{unused:#?}");
    // ... and a module off the pinned release.
    let mut manifest = context.manifest.clone();
    manifest.modules[0].version = "0.135.0".into();
    assert!(
        manifest
            .problems()
            .iter()
            .any(|p| p.contains("pin it to v0.136.0"))
    );
}

#[test]
fn every_documented_variable_is_read_by_some_collector() {
    let read: BTreeSet<String> = Deployment::ALL
        .iter()
        .flat_map(|d| environment_variables(&loaded(*d)))
        .collect();
    // Read by the collector runtime itself, not through ${env:}.
    let runtime = ["OTEL_RESOURCE_ATTRIBUTES", "GOMEMLIMIT"];
    for var in documented_env() {
        assert!(
            read.contains(&var) || runtime.contains(&var.as_str()),
            "otel-collector/README.md documents {var}, which no configuration reads"
        );
    }
    assert!(read.contains("COLLECTOR_BIND_ADDRESS") && read.contains("K8S_NODE_NAME"));
}

#[test]
fn the_masking_patterns_are_the_same_in_both_processors_and_cover_every_target() {
    for d in Deployment::ALL {
        let config = loaded(d);
        let uses_masking = config["service"]["pipelines"]["traces"]["processors"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == Some("redaction"));
        if !uses_masking {
            continue;
        }
        let patterns = blocked_values(&config);
        assert_eq!(
            patterns.len(),
            3,
            "{d}: card (contiguous, grouped) and IBAN"
        );
        assert_eq!(
            config["processors"]["redaction"]["redact_all_types"].as_bool(),
            Some(true),
            "{d}: numbers must be masked too"
        );
        let masks = ottl_masks(&config).unwrap();
        for m in &masks {
            assert_eq!(m.replacement, MASK, "{m:?}");
            assert!(
                patterns.contains(&m.pattern),
                "{d}: transform/redact pattern differs from the redaction processor's: {:?}",
                m.pattern
            );
        }
        // Every target gets every pattern, in the processor's order (it matters:
        // IBANs before grouped card numbers).
        for (context, target) in OTTL_TARGETS {
            let applied: Vec<&String> = masks
                .iter()
                .filter(|m| m.context == context && m.target == target)
                .map(|m| &m.pattern)
                .collect();
            assert_eq!(
                applied,
                patterns.iter().collect::<Vec<_>>(),
                "{d}: transform/redact on {context} {target} must apply the redaction patterns, in order"
            );
        }
    }
}

#[test]
fn masking_hides_every_card_number_and_iban_and_touches_nothing_else() {
    // The redaction processor keeps its patterns in a Go map: it applies
    // them in any order. Every order must give the same, complete masking.
    let patterns = blocked_values(&loaded(deployment("dev")));
    let orders = permutations(&patterns);
    assert_eq!(orders.len(), 6);
    for order in orders {
        let redactor = Redactor::new(&order).unwrap();
        masking_corpus(&redactor, &order);
    }
}

fn permutations(items: &[String]) -> Vec<Vec<String>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            out.push(tail);
        }
    }
    out
}

fn masking_corpus(redactor: &Redactor, order: &[String]) {
    let order: Vec<&str> = order.iter().map(|p| &p[..p.len().min(24)]).collect();
    let masked = [
        // Visa 13, 16, 19; Mastercard 51-55 and 2221-2720; Amex; Discover
        // 6011, 644-649, 65; Diners 30x, 36, 38; JCB; UnionPay.
        "4222222222222",
        "4111111111111111",
        "4012888888881881",
        "4000056655665556",
        "4111111111111111003",
        "5555555555554444",
        "5105105105105100",
        "2223003122003222",
        "2720991234567890",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "6011000990139424",
        "6445644564456445",
        "6500000000000002",
        "30569309025904",
        "36227206271667",
        "38520000023237",
        "3530111333300000",
        "3566002020360505",
        "6200000000000005",
        "6212345678901265",
        // Grouped as printed on cards and typed into forms.
        "4111 1111 1111 1111",
        "5555-5555-5555-4444",
        "6011 0009 9013 9424",
        "3782 822463 10005",
        "3714-496353-98431",
        "4111 1111 1111 1111 003",
        // IBANs, electronic and print format.
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "CH9300762011623852957",
        "ES9121000418450200051332",
        "IT60X0542811101000000123456",
        "MT84MALT011000012345MTLCAST001S",
    ];
    for value in masked {
        assert_eq!(
            redactor.mask(value),
            MASK,
            "{value:?} not masked whole (patterns in order {order:?})"
        );
    }
    // In running text only the number goes.
    for (text, expected) in [
        (
            "paid with 4111 1111 1111 1111 today",
            "paid with **** today",
        ),
        ("card=4111111111111111;exp=12/29", "card=****;exp=12/29"),
        (r#"{"pan":"5555555555554444"}"#, r#"{"pan":"****"}"#),
        (
            "refund to DE89 3704 0044 0532 0130 00, ref 42",
            "refund to ****, ref 42",
        ),
        (
            "from GB82WEST12345698765432 to FR1420041010050500013M02606.",
            "from **** to ****.",
        ),
        (
            "payment failed: card 378282246310005 declined (amount 1200.50 EUR)",
            "payment failed: card **** declined (amount 1200.50 EUR)",
        ),
    ] {
        assert_eq!(redactor.mask(text), expected, "order {order:?}");
    }
    // Card numbers stored as numbers (redact_all_types).
    for n in [4111111111111111_i64, 378282246310005, 5555555555554444] {
        assert_eq!(redactor.mask_number(n).as_deref(), Some(MASK), "{n}");
        // The same card stored as a double (exact below 2^53).
        assert_eq!(
            redactor.mask_double(n as f64).as_deref(),
            Some(MASK),
            "{n} as a double"
        );
    }

    let untouched = [
        // Trace and span ids, all-digit ones included.
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00000000000000000000000000000001",
        "41111111111111111111111111111111",
        "00f067aa0ba902b7",
        "4111aaaa11111111",
        // UUIDs, all-digit ones included.
        "123e4567-e89b-12d3-a456-426614174000",
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-4234-8234-123456789012",
        "12345678-2345-4345-8345-234567890123",
        // Amounts, counts, timestamps (s, ms, ns), dates.
        "1234.56",
        "1000000",
        "99999999.99",
        "EUR 1,234,567.89",
        "1732900000",
        "1732900000000",
        "1732900000000000000",
        "2026-11-29T22:10:26.123456789Z",
        "2026-11-29 22:10:26",
        // Other identifiers that look numeric or bank-like.
        "1234567890123456",
        "9000000000000001",
        "ORD-2026-000123",
        "DEUTDEFF",
        "BNPAFRPP500",
        "+49 30 1234 5678",
        "192.168.100.200",
        "STATUS_CODE_ERROR",
        "POST /payments/{id}",
        "deltran.payment.amount",
        "DE89",
        "GB82 WEST",
        "k8s.pod.uid=7d6a0b0e-4b7e-4a51-9a0b-2f7c1d0e4a11",
        "service.version=1.4.2",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ];
    for value in untouched {
        assert_eq!(
            redactor.mask(value),
            value,
            "{value:?} must not be touched (order {order:?})"
        );
    }
    for n in [
        1732900000000_i64,
        1732900000000000000,
        1500000,
        1234567890123456,
    ] {
        assert_eq!(redactor.mask_number(n), None, "{n}");
    }
    for x in [1234.56, 0.000001, 1e21, 4.111111111111111e30, 99999999.99] {
        assert_eq!(redactor.mask_double(x), None, "{x}");
    }
}

#[test]
fn patterns_are_held_to_what_re2_and_rust_read_alike() {
    for bad in [
        r"\d{16}", r"\w+", r"\s", r"(?=4)", r"(?!x)", r"(a)\1", r"\pL",
    ] {
        assert!(to_rust(bad).is_err(), "{bad} must be refused");
    }
    // \b is ASCII in RE2: a digit run after a non-ASCII letter starts at a
    // word boundary there. Translated, Rust agrees; Rust's own \b does not.
    let text = "é4111111111111111";
    let translated = regex::Regex::new(&to_rust(r"\b4[0-9]{15}\b").unwrap()).unwrap();
    let unicode = regex::Regex::new(r"\b4[0-9]{15}\b").unwrap();
    assert!(translated.is_match(text));
    assert!(!unicode.is_match(text));
}

#[test]
fn span_metrics_arrive_under_the_names_the_dashboards_query() {
    use monitoring::push_path::{Kind, prometheus_names};
    let base = deploy_checks::collector::read_yaml(&config_dir().join("base.yaml")).unwrap();
    let spanmetrics = &base["connectors"]["spanmetrics"];
    let namespace = spanmetrics["namespace"].as_str().unwrap();
    let unit = spanmetrics["histogram"]["unit"].as_str().unwrap();
    let duration = prometheus_names(&format!("{namespace}.duration"), unit, Kind::Histogram);
    let calls = prometheus_names(&format!("{namespace}.calls"), "", Kind::MonotonicSum);
    let dashboards = deploy_checks::repo_root().join("deploy/grafana/dashboards");
    let mut all = String::new();
    for entry in std::fs::read_dir(dashboards).unwrap() {
        all.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for name in [&duration[0], &calls[0]] {
        assert!(
            all.contains(name.as_str()),
            "no dashboard queries {name}: the collector's span metrics and the panels disagree"
        );
    }
    assert_eq!(duration[0], "traces_span_metrics_duration_seconds_bucket");
}
