#!/usr/bin/env bash
# The project's test command: install real test servers, then fmt, clippy, tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh
# A clean checkout gains nothing from incremental caches, only disk use.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-features 2>&1 | tee "$log"
# The patched tracing-opentelemetry is a workspace of its own (see
# vendor/README.md): its checks and tests, upstream's and ours, run from its
# manifest with its own lockfile.
vendored=vendor/tracing-opentelemetry/Cargo.toml
vlog=$(mktemp)
trap 'rm -f "$log" "$vlog"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/vendored"
cargo fmt --manifest-path "$vendored" -- --check
cargo clippy --locked --manifest-path "$vendored" --all-targets -- -D warnings
cargo test --locked --manifest-path "$vendored" 2>&1 | tee "$vlog"
# One closing line per workspace (cargo prints one per test binary, and the
# last binary is often a doctest crate with nothing in it).
summary() {
    awk -v label="$1" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
         END { printf "%s: %d passed, %d failed\n", label, p, f }' "$2"
}
summary workspace "$log"
summary "vendored tracing-opentelemetry" "$vlog"
echo "target/ after the run: $(du -sh target 2>/dev/null | cut -f1)"
