#!/usr/bin/env bash
# hftbacktest's own Python package (PyPI, 2.4.x; numpy comes with it) against our recorder and
# converter: installs it if missing, then
#   1. converts the checked-in collector sample (in memory, and within a 1 KB budget through sorted
#      runs on disk: the same bytes) and compares with hftbacktest's convert_depth;
#   2. records a fault tour against the simulator in both isolation modes, converts it (in memory
#      and within a 50 KB budget, through sorted runs on disk: the same bytes), compares with
#      convert_depth on the same files, backtests it and checks the book against the simulator's
#      true book; kills recording services (gzip, then zstd) with SIGKILL and reads what they left
#      (Python's gzip; Debian's `zstd -dc`, installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import hftbacktest, numpy" 2>/dev/null; then
    python3 -m pip install --quiet 'hftbacktest>=2.4,<2.5'
fi
# Debian's zstd: the kill -9 check reads zstd recordings with `zstd -dc`.
if ! command -v zstd >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq zstd >/dev/null
fi

cargo build --quiet --bin hft-connector
BIN=$PWD/target/debug/hft-connector
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

SAMPLE=testdata/hftbacktest/bybit-linear-sample.gz
"$BIN" convert --to hftbacktest "$SAMPLE" -o "$WORK/sample.npz" --depth 50 --tick-size 0.1 --lot-size 0.001
python3 tests/hftbacktest/check.py compare "$SAMPLE" "$WORK/sample.npz" 50
# Within a 1 KB budget: a few rows per sorted run on disk, merged; still convert_depth's rows.
"$BIN" convert --to hftbacktest "$SAMPLE" -o "$WORK/sample-spilled.npz" --depth 50 --max-memory-mb 0.001 2>"$WORK/spill.log"
grep -q "sorted runs on disk" "$WORK/spill.log" || { cat "$WORK/spill.log" >&2; exit 1; }
cmp "$WORK/sample.npz" "$WORK/sample-spilled.npz"
python3 tests/hftbacktest/check.py compare "$SAMPLE" "$WORK/sample-spilled.npz" 50

for ISOLATION in process in-process; do
    echo "hftbacktest: fault tour recorded with --isolation $ISOLATION"
    python3 tests/hftbacktest/check.py tour "$BIN" "$WORK/tour-$ISOLATION" "$ISOLATION"
done
