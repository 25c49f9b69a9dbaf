//! The fleet image's Dockerfile and build context: multi-stage with pinned
//! bases, a runtime stage without the Rust toolchain running the built
//! binary as a non-root user, Cargo's caches in cache mounts, and a
//! `.dockerignore` keeping `target/` and `.git` out of the context. What it
//! copies into the image is also what health checks may run.

use std::collections::BTreeSet;
use std::path::Path;

use super::findings::{finding, finish};
use super::image::ImageRef;
use super::read::read_text;
use super::stack::Stack;
use super::{ComposeError, Finding};

/// One instruction of a Dockerfile, continuation lines joined.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Instruction {
    /// `FROM`, `RUN`, … (upper case).
    keyword: String,
    /// The rest of the line, trimmed.
    rest: String,
}

/// The instructions of a Dockerfile's `text`, comments and blank lines
/// dropped, `\` continuations joined.
fn dockerfile_instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            rest: rest.trim().to_string(),
        });
        current.clear();
    }
    out
}

/// The instructions from the last `FROM` on: the stage that becomes the image.
fn final_stage(instructions: &[Instruction]) -> &[Instruction] {
    let start = instructions
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .unwrap_or(0);
    instructions.get(start..).unwrap_or_default()
}

/// The Dockerfile of every built service: multi-stage, every base image
/// pinned, the final stage running as a non-root user with the binary the
/// build produces as its entrypoint, Cargo's caches in cache mounts, and a
/// `.dockerignore` keeping `target/` and `.git` out of the build context.
pub fn check_dockerfiles(stack: &Stack) -> Result<(), ComposeError> {
    let mut findings = Vec::new();
    let mut seen = BTreeSet::new();
    for service in stack.services.values() {
        let Some(build) = &service.build else {
            continue;
        };
        if !seen.insert(build.dockerfile.clone()) {
            continue;
        }
        if !build.dockerfile.is_file() {
            findings.push(finding(
                &stack.path,
                format!(
                    "service {}: build.dockerfile is {}, which does not exist (it is relative to build.context)",
                    service.name,
                    build.dockerfile.display()
                ),
            ));
            continue;
        }
        let text = read_text(&build.dockerfile)?;
        findings.extend(dockerfile_findings(&build.dockerfile, &text));
        findings.extend(dockerignore_findings(&build.context.join(".dockerignore")));
    }
    finish(findings)
}

/// What a build context must leave out, the line to suggest, and every
/// line that does it.
const IGNORED: [(&str, &str, &[&str]); 2] = [
    (
        "target",
        "target",
        &["target", "/target", "target/", "**/target", "**/target/"],
    ),
    (".git", ".git", &[".git", "/.git", ".git/"]),
];

/// The `.dockerignore` at `ignore` leaves `target/` and `.git` out (a
/// context with them is gigabytes sent to the daemon on every build).
fn dockerignore_findings(ignore: &Path) -> Vec<Finding> {
    let Ok(text) = std::fs::read_to_string(ignore) else {
        return vec![finding(
            ignore,
            "missing: add one excluding target/ and .git from the build context",
        )];
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    IGNORED
        .iter()
        .filter(|(_, _, accepted)| !lines.iter().any(|l| accepted.contains(l)))
        .map(|(what, suggested, _)| {
            finding(
                ignore,
                format!("add `{suggested}` so the build context leaves {what} out"),
            )
        })
        .collect()
}

/// The findings for one Dockerfile's text (see [`check_dockerfiles`]).
pub fn dockerfile_findings(path: &Path, text: &str) -> Vec<Finding> {
    let instructions = dockerfile_instructions(text);
    let final_stage = final_stage(&instructions);
    let mut problems = base_image_problems(&instructions);
    if instructions.iter().filter(|i| i.keyword == "FROM").count() < 2 {
        problems.push(
            "single stage: build in one stage and copy only the binary into a small runtime stage"
                .into(),
        );
    }
    problems.extend(runtime_stage_problems(final_stage));
    problems.extend(cargo_cache_problems(&instructions));
    problems.extend(entrypoint_problem(final_stage, built_binary(&instructions)));
    problems
        .into_iter()
        .map(|problem| finding(path, problem))
        .collect()
}

/// Every `FROM` names an image, pinned — or an earlier stage.
fn base_image_problems(instructions: &[Instruction]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut stages: Vec<String> = Vec::new();
    for ins in instructions.iter().filter(|i| i.keyword == "FROM") {
        let words: Vec<&str> = ins
            .rest
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let Some(image) = words.first() else {
            problems.push("a FROM without an image".into());
            continue;
        };
        // An earlier stage's name is not an image to pin.
        let earlier_stage = stages.iter().any(|s| s == image);
        if let [_, as_kw, name] = words.as_slice()
            && as_kw.eq_ignore_ascii_case("as")
        {
            stages.push(name.to_string());
        }
        if *image == "scratch" || earlier_stage {
            continue;
        }
        if let Some(why) = ImageRef::parse(image).unpinned() {
            problems.push(format!(
                "FROM {image} {why}; pin a version (image:1.2.3 or image@sha256:…)"
            ));
        }
    }
    problems
}

/// The runtime stage is small (no Rust toolchain) and runs as non-root.
fn runtime_stage_problems(final_stage: &[Instruction]) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(from) = final_stage.first()
        && (from.rest.contains("rust:") || from.rest.contains("cargo"))
    {
        problems.push(format!("the runtime stage is FROM {}: the Rust toolchain does not belong in the image; use a small base (distroless, debian-slim)", from.rest));
    }
    match final_stage.iter().rev().find(|i| i.keyword == "USER") {
        Some(user) => {
            let name = user.rest.split(':').next().unwrap_or_default();
            if name == "root" || name == "0" {
                problems.push(format!("the runtime stage runs as USER {}; use a non-root user (e.g. 65532:65532)", user.rest));
            }
        }
        None => problems.push(
            "the runtime stage has no USER, so it runs as root; add USER 65532:65532 (or the base's non-root user)".into(),
        ),
    }
    problems
}

/// The `RUN` instructions that run `cargo build`.
fn cargo_builds(instructions: &[Instruction]) -> impl Iterator<Item = &Instruction> {
    instructions
        .iter()
        .filter(|i| i.keyword == "RUN" && i.rest.contains("cargo build"))
}

/// The binary `cargo build --bin <name>` produces, if the build names one.
fn built_binary(instructions: &[Instruction]) -> Option<String> {
    cargo_builds(instructions).find_map(|i| {
        let words: Vec<&str> = i.rest.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == "--bin")
            .map(|w| w[1].to_string())
    })
}

/// Every `cargo build` keeps its caches in cache mounts (otherwise every
/// build downloads and compiles everything again).
fn cargo_cache_problems(instructions: &[Instruction]) -> Vec<String> {
    cargo_builds(instructions)
        .filter(|run| !run.rest.contains("--mount=type=cache"))
        .map(|_| "`cargo build` runs without cache mounts; add --mount=type=cache for the registry and target/".to_string())
        .collect()
}

/// The runtime stage's `ENTRYPOINT` is the exec form (there is no shell)
/// and starts the binary the build produces.
fn entrypoint_problem(final_stage: &[Instruction], built: Option<String>) -> Option<String> {
    let Some(entrypoint) = final_stage.iter().rev().find(|i| i.keyword == "ENTRYPOINT") else {
        return Some("the runtime stage has no ENTRYPOINT".into());
    };
    let first = serde_json::from_str::<Vec<String>>(&entrypoint.rest)
        .ok()
        .and_then(|v| v.into_iter().next());
    match (first, built) {
        (None, _) => Some(format!(
            "ENTRYPOINT {} is not the exec (JSON) form; without a shell in the image only the exec form runs",
            entrypoint.rest
        )),
        (Some(first), Some(bin))
            if Path::new(&first).file_name().and_then(|f| f.to_str()) != Some(bin.as_str()) =>
        {
            Some(format!(
                "ENTRYPOINT runs {first}, but the build produces `{bin}`; start that binary"
            ))
        }
        _ => None,
    }
}

/// The files a Dockerfile's final stage adds (COPY/ADD destinations), so
/// a health check can be checked to run something the image has.
pub(super) fn final_stage_files(text: &str) -> Vec<String> {
    let instructions = dockerfile_instructions(text);
    final_stage(&instructions)
        .iter()
        .filter(|i| i.keyword == "COPY" || i.keyword == "ADD")
        .filter_map(|i| i.rest.split_whitespace().last().map(str::to_string))
        .collect()
}
