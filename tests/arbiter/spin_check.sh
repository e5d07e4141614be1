#!/usr/bin/env bash
# spin_check.sh MODEL WORKDIR — checks the arbiter's Promela model exhaustively with spin: the real
# algorithm must show no error in a completed search, and each deliberately broken variant must
# show a violation (a model that cannot fail proves nothing).
set -euo pipefail
model=$(realpath "$1")
work=$2
mkdir -p "$work"
cd "$work"

# run NAME GCC-OPT SPIN-DEFINES... : builds and runs pan, leaves its output in NAME/pan.out. The full
# search pays for optimisation; the broken variants stop at their first violation and do not.
run() {
	local name=$1 opt=$2
	shift 2
	rm -rf "$name" && mkdir "$name"
	(cd "$name" && spin "$@" -a "$model" >spin.out 2>&1 && gcc "$opt" -DSAFETY -DCOLLAPSE -o pan pan.c \
		&& ./pan -m1000000 >pan.out 2>&1) || { echo "FAIL $name: spin or pan did not run"; cat "$name"/*.out; exit 1; }
}

run good -O1 -DMAXCRASH=2
out=good/pan.out
grep -q "errors: 0" "$out" || { echo "FAIL: spin found a violation in the arbiter model"; cat "$out"; exit 1; }
if grep -qE "Search not completed|max search depth too small|out of memory" "$out"; then
	echo "FAIL: the search did not complete"; cat "$out"; exit 1
fi
echo "model: $(grep -E 'states, stored' "$out" | xargs), no violation, search completed"

for broken in BROKEN_SKIP_PHASE2_READ BROKEN_SINGLE_COPY BROKEN_NO_REREAD BROKEN_FORGET_OWN; do
	run "$broken" -O0 "-D$broken"
	if ! grep -q "assertion violated" "$broken/pan.out" || grep -q "errors: 0" "$broken/pan.out"; then
		echo "FAIL: spin found no violation in the broken variant $broken"; cat "$broken/pan.out"; exit 1
	fi
	echo "broken variant $broken: violation found, as it must be"
done
