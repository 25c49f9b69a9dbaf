//! `monitoring generate` writes the rendered files of `deploy/` (dashboards,
//! SLO rules, Prometheus 3 config); `monitoring check` exits 1 naming every
//! checked-in file that differs from what rendering gives.

use std::process::ExitCode;

fn main() -> ExitCode {
    let root = monitoring::generate::repo_root();
    let command = std::env::args().nth(1).unwrap_or_default();
    match command.as_str() {
        "generate" => match monitoring::generate::write(&root) {
            Ok(changed) if changed.is_empty() => {
                println!("monitoring: every rendered file is up to date");
                ExitCode::SUCCESS
            }
            Ok(changed) => {
                for path in changed {
                    println!("monitoring: wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("monitoring: {e}");
                ExitCode::from(2)
            }
        },
        "check" => match monitoring::generate::stale(&root) {
            Ok(stale) if stale.is_empty() => {
                println!("monitoring: every rendered file is up to date");
                ExitCode::SUCCESS
            }
            Ok(stale) => {
                for path in stale {
                    eprintln!(
                        "monitoring: {} differs from what `cargo run -p monitoring -- generate` writes",
                        path.display()
                    );
                }
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("monitoring: {e}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!(
                "usage: monitoring generate   write deploy/'s rendered files (dashboards, SLO rules, Prometheus 3 config)\n       monitoring check      exit 1 if a checked-in rendered file is stale"
            );
            ExitCode::from(2)
        }
    }
}
