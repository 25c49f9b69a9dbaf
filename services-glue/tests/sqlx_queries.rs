//! sqlx instrumentation against a real PostgreSQL (Debian package) and an
//! in-memory SQLite.
#![cfg(feature = "sqlx")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use services_glue::db::DbTelemetry;
use telemetry::testing::{MetricData, ReceivedSpan, SpanKind, SpanStatus, find_metric};
use tracing::Instrument;

const CREATE: &str = "CREATE TABLE ledger (account TEXT PRIMARY KEY, balance BIGINT NOT NULL)";
const INSERT: &str = "INSERT INTO ledger (account, balance) VALUES ($1, $2)";
const SELECT: &str = "SELECT balance FROM ledger WHERE account = $1";

/// A span attribute that must be a string (`None` when absent).
fn attr<'a>(s: &'a ReceivedSpan, k: &str) -> Option<&'a str> {
    s.attributes.get(k).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("{k} is a string attribute: {v:?}"))
    })
}

/// The account bound into every query: a value nothing masks, so if a bound
/// value (or an error message quoting it) reached a span, it would show.
const BOUND_MARKER: &str = "bound-value-marker";

#[test]
fn postgres_queries_are_spans_and_durations() {
    let pg = testkit::Postgres::start().unwrap();
    let pg_url = pg.url();
    let sink = common::run_in_telemetry("settlement", |meter| async move {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&pg_url)
            .await
            .unwrap();
        let db = DbTelemetry::new(&meter, "postgresql");
        db.observe_pool(&meter, "ledger", pool.clone());
        async {
            db.run(CREATE, sqlx::query(CREATE).execute(&pool))
                .await
                .unwrap();
            db.run(
                INSERT,
                sqlx::query(INSERT)
                    .bind(BOUND_MARKER)
                    .bind(500_i64)
                    .execute(&pool),
            )
            .await
            .unwrap();
            let dup = db
                .run(
                    INSERT,
                    sqlx::query(INSERT)
                        .bind(BOUND_MARKER)
                        .bind(1_i64)
                        .execute(&pool),
                )
                .await;
            assert!(dup.is_err());
            let (balance,): (i64,) = db
                .run(
                    SELECT,
                    sqlx::query_as(SELECT).bind(BOUND_MARKER).fetch_one(&pool),
                )
                .await
                .unwrap();
            assert_eq!(balance, 500);
        }
        .instrument(tracing::info_span!("settle"))
        .await;
        pool.close().await;
    });

    let spans = sink.spans();
    let root = spans.iter().find(|s| s.name == "settle").unwrap();
    let inserts: Vec<_> = spans.iter().filter(|s| s.name == "INSERT ledger").collect();
    assert_eq!(inserts.len(), 2);
    assert!(inserts.iter().all(
        |s| s.kind == SpanKind::Client && s.parent_span_id.as_ref() == Some(&root.span_id)
    ));
    let failed = inserts
        .iter()
        .find(|s| matches!(s.status, SpanStatus::Error(_)))
        .expect("duplicate key fails");
    assert_eq!(attr(failed, "error.type"), Some("unique_violation"));
    assert_eq!(attr(failed, "db.response.status_code"), Some("23505"));
    let select = spans.iter().find(|s| s.name == "SELECT ledger").unwrap();
    assert_eq!(attr(select, "db.system.name"), Some("postgresql"));
    assert_eq!(attr(select, "db.query.text"), Some(SELECT));
    assert!(
        spans
            .iter()
            .all(|s| !common::mentions(&s.attributes, BOUND_MARKER)),
        "bound values never recorded"
    );

    let metrics = sink.metrics();
    let duration = find_metric(&metrics, "db.client.operation.duration")
        .expect("db.client.operation.duration exported");
    assert!(
        matches!(duration.data, MetricData::Histogram { .. }),
        "db.client.operation.duration is a histogram: {duration:?}"
    );
    let ops: Vec<(String, u64)> = duration
        .histogram_points()
        .iter()
        .map(|p| {
            let op = p
                .attributes
                .get("db.operation.name")
                .map(common::text)
                .unwrap();
            (op, p.count)
        })
        .collect();
    let usage = find_metric(&metrics, "db.client.connections.usage")
        .expect("db.client.connections.usage exported");
    assert!(
        matches!(
            usage.data,
            MetricData::Sum {
                monotonic: false,
                ..
            }
        ),
        "db.client.connections.usage is an up-down counter: {usage:?}"
    );
    let mut pool_states: Vec<String> = usage
        .number_points()
        .iter()
        .map(|p| {
            assert!(p.is_int, "connections are counted in integers: {p:?}");
            common::series_key(&p.attributes)
        })
        .collect();
    pool_states.sort();
    let inserted: u64 = ops
        .iter()
        .filter(|(o, _)| o == "INSERT")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(inserted, 2);
    assert!(ops.iter().any(|(o, n)| o == "SELECT" && *n == 1));
    assert_eq!(
        pool_states,
        ["pool.name=ledger,state=idle", "pool.name=ledger,state=used"],
        "the 1.24 pool convention: state and pool.name"
    );
}

#[test]
fn sqlite_works_the_same_way() {
    let sink = common::run_in_telemetry("settlement-lite", |meter| async move {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let db = DbTelemetry::new(&meter, "sqlite");
        db.run(CREATE, sqlx::query(CREATE).execute(&pool))
            .await
            .unwrap();
        const INSERT_LITE: &str = "INSERT INTO ledger (account, balance) VALUES (?, ?)";
        db.run(
            INSERT_LITE,
            sqlx::query(INSERT_LITE)
                .bind("a")
                .bind(1_i64)
                .execute(&pool),
        )
        .await
        .unwrap();
        let missing = db
            .run(
                SELECT,
                sqlx::query_as::<_, (i64,)>("SELECT balance FROM ledger WHERE account = ?")
                    .bind("zz")
                    .fetch_one(&pool),
            )
            .await;
        assert!(matches!(missing, Err(sqlx::Error::RowNotFound)));
        // SQLite's worker thread holds a clone of each command's span and
        // drops it after answering, so the last query's span can close
        // after its caller has returned. Closing the pool waits for the
        // worker: every span is closed before telemetry shuts down.
        pool.close().await;
    });
    let spans = sink.spans();
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(
        names,
        vec!["CREATE ledger", "INSERT ledger", "SELECT ledger"]
    );
    assert_eq!(attr(&spans[2], "error.type"), Some("row_not_found"));
    assert_eq!(attr(&spans[0], "db.system.name"), Some("sqlite"));
}
