//! The rendered files in `deploy/` (dashboards, SLO rules, the Prometheus 3
//! configuration) are what the catalogue and the sources render today.
#![allow(clippy::unwrap_used)]

#[test]
fn checked_in_rendered_files_are_up_to_date() {
    let stale = monitoring::generate::stale(&monitoring::generate::repo_root()).unwrap();
    assert!(
        stale.is_empty(),
        "stale: {stale:?}; run `cargo run -p monitoring -- generate` and commit the result"
    );
}

#[test]
fn a_hand_edit_to_a_rendered_file_is_noticed() {
    // Render into a scratch copy of the sources, then change one byte.
    let root = monitoring::generate::repo_root();
    let scratch = tempfile::tempdir().unwrap();
    for dir in ["deploy/slo", "deploy/prometheus"] {
        std::fs::create_dir_all(scratch.path().join(dir)).unwrap();
    }
    for file in [
        "deploy/slo/gateway-payments.yaml",
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/otlp.yml",
    ] {
        std::fs::copy(root.join(file), scratch.path().join(file)).unwrap();
    }
    monitoring::generate::write(scratch.path()).unwrap();
    assert!(
        monitoring::generate::stale(scratch.path())
            .unwrap()
            .is_empty()
    );
    let path = scratch
        .path()
        .join("deploy/grafana/dashboards/payments.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("Payments", "Paymentz", 1);
    std::fs::write(&path, text).unwrap();
    assert_eq!(
        monitoring::generate::stale(scratch.path()).unwrap(),
        [std::path::PathBuf::from(
            "deploy/grafana/dashboards/payments.json"
        )]
    );
}
