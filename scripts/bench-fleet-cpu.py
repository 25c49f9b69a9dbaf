#!/usr/bin/env python3
"""CPU of the eight engine processes per accepted payment, with telemetry in
three modes side by side, rounds rotated, medians printed:

  sdk-off  OTEL_SDK_DISABLED=true (the business work alone)
  otlp     traces, metrics and logs over OTLP/gRPC to a real collector on
           loopback (rotel, blackhole exporter), every payment traced
  viewer   the default run: OTLP to the launcher's embedded viewer
           (the launcher's own CPU, where the viewer runs, shown apart)
  otlp-ratio  as otlp, sampled as production fleets sample: every engine on
           parentbased_traceidratio 0.1, so the gateway keeps one payment
           in ten and the engines behind it follow the incoming context
           (only with BENCH_MODES; not among the default modes)

usage: python3 scripts/bench-fleet-cpu.py [rate=40] [seconds=40] [rounds=3]
Builds the release binary first. Measures a window from 5 s after the fleet
is ready (BENCH_WARMUP=N: N s) to 3 s before the load stops. A short
warm-up counts the first touch of every process's memory (telemetry's
queues, buffers and allocator arenas: about 28 MiB per engine) in the
window; a long one (runs of 75 s, BENCH_WARMUP=30) reads the steady state
a long-running engine pays.

Same-run A/B of two builds: BENCH_BINS="before=/tmp/deltran-old,after=target/release/deltran"
runs every mode with each binary in turn (no build), and BENCH_MODES="sdk-off,otlp"
picks the modes.

Ratios are taken within each round, then their median: OTLP ÷ SDK-off of
the same build, and each build ÷ the first build in the same mode (an A/B
read directly).

BENCH_TOGETHER=1 starts every run of a round at once and measures them over
the same window: noise from the host (other tenants, steal time) then falls
on every mode alike, where runs one after another each see their own.
"""
import json, os, re, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rotel_sink import start_rotel, stop_rotel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = int(sys.argv[1]) if len(sys.argv) > 1 else 40
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 40
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
TICK = os.sysconf("SC_CLK_TCK")
# Seconds between the last fleet's readiness and the window's start.
WARMUP = int(os.environ.get("BENCH_WARMUP", "5"))
BIN = os.path.join(ROOT, "target", "release", "deltran")


def cpu_ticks(pid):
    return proc_stat(pid)[0]


def proc_stat(pid):
    """(utime + stime in ticks, minor page faults) of `pid`; (None, 0) once
    it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12]), int(fields[7])
    except (OSError, IndexError, ValueError):
        return None, 0


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(f.read().split("VmRSS:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return 0


class Fleet:
    """One launcher (and, for `otlp`, its own rotel), started; `measure`
    reads the engines' and the launcher's CPU ticks, `finish` waits for the
    run's end and returns its payments: sent and accepted."""

    def __init__(self, mode, binary=BIN):
        env = {k: v for k, v in os.environ.items() if not (k.startswith("OTEL_") or k.startswith("DELTRAN_"))}
        self.rotel = None
        args = [binary, "--ports", "auto", "--no-view", "--rate", str(RATE), "--duration", f"{SECONDS}s"]
        if mode == "sdk-off":
            env["OTEL_SDK_DISABLED"] = "true"
            args += ["--viewer", "off"]
        elif mode in ("otlp", "otlp-ratio"):
            self.rotel, endpoints = start_rotel()
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoints["grpc"]
            if mode == "otlp-ratio":
                env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
                env["OTEL_TRACES_SAMPLER_ARG"] = "0.1"
        self.tmp = tempfile.TemporaryDirectory()
        run_dir = os.path.join(self.tmp.name, "run")
        self.log = os.path.join(self.tmp.name, "out.log")
        self.launcher = subprocess.Popen(args + ["--run-dir", run_dir], env=env,
                                         stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.fleet_file = os.path.join(run_dir, "fleet.json")
        self.pids = None

    def wait_ready(self):
        while not os.path.exists(self.fleet_file):
            if self.launcher.poll() is not None:
                raise SystemExit(open(self.log).read())
            time.sleep(0.2)
        self.ready = time.time()
        self.pids = [e["pid"] for e in json.load(open(self.fleet_file))["engines"]]

    def measure(self):
        """(engine ticks, launcher ticks, engine minor faults, engine RSS MiB) now."""
        engines = [proc_stat(p) for p in self.pids]
        return (sum(t or 0 for t, _ in engines), cpu_ticks(self.launcher.pid) or 0,
                sum(f for _, f in engines), sum(rss_mib(p) for p in self.pids))

    def finish(self):
        self.launcher.wait(timeout=120)
        text = open(self.log).read()
        if self.rotel:
            stop_rotel(self.rotel)
        self.tmp.cleanup()
        m = re.search(r"deltran: ran \d+ s \| sent (\d+) accepted (\d+)", text)
        return (int(m.group(1)), int(m.group(2))) if m else (1, 1)


def measured(fleets):
    """Runs the started `fleets` through one window, from WARMUP seconds
    after the last is ready to 3 s before the load stops; per fleet: CPU-ms per
    accepted payment of its engines and of its launcher, the engines' minor
    page faults per payment (memory the allocator took back from the
    kernel, each a page zeroed) and their resident memory at the end."""
    for f in fleets:
        f.wait_ready()
    time.sleep(WARMUP)
    t0, before = time.time(), [f.measure() for f in fleets]
    time.sleep(max(1, SECONDS - 8 - (t0 - min(f.ready for f in fleets))))
    t1, after = time.time(), [f.measure() for f in fleets]
    out = []
    for f, (c0, l0, f0, _), (c1, l1, f1, rss) in zip(fleets, before, after):
        sent, accepted = f.finish()
        payments = RATE * (t1 - t0) * accepted / max(sent, 1)
        out.append(((c1 - c0) * 1000 / TICK / payments, (l1 - l0) * 1000 / TICK / payments,
                    (f1 - f0) / payments, rss))
    return out


def run(mode, binary=BIN):
    return measured([Fleet(mode, binary)])[0]


def main():
    bins = [tuple(b.split("=", 1)) for b in os.environ.get("BENCH_BINS", "").split(",") if b]
    if not bins:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "deltran-fleet"], cwd=ROOT, check=True)
        bins = [("", BIN)]
    modes = os.environ.get("BENCH_MODES", "sdk-off,otlp,viewer").split(",")
    runs = [(label, binary, mode) for label, binary in bins for mode in modes]
    together = os.environ.get("BENCH_TOGETHER") == "1"
    results = {(label, mode): [] for label, _, mode in runs}
    for r in range(ROUNDS):
        # Rotate the order each round, so no run always follows the same one.
        shift = r % len(runs)
        order = runs[shift:] + runs[:shift]
        if together:
            load = os.getloadavg()[0]
            fleets = [Fleet(mode, binary) for _, binary, mode in order]
            outcomes = zip(order, measured(fleets), [load] * len(order))
        else:
            outcomes = ((run_, run(run_[2], run_[1]), os.getloadavg()[0]) for run_ in order)
        for (label, _, mode), (engines, launcher, faults, rss), load in outcomes:
            results[(label, mode)].append((engines, launcher, faults, rss))
            print(f"round {r + 1} {label:6} {mode:8} engines {engines:.2f} CPU-ms/payment, launcher {launcher:.2f}, "
                  f"{faults:.1f} page faults/payment, {rss:.0f} MiB (load {load:.1f} at start)", flush=True)
    how = "all runs of a round at once" if together else "runs one after another"
    print(f"\n{RATE} payments/s, {SECONDS} s runs, {ROUNDS} rounds, {how}, medians (ratios per round, then their median):")
    first = bins[0][0]
    print(f"| build | mode | engines CPU-ms / accepted payment | ÷ sdk-off | ÷ {first or 'first build'}, same mode | launcher CPU-ms / payment | engines' page faults / payment | engines' RSS, MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, _ in bins:
        base = results.get((label, "sdk-off"))
        for mode in modes:
            xs = results[(label, mode)]
            e, l, pf, rss = (statistics.median(x[i] for x in xs) for i in range(4))
            ratio = f"{statistics.median(x[0] / b[0] for x, b in zip(xs, base)):.2f}×" if base else "-"
            ab = statistics.median(x[0] / b[0] for x, b in zip(xs, results[(first, mode)]))
            print(f"| {label} | {mode} | {e:.2f} | {ratio} | {ab:.3f} | {l:.2f} | {pf:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
