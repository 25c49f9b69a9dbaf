#!/usr/bin/env bash
# Overload, as users feel it: the whole fleet (debug build, as `cargo run`
# gives a newcomer) driven by its open-loop load generator at the rate it
# sustains and at 5x and 10x that, with the gateway's load shedding on
# (DELTRAN_GATEWAY_MAX_IN_FLIGHT=32, the default) and off (0), in one run.
#
# Per run: payments accepted per second, p95 and p99 of accepted payments
# (the gateway's own http.server.request.duration for POST /payments, 202),
# payments shed (503 + Retry-After), and requests with no answer within the
# generator's 10 s timeout.
#
#   bash scripts/bench-overload.sh            # rates 50 250 500, 30 s each
#   RATES="50 250" SECONDS_PER_RUN=20 bash scripts/bench-overload.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RATES=${RATES:-"50 250 500"}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-30}
cargo build -q -p deltran-fleet
BIN=target/debug/deltran

summarize() { # run_dir metrics_file launcher_log rate limit
  python3 - "$@" <<'PY'
import json, re, sys
run_dir, metrics, log, rate, limit = sys.argv[1:6]
seconds = float(sys.argv[6])
text = open(metrics).read()
def counter(outcome):
    m = re.search(r'^deltran_payments_total\{[^}]*outcome="%s"[^}]*\} (\S+)$' % outcome, text, re.M)
    return float(m.group(1)) if m else 0.0
buckets = {}
for m in re.finditer(r'^http_server_request_duration_seconds_bucket\{([^}]*)\} (\S+)$', text, re.M):
    labels = m.group(1)
    if 'http_route="/payments"' in labels and 'http_request_method="POST"' in labels \
            and 'http_response_status_code="202"' in labels:
        le = re.search(r'le="([^"]+)"', labels).group(1)
        buckets[float('inf') if le == '+Inf' else float(le)] = float(m.group(2))
def quantile(q):
    if not buckets:
        return float('nan')
    total = buckets[float('inf')]
    prev_le, prev_c = 0.0, 0.0
    for le in sorted(buckets):
        c = buckets[le]
        if c >= q * total:
            if le == float('inf'):
                return prev_le
            return prev_le + (le - prev_le) * ((q * total - prev_c) / max(c - prev_c, 1e-9))
        prev_le, prev_c = le, c
    return prev_le
summary = [l for l in open(log) if 'sent ' in l and 'accepted' in l]
last = summary[-1] if summary else ''
def field(name):
    m = re.search(r'\b%s (\d+)' % name, last)
    return int(m.group(1)) if m else -1
print(f"| {rate}/s | {'on (' + limit + ')' if limit != '0' else 'off'} | {counter('accepted') / seconds:.0f} "
      f"| {quantile(0.95) * 1000:.0f} | {quantile(0.99) * 1000:.0f} | {field('shed')} | {field('unreachable')} | {field('sent')} |")
PY
}

echo "| rate | shedding | accepted/s | p95 ms (accepted) | p99 ms | shed | no answer in 10 s | sent |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|"
for rate in $RATES; do
  for limit in 32 0; do
    dir=$(mktemp -d)
    DELTRAN_GATEWAY_MAX_IN_FLIGHT=$limit "$BIN" --ports auto --no-view --rate "$rate" \
      --duration "$((SECONDS_PER_RUN + 5))s" --run-dir "$dir/run" >"$dir/launcher.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 120); do [ -f "$dir/run/fleet.json" ] && break; sleep 0.5; done
    gateway=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['gateway_url'])" "$dir/run/fleet.json")
    sleep "$SECONDS_PER_RUN"
    curl -s "$gateway/metrics" >"$dir/metrics.txt" || true
    wait "$pid" || true
    summarize "$dir/run" "$dir/metrics.txt" "$dir/launcher.log" "$rate" "$limit" "$SECONDS_PER_RUN"
    rm -rf "$dir"
  done
done
