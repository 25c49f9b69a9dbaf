//! Redis through deadpool-redis against a real redis-server: a CLIENT span
//! and a duration per command, errors by kind, and the pool gauge.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use deadpool_redis::redis::cmd;
use services_glue::redis::RedisTelemetry;
use telemetry::testing::{MetricData, SpanKind};

#[test]
fn commands_are_client_spans_with_durations_and_the_pool_is_measured() {
    let server = testkit::Redis::start().unwrap();
    let url = server.url();
    let sink = common::run_in_telemetry("cache-test", |meter| async move {
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        let redis = RedisTelemetry::new(&meter);
        redis.observe_pool(&meter, "cache", pool.clone());
        let mut conn = pool.get().await.unwrap();
        let missing: Option<String> = redis
            .run("GET", cmd("GET").arg("portfolio").query_async(&mut conn))
            .await
            .unwrap();
        assert_eq!(missing, None);
        let _: () = redis
            .run(
                "SET",
                cmd("SET").arg("portfolio").arg("{}").query_async(&mut conn),
            )
            .await
            .unwrap();
        let found: Option<String> = redis
            .run("GET", cmd("GET").arg("portfolio").query_async(&mut conn))
            .await
            .unwrap();
        assert_eq!(found.as_deref(), Some("{}"));
        // INCR on a string: the server refuses it.
        let refused: Result<i64, _> = redis
            .run("INCR", cmd("INCR").arg("portfolio").query_async(&mut conn))
            .await;
        assert!(refused.is_err());
    });

    let spans = sink.spans();
    let commands: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client)
        .collect();
    assert_eq!(
        commands.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["GET", "SET", "GET", "INCR"]
    );
    for s in &commands {
        assert_eq!(s.attributes.str("db.system.name"), Some("redis"));
        assert_eq!(s.attributes.str("db.operation.name"), Some(s.name.as_str()));
        let text = format!("{:?}", s.attributes);
        assert!(!text.contains("portfolio"), "no key on a span: {text}");
    }
    assert_eq!(
        commands[3].attributes.str("error.type"),
        Some("server_error")
    );

    let metrics = sink.metrics();
    let duration =
        telemetry::testing::find_metric(&metrics, "db.client.operation.duration").unwrap();
    let MetricData::Histogram { points, .. } = &duration.data else {
        panic!("a histogram")
    };
    let count = |op: &str, failed: bool| -> u64 {
        points
            .iter()
            .filter(|p| {
                p.attributes.str("db.operation.name") == Some(op)
                    && p.attributes.contains_key("error.type") == failed
            })
            .map(|p| p.count)
            .sum()
    };
    assert_eq!(
        (
            count("GET", false),
            count("SET", false),
            count("INCR", true)
        ),
        (2, 1, 1)
    );
    let pool = telemetry::testing::find_metric(&metrics, "db.client.connections.usage").unwrap();
    let states: Vec<(String, f64)> = pool
        .number_points()
        .iter()
        .map(|p| (p.attributes.str("state").unwrap().to_string(), p.value))
        .collect();
    assert!(
        states.contains(&("idle".to_string(), 1.0)) || states.contains(&("used".to_string(), 1.0)),
        "{states:?}"
    );
    assert!(
        pool.number_points()
            .iter()
            .all(|p| p.attributes.str("pool.name") == Some("cache")),
        "{states:?}"
    );
}
