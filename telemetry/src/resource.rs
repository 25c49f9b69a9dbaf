//! The resource: who is emitting.
//!
//! Built from code (service name and version), `OTEL_RESOURCE_ATTRIBUTES`,
//! the host, the process and, when the downward API exposes them, Kubernetes.
//! `service.instance.id` is always set (a UUID v4 unless given) because the
//! SDK never sets it and Prometheus `instance` labels would collide.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_semantic_conventions::resource as semconv;

use crate::config::Config;
use crate::env::EnvSource;

/// The deployment environment assumed when none is configured.
pub const DEFAULT_ENVIRONMENT: &str = "dev";
/// The service namespace assumed when none is configured.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Identity fields resolved from code and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceIdentity {
    /// `service.name`.
    pub name: String,
    /// `service.version`.
    pub version: String,
    /// `service.namespace`.
    pub namespace: String,
    /// `service.instance.id`.
    pub instance_id: String,
    /// `deployment.environment.name`.
    pub environment: String,
}

/// Kubernetes downward-API variables and the attribute each fills.
/// Both the `K8S_*` names of the OpenTelemetry operator and the common
/// `POD_*` / `NODE_NAME` spellings are accepted. Public so deployment
/// checks hold manifests to the list the crate reads.
///
/// ```
/// let (names, attribute) = telemetry::KUBERNETES_VARIABLES[0];
/// assert_eq!((names[0], attribute), ("K8S_POD_NAME", "k8s.pod.name"));
/// ```
pub const KUBERNETES_VARIABLES: &[(&[&str], &str)] = &[
    (&["K8S_POD_NAME", "POD_NAME"], semconv::K8S_POD_NAME),
    (&["K8S_POD_UID", "POD_UID"], semconv::K8S_POD_UID),
    (
        &["K8S_NAMESPACE_NAME", "POD_NAMESPACE"],
        semconv::K8S_NAMESPACE_NAME,
    ),
    (&["K8S_NODE_NAME", "NODE_NAME"], semconv::K8S_NODE_NAME),
    (
        &["K8S_CONTAINER_NAME", "CONTAINER_NAME"],
        semconv::K8S_CONTAINER_NAME,
    ),
    (&["K8S_DEPLOYMENT_NAME"], semconv::K8S_DEPLOYMENT_NAME),
    (&["K8S_CLUSTER_NAME"], semconv::K8S_CLUSTER_NAME),
];

/// Resolves identity: code beats environment beats defaults.
pub(crate) fn identity(
    code_name: Option<&str>,
    code_version: Option<&str>,
    code_namespace: Option<&str>,
    code_environment: Option<&str>,
    config: &Config,
) -> ServiceIdentity {
    // Typed attributes (from a configuration file) are applied last, so
    // they win, as in the resource itself.
    let from_env = |key: &str| {
        config
            .typed_resource_attributes
            .iter()
            .rev()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
            .or_else(|| {
                config
                    .resource_attributes
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            })
    };
    let name = code_name
        .map(str::to_string)
        .or_else(|| config.service_name.clone())
        .or_else(|| from_env(semconv::SERVICE_NAME))
        .unwrap_or_else(|| "unknown_service".to_string());
    let version = code_version
        .map(str::to_string)
        .or_else(|| from_env(semconv::SERVICE_VERSION))
        .unwrap_or_else(|| "0.0.0".to_string());
    let namespace = code_namespace
        .map(str::to_string)
        .or_else(|| from_env(semconv::SERVICE_NAMESPACE))
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let environment = code_environment
        .map(str::to_string)
        .or_else(|| from_env(semconv::DEPLOYMENT_ENVIRONMENT_NAME))
        // The attribute's name before semantic conventions 1.27; its
        // constant is deprecated, the spelling still arrives from older
        // deployments.
        .or_else(|| from_env("deployment.environment"))
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_string());
    let instance_id =
        from_env(semconv::SERVICE_INSTANCE_ID).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    ServiceIdentity {
        name,
        version,
        namespace,
        instance_id,
        environment,
    }
}

/// Builds the resource. `extra` comes from the builder and wins over everything.
pub(crate) fn build(
    identity: &ServiceIdentity,
    config: &Config,
    env: &(impl EnvSource + ?Sized),
    extra: &[KeyValue],
) -> Resource {
    let mut attrs: Vec<KeyValue> = Vec::new();
    // Host and process first, so anything configured can override them.
    if let Some(host) = host_name(env) {
        attrs.push(KeyValue::new(semconv::HOST_NAME, host));
    }
    attrs.push(KeyValue::new(semconv::HOST_ARCH, std::env::consts::ARCH));
    attrs.push(KeyValue::new(semconv::OS_TYPE, std::env::consts::OS));
    attrs.push(KeyValue::new(
        semconv::PROCESS_PID,
        i64::from(std::process::id()),
    ));
    if let Some(exe) = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().to_string()))
    {
        attrs.push(KeyValue::new(semconv::PROCESS_EXECUTABLE_NAME, exe));
    }
    attrs.push(KeyValue::new(semconv::PROCESS_RUNTIME_NAME, "rust"));
    for (vars, key) in KUBERNETES_VARIABLES {
        if let Some(v) = vars.iter().find_map(|v| env.var(v)) {
            attrs.push(KeyValue::new(*key, v));
        }
    }
    for (k, v) in &config.resource_attributes {
        attrs.push(KeyValue::new(k.clone(), v.clone()));
    }
    attrs.extend(config.typed_resource_attributes.iter().cloned());
    attrs.push(KeyValue::new(semconv::SERVICE_NAME, identity.name.clone()));
    attrs.push(KeyValue::new(
        semconv::SERVICE_VERSION,
        identity.version.clone(),
    ));
    attrs.push(KeyValue::new(
        semconv::SERVICE_NAMESPACE,
        identity.namespace.clone(),
    ));
    attrs.push(KeyValue::new(
        semconv::SERVICE_INSTANCE_ID,
        identity.instance_id.clone(),
    ));
    attrs.push(KeyValue::new(
        semconv::DEPLOYMENT_ENVIRONMENT_NAME,
        identity.environment.clone(),
    ));
    attrs.extend(extra.iter().cloned());
    // `builder_empty` adds the telemetry.sdk.* attributes only through the
    // detector we name, and never reads the process environment behind our back.
    Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(attrs)
        .build()
}

fn host_name(env: &(impl EnvSource + ?Sized)) -> Option<String> {
    env.var("HOSTNAME").or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::Key;

    fn get(r: &Resource, k: &'static str) -> Option<String> {
        r.get(&Key::from_static_str(k)).map(|v| v.to_string())
    }

    #[test]
    fn code_beats_environment_and_instance_id_is_generated() {
        let env = [
            ("OTEL_SERVICE_NAME", "from-env"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.version=9,deployment.environment.name=prod,team=core",
            ),
            ("K8S_POD_NAME", "token-7f9"),
            ("POD_NAMESPACE", "payments"),
        ];
        let cfg = Config::from_env(&env).unwrap();
        let id = identity(Some("token-engine"), Some("1.2.3"), None, None, &cfg);
        assert_eq!(id.name, "token-engine");
        assert_eq!(id.version, "1.2.3");
        assert_eq!(id.environment, "prod");
        assert_eq!(id.namespace, DEFAULT_NAMESPACE);
        assert!(uuid::Uuid::parse_str(&id.instance_id).is_ok());
        let r = build(&id, &cfg, &env, &[KeyValue::new("extra", "x")]);
        assert_eq!(
            get(&r, semconv::SERVICE_NAME).as_deref(),
            Some("token-engine")
        );
        assert_eq!(get(&r, "team").as_deref(), Some("core"));
        assert_eq!(get(&r, semconv::K8S_POD_NAME).as_deref(), Some("token-7f9"));
        assert_eq!(
            get(&r, semconv::K8S_NAMESPACE_NAME).as_deref(),
            Some("payments")
        );
        assert_eq!(get(&r, "extra").as_deref(), Some("x"));
        assert_eq!(
            get(&r, semconv::TELEMETRY_SDK_LANGUAGE).as_deref(),
            Some("rust")
        );
        assert!(get(&r, semconv::PROCESS_PID).is_some());
        assert!(get(&r, semconv::HOST_NAME).is_some());
        // Two instances never share an id.
        let other = identity(Some("token-engine"), None, None, None, &cfg);
        assert_ne!(other.instance_id, id.instance_id);
    }

    #[test]
    fn env_name_is_used_when_code_gives_none() {
        let cfg = Config::from_env(&[("OTEL_SERVICE_NAME", "svc")]).unwrap();
        let id = identity(None, None, Some("deltran"), None, &cfg);
        assert_eq!(id.name, "svc");
        assert_eq!(id.namespace, "deltran");
        assert_eq!(id.environment, DEFAULT_ENVIRONMENT);
    }
}
