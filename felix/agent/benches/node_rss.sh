#!/usr/bin/env bash
# Idle memory of brindle-node with the policy agent on (a benchmark script, not a test): one
# node namespace (never the root namespace), a SQLite store holding the policy demo
# (felix/agent/tests/golden/demo.yaml: a tier, four policies, four endpoints), nftables. Prints
# the daemon's VmRSS and VmHWM after it has been idle for 15 s. Root; release build.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bin=target/release
if [ ! -x "$bin/brindle-node" ] || [ ! -x "$bin/brindlectl" ]; then
  cargo build --release -q -p brindle-node -p brindlectl
fi
ns="brbench-rss-$$"
dir=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add eth0 type veth peer name eth0p
ip -n "$ns" addr add 198.18.70.1/24 dev eth0
ip -n "$ns" link set eth0 up
db="sqlite:$dir/brindle.db"
BRINDLE_DATASTORE="$db" "$bin/brindlectl" apply -f felix/agent/tests/golden/demo.yaml >/dev/null
ip netns exec "$ns" "$bin/brindle-node" --datastore "$db" run --node-name node-1 \
  --ip interface=eth0 --status-socket "$dir/node.sock" --no-kernel-routes \
  --policy on --policy-dataplane nftables >"$dir/node.log" 2>&1 &
pid=$!
sleep 15
if ! ip netns exec "$ns" nft list table inet brindle >/dev/null 2>&1; then
  echo "the policy table was not applied; log:" >&2
  cat "$dir/node.log" >&2
  exit 1
fi
echo "brindle-node idle with the policy agent (nftables, demo policies):"
grep -E 'VmRSS|VmHWM' "/proc/$pid/status"
