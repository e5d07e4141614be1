#!/usr/bin/env bash
# kvd_tap.sh FTVM GUEST_DIR — record kvd serving a client over a TAP device, replay it (kv_replay.py).
#
# Makes a private network namespace (unshare -n: it disappears with this process, nothing to clean
# up), creates the TAP device rrtap0 in it with the host side 10.99.0.1/24 (IPv6 off, so the only
# frames are the test's own), then runs kv_replay.py inside the namespace. Exit 77 (skip) when the
# guest is not built, /dev/net/tun is missing or no namespace can be made (needs root).
set -euo pipefail

FTVM=${1:?usage: kvd_tap.sh FTVM GUEST_DIR}
GUEST_DIR=${2:?usage: kvd_tap.sh FTVM GUEST_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
TAP=rrtap0

skip() { echo "SKIP: $*"; exit 77; }
[ -f "$GUEST_DIR/Image" ] || skip "no bundled guest in $GUEST_DIR (build it with guest/build)"
[ -c /dev/net/tun ] || skip "/dev/net/tun is missing"
unshare -n true 2>/dev/null || skip "cannot create a network namespace (needs root)"

if [ "${KVD_TAP_IN_NS:-}" != 1 ]; then
	exec env KVD_TAP_IN_NS=1 unshare -n "$0" "$@"
fi

ip link set lo up
ip tuntap add dev "$TAP" mode tap
echo 1 >"/proc/sys/net/ipv6/conf/$TAP/disable_ipv6" 2>/dev/null || true
ip addr add 10.99.0.1/24 dev "$TAP"
ip link set "$TAP" up
exec python3 "$HERE/kv_replay.py" "$FTVM" "$GUEST_DIR" "$TAP"
