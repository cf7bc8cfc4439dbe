#!/usr/bin/env bash
# The network of the half-open test (tests/half_open.rs): a network namespace joined to this host by
# a veth pair on a private /30 of its own, and an iptables switch inside the namespace that silently
# drops every packet on its veth end, both directions. It touches nothing but the namespace and the
# veth pair it creates (the host's interfaces, routes and firewall are left alone).
# Usage (root):
#   scripts/half-open-net.sh install      iproute2 and iptables from Debian when missing (idempotent)
#   scripts/half-open-net.sh up ID        create namespace hftc-ho-ID; prints NS=, NS_IP=, HOST_IP=
#   scripts/half-open-net.sh drop ID      drop every packet on the namespace's veth end
#   scripts/half-open-net.sh restore ID   let packets through again
#   scripts/half-open-net.sh down ID      delete the namespace and the veth pair (idempotent)
# ID is a number (the test uses its process id); it picks the names and the /30 in 10.64.0.0/10.
set -euo pipefail
cmd=${1:?usage: half-open-net.sh install|up|drop|restore|down ID}

if [ "$cmd" = install ]; then
  if ! command -v ip >/dev/null || ! command -v iptables >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq iproute2 iptables >/dev/null
  fi
  exit 0
fi

id=${2:?an ID (number) is required}
case "$id" in *[!0-9]*|'') echo "half-open-net.sh: ID must be a number, got $id" >&2; exit 2;; esac
ns="hftc-ho-$id"
host_if="hoh$id"
ns_if="hon$id"
n=$(( (id % 1048576) * 4 ))
prefix="10.$(( 64 + n / 65536 )).$(( (n / 256) % 256 ))"
host_ip="$prefix.$(( n % 256 + 1 ))"
ns_ip="$prefix.$(( n % 256 + 2 ))"
in_ns() { ip netns exec "$ns" "$@"; }

case "$cmd" in
  up)
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$host_if" 2>/dev/null || true
    ip netns add "$ns"
    ip link add "$host_if" type veth peer name "$ns_if"
    ip link set "$ns_if" netns "$ns"
    ip addr add "$host_ip/30" dev "$host_if"
    ip link set "$host_if" up
    in_ns ip link set lo up
    in_ns ip addr add "$ns_ip/30" dev "$ns_if"
    in_ns ip link set "$ns_if" up
    echo "NS=$ns"
    echo "NS_IP=$ns_ip"
    echo "HOST_IP=$host_ip"
    ;;
  drop)
    in_ns iptables -A INPUT -i "$ns_if" -j DROP
    in_ns iptables -A OUTPUT -o "$ns_if" -j DROP
    ;;
  restore)
    in_ns iptables -D INPUT -i "$ns_if" -j DROP
    in_ns iptables -D OUTPUT -o "$ns_if" -j DROP
    ;;
  down)
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$host_if" 2>/dev/null || true
    ;;
  *)
    echo "half-open-net.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
