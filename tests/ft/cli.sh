#!/bin/bash
# ft.cli — `ftvm primary` / `ftvm backup` refuse bad options with one clear line and a non-zero
# exit, before touching the network or the guest: missing required options, a heartbeat not
# shorter than the timeout, an unknown --log-transport, a lag bound out of range, an unknown
# control group, and the RDMA transport on a machine without an RDMA device (the CI machine;
# skipped where a device exists).
set -u
FTVM=${1:?usage: cli.sh FTVM}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

EXPECT_TIMEOUT=20
. "$(dirname "$0")/../lib/expect.sh"

truncate -s 1M "$work/arb"
"$FTVM" arbiter init "$work/arb" --vm cli >/dev/null || { echo "arbiter init failed"; exit 1; }
A=(--arbiter "$work/arb" --vm cli)

expect 2 "--listen HOST:PORT and --arbiter PATH are required" -- backup --vm cli
expect 2 "must be shorter than --timeout" -- primary --peer 127.0.0.1:9 "${A[@]}" --heartbeat 500 --timeout 400
expect 2 '"ib" is neither tcp nor rdma' -- backup --listen 127.0.0.1:0 "${A[@]}" --log-transport ib
expect 2 "needs a value" -- primary --peer 127.0.0.1:9 "${A[@]}" --log-transport
expect 2 "--max-lag: at most 600000 ms" -- primary --peer 127.0.0.1:9 "${A[@]}" --max-lag 700000
expect 2 "--control-group no-such-group: no such group" -- backup --listen 127.0.0.1:0 "${A[@]}" \
	--control-group no-such-group
if [ -d /sys/class/infiniband ] && [ -n "$(ls -A /sys/class/infiniband 2>/dev/null)" ]; then
	echo "an RDMA device is present: the no-device cases are not exercised"
else
	expect 1 "cannot listen on 127.0.0.1:0: no RDMA device found; use the TCP transport" -- \
		backup --listen 127.0.0.1:0 "${A[@]}" --log-transport rdma
	expect 1 "no RDMA device found; use the TCP transport" -- \
		primary --peer 127.0.0.1:9 "${A[@]}" --log-transport rdma
fi
exit $fail
