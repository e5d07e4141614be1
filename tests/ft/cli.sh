#!/bin/bash
# ft.cli — `ftvm primary` / `ftvm backup` / `ftvm spare` refuse bad options with one clear line and a non-zero
# exit, before touching the network or the guest: missing required options, a heartbeat not
# shorter than the timeout, an unknown --log-transport or --disk-mode, a lag bound out of range, an unknown
# control group, more than 8 spares (also for `ftvm incoming --spare`, which needs --arbiter), a zero clone bandwidth, a missing or unsafe channel key, and the RDMA transport on a machine without an
# RDMA device (the CI machine; skipped where a device exists). `ftvm keygen` makes a 0600 key, never
# over an existing file nor through a symlink.
set -u
FTVM=${1:?usage: cli.sh FTVM}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

EXPECT_TIMEOUT=20
. "$(dirname "$0")/../lib/expect.sh"

truncate -s 1M "$work/arb"
"$FTVM" arbiter init "$work/arb" --vm cli >/dev/null || { echo "arbiter init failed"; exit 1; }
umask 022
expect 0 "" -- keygen "$work/key"
mode=$(stat -c %a "$work/key")
[ "$mode" = 600 ] || { echo "FAIL: keygen made a key file of mode $mode"; fail=1; }
grep -Eq '^ftvm-channel-key-v1 [0-9a-f]{64}$' "$work/key" || { echo "FAIL: key file format"; fail=1; }
expect 0 "" -- keygen "$work/key2"
cmp -s "$work/key" "$work/key2" && { echo "FAIL: two keygens made the same key"; fail=1; }
before=$(cat "$work/key")
expect 1 "File exists" -- keygen "$work/key"
[ "$(cat "$work/key")" = "$before" ] || { echo "FAIL: keygen overwrote a key"; fail=1; }
ln -s "$work/elsewhere" "$work/link"
expect 1 "keygen" -- keygen "$work/link"
[ -e "$work/elsewhere" ] && { echo "FAIL: keygen wrote through a symlink"; fail=1; }
A=(--arbiter "$work/arb" --vm cli --channel-key "$work/key")
expect 2 "--channel-key FILE is required" -- backup --listen 127.0.0.1:0 --arbiter "$work/arb" --vm cli
cp "$work/key" "$work/open.key"
chmod 644 "$work/open.key"
expect 2 "mode 0644 lets group or others at the key; refused" -- \
	primary --peer 127.0.0.1:9 --arbiter "$work/arb" --vm cli --channel-key "$work/open.key"
expect 2 "not a regular file" -- backup --listen 127.0.0.1:0 --arbiter "$work/arb" --vm cli --channel-key "$work"
ln -s "$work/key" "$work/key.link"
expect 2 "a symlink" -- backup --listen 127.0.0.1:0 --arbiter "$work/arb" --vm cli --channel-key "$work/key.link"
printf 'ftvm-channel-key-v1 %064d\n' 7 | tr 7 x >"$work/bad.key"
chmod 600 "$work/bad.key"
expect 2 "not an ftvm channel key\|bad hex digit" -- \
	backup --listen 127.0.0.1:0 --arbiter "$work/arb" --vm cli --channel-key "$work/bad.key"

expect 2 "--listen HOST:PORT and --arbiter PATH are required" -- backup --vm cli
expect 2 "must be shorter than --timeout" -- primary --peer 127.0.0.1:9 "${A[@]}" --heartbeat 500 --timeout 400
expect 2 '"ib" is neither tcp nor rdma' -- backup --listen 127.0.0.1:0 "${A[@]}" --log-transport ib
expect 2 "needs a value" -- primary --peer 127.0.0.1:9 "${A[@]}" --log-transport
expect 2 '"mirrored" is neither replicated nor shared' -- backup --listen 127.0.0.1:0 "${A[@]}" --disk-mode mirrored
expect 2 "needs a value" -- primary --peer 127.0.0.1:9 "${A[@]}" --disk-mode
expect 2 "--max-lag: at most 600000 ms" -- primary --peer 127.0.0.1:9 "${A[@]}" --max-lag 700000
expect 2 "--control-group no-such-group: no such group" -- backup --listen 127.0.0.1:0 "${A[@]}" \
	--control-group no-such-group
expect 2 "--listen HOST:PORT and --arbiter PATH are required" -- spare --vm cli "${A[@]:2}"
S=()
for i in 1 2 3 4 5 6 7 8 9; do S+=(--spare "127.0.0.1:$((9000 + i))"); done
expect 2 "--spare: at most 8 spares" -- spare --listen 127.0.0.1:0 "${A[@]}" "${S[@]}"
# An FT node's migration destination: --spare makes `ftvm incoming` one, and needs the arbiter.
expect 2 "--arbiter PATH is required with --spare" -- incoming --listen 127.0.0.1:0 --vm cli \
	--channel-key "$work/key" --spare 127.0.0.1:9
expect 2 "--spare: at most 8 spares" -- incoming --listen 127.0.0.1:0 "${A[@]}" "${S[@]}"
expect 2 "--clone-bandwidth: '0' is not a number >= 1" -- primary --peer 127.0.0.1:9 "${A[@]}" --spare 127.0.0.1:9 \
	--clone-bandwidth 0
if [ -d /sys/class/infiniband ] && [ -n "$(ls -A /sys/class/infiniband 2>/dev/null)" ]; then
	echo "an RDMA device is present: the no-device cases are not exercised"
else
	expect 1 "cannot listen on 127.0.0.1:0: no RDMA device found; use the TCP transport" -- \
		backup --listen 127.0.0.1:0 "${A[@]}" --log-transport rdma
	expect 1 "no RDMA device found; use the TCP transport" -- \
		primary --peer 127.0.0.1:9 "${A[@]}" --log-transport rdma
fi
exit $fail
