#!/usr/bin/env bash
# Conversion speed: `hft-connector convert --to hftbacktest` against hftbacktest's own Python
# converter (`convert_depth`, numba) on the same file: a recording of the simulator (linear
# BTCUSDT, trades + orderbook.50) made with `run --record-dir`. Results go to BENCHMARKS.md.
# Usage: scripts/bench-convert.sh [seconds of recording, default 60] [simulator rate, default 20000]
#        PROFILE=debug scripts/bench-convert.sh ...   (the debug build, when a release build cannot be made)
#        BIN=path/to/hft-connector scripts/bench-convert.sh ...   (a binary already built)
#        SPILL_MB=4 scripts/bench-convert.sh ...   (ours is also timed within this memory budget,
#                                                   through sorted runs on disk: same bytes checked)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
RATE=${2:-20000}
python3 -c "import hftbacktest" 2>/dev/null || python3 -m pip install --quiet 'hftbacktest>=2.4,<2.5'
PROFILE=${PROFILE:-release}
if [ -z "${BIN:-}" ]; then
    if [ "$PROFILE" = release ]; then
        cargo build --release --quiet --bin hft-connector
    else
        cargo build --quiet --bin hft-connector
    fi
    BIN=$PWD/target/$PROFILE/hft-connector
fi
WORK=$(mktemp -d)
cleanup() { kill "${SIM:-}" "${SVC:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
"$BIN" simulate --listen 127.0.0.1:0 --rate "$RATE" --symbols BTCUSDT --categories linear >"$WORK/sim.log" 2>&1 &
SIM=$!
for _ in $(seq 1 100); do
    ADDR=$(sed -n 's/^simulator listening on \([0-9.:]*\).*/\1/p' "$WORK/sim.log"); [ -n "$ADDR" ] && break; sleep 0.1
done
"$BIN" run --isolation in-process --symbols BTCUSDT --category linear --depth 50 \
    --ws-url "ws://$ADDR/v5/public" --rest-url "http://$ADDR" --data-dir "$WORK/data" \
    --listen 127.0.0.1:0 --backfill-days 0 --record-dir "$WORK/rec" 2>"$WORK/run.log" &
SVC=$!
sleep "$SECS"
kill -TERM "$SVC"; wait "$SVC" || true
cat "$WORK"/rec/linear/BTCUSDT/*.gz > "$WORK/in.gz"
python3 - "$BIN" "$WORK" "${SPILL_MB:-4}" <<'PY'
import os, subprocess, sys, time
import numpy as np
from hftbacktest.data.utils.bybit import convert_depth
binary, work, spill_mb = sys.argv[1], sys.argv[2], sys.argv[3]
inp = os.path.join(work, "in.gz")
convert_depth("testdata/hftbacktest/bybit-linear-sample.gz")  # numba compiles here, not timed
ours, theirs, spilled = [], [], []
for _ in range(3):
    t = time.perf_counter()
    subprocess.run([binary, "convert", "--to", "hftbacktest", inp, "-o", os.path.join(work, "ours.npz"), "--depth", "50"],
                   check=True, stderr=subprocess.DEVNULL)
    ours.append(time.perf_counter() - t)
    t = time.perf_counter()
    r = subprocess.run([binary, "convert", "--to", "hftbacktest", inp, "-o", os.path.join(work, "spilled.npz"), "--depth", "50",
                        "--max-memory-mb", spill_mb], check=True, stderr=subprocess.PIPE, text=True)
    spilled.append(time.perf_counter() - t)
    runs = r.stderr.strip().splitlines()[-1]
    t = time.perf_counter()
    ref = convert_depth(inp, output_filename=os.path.join(work, "ref.npz"))
    theirs.append(time.perf_counter() - t)
assert np.array_equal(np.load(os.path.join(work, "ours.npz"))["data"], ref)
lines = sum(1 for _ in __import__("gzip").open(inp))
o, r, sp = sorted(ours)[1], sorted(theirs)[1], sorted(spilled)[1]
with open(os.path.join(work, "ours.npz"), "rb") as a, open(os.path.join(work, "spilled.npz"), "rb") as b:
    assert a.read() == b.read(), "the spilled conversion differs"
print(f"input: {os.path.getsize(inp)} bytes gzip, {lines} lines, {len(ref)} events (outputs equal)")
print(f"hft-connector convert: {o:.2f} s ({lines / o:,.0f} lines/s)")
print(f"hftbacktest convert_depth (+ savez_compressed): {r:.2f} s ({lines / r:,.0f} lines/s)")
print(f"ratio: {r / o:.1f}x faster")
print(f"hft-connector convert --max-memory-mb {spill_mb}: {sp:.2f} s ({lines / sp:,.0f} lines/s), "
      f"{r / sp:.1f}x faster than convert_depth, {sp / o:.2f}x the in-memory time (same bytes; {runs.split(', ')[-1]})")
PY
