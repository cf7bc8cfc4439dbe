#!/usr/bin/env bash
# The throughput and latency benchmark (examples/throughput): a Bybit-shaped load generator pinned
# to core 0, and on core 1, one after the other, its ceiling (raw frame drain), a plain WebSocket
# drain (the baseline), hft-feed in-process and in process isolation, each consumed from a spawned
# task, from `block_on` as the README's `#[tokio::main]` loop (`-main`), and with
# `feed.busy_poll_us` (`-busy`, --busy-poll-us, default 1000), at saturation and paced.
# Prints one JSON line per measurement, then a markdown table (BENCHMARKS.md has a run) and each
# `-main` consumer's rate against the spawned one's.
#
# Usage: scripts/bench.sh [options]           release build; options: --seconds S --warmup S
#                                             --rates R1,R2 --busy-poll-us US
#                                             --modes raw,drain,in-process,in-process-main,process,
#                                                     process-main,in-process-busy,process-busy
#                                             --before DIR (also measure another build's consumers,
#                                             e.g. main's target/release, in the same run)
#        scripts/bench.sh --smoke [options]   debug build, a few seconds, no thresholds (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
dir=release
if [[ "${1:-}" == "--smoke" ]]; then
    shift
    profile=dev
    dir=debug
    set -- --seconds 0.3 --warmup 0.2 --rates 10000 "$@"
fi
cargo build --locked --profile "$profile" --bin hft-connector --example throughput
target="${CARGO_TARGET_DIR:-target}/$dir"
exec "$target/examples/throughput" --worker "$target/hft-connector" "$@"
