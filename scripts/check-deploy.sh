#!/usr/bin/env bash
# Checks the deployment files of deploy/ (deploy/README.md), installing what it needs from Debian
# when missing (systemd for systemd-analyze, nats-server, prometheus for promtool):
#
#   scripts/check-deploy.sh      (from anywhere; run as root on a fresh machine for the installs)
#
# 1. `systemd-analyze verify` on deploy/systemd/hft-connector.service. The container has no systemd
#    running (PID 1 is not systemd), so the unit is verified offline against a scratch root
#    (--root): Debian's unit tree copied in, and a stub executable at /usr/local/bin/hft-connector
#    (verify checks that ExecStart names an executable; the real binary is not installed here).
#    `systemd-analyze security --offline` prints its exposure score (at most 2.0 is accepted).
# 2. `nats-server --config deploy/nats/nats-N.conf -t` for the three nodes (the password variable
#    they reference set to a dummy value).
# 3. `promtool check config deploy/prometheus/prometheus.yml` (it also checks the rule files it
#    names); the rules themselves and their tests are scripts/check-alerts.sh's.
# deploy/connector/hft-connector.toml is checked by `cargo test` (tests/deploy_config.rs loads it
# with the service's own loader and checks its duplicate window against its timers).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
command -v systemd-analyze >/dev/null 2>&1 || { echo "== installing Debian's systemd (systemd-analyze)"; apt_install systemd; }
command -v nats-server >/dev/null 2>&1 || { echo "== installing Debian's nats-server"; apt_install nats-server; }
command -v promtool >/dev/null 2>&1 || { echo "== installing Debian's prometheus (promtool)"; apt_install prometheus; }

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT

echo "== systemd-analyze verify deploy/systemd/hft-connector.service ($(systemd-analyze --version | head -1))"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system" "$ROOT/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$ROOT/usr/lib/systemd/"
printf '#!/bin/sh\nexit 0\n' >"$ROOT/usr/local/bin/hft-connector"
chmod +x "$ROOT/usr/local/bin/hft-connector"
cp deploy/systemd/hft-connector.service "$ROOT/etc/systemd/system/"
# verify prints problems on stderr and still exits 0 for some of them: any output is a failure.
OUT=$(systemd-analyze verify --root="$ROOT" hft-connector.service 2>&1) || { echo "$OUT" >&2; exit 1; }
[ -z "$OUT" ] || { echo "$OUT" >&2; exit 1; }
SCORE=$(systemd-analyze security --offline=true --root="$ROOT" hft-connector.service 2>&1 \
  | sed -n 's/.*Overall exposure level for hft-connector.service: \([0-9.]*\).*/\1/p')
echo "exposure level (systemd-analyze security --offline): $SCORE"
python3 -c "import sys; sys.exit(0 if float('$SCORE') <= 2.0 else 1)" \
  || { echo "the unit's exposure level $SCORE is above 2.0" >&2; exit 1; }

echo "== nats-server -t on the three node configurations ($(nats-server --version))"
for i in 1 2 3; do
  HFTC_NATS_PASSWORD=check nats-server --config "deploy/nats/nats-$i.conf" -t
done

echo "== promtool check config deploy/prometheus/prometheus.yml"
promtool check config deploy/prometheus/prometheus.yml

echo "== deployment files OK"
