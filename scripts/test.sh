#!/usr/bin/env bash
# The full test suite. Everything the tests need is installed and started here:
#   pybit (PyPI) for the third-party client check, Debian's prometheus (promtool) for the alert
#   rules and metrics checks, Debian's chromium for the dashboard browser test.
# Usage: scripts/test.sh   (from anywhere; run as root or with sudo rights for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (unit, integration, property and doc tests; benches and examples build)"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked

echo "== benchmark smoke run (scripts/bench.sh --smoke: end to end, a few seconds, no thresholds)"
scripts/bench.sh --smoke

echo "== third-party client compatibility (pybit against the simulator)"
scripts/compat.sh

echo "== Prometheus alert rules and live /metrics (promtool)"
scripts/check-alerts.sh

echo "== dashboard in headless Chromium against the real service and simulator"
scripts/browser-test.sh
