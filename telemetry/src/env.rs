//! Where configuration comes from.
//!
//! Configuration is read through [`EnvSource`] so tests pass a map instead of
//! mutating the process environment (which is shared by every test thread).

use std::collections::{BTreeMap, HashMap};

/// A read-only view of environment variables.
///
/// ```
/// use std::collections::HashMap;
/// use telemetry::EnvSource;
///
/// let env = HashMap::from([("OTEL_SDK_DISABLED".to_string(), "true".to_string())]);
/// assert_eq!(env.var("OTEL_SDK_DISABLED").as_deref(), Some("true"));
/// assert_eq!(env.var("OTEL_SERVICE_NAME"), None);
/// ```
pub trait EnvSource {
    /// The variable's value, or `None` when unset. Empty values count as unset,
    /// as the OpenTelemetry specification asks.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.trim().is_empty()).cloned()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.trim().is_empty()).cloned()
    }
}

impl EnvSource for [(&str, &str)] {
    fn var(&self, key: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, v)| *k == key && !v.trim().is_empty())
            .map(|(_, v)| (*v).to_string())
    }
}

impl<const N: usize> EnvSource for [(&str, &str); N] {
    fn var(&self, key: &str) -> Option<String> {
        self.as_slice().var(key)
    }
}

impl EnvSource for Vec<(String, String)> {
    fn var(&self, key: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.clone())
    }
}

impl<T: EnvSource + ?Sized> EnvSource for &T {
    fn var(&self, key: &str) -> Option<String> {
        (**self).var(key)
    }
}
