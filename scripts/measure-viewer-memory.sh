#!/usr/bin/env bash
# Runs the fleet (release build) with the embedded viewer at a given rate and
# prints the launcher's resident memory (the viewer lives in it) every 5 s,
# with what the viewer holds (and its own estimate of the bytes), then the
# run's summary.
#   bash scripts/measure-viewer-memory.sh [rate=200] [seconds=60]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rate=${1:-200}
seconds=${2:-60}
cargo build --release -q -p deltran-fleet
run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT
env -u OTEL_EXPORTER_OTLP_ENDPOINT target/release/deltran --ports auto --no-view \
  --rate "$rate" --duration "${seconds}s" --run-dir "$run_dir/run" >"$run_dir/out.log" 2>&1 &
pid=$!
echo "seconds rss_mib viewer_spans viewer_traces traces_evicted viewer_logs estimate_mib"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  sleep 5
  rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status" 2>/dev/null || echo -)
  url=$(grep -o '"viewer_url": *"[^"]*"' "$run_dir/run/fleet.json" 2>/dev/null | cut -d'"' -f4 || true)
  stats=""
  if [ -n "$url" ]; then
    stats=$(curl -s --max-time 2 "$url/api/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["spans"], s["traces"], s["traces_evicted"], s["logs"], s.get("bytes", 0) >> 20)' 2>/dev/null || true)
  fi
  echo "$(( $(date +%s) - start )) ${rss:-gone} ${stats}"
done
wait "$pid" || true
grep '^deltran: ' "$run_dir/out.log"
