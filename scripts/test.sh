#!/usr/bin/env bash
# The full test suite: everything the tests need is installed and started here.
# Usage: scripts/test.sh        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (unit, integration, property, doc tests)"
cargo test --all-targets --locked
cargo test --doc --locked

if [ -x scripts/compat.sh ]; then
  echo "== third-party client compatibility (pybit against the simulator)"
  scripts/compat.sh
fi
