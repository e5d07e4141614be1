#!/usr/bin/env bash
# The bundled guest boots under `ftvm run`, runs its self-test workload, prints the ready marker
# and powers off with status 0. Skipped (exit 77) while the guest has not been built.
# Usage: boot_selftest.sh FTVM GUEST_DIR [--clock=...]
set -u
FTVM=$1
GUEST=$2
shift 2
if [ ! -r "$GUEST/Image" ]; then
	echo "SKIP: no bundled guest in $GUEST (build it with guest/build)"
	exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
FTVM_GUEST_DIR=$GUEST timeout 300 "$FTVM" run --extra-args ftvm.workload=selftest "$@" </dev/null >"$out" 2>&1
st=$?
end=$(date +%s.%N)
tail -n 30 "$out"
echo "exit status $st after $(echo "$end - $start" | bc) s"
grep -q 'ftvm-guest: ready' "$out" || { echo "FAIL: no 'ftvm-guest: ready' on the console"; exit 1; }
[ $st -eq 0 ] || { echo "FAIL: exit status $st, want 0"; exit 1; }
echo "boot selftest: ok"
