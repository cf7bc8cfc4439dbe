#!/usr/bin/env bash
# Runs Bybit's official Python SDK (pybit) against the simulator: installs pybit if missing, starts
# `hft-connector simulate` on a free port, runs tests/compat/pybit_smoke.py, stops the simulator.
# The simulator adds 20 ms of latency per frame, as the network to Bybit does: pybit records a
# subscription's req_id only after sending it, so an ack at loopback speed can beat it (a race in
# pybit, not a protocol difference).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import pybit" 2>/dev/null; then
    python3 -m pip install --quiet pybit
fi

cargo build --quiet --bin hft-connector
BIN=target/debug/hft-connector
LOG=$(mktemp)
"$BIN" simulate --listen 127.0.0.1:0 --rate 3000 --latency-ms 20 >"$LOG" 2>&1 &
SIM_PID=$!
cleanup() {
    kill "$SIM_PID" 2>/dev/null || true
    wait "$SIM_PID" 2>/dev/null || true
    rm -f "$LOG"
}
trap cleanup EXIT

ADDR=""
for _ in $(seq 1 100); do
    ADDR=$(sed -n 's/^simulator listening on \([0-9.:]*\).*/\1/p' "$LOG")
    [ -n "$ADDR" ] && break
    sleep 0.1
done
if [ -z "$ADDR" ]; then
    echo "compat: the simulator did not start:" >&2
    cat "$LOG" >&2
    exit 1
fi
echo "compat: simulator on $ADDR"
python3 tests/compat/pybit_smoke.py "http://$ADDR"
