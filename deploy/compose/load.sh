#!/bin/sh
# Payments against the compose stack's gateway (service `load`, started with
# `docker compose --profile load up -d`): RATE per second (default 5), a mix
# like the launcher's load generator — mostly valid payments between the
# participant banks, about 5% invalid (422), 2% naming a sanctioned party
# (403) and 1% a watch-listed one (held). Runs in curlimages/curl (BusyBox
# sh, curl); stops with the container.
set -u
GATEWAY_URL="${GATEWAY_URL:-http://gateway:8080}"
RATE="${RATE:-5}"
case "$RATE" in
  '' | *[!0-9]*) echo "load: RATE=$RATE is not a whole number" >&2; exit 2 ;;
esac
if [ "$RATE" -lt 1 ] || [ "$RATE" -gt 50 ]; then
  echo "load: RATE=$RATE must be between 1 and 50" >&2
  exit 2
fi

# Sleep between payments, in milliseconds, as a decimal for `sleep`.
pause_ms=$((1000 / RATE))
pause="$((pause_ms / 1000)).$(printf '%03d' $((pause_ms % 1000)))"

pick() {
  # pick N word... : the Nth word (1-based) of the rest.
  n=$1
  shift
  eval "echo \"\${$n}\""
}

banks="DEUTDEFF BNPAFRPP CHASUS33 BARCGB22 EBILAEAD HSBCHKHH"
currencies="EUR USD GBP AED"
echo "load: $RATE payments/s to $GATEWAY_URL/payments"
sent=0
while :; do
  roll=$((RANDOM % 100))
  # Two different banks: the payee is 1-5 places after the payer.
  i=$((RANDOM % 6))
  j=$(((i + RANDOM % 5 + 1) % 6))
  from=$(pick $((i + 1)) $banks)
  to=$(pick $((j + 1)) $banks)
  currency=$(pick $((RANDOM % 4 + 1)) $currencies)
  amount="$((RANDOM % 50000 + 10)).$(printf '%02d' $((RANDOM % 100)))"
  debtor="Acme Manufacturing"
  creditor="Globex Retail"
  if [ "$roll" -lt 5 ]; then
    currency="XXX"
  elif [ "$roll" -lt 7 ]; then
    creditor="Black Sea Holdings"
  elif [ "$roll" -lt 8 ]; then
    creditor="Caspian Commodities"
  fi
  body=$(printf '{"from_bank":"%s","to_bank":"%s","amount":%s,"currency":"%s","debtor":"%s","creditor":"%s"}' \
    "$from" "$to" "$amount" "$currency" "$debtor" "$creditor")
  curl -sS -o /dev/null --max-time 5 -H 'content-type: application/json' \
    --data "$body" "$GATEWAY_URL/payments" || echo "load: gateway unreachable" >&2
  sent=$((sent + 1))
  if [ $((sent % (RATE * 60))) -eq 0 ]; then
    echo "load: $sent payments sent"
  fi
  sleep "$pause"
done
