#!/usr/bin/env bash
# test_netns.sh — the logging channel between two network namespaces joined by a veth pair, as
# the FT hosts will be: IPv4 and IPv6 streams checked byte by byte, and a primary for another VM
# refused across the link. Needs root and iproute2; exits 77 (skipped) without them.
# usage: test_netns.sh PATH/TO/lc_peer
set -euo pipefail

PEER=$1
SKIP=77
N=100000
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root for network namespaces"; exit $SKIP; }
command -v ip >/dev/null || { echo "skip: no iproute2"; exit $SKIP; }

tag=lc$$
A=$tag-a B=$tag-b
keydir=$(mktemp -d)
cleanup() {
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	rm -rf "$keydir"
}
trap cleanup EXIT
"$PEER" keygen "$keydir/key"
export LC_PEER_KEY=$keydir/key
ip netns add "$A" || { echo "skip: cannot create network namespaces here"; exit $SKIP; }
ip netns add "$B"
ip link add "${tag}x" type veth peer name "${tag}y" || { echo "skip: no veth support here"; exit $SKIP; }
ip link set "${tag}x" netns "$A"
ip link set "${tag}y" netns "$B"
ip -n "$A" link set lo up
ip -n "$B" link set lo up
ip -n "$A" addr add 10.203.5.1/24 dev "${tag}x"
ip -n "$B" addr add 10.203.5.2/24 dev "${tag}y"
have_v6=1
ip -n "$A" addr add fd5c:ff7::1/64 dev "${tag}x" nodad 2>/dev/null &&
	ip -n "$B" addr add fd5c:ff7::2/64 dev "${tag}y" nodad 2>/dev/null || have_v6=0
ip -n "$A" link set "${tag}x" up
ip -n "$B" link set "${tag}y" up
# Wait until both ends report carrier, so the first segments are not dropped.
for _ in $(seq 50); do
	ip -n "$A" link show "${tag}x" | grep -q LOWER_UP && ip -n "$B" link show "${tag}y" | grep -q LOWER_UP && break
	sleep 0.1
done

# run_pair LISTEN CONNECT VM_SEND: backup in B listening on LISTEN, primary in A connecting.
run_pair() {
	ip netns exec "$B" "$PEER" recv "$1" vm-netns 7 $N &
	local backup=$!
	local rc=0
	ip netns exec "$A" "$PEER" send "$2" "$3" 7 $N || rc=$?
	local brc=0
	wait $backup || brc=$?
	echo "primary exit $rc, backup exit $brc"
	[ $rc -eq "$4" ] && [ $brc -eq "$5" ]
}

echo "== IPv4 across namespaces"
run_pair 10.203.5.2:7400 10.203.5.2:7400 vm-netns 0 0
if [ $have_v6 -eq 1 ]; then
	echo "== IPv6 across namespaces"
	run_pair "[fd5c:ff7::2]:7401" "[fd5c:ff7::2]:7401" vm-netns 0 0
else
	echo "== IPv6 not available in these namespaces: IPv6 part not run"
fi
echo "== a primary for another VM is refused on both sides (exit 3)"
run_pair 10.203.5.2:7402 10.203.5.2:7402 vm-other 3 3
