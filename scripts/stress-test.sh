#!/usr/bin/env bash
# The Rust test suite under CPU load, several times in a row: proof that no test depends on an
# idle machine. Installs Debian's stress-ng when missing (idempotent), builds the tests WITHOUT the
# load, then keeps `stress-ng --cpu N` running while `cargo test --workspace --all-targets` runs
# RUNS times; each run's log goes to DIR/run-K.log and one line per run is reported.
# Usage: scripts/stress-test.sh [--runs 5] [--cpu 1] [--dir DIR] [-- extra cargo test args]
# Exit status: 0 when every run passed, 1 otherwise (the failing tests are listed).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=5
CPU=1
DIR="${TMPDIR:-/tmp}/hft-stress-$$"
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --cpu) CPU="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "stress-test: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$DIR"

if ! command -v stress-ng >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "stress-test: stress-ng is missing and we are not root: install Debian's stress-ng" >&2
        exit 1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq stress-ng >/dev/null
fi

# What the suite needs, as scripts/test.sh installs it (NATS; the half-open test's tools as root).
scripts/nats-deps.sh >/dev/null
export HFT_CONNECTOR_REQUIRE_NATS=1
if [ "$(id -u)" = 0 ]; then
    scripts/half-open-net.sh install >/dev/null
fi

echo "== building the tests (no load yet)"
cargo test --workspace --all-targets --locked --no-run "${EXTRA[@]}" >"$DIR/build.log" 2>&1 \
    || { tail -30 "$DIR/build.log"; exit 1; }

stress-ng --cpu "$CPU" --timeout 0 --quiet &
STRESS=$!
trap 'kill "$STRESS" 2>/dev/null || true; wait "$STRESS" 2>/dev/null || true' EXIT
echo "== stress-ng --cpu $CPU running (pid $STRESS); $RUNS runs, logs in $DIR"

failed=0
for k in $(seq 1 "$RUNS"); do
    log="$DIR/run-$k.log"
    start=$(date +%s)
    if cargo test --workspace --all-targets --locked --no-fail-fast "${EXTRA[@]}" >"$log" 2>&1; then
        result="ok"
    else
        result="FAILED"
        failed=$((failed + 1))
    fi
    took=$(( $(date +%s) - start ))
    passed=$( (grep -Eo '[0-9]+ passed' "$log" || true) | awk '{s+=$1} END {print s+0}')
    fails=$( (grep -E '^test .* FAILED$' "$log" || true) | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | sort -u | tr '\n' ' ')
    if [ "$result" = FAILED ] && [ -z "$fails" ]; then
        fails="(no test failed: see the log's end, e.g. a build error or a crashed test binary)"
    fi
    echo "run $k/$RUNS: $result in ${took}s, $passed tests passed${fails:+; failed: $fails} ($log)"
done

if [ "$failed" -gt 0 ]; then
    echo "== $failed of $RUNS runs failed under load"
    exit 1
fi
echo "== all $RUNS runs passed under load"
