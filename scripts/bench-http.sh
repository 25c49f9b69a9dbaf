#!/usr/bin/env bash
# CPU per request of a hello-world axum server, bare vs instrumented with
# services-glue's HttpServerLayer, measured in the same run with wrk on
# loopback. The server runs on one thread; its CPU time (utime+stime from
# /proc/PID/stat) is divided by the requests wrk completed. Telemetry exports
# OTLP to an in-run collector stand-in (rotel, if installed) or, without one,
# to a refused port (spans then queue and drop, which costs the same on the
# request path).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
cargo build -q --release -p services-glue --features axum --example hello_server
bin=target/release/examples/hello_server
duration=${DURATION:-10}
ticks=$(getconf CLK_TCK)

measure() {
  local mode=$1 port=$2
  HELLO_MODE=$mode HELLO_PORT=$port TELEMETRY_LOG_FORMAT=json RUST_LOG=info \
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 OTEL_LOGS_EXPORTER=none \
    "$bin" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  wrk -t1 -c8 -d1s "http://127.0.0.1:$port/payments/42" >/dev/null   # warm-up
  local before; before=$(awk '{print $14+$15}' /proc/$pid/stat)
  local out; out=$(wrk -t1 -c8 -d"${duration}s" "http://127.0.0.1:$port/payments/42")
  local after; after=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill -INT $pid; wait $pid 2>/dev/null || true
  local requests; requests=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -v cpu=$((after - before)) -v t="$ticks" -v n="$requests" -v m="$mode" \
    'BEGIN { printf "%-13s %9d requests  %7.2f us CPU/request\n", m, n, cpu / t * 1e6 / n }'
}

bare=$(measure bare 18081)
inst=$(measure instrumented 18082)
echo "$bare"; echo "$inst"
b=$(echo "$bare" | awk '{print $4}'); i=$(echo "$inst" | awk '{print $4}')
awk -v b="$b" -v i="$i" 'BEGIN { printf "instrumented / bare CPU per request: %.2fx\n", i / b }'
