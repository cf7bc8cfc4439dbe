#!/usr/bin/env bash
# The recorder's cost on the live path, end to end: the same service (`run --isolation
# in-process`, linear BTCUSDT trades + orderbook.50) against the same simulator for the same
# time, without and then with `--record-dir`; reports the service's CPU time (user + system, from
# /proc) without recording, with gzip recording, with uncompressed recording and with zstd
# recording (`compress = "zstd"`). Results go to BENCHMARKS.md.
# Usage: BIN=target/release/hft-connector scripts/bench-record.sh [seconds, default 20] [rate, default 20000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
RATE=${2:-20000}
if ! command -v zstd >/dev/null 2>&1; then   # Debian's zstd counts the zstd run's frames
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq zstd >/dev/null
fi
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin hft-connector
    BIN=$PWD/target/release/hft-connector
fi
WORK=$(mktemp -d)
cleanup() { kill "${SIM:-}" "${SVC:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
"$BIN" simulate --listen 127.0.0.1:0 --rate "$RATE" --symbols BTCUSDT --categories linear >"$WORK/sim.log" 2>&1 &
SIM=$!
for _ in $(seq 1 100); do
    ADDR=$(sed -n 's/^simulator listening on \([0-9.:]*\).*/\1/p' "$WORK/sim.log"); [ -n "$ADDR" ] && break; sleep 0.1
done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # $1: name, rest: extra flags; prints "<cpu ticks> <frames>"
    local name=$1; shift
    "$BIN" run --isolation in-process --symbols BTCUSDT --category linear --depth 50 \
        --ws-url "ws://$ADDR/v5/public" --rest-url "http://$ADDR" --data-dir "$WORK/$name" \
        --listen 127.0.0.1:0 --backfill-days 0 "$@" 2>"$WORK/$name.log" &
    SVC=$!
    sleep 3   # start-up excluded from the measurement
    local c0; c0=$(cpu "$SVC")
    sleep "$SECS"
    local c1; c1=$(cpu "$SVC")
    local url; url=$(sed -n 's/.*"event":"http_listening","addr":"\([0-9.:]*\)".*/\1/p' "$WORK/$name.log" | head -1)
    local frames; frames=$(curl -s "http://$url/metrics" | awk '/^hft_connector_messages_total|^bybit_connector_messages_total/ {s+=$2} END {print s+0}')
    kill -TERM "$SVC"; wait "$SVC" || true
    echo "$((c1 - c0)) $frames"
}
read -r BASE _ < <(run plain)
read -r WITH _ < <(run rec --record-dir "$WORK/rec")
read -r PLAIN _ < <(HFT_CONNECTOR_SINKS_RECORD_COMPRESS=none run rectxt --record-dir "$WORK/rectxt")
read -r ZSTD _ < <(HFT_CONNECTOR_SINKS_RECORD_COMPRESS=zstd run reczst --record-dir "$WORK/reczst")
FRAMES=$(cat "$WORK"/rec/linear/BTCUSDT/*.gz | gzip -dc | wc -l)
GZ_BYTES=$(cat "$WORK"/rec/linear/BTCUSDT/*.gz | wc -c)
ZST_BYTES=$(cat "$WORK"/reczst/linear/BTCUSDT/*.zst | wc -c)
ZST_FRAMES=$(cat "$WORK"/reczst/linear/BTCUSDT/*.zst | zstd -dc | wc -l)
HZ=$(getconf CLK_TCK)
python3 - "$BASE" "$WITH" "$HZ" "$SECS" "$FRAMES" "$PLAIN" "$ZSTD" "$GZ_BYTES" "$ZST_BYTES" "$ZST_FRAMES" <<'PY'
import sys
base, with_, hz, secs, frames, plain, zstd, gz_bytes, zst_bytes, zst_frames = (float(x) for x in sys.argv[1:])
print(f"service CPU over {secs:.0f} s: without recording {base / hz:.2f} s, with recording {with_ / hz:.2f} s")
print(f"frames recorded (whole run incl. start-up): {frames:.0f}")
print(f"recording adds {(with_ - base) / hz / secs * 100:.1f} % of a core; "
      f"{(with_ / base - 1) * 100:.0f} % more CPU than the same feed without it")
print(f"uncompressed (compress = none): {plain / hz:.2f} s, {(plain / base - 1) * 100:.0f} % more CPU: "
      f"the rest is gzip on the writer thread, off the live path")
print(f"zstd (compress = zstd): {zstd / hz:.2f} s, {(zstd / base - 1) * 100:.0f} % more CPU; "
      f"{zst_bytes / zst_frames:.0f} bytes/frame vs gzip's {gz_bytes / frames:.0f}")
PY
