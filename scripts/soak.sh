#!/usr/bin/env bash
# Memory and descriptor soaks, sampled once a minute into a CSV.
#
#   scripts/soak.sh service [MINUTES] [OUT]   the service alone (`hft-connector run`, default
#       isolation = process): the simulator serving 10 symbols on linear and spot at 2,000 msg/s,
#       depth 200, recording every raw frame (`--record-dir`) and publishing to a local JetStream
#       (`nats-server -js`, started here), backfill off. No faults.
#   scripts/soak.sh faults [MINUTES] [OUT]    `hft-connector soak` (its own simulator child, a random
#       fault every 5 s, process isolation, seed 1) for MINUTES, its ledger checked at the end.
#   scripts/soak.sh [MINUTES]                 the same as `service` (the old usage).
#
# MINUTES defaults to 60. OUT (default: a new temp dir) gets `samples.csv` (one row per process per
# minute: minute,utc,role,pid,rss_kb,fds,threads, plus the machine's 1-minute load average, since
# the machine may be shared), `status.csv` (service mode: messages, NATS published/dropped, store
# and recording size) and the logs. Every process of the tree is sampled: the simulator, the
# service (`run` or `soak`), each worker, and nats-server. `scripts/soak.sh summary OUT` prints
# the per-role first/min/max/last RSS and fds of a finished run.
#
# BIN (env) chooses the binary; default: a release build of this checkout. A binary built with
# `cargo build --release --features heap-stats` also logs the live heap of each process once a
# minute (`heap_stats`), which `summary` prints next to the RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=service
case "${1:-}" in
    service|faults|summary) MODE=$1; shift ;;
esac

if [ "$MODE" = summary ]; then
    OUT=${1:?usage: scripts/soak.sh summary OUT}
    python3 - "$OUT/samples.csv" <<'PY'
import csv, sys, collections
# Processes of one role (the workers) are summed per minute.
agg = collections.OrderedDict()
for r in csv.DictReader(open(sys.argv[1])):
    a = agg.setdefault(r["role"], collections.OrderedDict()).setdefault(int(r["minute"]), [0, 0, 0])
    a[0] += int(r["rss_kb"]); a[1] += int(r["fds"]); a[2] += 1
print("role minutes procs rss_mb(first min max last; slope MB/h over the 2nd half) fds(first min max last)")
for role, per in agg.items():
    mins = list(per)
    rs = mins
    rss = [per[m][0] / 1024 for m in mins]
    fds = [per[m][1] for m in mins]
    procs = sorted({per[m][2] for m in mins})
    h = len(rs) // 2
    slope = 0.0
    if len(rs) - h >= 2 and mins[-1] != mins[h]:
        slope = (rss[-1] - rss[h]) / (mins[-1] - mins[h]) * 60
    print(f"{role} {len(rs)} {'/'.join(map(str, procs))} {rss[0]:.1f} {min(rss):.1f} {max(rss):.1f} {rss[-1]:.1f} {slope:+.2f} "
          f"{fds[0]} {min(fds)} {max(fds)} {fds[-1]}")
PY
    # A build with `--features heap-stats` logs `heap_stats` once a minute per process: the live
    # heap against the RSS (the rest is the allocator's retention).
    if grep -q '"heap_stats"' "$OUT/run.log" 2>/dev/null; then
        python3 - "$OUT/run.log" <<'PY'
import json, sys, collections
by = collections.OrderedDict()
for line in open(sys.argv[1]):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if v.get("event") != "heap_stats":
        continue
    by.setdefault(v["pid"], []).append((v["live_kb"], v["peak_kb"], v.get("rss_kb") or 0))
for pid, rows in by.items():
    live = " ".join(f"{r[0] / 1024:.1f}" for r in rows)
    print(f"heap_stats pid {pid}: live MB per minute: {live}; peak {rows[-1][1] / 1024:.1f} MB; RSS {rows[0][2] / 1024:.1f} -> {rows[-1][2] / 1024:.1f} MB")
PY
    fi
    exit 0
fi

MINUTES=${1:-60}
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin hft-connector
    BIN=target/release/hft-connector
fi
BIN=$(realpath "$BIN")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss() { awk '/^VmRSS/{print $2; f=1} END{if(!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
thr() { awk '/^Threads/{print $2; f=1} END{if(!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
descendants() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done; }
comm() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | awk '{print $2}'; }

echo "minute,utc,role,pid,rss_kb,fds,threads,load1" >"$OUT/samples.csv"
# sample MINUTE ROLE PID
sample() {
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    [ -d "/proc/$3" ] || return 0
    echo "$1,$(date -u +%FT%TZ),$2,$3,$(rss "$3"),$(fds "$3"),$(thr "$3"),$load" >>"$OUT/samples.csv"
}
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 3
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "output in $OUT"
}
trap cleanup EXIT
{
    echo "mode=$MODE minutes=$MINUTES bin=$BIN"
    echo "commit=$(git rev-parse HEAD 2>/dev/null || echo -) dirty=$(git status --porcelain 2>/dev/null | wc -l)"
    echo "start=$(date -u +%FT%TZ) nproc=$(nproc) load=$(cat /proc/loadavg)"
} >"$OUT/meta.txt"

if [ "$MODE" = service ]; then
    SYMS=BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT,DOGEUSDT,ADAUSDT,BNBUSDT,LTCUSDT,AVAXUSDT,LINKUSDT
    SIM_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    NATS_PORT=$(free_port)
    mkdir -p "$OUT/nats"
    nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$OUT/nats" >"$OUT/nats.log" 2>&1 &
    NATS=$!
    PIDS+=("$NATS")
    "$BIN" simulate --listen "127.0.0.1:$SIM_PORT" --symbols "$SYMS" --categories linear,spot \
        --rate 2000 --history-days 1 --log-format json >"$OUT/sim.log" 2>&1 &
    SIM=$!
    PIDS=("$SIM" "${PIDS[@]}")
    sleep 2
    "$BIN" run --ws-url "ws://127.0.0.1:$SIM_PORT/v5/public" --rest-url "http://127.0.0.1:$SIM_PORT" \
        --symbols "$SYMS" --category linear,spot --depth 200 --data-dir "$OUT/data" \
        --listen "127.0.0.1:$HTTP_PORT" --backfill-days 0 --log-format json \
        --record-dir "$OUT/record" --nats-url "nats://127.0.0.1:$NATS_PORT" --nats-stream SOAK \
        >"$OUT/run.out" 2>"$OUT/run.log" &
    RUN=$!
    PIDS=("$RUN" "${PIDS[@]}")
    echo "minute,utc,messages,nats_published,nats_dropped,nats_errors,sim_frames_published,sim_messages_sent,sim_trades,data_kb,record_kb,nats_store_kb" >"$OUT/status.csv"
    for m in $(seq 0 "$MINUTES"); do
        [ "$m" -eq 0 ] && sleep 20
        sample "$m" sim "$SIM"
        sample "$m" run "$RUN"
        for w in $(descendants "$RUN"); do sample "$m" "$(comm "$w")" "$w"; done
        sample "$m" nats-server "$NATS"
        ST=$(curl -s "127.0.0.1:$HTTP_PORT/api/status" | python3 -c '
import json,sys
s=json.load(sys.stdin)
n=(s.get("sinks") or {}).get("nats") or s.get("nats") or {}
print(sum(f.get("messages",0) for f in s["feeds"]), n.get("published","-"), n.get("dropped","-"), n.get("errors","-"), sep=",")' 2>/dev/null || echo "-,-,-,-")
        SIMST=$(curl -s "127.0.0.1:$SIM_PORT/sim/stats" | python3 -c '
import json,sys
s=json.load(sys.stdin)
print(s["frames_published"], s["messages_sent"], s["trades"], sep=",")' 2>/dev/null || echo "-,-,-")
        echo "$m,$(date -u +%FT%TZ),$ST,$SIMST,$(du -sk "$OUT/data" | cut -f1),$(du -sk "$OUT/record" 2>/dev/null | cut -f1),$(du -sk "$OUT/nats" | cut -f1)" >>"$OUT/status.csv"
        kill -0 "$RUN" 2>/dev/null || { echo "the service exited" >&2; break; }
        [ "$m" -lt "$MINUTES" ] && sleep 60
    done
    echo "ERROR log lines of the service: $(grep -c '"level":"ERROR"' "$OUT/run.log" || true)" | tee -a "$OUT/meta.txt"
else
    # 30 s longer than MINUTES: the last sample (15 s + MINUTES minutes in) still sees it running.
    "$BIN" soak --seconds $((MINUTES * 60 + 30)) --fault-every 5 --isolation process --seed 1 \
        --data-dir "$OUT/soak" >"$OUT/soak.out" 2>"$OUT/soak.err" &
    SOAK=$!
    PIDS+=("$SOAK")
    for m in $(seq 0 "$MINUTES"); do
        [ "$m" -eq 0 ] && sleep 15
        sample "$m" soak "$SOAK"
        for c in $(descendants "$SOAK"); do
            case "$(comm "$c")" in
                simulate) sample "$m" sim "$c" ;;
                *) sample "$m" "$(comm "$c")" "$c" ;;
            esac
        done
        kill -0 "$SOAK" 2>/dev/null || break
        [ "$m" -lt "$MINUTES" ] && sleep 60
    done
    set +e
    wait "$SOAK"
    echo "soak exit: $?" | tee -a "$OUT/meta.txt"
    set -e
    tail -c 4000 "$OUT/soak.out"
fi
echo "end=$(date -u +%FT%TZ) load=$(cat /proc/loadavg)" >>"$OUT/meta.txt"
