# expect.sh — sourced by the shell tests that drive `ftvm` with bad and good input.
#
# expect CODE PATTERN -- ARGS...: runs "$FTVM" ARGS (stdin from /dev/null, at most
# ${EXPECT_TIMEOUT:-300} s) and checks that it exits with CODE and that its output matches the grep
# PATTERN; prints "ok: ..." or "FAIL: ..." with the output, and sets fail=1 on a mismatch.
fail=${fail:-0}

expect() {
	local want=$1 pattern=$2
	shift 3
	local out rc
	out=$(timeout "${EXPECT_TIMEOUT:-300}" "$FTVM" "$@" 2>&1 </dev/null)
	rc=$?
	if [ "$rc" != "$want" ] || ! grep -q -- "$pattern" <<<"$out"; then
		echo "FAIL: ftvm $*: exit $rc (want $want), output:"
		tail -n 20 <<<"$out" | sed 's/^/    /'
		fail=1
	else
		echo "ok: ftvm ${*:1:3} ... -> $rc: $(grep -- "$pattern" <<<"$out" | head -1)"
	fi
}
