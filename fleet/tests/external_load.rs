//! `deltran load` against a fleet it did not start: the launcher's mix of
//! payments reaches the gateway, every one is answered and counted, and
//! the command ends by itself after `--duration`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::Launcher;

/// The gateway's `deltran_payments_total`, summed over outcomes.
fn payments_counted(gateway: &str) -> f64 {
    let (_, text) = testkit::http_get(&format!("{gateway}/metrics")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("deltran_payments_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `name N` out of the command's final line.
fn count(line: &str, name: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == name)
        .unwrap_or_else(|| panic!("no {name} in {line:?}"));
    words[at + 1].parse().unwrap()
}

#[test]
fn load_from_outside_reaches_the_gateway_and_ends_by_itself() {
    let mut launcher = Launcher::start(&["--rate", "0", "--websockets", "0"], &[]);
    let gateway = launcher.fleet.gateway_url.clone();
    let url = |name: &str| {
        let port = launcher.fleet.engine(name).unwrap().port;
        format!("http://127.0.0.1:{port}")
    };
    let before = payments_counted(&gateway);

    let out = Command::new(env!("CARGO_BIN_EXE_deltran"))
        .args([
            "load",
            "--gateway",
            &gateway,
            "--clearing",
            &url("clearing-engine"),
        ])
        .args(["--settlement", &url("settlement-engine")])
        .args(["--rate", "10", "--duration", "3s", "--websockets", "1"])
        .env_remove("DELTRAN_GATEWAY_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout
        .lines()
        .rfind(|l| l.contains("done after"))
        .unwrap_or_else(|| panic!("no final line in {stdout}"));
    let sent = count(last, "sent");
    assert!((20..=40).contains(&sent), "{last}");
    assert_eq!(count(last, "unreachable"), 0, "{last}");
    assert!(count(last, "accepted") > 0, "{last}");
    // Every payment it sent was answered by the gateway and counted there.
    let mut counted = 0.0;
    for _ in 0..50 {
        counted = payments_counted(&gateway) - before;
        if counted as u64 >= sent {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(counted as u64, sent, "{last}");

    // A base URL it cannot use is refused before anything is sent.
    let out = Command::new(env!("CARGO_BIN_EXE_deltran"))
        .args(["load", "--gateway", "gateway:8080"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--gateway"));

    assert!(launcher.interrupt().success(), "{}", launcher.logs());
}
