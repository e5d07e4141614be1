#!/usr/bin/env bash
# eventlog.record_file — `ftvm record` creates its log private and never clobbers: the new log is
# 0600 even under umask 000; an existing file is refused (exit 1, one line naming --force) and kept;
# --force replaces it with a fresh 0600 file; a symbolic link at the path is refused with or without
# --force and its target is left untouched.
# Usage: record_file.sh FTVM BM_DIR   (BM_DIR "-": no bare-metal programs, skipped with 77)
set -u
FTVM=$1
BM=$2
[ "$BM" = "-" ] && { echo "SKIP: no bare-metal programs"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
record() { timeout 20 "$FTVM" record --bios none --kernel "$BM/timer.elf" "$@" </dev/null >/dev/null 2>"$T/err"; }
mode() { stat -c %a "$1"; }

(umask 000 && record --log "$T/new.log")
st=$?
[ $st -eq 0 ] || fail "record to a new file: exit $st: $(cat "$T/err")"
[ "$(mode "$T/new.log")" = 600 ] || fail "new log under umask 000: mode $(mode "$T/new.log"), want 600"

echo precious >"$T/old.log"
record --log "$T/old.log"
st=$?
[ $st -eq 1 ] || fail "record over an existing file: exit $st, want 1"
grep -q -- 'exists (--force replaces it)' "$T/err" || fail "existing file: stderr '$(cat "$T/err")'"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "existing file: want one stderr line, got '$(cat "$T/err")'"
[ "$(cat "$T/old.log")" = precious ] || fail "the existing file was modified"

chmod 644 "$T/old.log"
record --force --log "$T/old.log"
st=$?
[ $st -eq 0 ] || fail "record --force: exit $st: $(cat "$T/err")"
[ "$(mode "$T/old.log")" = 600 ] || fail "replaced log: mode $(mode "$T/old.log"), want 600"
[ "$(head -c 8 "$T/old.log")" != precious ] || fail "--force did not replace the file"

echo victim >"$T/victim"
ln -s "$T/victim" "$T/link.log"
for force in "" --force; do
	record $force --log "$T/link.log"
	st=$?
	[ $st -eq 1 ] || fail "record $force to a symlink: exit $st, want 1"
	grep -q 'symbolic link' "$T/err" || fail "symlink $force: stderr '$(cat "$T/err")'"
	[ "$(cat "$T/victim")" = victim ] || fail "record $force wrote through the symlink"
	[ -L "$T/link.log" ] || fail "record $force replaced the symlink"
done
ln -s "$T/nowhere" "$T/dangling.log"
record --force --log "$T/dangling.log"
[ ! -e "$T/nowhere" ] || fail "record --force created the target of a dangling symlink"

if [ $failures -ne 0 ]; then
	echo "$failures failure(s)"
	exit 1
fi
echo "all record_file checks passed"
