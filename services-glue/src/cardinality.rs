//! Bounding attribute values that come from outside (subjects, tool names,
//! table names) so a burst of distinct inputs never becomes a burst of
//! metric series.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The value used once the budget of distinct values is spent.
pub const OTHER: &str = "_OTHER";

/// Admits the first `max` distinct values, then maps everything new to
/// [`OTHER`]. Lookups of admitted values take a read lock only.
///
/// ```
/// let subjects = services_glue::cardinality::BoundedValues::new(2);
/// assert_eq!(&*subjects.bound("a"), "a");
/// assert_eq!(&*subjects.bound("b"), "b");
/// assert_eq!(&*subjects.bound("c"), "_OTHER");
/// assert_eq!(&*subjects.bound("a"), "a");
/// ```
#[derive(Debug)]
pub struct BoundedValues {
    max: usize,
    seen: RwLock<HashSet<Arc<str>>>,
    other: Arc<str>,
}

impl BoundedValues {
    /// At most `max` distinct values.
    pub fn new(max: usize) -> Self {
        BoundedValues {
            max,
            seen: RwLock::new(HashSet::new()),
            other: Arc::from(OTHER),
        }
    }

    /// `value` if admitted, else [`OTHER`].
    pub fn bound(&self, value: &str) -> Arc<str> {
        if let Ok(seen) = self.seen.read()
            && let Some(v) = seen.get(value)
        {
            return Arc::clone(v);
        }
        let Ok(mut seen) = self.seen.write() else {
            return Arc::clone(&self.other);
        };
        if let Some(v) = seen.get(value) {
            return Arc::clone(v);
        }
        if seen.len() >= self.max {
            return Arc::clone(&self.other);
        }
        let v: Arc<str> = Arc::from(value);
        seen.insert(Arc::clone(&v));
        v
    }
}

/// Replaces subject tokens that look like identifiers (contain a digit, or
/// are long hex/uuid-like) with `*`: `payments.123.settled` becomes
/// `payments.*.settled`, a template rather than a value.
///
/// ```
/// use services_glue::cardinality::subject_template;
/// assert_eq!(subject_template("payments.123.settled"), "payments.*.settled");
/// assert_eq!(subject_template("obligations.created"), "obligations.created");
/// assert_eq!(subject_template("_INBOX.aBcD9xYz.42"), "_INBOX.*.*");
/// ```
pub fn subject_template(subject: &str) -> String {
    subject
        .split('.')
        .map(|token| {
            let looks_like_id = token.bytes().any(|b| b.is_ascii_digit())
                || (token.len() >= 16 && token.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
            if looks_like_id { "*" } else { token }
        })
        .collect::<Vec<_>>()
        .join(".")
}
