"""rotel (PyPI `rotel`), the OTLP collector the benchmark scripts export to:
started on free loopback ports with its blackhole exporter, stopped by PID."""
import os, signal, socket, subprocess, sys, time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_rotel():
    """Starts rotel; returns the process and its endpoints by protocol
    ({"grpc": url, "http": url}) once both ports accept connections."""
    agent = subprocess.run(
        [sys.executable, "-c", "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    grpc, http = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
    proc = subprocess.Popen([agent, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
                             "--otlp-http-endpoint", f"127.0.0.1:{http}", "--exporter", "blackhole"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for port in (grpc, http):
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            stop_rotel(proc)
            raise SystemExit("rotel did not start (pip install rotel)")
    return proc, {"grpc": f"http://127.0.0.1:{grpc}", "http": f"http://127.0.0.1:{http}"}


def stop_rotel(proc):
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
