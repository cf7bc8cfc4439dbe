#!/usr/bin/env bash
# Installs what the NATS tests and the Python consumer example need, only when missing (idempotent):
# Debian's `nats-server` (JetStream) through apt-get, and `nats-py` from PyPI.
# Called by scripts/test.sh before `cargo test`; the Rust tests start their own nats-server.
set -euo pipefail

if ! command -v nats-server >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "nats-deps: nats-server is missing and we are not root: install Debian's nats-server" >&2
        exit 1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server >/dev/null
fi
nats-server --version

if ! python3 -c "import nats" 2>/dev/null; then
    python3 -m pip install --quiet nats-py 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages nats-py
fi
python3 -c "import importlib.metadata as m; print('nats-py', m.version('nats-py'))"
