//! The README's first command on a machine without `nats-server`: it gets
//! it, or stops naming the exact command to run — never a bare "not found".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/run-fleet.sh")
}

/// Runs the script with `search` as the only places nats-server may be,
/// installation forbidden (tests never install packages).
fn run_fleet(search: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .env("DELTRAN_SETUP_SEARCH_PATH", search)
        .env("DELTRAN_SETUP_NO_INSTALL", "1")
        .output()
        .unwrap()
}

#[test]
fn without_nats_server_it_stops_with_the_exact_commands() {
    let empty = tempfile::tempdir().unwrap();
    let out = run_fleet(empty.path(), &["--setup-only"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for exact in [
        "sudo apt-get install -y nats-server",
        "brew install nats-server",
        "https://github.com/nats-io/nats-server/releases",
        "bash scripts/run-fleet.sh --nats-url nats://HOST:4222",
    ] {
        assert!(err.contains(exact), "missing {exact:?} in:\n{err}");
    }
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn a_nats_server_in_the_search_path_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let stub = dir.path().join("nats-server");
    std::fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let search = std::env::join_paths([empty.path(), dir.path()]).unwrap();
    let out = run_fleet(Path::new(&search), &["--setup-only"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&stub.display().to_string()), "{said}");
    // A file that is not executable is not a nats-server.
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_fleet(Path::new(&search), &["--setup-only"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn a_named_nats_server_needs_no_local_one() {
    let empty = tempfile::tempdir().unwrap();
    let out = run_fleet(
        empty.path(),
        &["--setup-only", "--nats-url", "nats://nats.internal:4222"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not needed"));
}
