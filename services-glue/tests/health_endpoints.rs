//! /health and /ready on real axum and actix-web servers, and the uptime and
//! build-info series.
#![cfg(all(feature = "health", feature = "axum", feature = "actix"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use services_glue::health::{Readiness, actix_configure, axum_routes, register_process_metrics};
use telemetry::Telemetry;
use telemetry::testing::InMemory;

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    (buf[9..12].parse().unwrap(), buf)
}

fn probes(addr: std::net::SocketAddr, dependency: &AtomicBool) {
    assert_eq!(get(addr, "/health").0, 200);
    let (code, body) = get(addr, "/ready");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"status\":\"ready\""));
    dependency.store(false, Ordering::SeqCst);
    let (code, body) = get(addr, "/ready");
    assert_eq!(code, 503);
    assert!(
        body.contains("\"database\":false") && body.contains("\"telemetry\":true"),
        "{body}"
    );
    assert_eq!(get(addr, "/health").0, 200, "alive even when not ready");
    dependency.store(true, Ordering::SeqCst);
}

fn readiness(dependency: &Arc<AtomicBool>, t: &Telemetry) -> Readiness {
    let dep = dependency.clone();
    let health = t.health();
    Readiness::new()
        .check("database", move || dep.load(Ordering::SeqCst))
        .check("telemetry", move || health.is_healthy())
}

#[test]
fn axum_health_and_ready() {
    let sink = InMemory::new();
    let t = Telemetry::builder("ready-axum")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    let dependency = Arc::new(AtomicBool::new(true));
    let app = axum_routes(readiness(&dependency, &t));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    probes(addr, &dependency);
    drop(rt);
    t.shutdown().unwrap();
}

#[test]
fn actix_health_and_ready() {
    let sink = InMemory::new();
    let t = Telemetry::builder("ready-actix")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    let dependency = Arc::new(AtomicBool::new(true));
    let configure = actix_configure(readiness(&dependency, &t));
    let actix =
        common::start_actix!(move || { actix_web::App::new().configure(configure.clone()) });
    let addr = actix.addr;
    probes(addr, &dependency);
    actix.stop();
    t.shutdown().unwrap();
}

#[test]
fn uptime_and_build_info_are_exported() {
    use telemetry::testing::{MetricData, find_metric};
    let sink = InMemory::new();
    let t = Telemetry::builder("info")
        .with_in_memory(&sink)
        .build()
        .unwrap();
    register_process_metrics(&t.meter(), "3.1.4");
    std::thread::sleep(std::time::Duration::from_millis(20));
    t.shutdown().unwrap();
    let metrics = sink.metrics();

    let uptime = find_metric(&metrics, "process.uptime").expect("process.uptime exported");
    assert!(
        matches!(uptime.data, MetricData::Gauge { .. }),
        "process.uptime is a gauge: {uptime:?}"
    );
    let p = uptime.number_points().first().expect("an uptime point");
    assert!(!p.is_int, "process.uptime is a float gauge: {p:?}");
    assert!(p.value >= 0.02, "{p:?}");

    let info = find_metric(&metrics, "service.build.info").expect("service.build.info exported");
    assert!(
        matches!(info.data, MetricData::Gauge { .. }),
        "service.build.info is a gauge: {info:?}"
    );
    let p = info.number_points().first().expect("a build-info point");
    assert!(p.is_int, "service.build.info is an integer gauge: {p:?}");
    assert_eq!(p.value, 1.0);
    assert_eq!(p.attributes.str("service.version"), Some("3.1.4"));
}
