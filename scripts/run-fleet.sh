#!/usr/bin/env bash
# The main job from a fresh machine: make sure nats-server is there (install
# it where this machine can), then run the DelTran fleet as a release build.
# Every argument goes to `deltran` (e.g. --duration 60s, --rate 50).
#
#   --setup-only   do the set-up, say where nats-server is, and stop.
#
# Set-up never fails with a bare "not found": it installs nats-server with
# apt-get when it can (root, or sudo without a password), and otherwise stops
# naming the exact command to run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Where nats-server may live: PATH, then where Debian and Homebrew put it
# (the launcher looks in the same places). Overridable for tests.
search="${DELTRAN_SETUP_SEARCH_PATH:-$PATH:/usr/sbin:/usr/local/bin:/usr/bin}"

find_nats() {
  local dir
  local IFS=:
  for dir in $search; do
    if [ -n "$dir" ] && [ -x "$dir/nats-server" ] && [ -f "$dir/nats-server" ]; then
      echo "$dir/nats-server"
      return 0
    fi
  done
  return 1
}

manual_steps() {
  cat >&2 <<'EOF'
run-fleet: nats-server is not installed, and this script cannot install it here.
Install it, then run this script again:
  sudo apt-get install -y nats-server        # Debian / Ubuntu
  brew install nats-server                   # macOS
  or put a release binary from https://github.com/nats-io/nats-server/releases on PATH
Or use a NATS server you already run:
  bash scripts/run-fleet.sh --nats-url nats://HOST:4222
EOF
}

needs_nats=true
for arg in "$@"; do
  case "$arg" in --nats-url|--nats-url=*) needs_nats=false ;; esac
done

if $needs_nats && ! nats="$(find_nats)"; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo_cmd="sudo -n"
  fi
  if [ "${DELTRAN_SETUP_NO_INSTALL:-}" != 1 ] && command -v apt-get >/dev/null \
     && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo_cmd" ]; }; then
    echo "run-fleet: installing nats-server (apt-get install -y nats-server)" >&2
    $sudo_cmd apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq nats-server >&2
  fi
  if ! nats="$(find_nats)"; then
    manual_steps
    exit 2
  fi
fi

if [ "${1:-}" = --setup-only ]; then
  echo "run-fleet: ready; nats-server: ${nats:-not needed (--nats-url)}"
  exit 0
fi

# A release build: the live view then shows what the fleet costs in
# production, not a debug build's four-times-higher CPU.
exec cargo run --release -p deltran-fleet -- "$@"
