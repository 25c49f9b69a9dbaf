//! `deploy/k8s`, proven without a cluster: every overlay renders with
//! `kubectl kustomize`, validates against the Kubernetes API schemas in
//! strict mode, carries the collector files byte for byte, and passes the
//! structural checks of `deploy_checks::k8s`. Each check is also shown to
//! fail on a mutated copy, so a passing run means something.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deploy_checks::k8s::{
    self, ENVIRONMENTS, ExternalSecret, K8sError, KUBERNETES_VERSION, Manifest,
};
use serde_json::{Value, json};

const INSTALL: &str = "install kubectl (kustomize v5 is built in; scripts/install-test-deps.sh checks for it) and run scripts/install-test-deps.sh for kubernetes-validate";

fn root() -> PathBuf {
    deploy_checks::repo_root()
}

fn kubectl() -> PathBuf {
    testkit::find_binary("kubectl", &[], INSTALL).expect("kubectl is installed")
}

fn validator() -> PathBuf {
    testkit::find_binary("kubernetes-validate", &[], INSTALL)
        .expect("kubernetes-validate is installed")
}

/// Every overlay rendered once per test binary (the tests run in parallel).
fn rendered() -> &'static BTreeMap<&'static str, (String, Manifest)> {
    static RENDERED: OnceLock<BTreeMap<&'static str, (String, Manifest)>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let kubectl = kubectl();
        ENVIRONMENTS
            .iter()
            .map(|env| {
                let yaml = k8s::render(&kubectl, &k8s::overlay_dir(&root(), env))
                    .unwrap_or_else(|e| panic!("overlay {env} does not render: {e}"));
                let manifest = Manifest::parse(&yaml)
                    .unwrap_or_else(|e| panic!("overlay {env} renders unparseable YAML: {e}"));
                (*env, (yaml, manifest))
            })
            .collect()
    })
}

fn manifest(env: &str) -> Manifest {
    rendered()[env].1.clone()
}

fn secrets() -> Vec<ExternalSecret> {
    let readme = std::fs::read_to_string(k8s::k8s_dir(&root()).join("README.md"))
        .expect("deploy/k8s/README.md exists");
    k8s::external_secrets(&readme).expect("the README lists the Secrets to create")
}

fn min_replicas(env: &str) -> u64 {
    if env == "dev" { 1 } else { 2 }
}

/// The problems of a check that must fail, or a panic saying it passed.
fn problems_of<T: std::fmt::Debug>(result: Result<T, K8sError>, what: &str) -> Vec<String> {
    match result {
        Ok(v) => panic!("{what}: the check passed ({v:?}) but must fail"),
        Err(e) => {
            let problems = e.problems().to_vec();
            assert!(
                !problems.is_empty(),
                "{what}: expected check problems, got: {e}"
            );
            problems
        }
    }
}

/// Asserts that the check behind `result` failed (`what` names the
/// mutation), and that for each of `expected` some problem mentions all of
/// its needles.
fn assert_problems<T: std::fmt::Debug>(
    result: Result<T, K8sError>,
    what: &str,
    expected: &[&[&str]],
) {
    let problems = problems_of(result, what);
    for needles in expected {
        assert!(
            problems
                .iter()
                .any(|p| needles.iter().all(|n| p.contains(n))),
            "{what}: no problem mentions all of {needles:?}:\n{}",
            problems.join("\n")
        );
    }
}

/// A copy of `env`'s rendered manifest with `mutate` applied.
fn mutated(env: &str, mutate: impl FnOnce(&mut Manifest)) -> Manifest {
    let mut m = manifest(env);
    mutate(&mut m);
    m
}

/// The first rendered `kind` named `name`, for mutation.
fn object_mut<'a>(m: &'a mut Manifest, kind: &str, name: &str) -> &'a mut Value {
    m.find_mut(kind, name)
        .unwrap_or_else(|| panic!("{kind} {name} is rendered"))
}

/// Removes `field` from the mapping `object`.
fn remove_field(object: &mut Value, field: &str) {
    object
        .as_object_mut()
        .unwrap_or_else(|| panic!("a mapping to remove {field} from"))
        .remove(field);
}

/// The container `name` of workload `kind/workload`, for mutation.
fn container_mut<'a>(m: &'a mut Manifest, kind: &str, workload: &str, name: &str) -> &'a mut Value {
    object_mut(m, kind, workload)
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
        .and_then(|cs| cs.iter_mut().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("{kind} {workload} has container {name}"))
}

fn env_entry_mut<'a>(container: &'a mut Value, name: &str) -> &'a mut Value {
    container["env"]
        .as_array_mut()
        .and_then(|env| env.iter_mut().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("env {name} is set"))
}

fn config_map_mut<'a>(m: &'a mut Manifest, base_name: &str) -> &'a mut Value {
    let name = m
        .config_map_generated(base_name)
        .and_then(|c| c["metadata"]["name"].as_str())
        .unwrap_or_else(|| panic!("ConfigMap {base_name}-<hash> is rendered"))
        .to_string();
    m.find_mut("ConfigMap", &name).expect("found above")
}

// --------------------------------------------------------------- (a) render

#[test]
fn every_overlay_renders_engines_in_deltran_and_collectors_in_observability() {
    for env in ENVIRONMENTS {
        let m = manifest(env);
        let workloads = m.workloads();
        let engines: Vec<_> = workloads.iter().filter(|w| w.is_engine()).collect();
        assert_eq!(
            engines.len(),
            k8s::engines().count(),
            "{env}: one Deployment per engine"
        );
        assert!(
            engines.iter().all(|w| w.namespace == "deltran"),
            "{env}: engines in deltran"
        );
        let collectors: Vec<_> = workloads.iter().filter(|w| w.is_collector()).collect();
        assert!(
            collectors.iter().all(|w| w.namespace == "observability"),
            "{env}: collectors in observability"
        );
        let tiers: Vec<(&str, &str)> = collectors
            .iter()
            .map(|w| (w.kind.as_str(), w.name.as_str()))
            .collect();
        let expected: &[(&str, &str)] = if env == "dev" {
            // One tier: the agent DaemonSet is the only collector.
            &[("DaemonSet", "otel-agent")]
        } else {
            &[("DaemonSet", "otel-agent"), ("Deployment", "otel-gateway")]
        };
        let mut tiers_sorted = tiers.clone();
        tiers_sorted.sort();
        assert_eq!(tiers_sorted, expected, "{env}: collector tiers");
        assert_eq!(
            m.get("Service", Some("observability"), "otel-gateway-headless")
                .is_some(),
            env != "dev",
            "{env}: the gateway's headless Service exists exactly where the gateway tier does"
        );
    }
}

#[test]
fn a_broken_overlay_fails_to_render_with_kustomizes_message() {
    let dir = testkit::temp_dir("k8s-broken-overlay").expect("temp dir");
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources:\n  - does-not-exist.yaml\n",
    )
    .expect("write kustomization");
    let err = k8s::render(&kubectl(), dir.path()).expect_err("a missing resource fails");
    assert!(
        matches!(&err, K8sError::Failed { output, .. } if output.contains("does-not-exist.yaml")),
        "kustomize's own message is passed on: {err}"
    );
}

// --------------------------------------------------------------- (b) schema

#[test]
fn rendered_overlays_validate_against_the_kubernetes_schemas_in_strict_mode() {
    let tool = validator();
    for env in ENVIRONMENTS {
        let (yaml, m) = &rendered()[env];
        k8s::validate_schema(&tool, yaml, KUBERNETES_VERSION)
            .unwrap_or_else(|e| panic!("{env}: {e}"));
        // The re-serialised form the mutation below uses validates too, so
        // its failure can only come from the mutation.
        let again = m.to_yaml().expect("serialise");
        k8s::validate_schema(&tool, &again, KUBERNETES_VERSION)
            .unwrap_or_else(|e| panic!("{env} (re-serialised): {e}"));
    }
}

#[test]
fn schema_validation_rejects_an_unknown_field() {
    let tool = validator();
    // A misspelling the API server would silently drop: the root
    // filesystem would stay writable and nobody would notice.
    let m = mutated("prod", |m| {
        container_mut(m, "Deployment", "gateway", "engine")["securityContext"]["readOnlyRootFileSystem"] =
            json!(true);
    });
    let yaml = m.to_yaml().expect("serialise");
    let err = k8s::validate_schema(&tool, &yaml, KUBERNETES_VERSION)
        .expect_err("strict validation rejects an unknown field");
    assert!(
        matches!(&err, K8sError::Failed { output, .. } if output.contains("readOnlyRootFileSystem")),
        "the failure names the field: {err}"
    );
}

// ------------------------------------------------------- (c) collector files

#[test]
fn collector_configmaps_hold_the_otel_collector_files_byte_for_byte() {
    for env in ENVIRONMENTS {
        k8s::check_collector_files(&manifest(env), &root(), env)
            .unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn a_drifted_or_missing_collector_file_is_caught() {
    let m = mutated("staging", |m| {
        let cm = config_map_mut(m, "otel-collector-env");
        let text = cm["data"]["gateway.yaml"]
            .as_str()
            .expect("gateway.yaml")
            .to_string();
        cm["data"]["gateway.yaml"] =
            json!(text.replacen("sampling_percentage: 25", "sampling_percentage: 100", 1));
    });
    assert_problems(
        k8s::check_collector_files(&m, &root(), "staging"),
        "drifted file",
        &[&["otel-collector-env", "gateway.yaml", "differs"]],
    );

    // A file added to otel-collector/<env>/ but not to its generator.
    let copy = testkit::temp_dir("k8s-collector-copy").expect("temp dir");
    let dir = copy.path().join("otel-collector");
    copy_dir(&root().join("otel-collector"), &dir);
    std::fs::write(dir.join("staging").join("extra.yaml"), "processors: {}\n").expect("write");
    assert_problems(
        k8s::check_collector_files(&manifest("staging"), copy.path(), "staging"),
        "file missing from the generator",
        &[&["no key extra.yaml", "kustomization.yaml"]],
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

// ------------------------------------------------------- (d) pod security

#[test]
fn every_container_is_non_root_read_only_and_bounded() {
    for env in ENVIRONMENTS {
        k8s::check_pod_security(&manifest(env)).unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn a_writable_root_or_a_missing_limit_is_caught() {
    let m = mutated("staging", |m| {
        container_mut(m, "DaemonSet", "otel-agent", "otel-collector")["securityContext"]["readOnlyRootFilesystem"] =
            json!(false);
        remove_field(
            &mut container_mut(m, "Deployment", "risk-engine", "engine")["resources"]["limits"],
            "memory",
        );
    });
    assert_problems(
        k8s::check_pod_security(&m),
        "mutated security",
        &[
            &[
                "DaemonSet observability/otel-agent",
                "readOnlyRootFilesystem",
            ],
            &["Deployment deltran/risk-engine", "resources.limits.memory"],
        ],
    );
}

// ------------------------------------------------------- (d) references

#[test]
fn every_configmap_secret_serviceaccount_and_variable_reference_resolves() {
    let secrets = secrets();
    for env in ENVIRONMENTS {
        k8s::check_references(&manifest(env), &secrets).unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn dangling_references_are_caught() {
    let m = mutated("prod", |m| {
        let engine = container_mut(m, "Deployment", "settlement-engine", "engine");
        env_entry_mut(engine, "DELTRAN_NATS_URL")["valueFrom"]["configMapKeyRef"]["key"] =
            json!("NATS_URL");
        env_entry_mut(engine, "DELTRAN_DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"] =
            json!("settlement-db");
        // $(OTLP_INGEST_TOKEN) used before it is declared stays a literal.
        let env = engine["env"].as_array_mut().expect("env");
        let token = env
            .iter()
            .position(|e| e["name"] == "OTLP_INGEST_TOKEN")
            .expect("token env");
        let entry = env.remove(token);
        env.push(entry);
        object_mut(m, "DaemonSet", "otel-agent")["spec"]["template"]["spec"]["serviceAccountName"] =
            json!("collector");
    });
    assert_problems(
        k8s::check_references(&m, &secrets()),
        "dangling references",
        &[
            &["settlement-engine", "DELTRAN_NATS_URL", "no such key"],
            &["settlement-engine", "settlement-db", "README"],
            &["OTEL_EXPORTER_OTLP_HEADERS", "$(OTLP_INGEST_TOKEN)"],
            &["otel-agent", "ServiceAccount observability/collector"],
        ],
    );
}

#[test]
fn the_readme_lists_the_secrets_and_how_to_apply_each_overlay() {
    let readme = std::fs::read_to_string(k8s::k8s_dir(&root()).join("README.md")).expect("README");
    for env in ENVIRONMENTS {
        let command = format!("kubectl apply -k deploy/k8s/overlays/{env}");
        assert!(readme.contains(&command), "the README shows `{command}`");
    }
    let secrets = secrets();
    for name in [
        "otel-ingest-token",
        "otel-collector-tls",
        "deltran-otlp-client-tls",
        "deltran-database",
    ] {
        assert!(
            secrets.iter().any(|s| s.name == name),
            "the README's Secrets table lists {name}: {secrets:?}"
        );
    }
    let parsed = k8s::external_secrets("# x\n\n## Secrets to create\n\n| Secret | namespaces | keys |\n|---|---|---|\n| `a` | `n1`, `n2` | `k1`, `k2` |\n")
        .expect("parse");
    assert_eq!(
        parsed,
        vec![ExternalSecret {
            name: "a".into(),
            namespaces: vec!["n1".into(), "n2".into()],
            keys: vec!["k1".into(), "k2".into()],
        }]
    );
    assert!(k8s::external_secrets("# nothing here\n").is_err());
}

// ------------------------------------------------------- (d) collectors

#[test]
fn collectors_load_mounted_configs_and_get_every_variable_they_read() {
    let secrets = secrets();
    for env in ENVIRONMENTS {
        k8s::check_collectors(&manifest(env), &secrets).unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn an_unset_variable_or_an_unmounted_config_is_caught() {
    let secrets = secrets();
    let m = mutated("prod", |m| {
        let agent = container_mut(m, "DaemonSet", "otel-agent", "otel-collector");
        agent["env"]
            .as_array_mut()
            .expect("env")
            .retain(|e| e["name"] != "PROMETHEUS_OTLP_ENDPOINT" && e["name"] != "K8S_NODE_NAME");
        env_entry_mut(agent, "GOMEMLIMIT")["value"] = json!("1000MiB");
        agent["volumeMounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|v| v["mountPath"] != "/etc/otelcol/tls");
        let gateway = container_mut(m, "Deployment", "otel-gateway", "otel-collector");
        gateway["args"][1] = json!("--config=/conf/env/agent.yaml");
    });
    assert_problems(
        k8s::check_collectors(&m, &secrets),
        "mutated collectors",
        &[
            &["otel-agent", "${env:PROMETHEUS_OTLP_ENDPOINT}"],
            &["otel-agent", "K8S_NODE_NAME", "spec.nodeName"],
            &["otel-agent", "GOMEMLIMIT"],
            &["otel-gateway", "agent.yaml", "no item"],
            &["otel-agent", "/etc/otelcol/tls/tls.crt", "no volumeMount"],
        ],
    );

    // Without its RBAC, k8sattributes cannot look pods up.
    let m = mutated("staging", |m| {
        object_mut(m, "ClusterRole", "deltran-otel-agent")["rules"] = json!([
            { "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"] }
        ]);
    });
    assert_problems(
        k8s::check_collectors(&m, &secrets),
        "missing RBAC",
        &[&["k8sattributes", "replicasets"]],
    );

    // Dev runs no k8sattributes: a cluster-wide grant there is one too many.
    let binding = manifest("staging")
        .find_mut("ClusterRoleBinding", "deltran-otel-agent")
        .expect("staging binds the agent")
        .clone();
    let m = mutated("dev", |m| m.objects.push(binding));
    assert_problems(
        k8s::check_collectors(&m, &secrets),
        "dev with the agent's ClusterRoleBinding",
        &[&[
            "ClusterRoleBinding deltran-otel-agent",
            "no collector runs k8sattributes",
        ]],
    );
}

#[test]
fn agents_route_traces_to_the_gateways_headless_service() {
    for env in ENVIRONMENTS {
        let checked =
            k8s::check_gateway_routing(&manifest(env)).unwrap_or_else(|e| panic!("{env}: {e}"));
        if env == "dev" {
            assert_eq!(checked, 0, "dev has one tier: no loadbalancing exporter");
        } else {
            assert!(
                checked >= 1,
                "{env}: the agent's loadbalancing exporter is checked"
            );
        }
    }
}

#[test]
fn a_wrong_gateway_name_or_a_non_headless_service_is_caught() {
    let m = mutated("prod", |m| {
        env_entry_mut(
            container_mut(m, "DaemonSet", "otel-agent", "otel-collector"),
            "GATEWAY_HEADLESS_SERVICE",
        )["value"] = json!("otel-gateway.observability.svc.cluster.local");
    });
    assert_problems(
        k8s::check_gateway_routing(&m),
        "wrong name",
        &[&["otel-gateway.observability", "not rendered"]],
    );

    let m = mutated("staging", |m| {
        remove_field(
            &mut object_mut(m, "Service", "otel-gateway-headless")["spec"],
            "clusterIP",
        );
    });
    assert_problems(
        k8s::check_gateway_routing(&m),
        "not headless",
        &[&["otel-gateway-headless", "clusterIP: None"]],
    );
}

// ------------------------------------------------------- (d) engines

#[test]
fn engines_probe_declared_ports_carry_k8s_attributes_and_reach_their_peers() {
    for env in ENVIRONMENTS {
        k8s::check_engines(&manifest(env)).unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn a_wrong_probe_name_or_peer_is_caught() {
    let m = mutated("dev", |m| {
        let gateway = container_mut(m, "Deployment", "gateway", "engine");
        gateway["readinessProbe"]["httpGet"]["path"] = json!("/health");
        env_entry_mut(gateway, "K8S_DEPLOYMENT_NAME")["value"] = json!("deltran-gateway");
        env_entry_mut(gateway, "DELTRAN_RISK_ENGINE_URL")["value"] =
            json!("http://risk-engine:8085");
        let clearing = container_mut(m, "Deployment", "clearing-engine", "engine");
        clearing["livenessProbe"]["httpGet"]["port"] = json!("health");
    });
    assert_problems(
        k8s::check_engines(&m),
        "mutated engines",
        &[
            &["deltran/gateway", "readinessProbe", "/ready"],
            &["deltran/gateway", "K8S_DEPLOYMENT_NAME=gateway"],
            &["DELTRAN_RISK_ENGINE_URL", "no port 8085"],
            &["clearing-engine", "livenessProbe", "not a declared"],
        ],
    );

    // The OTLP endpoint must reach the node-local agent Service.
    let m = mutated("dev", |m| {
        remove_field(
            &mut object_mut(m, "Service", "otel-agent")["spec"],
            "internalTrafficPolicy",
        );
    });
    assert_problems(
        k8s::check_engines(&m),
        "cluster-wide agent Service",
        &[&["otel-agent", "internalTrafficPolicy: Local"]],
    );
}

#[test]
fn prod_engines_export_over_https_with_client_certificates_and_the_token() {
    k8s::check_engines_export_securely(&manifest("prod"), &secrets())
        .unwrap_or_else(|e| panic!("{e}"));
    // Staging sends plain OTLP: the check must say so.
    assert_problems(
        k8s::check_engines_export_securely(&manifest("staging"), &secrets()),
        "staging",
        &[&["OTEL_EXPORTER_OTLP_ENDPOINT=http://", "not https://"]],
    );

    let m = mutated("prod", |m| {
        config_map_mut(m, "deltran-env")["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] =
            json!("http://otel-agent.observability.svc.cluster.local:4317");
        env_entry_mut(
            container_mut(m, "Deployment", "token-engine", "engine"),
            "OTEL_EXPORTER_OTLP_HEADERS",
        )["value"] = json!("authorization=Bearer%20s3cr3t");
    });
    assert_problems(
        k8s::check_engines_export_securely(&m, &secrets()),
        "mutated prod",
        &[
            &[
                "deltran/settlement-engine",
                "http://otel-agent",
                "not https://",
            ],
            &["deltran/token-engine", "never a literal token"],
        ],
    );
}

#[test]
fn prod_collectors_reach_every_backend_over_tls() {
    k8s::check_collectors_export_securely(&manifest("prod")).unwrap_or_else(|e| panic!("{e}"));
    // Dev talks to in-cluster backends in plaintext: the check must say so.
    assert_problems(
        k8s::check_collectors_export_securely(&manifest("dev")),
        "dev",
        &[&["_ENDPOINT=http://", "plaintext"]],
    );
    let m = mutated("prod", |m| {
        config_map_mut(m, "otel-collector-settings")["data"]["LOKI_OTLP_ENDPOINT"] =
            json!("http://loki.monitoring.svc.cluster.local:3100/otlp");
    });
    assert_problems(
        k8s::check_collectors_export_securely(&m),
        "mutated prod",
        &[&["LOKI_OTLP_ENDPOINT=http://loki", "plaintext"]],
    );
}

// ------------------------------------------------------- (d) budgets

#[test]
fn budgets_keep_a_pod_serving_and_let_drains_through() {
    for env in ENVIRONMENTS {
        k8s::check_disruption_budgets(&manifest(env), min_replicas(env))
            .unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn a_single_prod_replica_or_a_blocking_budget_is_caught() {
    let m = mutated("prod", |m| {
        object_mut(m, "Deployment", "otel-gateway")["spec"]["replicas"] = json!(1);
        object_mut(m, "PodDisruptionBudget", "risk-engine")["spec"]["maxUnavailable"] = json!(0);
        object_mut(m, "Deployment", "token-engine")["spec"]["replicas"] = json!(2);
    });
    assert_problems(
        k8s::check_disruption_budgets(&m, 2),
        "mutated budgets",
        &[
            &["otel-gateway", "1 replica"],
            &["token-engine", "state in memory"],
            &[
                "PodDisruptionBudget deltran/risk-engine",
                "drains would hang",
            ],
        ],
    );
}

// ------------------------------------------------------- (d) network policies

#[test]
fn network_policies_admit_only_the_intended_traffic() {
    for env in ENVIRONMENTS {
        k8s::check_network_policies(&manifest(env)).unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn an_open_collector_or_an_engine_taking_otlp_is_caught() {
    // The agent's OTLP rule opened to every pod.
    let m = mutated("staging", |m| {
        remove_field(
            &mut object_mut(m, "NetworkPolicy", "otel-agent")["spec"]["ingress"][0],
            "from",
        );
    });
    assert_problems(
        k8s::check_network_policies(&m),
        "open agent",
        &[&["namespace default", "can reach", "otel-agent", "4317"]],
    );

    // An engine's policy admitting OTLP from its caller.
    let m = mutated("prod", |m| {
        object_mut(m, "NetworkPolicy", "risk-engine")["spec"]["ingress"][0]["ports"]
            .as_array_mut()
            .expect("ports")
            .push(json!({ "port": 4317 }));
    });
    assert_problems(
        k8s::check_network_policies(&m),
        "engine taking OTLP",
        &[&["deltran/risk-engine", "4317", "never accept OTLP"]],
    );

    // A peer the caller's URL names but the callee's policy does not admit.
    let m = mutated("dev", |m| {
        object_mut(m, "NetworkPolicy", "liquidity-router")["spec"]["ingress"][0]["from"][0]["podSelector"]
            ["matchLabels"]["app.kubernetes.io/name"] = json!("gateway");
    });
    assert_problems(
        k8s::check_network_policies(&m),
        "peer shut out",
        &[&[
            "clearing-engine",
            "cannot reach",
            "liquidity-router",
            "DELTRAN_LIQUIDITY_ROUTER_URL",
        ]],
    );
}
