#!/usr/bin/env bash
# Install the real servers the test suite starts (see tests/testkit).
# Idempotent: installs only what is missing; never leaves a server running.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

# binary -> Debian package
declare -A PKG_FOR=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [nats-server]=nats-server
  [redis-server]=redis-server
  [wrk]=wrk
  [chromium]=chromium
  [chromedriver]=chromium-driver
)

have_bin() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ] || [ -x "/usr/sbin/$1" ]
}

have_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null 2>&1 \
    && compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null 2>&1 \
    && have_bin pg_isready && have_bin psql
}

missing=()
for bin in "${!PKG_FOR[@]}"; do
  if ! have_bin "$bin"; then
    missing+=("${PKG_FOR[$bin]}")
  fi
done
if ! have_postgres; then
  missing+=(postgresql)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  # de-duplicate, keep order stable
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "install-test-deps: installing missing packages: ${missing[*]}"
  $SUDO apt-get update
  # policy-rc.d 101 = do not start services from maintainer scripts.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
  fi
  status=0
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" || status=$?
  if [ "$created_policy" -eq 1 ]; then
    $SUDO rm -f "$policy"
  fi
  if [ "$status" -ne 0 ]; then
    echo "install-test-deps: apt-get install failed ($status)" >&2
    exit "$status"
  fi
else
  echo "install-test-deps: all Debian packages present"
fi

# Tests start their own servers; stop any system service a postinst may have started.
for svc in postgresql prometheus prometheus-alertmanager nats-server redis-server; do
  if [ -x "/etc/init.d/$svc" ] && $SUDO service "$svc" status >/dev/null 2>&1; then
    echo "install-test-deps: stopping system service $svc (tests start their own)"
    $SUDO service "$svc" stop || true
  fi
done

# rotel (PyPI): a Python package shipping the rotel-agent binary.
rotel_agent() {
  python3 - <<'PY' 2>/dev/null
import os, rotel
p = os.path.join(os.path.dirname(rotel.__file__), "rotel-agent")
print(p if os.access(p, os.X_OK) else "")
PY
}
if [ -z "$(rotel_agent || true)" ]; then
  echo "install-test-deps: installing rotel from PyPI"
  python3 -m pip install --quiet rotel
fi

# Offline validators for deploy/: the compose specification schema and the
# Kubernetes API schemas (both bundled in the packages; no network at test time).
for tool in check-jsonschema kubernetes-validate; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install-test-deps: installing $tool from PyPI"
    python3 -m pip install --quiet "$tool"
  fi
done

echo "install-test-deps: versions"
prometheus --version 2>&1 | head -n1 || true
promtool --version 2>&1 | head -n1 || true
prometheus-alertmanager --version 2>&1 | head -n1 || true
nats-server --version 2>&1 | head -n1 || true
redis-server --version 2>&1 | head -n1 || true
for pg in /usr/lib/postgresql/*/bin/postgres; do "$pg" --version 2>&1 | head -n1 || true; done
wrk --version 2>&1 | head -n1 || true
agent="$(rotel_agent || true)"
if [ -n "$agent" ]; then echo "rotel-agent $("$agent" version 2>&1 | head -n1) ($agent)"; else echo "rotel-agent: MISSING" >&2; exit 1; fi
check-jsonschema --version
echo "kubernetes-validate $(kubernetes-validate --version)"
kubectl version --client 2>&1 | grep -i kustomize || { echo "kubectl with kustomize: MISSING" >&2; exit 1; }
