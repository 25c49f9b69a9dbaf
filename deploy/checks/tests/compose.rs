//! `deploy/compose/`: the compose file follows the compose specification,
//! and its files agree with each other and with the configurations it
//! mounts (collector, Prometheus, Grafana, Tempo, Loki) — checked offline,
//! since Docker does not run here.
//!
//! Every check is also run on a copy of the files with one mistake put in,
//! and must then fail with a message naming the file and what to change:
//! a check that cannot fail proves nothing.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

use deploy_checks::compose::{
    Check, ComposeError, Finding, Kind, Protocol, Stack, check_all, check_collector,
    check_collector_exporters, check_dockerfiles, check_engines, check_grafana, check_healthchecks,
    check_images_pinned, check_mounts, check_postgres, check_prometheus_targets,
    check_published_ports, compose_file, dockerfile_findings, validate_schema,
};
use deploy_checks::repo_root;
use tempfile::TempDir;

/// What a copy needs so that every relative path in compose.yaml resolves
/// as in the repository.
const STACK_PATHS: [&str; 6] = [
    "deploy/compose",
    "deploy/prometheus",
    "deploy/grafana",
    "deploy/alertmanager",
    "otel-collector",
    ".dockerignore",
];

fn copy_recursively(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create directory in the copy");
        for entry in std::fs::read_dir(from).expect("read directory") {
            let entry = entry.expect("directory entry");
            copy_recursively(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).expect("copy file");
    }
}

/// A copy of the stack's files in a temporary directory, same layout.
fn copy_stack() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("compose-check-")
        .tempdir()
        .expect("temporary directory");
    for path in STACK_PATHS {
        let to = dir.path().join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        copy_recursively(&repo_root().join(path), &to);
    }
    dir
}

/// Replaces the one occurrence of `from` in the copy's `file`.
fn edit(root: &Path, file: &str, from: &str, to: &str) {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).expect("read file to edit");
    assert_eq!(
        text.matches(from).count(),
        1,
        "{file} should contain {from:?} exactly once (did the file change? update this test)"
    );
    std::fs::write(&path, text.replace(from, to)).expect("write edited file");
}

/// A mistake to put into a copy of the stack: in `file`, `from` becomes `to`.
type Edit<'a> = (&'a str, &'a str, &'a str);

/// A copy of the stack with `edits` applied, loaded.
fn mutated(edits: &[Edit<'_>]) -> (TempDir, Stack) {
    let dir = copy_stack();
    for (file, from, to) in edits {
        edit(dir.path(), file, from, to);
    }
    let stack = Stack::load(&dir.path().join("deploy/compose/compose.yaml"))
        .expect("the mutated compose file still parses");
    (dir, stack)
}

fn findings(result: Result<(), ComposeError>) -> Vec<Finding> {
    match result {
        Ok(()) => panic!("the check passed, but the copy has a mistake it should find"),
        Err(ComposeError::Findings(f)) => f,
        Err(other) => panic!("expected findings, got {other}"),
    }
}

/// Asserts that some finding names `file` (path suffix) and says every one
/// of `needles`.
fn assert_found(found: &[Finding], file: &str, needles: &[&str]) {
    assert!(
        found
            .iter()
            .any(|f| f.file.ends_with(file) && needles.iter().all(|n| f.message.contains(n))),
        "no finding on {file} saying {needles:?}; got:\n{}",
        found
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Asserts that `result` failed with a finding on `file` saying `needles`.
fn assert_finding(result: Result<(), ComposeError>, file: &str, needles: &[&str]) {
    assert_found(&findings(result), file, needles);
}

/// Puts `edits` into a copy of the stack and asserts that `check` then
/// reports a finding on `file` saying every one of `needles`.
fn assert_catches(check: Check, edits: &[Edit<'_>], file: &str, needles: &[&str]) {
    let (_dir, stack) = mutated(edits);
    assert_finding(check(&stack), file, needles);
}

fn real_stack() -> Stack {
    Stack::load(&compose_file()).expect("deploy/compose/compose.yaml parses")
}

const COMPOSE: &str = "deploy/compose/compose.yaml";

// ------------------------------------------------------------- schema

#[test]
fn the_compose_file_follows_the_compose_specification() {
    validate_schema(&compose_file()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_schema_check_fails_on_an_unknown_key() {
    // In a service, and in the shared engine block merged into eight.
    for (from, to, key) in [
        (
            "  grafana:\n    image:",
            "  grafana:\n    restart_policy: always\n    image:",
            "restart_policy",
        ),
        (
            "x-engine: &engine\n",
            "x-engine: &engine\n  healthcheck_interval: 5s\n",
            "healthcheck_interval",
        ),
    ] {
        let (dir, _) = mutated(&[(COMPOSE, from, to)]);
        match validate_schema(&dir.path().join(COMPOSE)) {
            Err(ComposeError::Schema { output, .. }) => {
                assert!(
                    output.contains(key),
                    "the schema error should name {key}: {output}"
                );
            }
            other => panic!("an unknown key must fail the schema check, got {other:?}"),
        }
    }
}

// ------------------------------------------------------- the real files

#[test]
fn the_shipped_stack_passes_every_check() {
    check_all(&real_stack()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_stack_runs_every_engine_and_backend() {
    let stack = real_stack();
    let engines: Vec<String> = stack.engines().into_keys().collect();
    assert_eq!(
        engines,
        [
            "clearing-engine",
            "compliance-engine",
            "gateway",
            "liquidity-router",
            "obligation-engine",
            "risk-engine",
            "settlement-engine",
            "token-engine",
        ]
    );
    for kind in [
        Kind::Collector,
        Kind::Prometheus,
        Kind::Alertmanager,
        Kind::Tempo,
        Kind::Loki,
        Kind::Grafana,
        Kind::Nats,
        Kind::Postgres,
    ] {
        assert_eq!(
            stack.services_of(&kind).count(),
            1,
            "exactly one {kind:?} service"
        );
    }
    // The collector is the one the lead's documentation names, with the dev files.
    let collector = stack
        .service("otel-collector")
        .expect("service otel-collector");
    assert_eq!(
        collector.image.as_deref(),
        Some("otel/opentelemetry-collector-contrib:0.136.0")
    );
    assert_eq!(
        collector.command,
        [
            "--config=/etc/otelcol/base.yaml",
            "--config=/etc/otelcol/dev/collector.yaml"
        ]
    );
    // Every engine has a health check and uses the built image.
    for (kind, engine) in stack.engines() {
        assert!(!engine.healthcheck.is_empty(), "{kind} has a health check");
        assert!(
            engine.build.is_some(),
            "{kind} is built from the Dockerfile"
        );
    }
}

// ------------------------------------------------ each check can fail

#[test]
fn a_missing_bind_mount_source_is_found() {
    assert_catches(
        check_mounts,
        &[(COMPOSE, "./tempo.yaml:", "./tempo-typo.yaml:")],
        COMPOSE,
        &["service tempo", "tempo-typo.yaml", "does not exist"],
    );
}

#[test]
fn a_writable_bind_mount_is_found() {
    assert_catches(
        check_mounts,
        &[(
            COMPOSE,
            "../../otel-collector:/etc/otelcol:ro",
            "../../otel-collector:/etc/otelcol",
        )],
        COMPOSE,
        &["otel-collector", ":ro"],
    );
}

#[test]
fn unpinned_images_are_found() {
    let (_dir, stack) = mutated(&[
        (COMPOSE, "grafana/grafana:12.1.1", "grafana/grafana"),
        (COMPOSE, "grafana/loki:3.5.5", "grafana/loki:latest"),
    ]);
    let found = findings(check_images_pinned(&stack));
    assert_found(&found, COMPOSE, &["service grafana", "no tag"]);
    assert_found(&found, COMPOSE, &["service loki", "`latest`"]);
}

#[test]
fn the_dockerfile_is_multi_stage_pinned_and_non_root() {
    let dockerfile = repo_root().join("deploy/compose/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).expect("read the Dockerfile");
    assert_eq!(dockerfile_findings(&dockerfile, &text), Vec::new());
    for (from, to, needle) in [
        ("USER 65532:65532", "USER root", "non-root"),
        ("USER 65532:65532\n", "", "no USER"),
        (
            "FROM gcr.io/distroless/cc-debian12:nonroot",
            "FROM gcr.io/distroless/cc-debian12",
            "pin a version",
        ),
        (
            "FROM rust:1.95.0-slim-bookworm AS builder",
            "FROM rust:latest AS builder",
            "`latest`",
        ),
        (
            "ENTRYPOINT [\"/usr/local/bin/deltran\"]",
            "ENTRYPOINT [\"/usr/local/bin/fleet\"]",
            "the build produces `deltran`",
        ),
        (
            "ENTRYPOINT [\"/usr/local/bin/deltran\"]",
            "ENTRYPOINT /usr/local/bin/deltran",
            "exec (JSON) form",
        ),
        (
            "    --mount=type=cache,target=/src/target,sharing=locked \\\n",
            "",
            "",
        ),
    ] {
        assert_eq!(
            text.matches(from).count(),
            1,
            "the Dockerfile should contain {from:?} once"
        );
        let broken = text.replace(from, to);
        let found = dockerfile_findings(&dockerfile, &broken);
        if needle.is_empty() {
            // Dropping one cache mount is still a cached build.
            assert_eq!(found, Vec::new());
            continue;
        }
        assert!(
            found.iter().any(|f| f.message.contains(needle)),
            "{from:?} -> {to:?} should give a finding saying {needle:?}: {found:?}"
        );
    }
    let uncached = text.replace("--mount=type=cache", "--mount=type=bind");
    assert_found(
        &dockerfile_findings(&dockerfile, &uncached),
        "Dockerfile",
        &["cache mounts"],
    );
    // A stage built FROM an earlier stage is not an unpinned image.
    let from_stage = text.replace(
        "FROM gcr.io/distroless/cc-debian12:nonroot",
        "FROM builder AS tested\nFROM gcr.io/distroless/cc-debian12:nonroot",
    );
    assert_eq!(dockerfile_findings(&dockerfile, &from_stage), Vec::new());
    let one_stage = "FROM rust:1.95.0-slim-bookworm\nUSER 1000\nRUN cargo build --release --bin deltran\nENTRYPOINT [\"deltran\"]\n";
    let found = dockerfile_findings(&dockerfile, one_stage);
    assert_found(&found, "Dockerfile", &["single stage"]);
    assert_found(&found, "Dockerfile", &["Rust toolchain"]);
}

#[test]
fn the_build_context_ignores_target_and_git() {
    assert_catches(
        check_dockerfiles,
        &[(".dockerignore", "**/target\n", "")],
        ".dockerignore",
        &["target"],
    );
}

#[test]
fn ports_published_beyond_loopback_or_not_listened_on_are_found() {
    assert_catches(
        check_published_ports,
        &[(COMPOSE, "127.0.0.1:3000:3000", "3000:3000")],
        COMPOSE,
        &["service grafana", "every address", "127.0.0.1"],
    );
    assert_catches(
        check_published_ports,
        &[(COMPOSE, "127.0.0.1:9090:9090", "127.0.0.1:9090:9091")],
        COMPOSE,
        &["service prometheus", "container port 9091", "9090"],
    );
    assert_catches(
        check_published_ports,
        &[(COMPOSE, "127.0.0.1:4318:4318", "127.0.0.1:4318:4319")],
        COMPOSE,
        &["service otel-collector", "4319", "4318 (OTLP/HTTP"],
    );
}

#[test]
fn the_collector_configs_must_exist_and_get_every_variable() {
    assert_catches(
        check_collector,
        &[(
            COMPOSE,
            "--config=/etc/otelcol/dev/collector.yaml",
            "--config=/etc/otelcol/dev/colector.yaml",
        )],
        COMPOSE,
        &["--config=/etc/otelcol/dev/colector.yaml", "does not exist"],
    );
    assert_catches(
        check_collector,
        &[(
            COMPOSE,
            "      LOKI_OTLP_ENDPOINT: http://loki:3100/otlp\n",
            "",
        )],
        COMPOSE,
        &["${env:LOKI_OTLP_ENDPOINT}", "add LOKI_OTLP_ENDPOINT"],
    );
    // A variable the collector files start reading is found too.
    assert_catches(
        check_collector,
        &[(
            "otel-collector/dev/collector.yaml",
            "verbosity: basic",
            "verbosity: ${env:DEBUG_VERBOSITY}",
        )],
        COMPOSE,
        &["DEBUG_VERBOSITY"],
    );
}

#[test]
fn engines_must_reach_the_collector_on_its_otlp_port() {
    assert_catches(
        check_engines,
        &[(
            COMPOSE,
            "OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4317",
            "OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4318",
        )],
        COMPOSE,
        &[
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTLP/HTTP",
            "needs OTLP/gRPC",
            "port 4317",
        ],
    );
    assert_catches(
        check_engines,
        &[(
            COMPOSE,
            "OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4317",
            "OTEL_EXPORTER_OTLP_ENDPOINT: http://collector:4317",
        )],
        COMPOSE,
        &["\"collector\"", "no service"],
    );
    // The collector's receiver moved: the engines' URL no longer agrees.
    assert_catches(
        check_engines,
        &[(
            "otel-collector/base.yaml",
            "endpoint: ${env:COLLECTOR_BIND_ADDRESS}:4317",
            "endpoint: ${env:COLLECTOR_BIND_ADDRESS}:14317",
        )],
        COMPOSE,
        &["does not listen on port 4317", "14317"],
    );
    // Bound to loopback, the receiver is unreachable from the engines.
    assert_catches(
        check_engines,
        &[(
            COMPOSE,
            "COLLECTOR_BIND_ADDRESS: 0.0.0.0",
            "COLLECTOR_BIND_ADDRESS: 127.0.0.1",
        )],
        COMPOSE,
        &["does not listen on port 4317"],
    );
}

#[test]
fn engines_must_name_their_peers_nats_and_the_database() {
    assert_catches(
        check_engines,
        &[(
            COMPOSE,
            "DELTRAN_RISK_ENGINE_URL: http://risk-engine:8084",
            "DELTRAN_RISK_ENGINE_URL: http://compliance-engine:8086",
        )],
        COMPOSE,
        &[
            "DELTRAN_RISK_ENGINE_URL",
            "risk-engine runs in service risk-engine",
        ],
    );
    assert_catches(
        check_engines,
        &[(
            COMPOSE,
            "      DELTRAN_PORT: \"8085\"\n",
            "      DELTRAN_PORT: \"8095\"\n",
        )],
        COMPOSE,
        &[
            "DELTRAN_CLEARING_ENGINE_URL",
            "does not listen on port 8085",
        ],
    );
    assert_catches(
        check_engines,
        &[(
            COMPOSE,
            "DELTRAN_NATS_URL: nats://nats:4222",
            "DELTRAN_NATS_URL: nats://nats:8222",
        )],
        COMPOSE,
        &["DELTRAN_NATS_URL", "needs NATS"],
    );
    assert_catches(
        check_engines,
        &[(COMPOSE, "@postgres:5432/deltran", "@postgres:5432/ledger")],
        COMPOSE,
        &["DELTRAN_DATABASE_URL", "\"ledger\"", "POSTGRES_DB"],
    );
    assert_catches(
        check_engines,
        &[(COMPOSE, "  DELTRAN_HOST: 0.0.0.0\n", "")],
        COMPOSE,
        &["DELTRAN_HOST: 0.0.0.0"],
    );
}

#[test]
fn collector_exporters_must_reach_their_backends() {
    assert_catches(
        check_collector_exporters,
        &[(
            COMPOSE,
            "PROMETHEUS_OTLP_ENDPOINT: http://prometheus:9090/api/v1/otlp",
            "PROMETHEUS_OTLP_ENDPOINT: http://prometheus:9091/api/v1/otlp",
        )],
        COMPOSE,
        &[
            "exporters.otlphttp/prometheus.endpoint",
            "does not listen on port 9091",
        ],
    );
    assert_catches(
        check_collector_exporters,
        &[(COMPOSE, "      - --web.enable-otlp-receiver\n", "")],
        COMPOSE,
        &["--web.enable-otlp-receiver"],
    );
    assert_catches(
        check_collector_exporters,
        &[(COMPOSE, "      - --enable-feature=exemplar-storage\n", "")],
        COMPOSE,
        &["--enable-feature=exemplar-storage", "exemplars"],
    );
    assert_catches(
        check_collector_exporters,
        &[(
            COMPOSE,
            "LOKI_OTLP_ENDPOINT: http://loki:3100/otlp",
            "LOKI_OTLP_ENDPOINT: http://loki:3100/loki/api/v1/push",
        )],
        COMPOSE,
        &["/otlp"],
    );
    // Tempo's receiver moved in tempo.yaml: TEMPO_OTLP_ENDPOINT no longer agrees.
    assert_catches(
        check_collector_exporters,
        &[(
            "deploy/compose/tempo.yaml",
            "endpoint: 0.0.0.0:4317",
            "endpoint: 0.0.0.0:4320",
        )],
        COMPOSE,
        &[
            "exporters.otlp/tempo.endpoint",
            "does not listen on port 4317",
            "4320 (OTLP/gRPC",
        ],
    );
    // Tempo's default receiver address is loopback: not reachable.
    assert_catches(
        check_collector_exporters,
        &[(
            "deploy/compose/tempo.yaml",
            "          endpoint: 0.0.0.0:4317\n",
            "",
        )],
        COMPOSE,
        &["does not listen on port 4317"],
    );
    assert_catches(
        check_collector_exporters,
        &[(
            "deploy/compose/loki.yaml",
            "allow_structured_metadata: true",
            "allow_structured_metadata: false",
        )],
        "loki.yaml",
        &["allow_structured_metadata"],
    );
}

#[test]
fn grafana_datasources_must_name_services_and_ports() {
    assert_catches(
        check_grafana,
        &[(
            "deploy/grafana/provisioning/datasources/datasources.yaml",
            "url: http://tempo:3200",
            "url: http://tempo:3201",
        )],
        "datasources.yaml",
        &["datasource Tempo", "does not listen on port 3201", "3200"],
    );
    // …and the port comes from loki.yaml, not from a table in the test.
    assert_catches(
        check_grafana,
        &[(
            "deploy/compose/loki.yaml",
            "http_listen_port: 3100",
            "http_listen_port: 3110",
        )],
        "datasources.yaml",
        &["datasource Loki", "3110"],
    );
}

#[test]
fn grafana_needs_a_password_the_user_sets_and_no_anonymous_access() {
    let line = "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD in deploy/compose/.env (see .env.example)}";
    for (to, needle) in [
        ("GF_SECURITY_ADMIN_PASSWORD: admin", "written into the file"),
        (
            "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:-admin}",
            "has a default",
        ),
        (
            "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD}",
            "optional variable",
        ),
        (
            "GF_PATHS_DATA: /var/lib/grafana",
            "falls back to admin/admin",
        ),
    ] {
        assert_catches(
            check_grafana,
            &[(COMPOSE, line, to)],
            COMPOSE,
            &["GF_SECURITY_ADMIN_PASSWORD", needle],
        );
    }
    assert_catches(
        check_grafana,
        &[(
            COMPOSE,
            "GF_AUTH_ANONYMOUS_ENABLED: \"false\"",
            "GF_AUTH_ANONYMOUS_ENABLED: \"true\"",
        )],
        COMPOSE,
        &["GF_AUTH_ANONYMOUS_ENABLED"],
    );
    // Dashboards mounted somewhere the provider does not read.
    assert_catches(
        check_grafana,
        &[(
            COMPOSE,
            "../grafana/dashboards:/var/lib/grafana/dashboards/deltran:ro",
            "../grafana/dashboards:/var/lib/grafana/dashboards:ro",
        )],
        COMPOSE,
        &["/var/lib/grafana/dashboards/deltran", "no dashboard"],
    );
}

#[test]
fn postgres_needs_a_password_the_user_sets() {
    let (_dir, stack) = mutated(&[(
        COMPOSE,
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in deploy/compose/.env (see .env.example)}",
        "POSTGRES_PASSWORD: postgres",
    )]);
    assert_finding(
        check_postgres(&stack),
        COMPOSE,
        &["POSTGRES_PASSWORD", "written into the file"],
    );
    // …and settlement-engine's URL must use the same variable.
    assert_finding(
        check_engines(&stack),
        COMPOSE,
        &["DELTRAN_DATABASE_URL", "password"],
    );
}

#[test]
fn prometheus_targets_must_name_services_and_ports() {
    assert_catches(
        check_prometheus_targets,
        &[(
            "deploy/compose/prometheus-targets/otel-collector.yml",
            "otel-collector:8888",
            "otel-collector:8889",
        )],
        "prometheus-targets/otel-collector.yml",
        &["job otel-collector", "does not listen on port 8889", "8888"],
    );
    assert_catches(
        check_prometheus_targets,
        &[(
            "deploy/compose/prometheus-targets/alertmanager.yml",
            "alertmanager:9093",
            "localhost:9093",
        )],
        "prometheus-targets/alertmanager.yml",
        &["alerting.alertmanagers", "\"localhost\"", "no service"],
    );
    // Without the compose targets mounted, the shipped files name localhost.
    assert_catches(
        check_prometheus_targets,
        &[(
            COMPOSE,
            "      - ./prometheus-targets:/etc/prometheus/targets:ro\n",
            "",
        )],
        "deploy/prometheus/targets/deltran-engines.yml",
        &["\"localhost\""],
    );
}

#[test]
fn an_engine_is_not_both_pushed_and_scraped() {
    let (_dir, stack) = mutated(&[(
        "deploy/compose/prometheus-targets/deltran-engines.yml",
        "\n[]\n",
        "\n- targets: ['gateway:8080']\n  labels: {service: gateway, language: rust}\n",
    )]);
    let found = findings(check_prometheus_targets(&stack));
    let file = "prometheus-targets/deltran-engines.yml";
    assert_found(&found, file, &["storing every series twice"]);
    assert_found(&found, file, &["does not serve /metrics"]);
}

#[test]
fn health_checks_must_run_in_the_image_and_probe_a_listened_port() {
    assert_catches(
        check_healthchecks,
        &[(
            COMPOSE,
            "http://127.0.0.1:8080/ready",
            "http://127.0.0.1:8081/ready",
        )],
        COMPOSE,
        &["service gateway", "8081", "not a port it listens on"],
    );
    assert_catches(
        check_healthchecks,
        &[(
            COMPOSE,
            "test: [CMD, /usr/local/bin/deltran, probe, --url, http://127.0.0.1:8084/ready]",
            "test: [CMD, curl, -f, http://127.0.0.1:8084/ready]",
        )],
        COMPOSE,
        &["service risk-engine", "runs curl", "/usr/local/bin/deltran"],
    );
    assert_catches(
        check_healthchecks,
        &[(
            COMPOSE,
            "test: [CMD, /usr/local/bin/deltran, probe, --url, http://127.0.0.1:8086/ready]",
            "test: [CMD-SHELL, \"wget -q -O /dev/null http://127.0.0.1:8086/ready\"]",
        )],
        COMPOSE,
        &["compliance-engine", "needs a shell"],
    );
    // A probe the image does not carry (the old BusyBox wget) is caught.
    assert_catches(
        check_healthchecks,
        &[(
            COMPOSE,
            "test: [CMD, /usr/local/bin/deltran, probe, --url, http://127.0.0.1:8088/ready]",
            "test: [CMD, /usr/local/bin/wget, -q, -O, /dev/null, http://127.0.0.1:8088/ready]",
        )],
        COMPOSE,
        &["service settlement-engine", "runs /usr/local/bin/wget"],
    );
}

#[test]
fn every_path_the_checks_name_is_the_file_to_change() {
    // All findings of one broken copy name a file that exists in the copy.
    let (dir, stack) = mutated(&[
        (COMPOSE, "127.0.0.1:3000:3000", "3000:3000"),
        (
            "deploy/compose/tempo.yaml",
            "endpoint: 0.0.0.0:4317",
            "endpoint: 0.0.0.0:4320",
        ),
    ]);
    let found = findings(check_all(&stack));
    assert!(found.len() >= 2, "{found:?}");
    for f in &found {
        let path: PathBuf = f.file.clone();
        assert!(path.starts_with(dir.path()), "{f}");
        assert!(path.exists(), "{f} names a file that does not exist");
    }
}

#[test]
fn the_ports_are_read_from_the_files_that_decide_them() {
    let stack = real_stack();
    let ports = |name: &str| -> Vec<(u16, Protocol)> {
        let service = stack.service(name).expect("service exists");
        let mut found = Vec::new();
        let mut listeners: Vec<(u16, Protocol)> = stack
            .listeners(service, &mut found)
            .into_iter()
            .map(|l| (l.port, l.protocol))
            .collect();
        assert_eq!(found, Vec::new(), "reading {name}'s ports");
        listeners.sort_by_key(|(p, _)| *p);
        listeners
    };
    // base.yaml binds these to ${env:COLLECTOR_BIND_ADDRESS}; pprof and
    // zpages stay on loopback and are not reachable, so not listed.
    assert_eq!(
        ports("otel-collector"),
        [
            (4317, Protocol::OtlpGrpc),
            (4318, Protocol::OtlpHttp),
            (8888, Protocol::Http),
            (13133, Protocol::Http),
        ]
    );
    assert_eq!(
        ports("tempo"),
        [
            (3200, Protocol::Http),
            (4317, Protocol::OtlpGrpc),
            (9095, Protocol::Grpc)
        ]
    );
    assert_eq!(
        ports("loki"),
        [(3100, Protocol::Http), (9096, Protocol::Grpc)]
    );
    assert_eq!(ports("prometheus"), [(9090, Protocol::Http)]);
    assert_eq!(ports("alertmanager"), [(9093, Protocol::Http)]);
    assert_eq!(ports("grafana"), [(3000, Protocol::Http)]);
    assert_eq!(
        ports("nats"),
        [(4222, Protocol::Nats), (8222, Protocol::Http)]
    );
    assert_eq!(ports("postgres"), [(5432, Protocol::Postgres)]);
    assert_eq!(ports("gateway"), [(8080, Protocol::Http)]);
    assert_eq!(ports("settlement-engine"), [(8088, Protocol::Http)]);
    assert_eq!(ports("load"), []);
}
