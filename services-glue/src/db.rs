//! Database calls (sqlx): a CLIENT span `{operation} {table}` and
//! `db.client.operation.duration` (s) per query with `db.system.name`,
//! `db.operation.name`, `db.collection.name`; the query text is recorded only
//! sanitized (every literal replaced by `?`), and only from a `&'static str`,
//! so values bound at run time can never reach it. Pool gauges:
//! `db.client.connections.usage` by `state` (`used`, `idle`) and `pool.name`.
//!
//! The pool metric keeps the semantic conventions' 1.24 name and attributes
//! rather than today's `db.client.connection.count` (still at development
//! status): in Prometheus that name becomes `db_client_connection_count`, a
//! gauge ending in `_count`, which `promtool check metrics` rejects and which
//! reads as a histogram's count in PromQL. `db_client_connections_usage` is
//! also what the OpenTelemetry Java agent's pool metrics are called, so
//! existing pool dashboards work unchanged.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> Result<(), sqlx::Error> {
//! use services_glue::db::DbTelemetry;
//! let db = DbTelemetry::new(&opentelemetry::global::meter("settlement-engine"), "postgresql");
//! const SETTLE: &str = "UPDATE ledger SET balance = balance + $1 WHERE account = $2";
//! db.run(SETTLE, sqlx::query(SETTLE).bind(100_i64).bind("acc-1").execute(&pool)).await?;
//! db.observe_pool(&opentelemetry::global::meter("settlement-engine"), "ledger", pool.clone());
//! # Ok(()) }
//! ```

use std::future::Future;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tracing::Instrument;
use tracing::field::Empty;

use crate::outcome::{Duration, ErrorType, OutcomeGuard};

pub use crate::pool::POOL_CONNECTIONS;

/// Database instruments for one `db.system.name` (`postgresql`, `sqlite`, ...).
#[derive(Clone, Debug)]
pub struct DbTelemetry {
    system: &'static str,
    duration: Histogram<f64>,
}

impl DbTelemetry {
    /// Instruments on `meter` for the database system `system`.
    pub fn new(meter: &Meter, system: &'static str) -> Self {
        DbTelemetry {
            system,
            duration: crate::pool::operation_duration(meter),
        }
    }

    /// Runs `query` (the future sqlx returns for `sql`) inside a CLIENT span
    /// and records its duration and outcome.
    pub async fn run<T>(
        &self,
        sql: &'static str,
        query: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let shape = QueryShape::parse(sql);
        let name = match shape.collection {
            Some(ref c) => format!("{} {c}", shape.operation),
            None => shape.operation.to_string(),
        };
        let span = tracing::info_span!(
            "db",
            otel.name = %name,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = self.system,
            db.operation.name = shape.operation,
            db.collection.name = shape.collection.as_deref(),
            db.query.text = %sanitize(sql),
            db.response.status_code = Empty,
            error.type = Empty,
        );
        let mut attrs = vec![
            KeyValue::new("db.system.name", self.system),
            KeyValue::new("db.operation.name", shape.operation),
        ];
        if let Some(c) = shape.collection {
            attrs.push(KeyValue::new("db.collection.name", c));
        }
        let mut outcome = OutcomeGuard::new(
            span.clone(),
            Duration {
                histogram: self.duration.clone(),
                attrs,
            },
        );
        let result = query.instrument(span).await;
        let error = result.as_ref().err().map(|e| {
            let (kind, code) = error_type(e);
            if let Some(code) = code {
                outcome
                    .span()
                    .record("db.response.status_code", code.as_str());
                if let Some(m) = outcome.measure_mut() {
                    m.attrs.push(KeyValue::new("db.response.status_code", code));
                }
            }
            ErrorType::Owned(kind)
        });
        outcome.finish(error);
        result
    }

    /// Observable gauges of the pool's used and idle connections (the original set-ups'
    /// "connections active"), as [`POOL_CONNECTIONS`].
    pub fn observe_pool<DB: sqlx::Database>(
        &self,
        meter: &Meter,
        pool_name: &'static str,
        pool: sqlx::Pool<DB>,
    ) {
        crate::pool::observe(meter, pool_name, move || {
            let size = i64::from(pool.size());
            let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
            (size.saturating_sub(idle), idle)
        });
    }
}

/// A bounded `error.type` and, for database errors, the SQLSTATE code.
fn error_type(e: &sqlx::Error) -> (String, Option<String>) {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string());
            let kind = match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => "unique_violation",
                sqlx::error::ErrorKind::ForeignKeyViolation => "foreign_key_violation",
                sqlx::error::ErrorKind::NotNullViolation => "not_null_violation",
                sqlx::error::ErrorKind::CheckViolation => "check_violation",
                _ => "database_error",
            };
            (kind.to_string(), code)
        }
        sqlx::Error::RowNotFound => ("row_not_found".into(), None),
        sqlx::Error::PoolTimedOut => ("pool_timed_out".into(), None),
        sqlx::Error::PoolClosed => ("pool_closed".into(), None),
        sqlx::Error::Io(_) => ("io".into(), None),
        sqlx::Error::Tls(_) => ("tls".into(), None),
        _ => ("_OTHER".into(), None),
    }
}

/// Operation and main table of a statement, from its leading keyword.
#[derive(Debug, PartialEq, Eq)]
pub struct QueryShape {
    /// `SELECT`, `INSERT`, `UPDATE`, `DELETE`, ... (upper case), or `_OTHER`.
    pub operation: &'static str,
    /// The table after FROM / INTO / UPDATE, when there is one.
    pub collection: Option<String>,
}

impl QueryShape {
    /// Reads the shape of `sql`.
    ///
    /// ```
    /// use services_glue::db::QueryShape;
    /// let s = QueryShape::parse("select * from ledger where id = $1");
    /// assert_eq!((s.operation, s.collection.as_deref()), ("SELECT", Some("ledger")));
    /// ```
    pub fn parse(sql: &str) -> QueryShape {
        let words: Vec<&str> = sql.split_whitespace().collect();
        let first = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let operation = match first.as_str() {
            "SELECT" => "SELECT",
            "INSERT" => "INSERT",
            "UPDATE" => "UPDATE",
            "DELETE" => "DELETE",
            "CREATE" => "CREATE",
            "DROP" => "DROP",
            "ALTER" => "ALTER",
            "WITH" => "WITH",
            "BEGIN" => "BEGIN",
            "COMMIT" => "COMMIT",
            _ => "_OTHER",
        };
        let after = |kw: &str| {
            words
                .iter()
                .position(|w| w.eq_ignore_ascii_case(kw))
                .and_then(|i| words.get(i + 1))
                .map(|t| {
                    t.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                        .to_ascii_lowercase()
                })
                .filter(|t| !t.is_empty())
        };
        let collection = match operation {
            "SELECT" | "DELETE" => after("FROM"),
            "INSERT" => after("INTO"),
            "UPDATE" => words.get(1).map(|t| t.to_ascii_lowercase()),
            "CREATE" | "DROP" | "ALTER" => after("TABLE"),
            _ => None,
        };
        QueryShape {
            operation,
            collection,
        }
    }
}

/// Replaces string and numeric literals with `?`: a safety net for query
/// text written with literals in it.
///
/// ```
/// use services_glue::db::sanitize;
/// assert_eq!(sanitize("SELECT * FROM t WHERE name = 'bob' AND n > 42 AND id = $1"),
///            "SELECT * FROM t WHERE name = ? AND n > ? AND id = $1");
/// ```
pub fn sanitize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        if c == '\'' {
            // Skip the string literal, honouring '' escapes.
            while let Some(n) = chars.next() {
                if n == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        break;
                    }
                }
            }
            out.push('?');
            prev = Some('?');
            continue;
        }
        let in_identifier = prev.is_some_and(|p| p.is_ascii_alphanumeric() || p == '_' || p == '$');
        if c.is_ascii_digit() && !in_identifier {
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_digit() || *n == '.')
            {
                chars.next();
            }
            out.push('?');
            prev = Some('?');
            continue;
        }
        out.push(c);
        prev = Some(c);
    }
    out
}
