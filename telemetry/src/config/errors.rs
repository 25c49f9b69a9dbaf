//! Configuration errors: one per bad variable, all of them at once.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// One invalid environment variable.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConfigError {
    /// The variable that holds the bad value.
    pub variable: String,
    /// The value as found.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
    /// The parser's own error, when one said why (`RUST_LOG`). Shared so the
    /// error stays cloneable like the rest of the configuration.
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl ConfigError {
    /// One bad variable. Public so crates that read more of the environment
    /// report their variables in the same words as telemetry.
    ///
    /// ```
    /// let e = telemetry::ConfigError::new("DELTRAN_MODE", "fast", "demo or load");
    /// assert_eq!(e.to_string(), "DELTRAN_MODE=\"fast\" is invalid: expected demo or load");
    /// ```
    pub fn new(variable: &str, value: &str, expected: impl Into<String>) -> Self {
        ConfigError {
            variable: variable.to_string(),
            value: value.to_string(),
            expected: expected.into(),
            source: None,
        }
    }

    /// Keeps the parser error that explains the rejection, so callers walking
    /// [`Error::source`] reach it.
    pub(crate) fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }
}

/// Two errors are the same when they name the same variable, value and
/// expectation; the parser's error only details the expectation.
impl PartialEq for ConfigError {
    fn eq(&self, other: &Self) -> bool {
        self.variable == other.variable
            && self.value == other.value
            && self.expected == other.expected
    }
}

impl Eq for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An empty value cannot come from the environment (empty means
        // unset): it marks a key of the configuration file that is there,
        // or missing, as a whole.
        if self.value.is_empty() {
            write!(
                f,
                "{} is invalid: expected {}",
                self.variable, self.expected
            )?;
        } else {
            write!(
                f,
                "{}={:?} is invalid: expected {}",
                self.variable, self.value, self.expected
            )?;
        }
        // The list of errors is printed as one line, where a chain cannot be
        // followed: the parser's reason goes into that line too.
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl Error for ConfigError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Every invalid variable found in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: ")?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collected errors, for crates that report their own variables as
/// telemetry does.
impl From<Vec<ConfigError>> for ConfigErrors {
    fn from(errors: Vec<ConfigError>) -> Self {
        ConfigErrors(errors)
    }
}

/// With several causes there is no single source; each [`ConfigError`]
/// carries its own.
impl Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_variable_value_and_expectation() {
        let e = ConfigError::new("OTEL_SDK_DISABLED", "yes", "true or false");
        assert_eq!(
            e.to_string(),
            "OTEL_SDK_DISABLED=\"yes\" is invalid: expected true or false"
        );
        assert!(e.source().is_none());
        let all = ConfigErrors(vec![e.clone(), ConfigError::new("X", "1", "y")]);
        assert_eq!(
            all.to_string(),
            "invalid configuration: OTEL_SDK_DISABLED=\"yes\" is invalid: expected true or false; \
             X=\"1\" is invalid: expected y"
        );
    }

    #[test]
    fn the_parser_error_is_kept_as_source_and_shown() {
        let parse = "x".parse::<u8>().unwrap_err();
        let e = ConfigError::new("V", "x", "a number").with_source(parse.clone());
        assert_eq!(e.source().map(|s| s.to_string()), Some(parse.to_string()));
        assert!(
            e.to_string()
                .ends_with(&format!("expected a number ({parse})"))
        );
        // Equality ignores the source: it only details the expectation.
        assert_eq!(e, ConfigError::new("V", "x", "a number"));
    }
}
