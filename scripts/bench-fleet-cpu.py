#!/usr/bin/env python3
"""CPU of the eight engine processes per accepted payment, with telemetry in
three modes side by side, rounds rotated, medians printed:

  sdk-off  OTEL_SDK_DISABLED=true (the business work alone)
  otlp     traces, metrics and logs over OTLP/gRPC to a real collector on
           loopback (rotel, blackhole exporter), every payment traced
  viewer   the default run: OTLP to the launcher's embedded viewer
           (the launcher's own CPU, where the viewer runs, shown apart)

usage: python3 scripts/bench-fleet-cpu.py [rate=40] [seconds=40] [rounds=3]
Builds the release binary first. Measures a window from 5 s after the fleet
is ready to 3 s before the load stops.

Same-run A/B of two builds: BENCH_BINS="before=/tmp/deltran-old,after=target/release/deltran"
runs every mode with each binary in turn (no build), and BENCH_MODES="sdk-off,otlp"
picks the modes.
"""
import json, os, re, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rotel_sink import start_rotel, stop_rotel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = int(sys.argv[1]) if len(sys.argv) > 1 else 40
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 40
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
TICK = os.sysconf("SC_CLK_TCK")
BIN = os.path.join(ROOT, "target", "release", "deltran")


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def run(mode, binary=BIN):
    env = {k: v for k, v in os.environ.items() if not (k.startswith("OTEL_") or k.startswith("DELTRAN_"))}
    rotel = None
    args = [binary, "--ports", "auto", "--no-view", "--rate", str(RATE), "--duration", f"{SECONDS}s"]
    if mode == "sdk-off":
        env["OTEL_SDK_DISABLED"] = "true"
        args += ["--viewer", "off"]
    elif mode == "otlp":
        rotel, endpoints = start_rotel()
        endpoint = endpoints["grpc"]
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        out = open(os.path.join(tmp, "out.log"), "w")
        launcher = subprocess.Popen(args + ["--run-dir", run_dir], env=env, stdout=out, stderr=subprocess.STDOUT)
        fleet_file = os.path.join(run_dir, "fleet.json")
        while not os.path.exists(fleet_file):
            if launcher.poll() is not None:
                raise SystemExit(open(os.path.join(tmp, "out.log")).read())
            time.sleep(0.2)
        ready = time.time()
        pids = [e["pid"] for e in json.load(open(fleet_file))["engines"]]
        time.sleep(5)
        t0, c0, l0 = time.time(), sum(cpu_ticks(p) or 0 for p in pids), cpu_ticks(launcher.pid) or 0
        time.sleep(max(1, SECONDS - 8 - (t0 - ready)))
        t1, c1, l1 = time.time(), sum(cpu_ticks(p) or 0 for p in pids), cpu_ticks(launcher.pid) or 0
        launcher.wait(timeout=120)
        text = open(os.path.join(tmp, "out.log")).read()
    if rotel:
        stop_rotel(rotel)
    m = re.search(r"deltran: ran \d+ s \| sent (\d+) accepted (\d+)", text)
    sent, accepted = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
    payments = RATE * (t1 - t0) * accepted / max(sent, 1)
    return (c1 - c0) * 1000 / TICK / payments, (l1 - l0) * 1000 / TICK / payments


def main():
    bins = [tuple(b.split("=", 1)) for b in os.environ.get("BENCH_BINS", "").split(",") if b]
    if not bins:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "deltran-fleet"], cwd=ROOT, check=True)
        bins = [("", BIN)]
    modes = os.environ.get("BENCH_MODES", "sdk-off,otlp,viewer").split(",")
    runs = [(label, binary, mode) for label, binary in bins for mode in modes]
    results = {(label, mode): [] for label, _, mode in runs}
    for r in range(ROUNDS):
        # Rotate the order each round, so no run always follows the same one.
        shift = r % len(runs)
        for label, binary, mode in runs[shift:] + runs[:shift]:
            load = os.getloadavg()[0]
            engines, launcher = run(mode, binary)
            results[(label, mode)].append((engines, launcher))
            print(f"round {r + 1} {label:6} {mode:8} engines {engines:.2f} CPU-ms/payment, launcher {launcher:.2f} (load {load:.1f} at start)", flush=True)
    print(f"\n{RATE} payments/s, {SECONDS} s runs, {ROUNDS} rounds, medians (ratios per round, then their median):")
    print("| build | mode | engines CPU-ms / accepted payment | ÷ sdk-off | launcher CPU-ms / payment |")
    print("|---|---|---:|---:|---:|")
    for label, _ in bins:
        base = results.get((label, "sdk-off"))
        for mode in modes:
            xs = results[(label, mode)]
            e = statistics.median(x for x, _ in xs)
            l = statistics.median(y for _, y in xs)
            ratio = f"{statistics.median(x / b for (x, _), (b, _) in zip(xs, base)):.2f}×" if base else "-"
            print(f"| {label} | {mode} | {e:.2f} | {ratio} | {l:.2f} |")


if __name__ == "__main__":
    main()
