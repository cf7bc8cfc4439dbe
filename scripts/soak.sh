#!/usr/bin/env bash
# Memory soak: the simulator at 2,000 msg/s and the service (process isolation) streaming BTCUSDT
# and ETHUSDT on linear and spot (depth 200) from it, for MINUTES (default 60). Prints the RSS of
# the simulator, the service and its workers every minute.
# Usage: scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-60}
cargo build --release --quiet --bin hft-connector
BIN=target/release/hft-connector
WORK=$(mktemp -d)
SIM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" simulate --listen 127.0.0.1:$SIM_PORT --symbols BTCUSDT,ETHUSDT --categories linear,spot --rate 2000 >"$WORK/sim.log" 2>&1 &
SIM=$!
sleep 1
"$BIN" run --ws-url ws://127.0.0.1:$SIM_PORT/v5/public --rest-url http://127.0.0.1:$SIM_PORT \
  --symbols BTCUSDT,ETHUSDT --category linear,spot --depth 200 --data-dir "$WORK/data" \
  --listen 127.0.0.1:$HTTP_PORT --backfill-days 1 >"$WORK/run.out" 2>"$WORK/run.log" &
RUN=$!
trap 'kill $RUN 2>/dev/null; sleep 2; kill $SIM 2>/dev/null; wait 2>/dev/null; echo "logs in $WORK"' EXIT
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
echo "minute sim_rss_kb run_rss_kb workers_rss_kb market_events"
for m in $(seq 0 "$MINUTES"); do
  W=0; for p in $(pgrep -P $RUN || true); do W=$((W + $(rss $p))); done
  MSG=$(curl -s 127.0.0.1:$HTTP_PORT/api/status | python3 -c 'import json,sys; print(sum(f["messages"] for f in json.load(sys.stdin)["feeds"]))' 2>/dev/null || echo -)
  echo "$m $(rss $SIM) $(rss $RUN) $W $MSG"
  [ "$m" -lt "$MINUTES" ] && sleep 60
done
echo "ERROR log lines of the service: $(grep -c '"level":"ERROR"' "$WORK/run.log" || true)"
