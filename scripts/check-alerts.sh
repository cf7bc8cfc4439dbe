#!/usr/bin/env bash
# Checks the Prometheus alerting rules and the live /metrics output with promtool.
# Installs Debian's `prometheus` package (which ships promtool) when promtool is missing.
#
#   scripts/check-alerts.sh      (from anywhere; run as root on a fresh machine for the install)
#
# 1. promtool check rules deploy/prometheus/alerts.yml
# 2. promtool test rules deploy/prometheus/alerts.test.yml (the alerts fire when they should)
# 3. starts examples/http_sample.rs (the real router over a sample state with moving feeds),
#    fetches /metrics, runs `promtool check metrics` on it and checks every metric the rules use
#    is exported.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  echo "== installing Debian's prometheus (promtool)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

echo "== promtool check rules"
promtool check rules deploy/prometheus/alerts.yml
echo "== promtool test rules"
promtool test rules deploy/prometheus/alerts.test.yml

echo "== promtool check metrics (live /metrics of examples/http_sample)"
cargo build --quiet --example http_sample
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
WORK=$(mktemp -d)
"$TARGET_DIR/debug/examples/http_sample" --listen 127.0.0.1:0 --seconds 60 >"$WORK/out" 2>"$WORK/err" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q '^listening on' "$WORK/out" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/out")
[ -n "$ADDR" ] || { echo "the sample server did not start:" >&2; cat "$WORK/err" >&2; exit 1; }
sleep 1.5 # let the sample feeds move (trades, latency observations, status changes)
python3 - "$ADDR/metrics" >"$WORK/metrics.txt" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
    sys.stdout.write(r.read().decode())
PY
promtool check metrics <"$WORK/metrics.txt"
missing=0
for name in $(grep -o 'hft_connector_[a-z_]*[a-z]' deploy/prometheus/alerts.yml | sort -u); do
  if ! grep -q "^$name[{ ]" "$WORK/metrics.txt"; then
    echo "metric $name used by alerts.yml is not exported" >&2
    missing=1
  fi
done
[ $missing -eq 0 ]
echo "== alerts and metrics OK ($(grep -c '^hft_connector_' "$WORK/metrics.txt") samples)"
