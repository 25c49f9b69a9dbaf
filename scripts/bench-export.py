#!/usr/bin/env python3
"""Export throughput of telemetry against the SDK's own batch processors,
spans and log records, OTLP/gRPC and OTLP/HTTP, into a real collector on
loopback (rotel, blackhole exporter), rounds rotated, medians side by side
with ratios to the lean upstream stack measured in the same run.

  telemetry  Telemetry::builder(..) as shipped (its batch queue and exporters)
  upstream   registry + tracing-opentelemetry / appender-tracing bridge with
             their defaults + SDK BatchSpanProcessor / BatchLogProcessor
  lean       upstream with telemetry's settings (EnvFilter "info"; no code
             location, thread ids or inactivity tracking; same batch sizes)
  lean-json  (log records only) lean plus telemetry's stdout JSON layer
             writing to a sink, as telemetry formats every event for stdout
  telemetry-none  (log records only) telemetry with TELEMETRY_LOG_FORMAT=none:
             no stdout line, like lean

usage: python3 scripts/bench-export.py [--n 300000] [--rounds 3] [--threads 1]
           [--sustain 60] [--rate 20000] [--sustain-protocols grpc]
           [--signals spans,logs] [--protocols grpc,http] [--no-build]
           [--bin label=path ...]

Each run is one process (telemetry/examples/export_throughput.rs) that
prints one JSON line. `--bin label=path` adds another build of that example
as a further telemetry stack (a same-run A/B of a change). `--sustain S`
adds one S-second run per stack and signal at `--rate` items per second
with the default queue bound, sampling RSS every second (0 skips it).
Builds release first (honours CARGO_TARGET_DIR).
"""
import argparse, json, os, signal, socket, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rotel_sink import start_rotel, stop_rotel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "examples", "export_throughput")
STACKS = ["telemetry", "upstream", "lean"]


def run(binary, stack, sig, proto, endpoint, n, threads, sustain=None, rate=None):
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("OTEL_") or k.startswith("TELEMETRY_") or k == "RUST_LOG")}
    args = [binary, stack, sig, proto, endpoint, str(n), str(threads)]
    if sustain:
        args += [str(sustain), str(rate)]
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return json.loads(lines[-1])


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sustain", type=int, default=60)
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--sustain-protocols", default="grpc")
    ap.add_argument("--signals", default="spans,logs")
    ap.add_argument("--protocols", default="grpc,http")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--bin", action="append", default=[], help="label=path: another telemetry build")
    o = ap.parse_args()
    if not o.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-j", "2", "-p", "telemetry",
                        "--example", "export_throughput"], cwd=ROOT, check=True)
    # (label, binary, stack argument)
    stacks = [(s, BIN, s) for s in STACKS] + [(l, p, "telemetry") for l, p in (b.split("=", 1) for b in o.bin)]
    signals, protocols = o.signals.split(","), o.protocols.split(",")
    # Spans never reach the stdout layer: lean-json only for log records.
    extra = {"logs": [("lean-json", BIN, "lean-json"), ("telemetry-none", BIN, "telemetry-none")],
             "spans": []}
    per_signal = {sig: stacks + extra.get(sig, []) for sig in signals}
    results = {}
    for r in range(o.rounds):
        rotel, endpoints = start_rotel()
        try:
            for sig in signals:
                k = r % len(per_signal[sig])
                order = per_signal[sig][k:] + per_signal[sig][:k]
                for proto in protocols:
                    for label, binary, stack in order:
                        load = os.getloadavg()[0]
                        res = run(binary, stack, sig, proto, endpoints[proto], o.n, o.threads)
                        results.setdefault((sig, proto, label), []).append(res)
                        print(f"round {r + 1} {sig:5} {proto:4} {label:14} {res['per_cpu_s']:>9.0f}/CPU-s "
                              f"cpu {res['cpu_s']:.2f} s wall {res['wall_s']:.2f} s rss {res['peak_rss_mib']:.0f} MiB "
                              f"dropped {res['dropped']} (load {load:.1f})", flush=True)
        finally:
            stop_rotel(rotel)

    print(f"\n{o.n} items per run, {o.threads} app thread(s), {o.rounds} rounds, medians; "
          "÷ lean: the lean upstream stack's median of the same run")
    for sig in signals:
        for proto in protocols:
            base = results[(sig, proto, "lean")]
            b_rate, b_cpu, b_wall = med(base, "per_cpu_s"), med(base, "cpu_s"), med(base, "wall_s")
            print(f"\n{sig} over {'gRPC' if proto == 'grpc' else 'HTTP/protobuf'}:")
            print(f"| stack | {sig} / CPU-s | ÷ lean | CPU s | wall s | lean wall ÷ wall | peak RSS MiB | dropped (max) | per-round {sig}/CPU-s |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
            for label, _, _ in per_signal[sig]:
                rows = results[(sig, proto, label)]
                rate, cpu, wall = med(rows, "per_cpu_s"), med(rows, "cpu_s"), med(rows, "wall_s")
                per = " / ".join(f"{x['per_cpu_s'] / 1000:.0f}k" for x in rows)
                print(f"| {label} | {rate / 1000:.0f}k | {rate / b_rate:.2f}× | {cpu:.2f} | {wall:.2f} | "
                      f"{b_wall / wall:.2f}× | {med(rows, 'peak_rss_mib'):.0f} | {max(x['dropped'] for x in rows)} | {per} |")

    if o.sustain > 0:
        rotel, endpoints = start_rotel()
        try:
            print(f"\nsustained: {o.sustain} s at {o.rate}/s, default queue bounds, RSS sampled each second")
            print("| signal | protocol | stack | produced | dropped | RSS first MiB | RSS last MiB | RSS max MiB | CPU s | delivered / CPU-s |")
            print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for sig in signals:
                for proto in o.sustain_protocols.split(","):
                    for label, binary, stack in per_signal[sig]:
                        res = run(binary, stack, sig, proto, endpoints[proto], o.n, o.threads, o.sustain, o.rate)
                        print(f"| {sig} | {proto} | {label} | {res['produced']} | {res['dropped']} | "
                              f"{res['rss_first_mib']:.1f} | {res['rss_last_mib']:.1f} | {res['rss_max_mib']:.1f} | "
                              f"{res['cpu_s']:.1f} | {res['per_cpu_s'] / 1000:.0f}k |", flush=True)
        finally:
            stop_rotel(rotel)


if __name__ == "__main__":
    main()
