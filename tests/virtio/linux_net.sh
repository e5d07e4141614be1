#!/usr/bin/env bash
# linux_net.sh FTVM — the bundled Linux guest talks TCP through virtio-net and the TAP back end.
#
# In a private network namespace (unshare -n, so root and /dev/net/tun are needed) ftvm boots the
# bundled guest running kvd, with a virtio-net NIC on a TAP device that ftvm creates, the kernel's
# ip= autoconfiguration on eth0 and its default 64 MiB scratch disk. The host side of the tap gets
# 10.0.2.2/24; the test then talks to kvd at 10.0.2.15:7000 (SET/GET, a 4000-byte value, and many
# pipelined requests), checks the guest answered ARP with the MAC given on the command line, and
# stops ftvm. Then it records the selftest workload with a TCP round trip to an echo server on
# the host side (`ftvm record`) and replays the log with no network at all (`ftvm replay`): the
# received frames applied at the recorded icounts must reproduce every CHECK. Exit 77 (skip) when the guest is not built, /dev/net/tun is missing or no namespace
# can be made.
set -euo pipefail

FTVM=${1:?usage: linux_net.sh FTVM}
GUEST_DIR=${FTVM_GUEST_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build/guest}
MAC=52:54:00:0f:74:01
TAP=ftvmnet0
PY=$(command -v python3)

skip() { echo "SKIP: $*"; exit 77; }
[ -f "$GUEST_DIR/Image" ] && [ -f "$GUEST_DIR/initramfs.cpio" ] || skip "bundled guest not built in $GUEST_DIR"
[ -c /dev/net/tun ] || skip "/dev/net/tun is missing"
unshare -n true 2>/dev/null || skip "cannot create a network namespace (needs root)"

if [ "${LINUX_NET_IN_NS:-}" != 1 ]; then
	exec env LINUX_NET_IN_NS=1 FTVM_GUEST_DIR="$GUEST_DIR" unshare -n "$0" "$@"
fi

work=$(mktemp -d)
pid=
cleanup() {
	[ -z "$echo_pid" ] || kill "$echo_pid" 2>/dev/null || true
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
echo_pid=
fail() {
	echo "FAIL: $*"
	echo "--- guest console (last 40 lines) ---"
	tail -40 "$work/console" || true
	exit 1
}

# Starts ftvm SUBCOMMAND ARGS... in the background (pid in $pid, console in $work/console) and
# gives the host side of the tap it creates 10.0.2.2/24.
start_ftvm() {
	"$FTVM" "$@" </dev/null >"$work/console" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		ip link show "$TAP" >/dev/null 2>&1 && break
		kill -0 "$pid" 2>/dev/null || fail "ftvm exited before creating $TAP"
		sleep 0.1
	done
	ip addr add 10.0.2.2/24 dev "$TAP"
	ip link set "$TAP" up
}

ip link set lo up
start_ftvm run --nic "tap=$TAP,mac=$MAC" \
	--extra-args "ftvm.workload=kvd ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off"

for _ in $(seq 600); do
	grep -q "ftvm-guest: ready" "$work/console" && break
	kill -0 "$pid" 2>/dev/null || fail "ftvm exited before the guest was ready"
	sleep 0.1
done
grep -q "ftvm-guest: ready" "$work/console" || fail "guest not ready after 60 s"

"$PY" - <<'EOF' || fail "kvd over TCP"
import socket, sys
def conn():
    for _ in range(50):
        try:
            return socket.create_connection(("10.0.2.15", 7000), timeout=10)
        except OSError:
            import time; time.sleep(0.2)
    sys.exit("cannot connect to kvd at 10.0.2.15:7000")
s = conn()
f = s.makefile("rwb")
def ask(line):
    f.write(line.encode() + b"\n"); f.flush()
    return f.readline().decode().rstrip("\r\n")
assert ask("SET greeting hello") == "OK"
assert ask("GET greeting") == "VALUE hello"
big = "".join(chr(33 + i % 90) for i in range(4000))   # several frames each way
assert ask("SET big " + big) == "OK"
assert ask("GET big") == "VALUE " + big
# 200 pipelined requests in one write: many frames in flight, RX buffers recycled
f.write(b"".join(b"SET k%d v%d\n" % (i, i) for i in range(200))); f.flush()
for i in range(200):
    assert f.readline().strip() == b"OK", i
f.write(b"".join(b"GET k%d\n" % i for i in range(200))); f.flush()
for i in range(200):
    got = f.readline().strip()
    assert got == b"VALUE v%d" % i, (i, got)
print("kvd over virtio-net: 404 requests answered")
EOF

ip neigh show 10.0.2.15 dev "$TAP" | grep -qi "$MAC" || fail "guest ARP answer does not carry $MAC: $(ip neigh show dev $TAP)"
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=

# Record a run with network input, replay it offline.
"$PY" - <<'ECHO' &
import socket, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 7777)); srv.listen(4)
def echo(c):
    while (d := c.recv(4096)):
        c.sendall(d)
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
ECHO
echo_pid=$!
args=(--nic "tap=$TAP,mac=$MAC" --extra-args
      "ftvm.workload=selftest ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off ftvm.peer=10.0.2.2:7777")
start_ftvm record --log "$work/net.log" "${args[@]}"
status=0
wait "$pid" || status=$?
pid=
kill "$echo_pid" 2>/dev/null || true
[ "$status" = 0 ] || fail "recording ended with status $status"
grep -q "selftest: peer ok" "$work/console" || fail "the guest's TCP round trip over virtio-net failed"
frames=$(awk '$1 == "NET_RX" {print $2}' "$work/console")
[ "${frames:-0}" -gt 0 ] || fail "no NET_RX record in the log"
"$FTVM" replay --quiet --log "$work/net.log" "${args[@]}" </dev/null >"$work/replay" 2>&1 ||
	{ cat "$work/replay"; fail "replay failed"; }
grep -q "replay matched" "$work/replay" || { cat "$work/replay"; fail "replay did not match"; }
echo "PASS: Linux guest over virtio-net/TAP (MAC $MAC); $frames received frames replayed exactly"
