#!/usr/bin/env bash
# cli_test.sh FTVM DIR — the `ftvm arbiter` commands as a user runs them: exit codes (0 won, 1 lost,
# 2 usage, 3 failed), messages, show and show --json, refusal of bad areas, and several `claim`
# processes racing for the same epochs.
set -uo pipefail
ftvm=$1
dir=$2
rm -rf "$dir" && mkdir -p "$dir"
area=$dir/area.img
failures=0

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# expect CODE PATTERN CMD... : runs CMD, checks its exit code and that its output matches PATTERN
expect() {
	local code=$1 pattern=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	[ "$rc" -eq "$code" ] || fail "'$*' exited $rc, expected $code: $out"
	echo "$out" | grep -qE -- "$pattern" || fail "'$*' printed '$out', expected /$pattern/"
}

expect 0 "ftvm arbiter init PATH --vm NAME" "$ftvm" arbiter --help
expect 0 "usage" "$ftvm" arbiter claim --help
expect 0 "usage" "$ftvm" arbiter show --help
expect 0 "usage" "$ftvm" arbiter init --help
expect 2 "command is required" "$ftvm" arbiter
expect 2 "unknown command" "$ftvm" arbiter frobnicate
expect 2 "--vm NAME is required" "$ftvm" arbiter init "$area"
expect 2 "--nodes" "$ftvm" arbiter init "$area" --vm v --nodes 99
expect 2 "--epoch and --node are required" "$ftvm" arbiter claim "$area" --epoch 1
expect 2 "--epoch takes" "$ftvm" arbiter claim "$area" --epoch 0 --node 0
expect 2 "--epoch takes" "$ftvm" arbiter claim "$area" --epoch -3 --node 0

# bad areas: each a clear one-line error, exit 3
expect 3 "neither a regular file nor a block device|O_DIRECT" "$ftvm" arbiter claim /dev/null --epoch 1 --node 0 --timeout 1
truncate -s 1M "$dir/zeros.img"
expect 3 "not an initialised" "$ftvm" arbiter claim "$dir/zeros.img" --epoch 1 --node 0
expect 3 "not an initialised" "$ftvm" arbiter show "$dir/zeros.img"
out=$("$ftvm" arbiter claim "$dir/missing.img" --epoch 1 --node 0 --timeout 1 2>&1)
[ $? -eq 3 ] || fail "an unreachable area did not fail after its timeout: $out"
echo "$out" | grep -q "cannot open .*No such file.*retrying in" || fail "an unreachable area does not say why it retries: $out"

expect 0 "arbiter area for VM 'vm-a' with 3 nodes" "$ftvm" arbiter init "$area" --vm vm-a --nodes 3
expect 3 "already an arbiter area for VM 'vm-a'" "$ftvm" arbiter init "$area" --vm vm-a
expect 0 "no epoch decided yet" "$ftvm" arbiter show "$area"
expect 0 "epoch 1: node 2 won" "$ftvm" arbiter claim "$area" --epoch 1 --node 2
expect 1 "epoch 1: node 0 lost, node 2 won" "$ftvm" arbiter claim "$area" --epoch 1 --node 0 --vm vm-a
expect 0 "epoch 1: node 2 won" "$ftvm" arbiter claim "$area" --epoch 1 --node 2
expect 3 "belongs to VM 'vm-a', not 'vm-b'" "$ftvm" arbiter claim "$area" --epoch 2 --node 0 --vm vm-b
expect 3 "out of range" "$ftvm" arbiter claim "$area" --epoch 2 --node 3
expect 0 "epoch 4: node 1 won" "$ftvm" arbiter claim "$area" --epoch 4 --node 1
expect 3 "epoch 3 is older than epoch 4" "$ftvm" arbiter claim "$area" --epoch 3 --node 0
expect 0 "epoch 4: node 1 won" "$ftvm" arbiter show "$area"
json=$("$ftvm" arbiter show "$area" --json) || fail "show --json failed"
python3 - "$json" <<'EOF' || fail "show --json: $json"
import json, sys
d = json.loads(sys.argv[1])
assert d["vm"] == "vm-a" and d["nodes"] == 3 and d["sector_size"] == 4096, d
assert d["decided"] == [{"epoch": 4, "winner": 1}, {"epoch": 1, "winner": 2}], d["decided"]
EOF

# a corrupt header and a truncated area
cp "$area" "$dir/corrupt.img"
printf 'XX' | dd of="$dir/corrupt.img" bs=1 seek=50 conv=notrunc status=none
expect 3 "corrupt" "$ftvm" arbiter show "$dir/corrupt.img"
expect 3 "corrupt" "$ftvm" arbiter claim "$dir/corrupt.img" --epoch 9 --node 0
cp "$area" "$dir/short.img"
truncate -s 65536 "$dir/short.img"
expect 3 "too small" "$ftvm" arbiter claim "$dir/short.img" --epoch 9 --node 0

# racing processes: for each epoch exactly one exits 0, and every loser names the same winner
race=$dir/race.img
"$ftvm" arbiter init "$race" --vm race --nodes 4 >/dev/null || fail "init race area"
for epoch in $(seq 1 8); do
	for node in 0 1 2 3; do
		"$ftvm" arbiter claim "$race" --epoch "$epoch" --node "$node" --timeout 30 >"$dir/out.$node" 2>&1 &
		pids[$node]=$!
	done
	won=0
	winners=""
	for node in 0 1 2 3; do
		wait "${pids[$node]}"
		rc=$?
		case $rc in
		0) won=$((won + 1)); winners="$winners $(sed -n 's/.*node \([0-9]*\) won.*/\1/p' "$dir/out.$node")" ;;
		1) winners="$winners $(sed -n 's/.*node \([0-9]*\) won.*/\1/p' "$dir/out.$node")" ;;
		*) fail "epoch $epoch node $node exited $rc: $(cat "$dir/out.$node")" ;;
		esac
	done
	[ "$won" -eq 1 ] || fail "epoch $epoch: $won processes won"
	[ "$(echo "$winners" | tr ' ' '\n' | sed '/^$/d' | sort -u | wc -l)" -eq 1 ] ||
		fail "epoch $epoch: claimants name different winners:$winners"
done

if [ "$failures" -ne 0 ]; then
	echo "$failures failures"
	exit 1
fi
echo "cli: all checks passed"
