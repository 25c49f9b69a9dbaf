//! Rendering an overlay as `kubectl apply -k` renders it, so what is
//! checked is exactly what a cluster would get; and running the external
//! tools (kubectl, kubernetes-validate) with their output kept for the
//! message when they refuse.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::K8sError;

/// The command line, for messages.
fn describe(program: &Path, args: &[&str]) -> String {
    let mut line = program.display().to_string();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line
}

/// Runs `program` with `args` (and `stdin`, if any) and returns its stdout;
/// a failure carries everything it printed.
pub(super) fn run(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<String, K8sError> {
    let command = describe(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| K8sError::Spawn {
            command: command.clone(),
            source,
        })?;
    // Feed stdin from another thread: a tool that writes before it has read
    // everything would otherwise deadlock on a full pipe.
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&data)))
        }
        _ => None,
    };
    let output = child.wait_with_output().map_err(|source| K8sError::Spawn {
        command: command.clone(),
        source,
    })?;
    if let Some(w) = writer {
        // A tool that stops reading early reports why on its own output.
        let _ = w.join();
    }
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(K8sError::Failed {
            command,
            status: output.status.to_string(),
            output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        })
    }
}

/// Renders an overlay exactly as `kubectl apply -k` would
/// (`kubectl kustomize <dir>`), so what is checked is what a cluster gets.
pub fn render(kubectl: &Path, overlay: &Path) -> Result<String, K8sError> {
    let dir = overlay.display().to_string();
    run(kubectl, &["kustomize", &dir], None)
}
