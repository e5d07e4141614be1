#!/usr/bin/env bash
# `ftvm run` end to end: bare-metal programs (exit status = finisher status, console in/out,
# timer + WFI in both clock modes, reset with --no-reboot, a halted guest) and bad input, which
# must give exactly one line on stderr and the documented exit status (2 usage, 1 files/devices).
# Usage: run_cli.sh FTVM BM_DIR   (BM_DIR holds timer.elf fail.elf reset.elf echo.elf idle.elf,
# or is "-" when no riscv64 cross compiler was found: those cases are then skipped).
set -u
FTVM=$1
BM=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect STATUS STDERR_REGEX -- command...: exit status and a single stderr line matching the regex
expect() {
	local want=$1 regex=$2
	shift 3
	"$@" </dev/null >"$T/out" 2>"$T/err"
	local got=$?
	[ "$got" -eq "$want" ] || fail "$*: exit $got, want $want ($(head -c 300 "$T/err"))"
	if [ -n "$regex" ]; then
		[ "$(wc -l <"$T/err")" -eq 1 ] || fail "$*: want exactly one stderr line, got: $(cat "$T/err")"
		grep -Eq -- "$regex" "$T/err" || fail "$*: stderr '$(cat "$T/err")' does not match /$regex/"
	fi
}

# --help
"$FTVM" run --help >"$T/help" || fail "run --help exit status"
for opt in --kernel --initrd --append --bios --mem --disk --nic --extra-args --clock --no-reboot; do
	grep -q -- "$opt" "$T/help" || fail "--help does not mention $opt"
done

# Usage errors: exit 2.
expect 2 '^ftvm run: --mem 8: expected a size in MiB from 16 to 16384$' -- "$FTVM" run --mem 8
expect 2 '^ftvm run: --mem 99999: expected' -- "$FTVM" run --mem 99999
expect 2 '^ftvm run: --mem 1x: expected' -- "$FTVM" run --mem 1x
expect 2 '^ftvm run: unknown option --frobnicate' -- "$FTVM" run --frobnicate
expect 2 '^ftvm run: option --kernel needs a value' -- "$FTVM" run --kernel
expect 2 '^ftvm run: --clock bogus: expected wall or virtual$' -- "$FTVM" run --clock=bogus
expect 2 '^ftvm run: --nic eth0: expected tap=IFNAME' -- "$FTVM" run --nic eth0
expect 2 '^ftvm run: --nic tap=t0,mac=01:02:03:04:05:06: expected mac=' -- "$FTVM" run --nic tap=t0,mac=01:02:03:04:05:06
expect 2 '^ftvm run: --bios none needs --kernel$' -- "$FTVM" run --bios none
expect 2 "^ftvm run: unexpected argument 'extra'" -- "$FTVM" run --kernel x extra

# Files that are missing or malformed: exit 1.
expect 1 '^ftvm run: kernel /nonexistent/k: No such file or directory$' -- "$FTVM" run --kernel /nonexistent/k
: >"$T/empty"
expect 1 "^ftvm run: kernel $T/empty: file is empty$" -- "$FTVM" run --bios none --kernel "$T/empty"
printf '\177ELF\002\001\001garbage' >"$T/bad.elf"
expect 1 "^ftvm run: kernel .*bad.elf" -- "$FTVM" run --bios none --kernel "$T/bad.elf"
printf 'firmware' >"$T/fw.bin"
expect 1 '^ftvm run: initrd /nonexistent/i: No such file or directory$' -- \
	"$FTVM" run --bios "$T/fw.bin" --kernel "$T/fw.bin" --initrd /nonexistent/i
expect 1 '^ftvm run: firmware /nonexistent/fw: No such file or directory$' -- \
	"$FTVM" run --bios /nonexistent/fw --kernel "$T/fw.bin"
truncate -s 20M "$T/big.img"
expect 1 "^ftvm run: initrd $T/big.img: .* do not fit in guest memory" -- \
	"$FTVM" run --mem 16 --bios "$T/fw.bin" --kernel "$T/fw.bin" --initrd "$T/big.img"
expect 1 '^ftvm run: disk /nonexistent/d.img: cannot open' -- \
	"$FTVM" run --bios "$T/fw.bin" --kernel "$T/fw.bin" --disk /nonexistent/d.img
printf 'abc' >"$T/odd.img"
expect 1 "^ftvm run: disk $T/odd.img: size 3 is not a non-zero multiple of 512 bytes$" -- \
	"$FTVM" run --bios "$T/fw.bin" --kernel "$T/fw.bin" --disk "$T/odd.img"
# "lo" exists but is not a TAP device (and without CAP_NET_ADMIN nothing can be opened).
expect 1 '^ftvm run: tap lo: cannot (open|attach)' -- "$FTVM" run --bios "$T/fw.bin" --kernel "$T/fw.bin" --nic tap=lo

if [ "$BM" = "-" ]; then
	echo "SKIP: bare-metal programs (no riscv64-unknown-elf-gcc)"
else
	for clock in wall virtual; do
		out=$(timeout 20 "$FTVM" run --clock=$clock --bios none --kernel "$BM/timer.elf" </dev/null)
		st=$?
		[ $st -eq 0 ] || fail "timer.elf --clock=$clock: exit $st"
		[ "$out" = $'board test: timer\nT' ] || fail "timer.elf --clock=$clock printed '$out'"
	done
	expect 42 '' -- timeout 20 "$FTVM" run --bios none --kernel "$BM/fail.elf"
	expect 0 '' -- timeout 20 "$FTVM" run --no-reboot --bios none --kernel "$BM/reset.elf"
	[ "$(cat "$T/out")" = "R" ] || fail "reset.elf --no-reboot printed '$(cat "$T/out")'"
	# Without --no-reboot a reset boots the machine again (and again: stop after a while).
	timeout 2 "$FTVM" run --bios none --kernel "$BM/reset.elf" </dev/null >"$T/out" 2>/dev/null
	[ "$(head -c 3 "$T/out")" = "RRR" ] || fail "reset.elf did not reboot: '$(head -c 20 "$T/out")'"
	# A 300 ms guest sleep takes 300 ms of wall time on the wall clock, next to none on the virtual
	# one: the virtual run must beat the wall run by most of the sleep (the process's own start-up,
	# a few hundred ms on a loaded host, is in both).
	for clock in wall virtual; do
		start=$(date +%s%N)
		timeout 20 "$FTVM" run --clock=$clock --bios none --kernel "$BM/sleep300.elf" </dev/null >/dev/null
		st=$?
		ms=$((($(date +%s%N) - start) / 1000000))
		[ $st -eq 0 ] || fail "sleep300.elf --clock=$clock: exit $st"
		echo "sleep300.elf --clock=$clock: ${ms} ms"
		if [ $clock = wall ]; then
			[ $ms -ge 300 ] || fail "a 300 ms guest sleep took ${ms} ms on the wall clock"
			wall_ms=$ms
		else
			[ $((ms + 200)) -lt $wall_ms ] ||
				fail "a 300 ms guest sleep took ${ms} ms on the virtual clock, ${wall_ms} ms on the wall clock"
		fi
	done
	expect 1 '^ftvm run: the guest halted' -- timeout 20 "$FTVM" run --bios none --kernel "$BM/idle.elf"
	out=$(printf 'hello, world\nq' | timeout 20 "$FTVM" run --bios none --kernel "$BM/echo.elf")
	st=$?
	[ $st -eq 0 ] || fail "echo.elf: exit $st"
	[ "$out" = "HELLO, WORLD" ] || fail "echo.elf printed '$out'"
	# A console pipe whose reader goes away (`| head -c 2`) is no SIGPIPE death (not even with the
	# default disposition inherited): the guest runs on, its output is discarded after one warning,
	# and it powers off normally.
	(printf 'ab\n'; sleep 0.5; printf 'more output\n'; sleep 0.5; printf 'q') |
		timeout 20 env --default-signal=PIPE "$FTVM" run --bios none --kernel "$BM/echo.elf" 2>"$T/err" |
		head -c 2 >/dev/null
	st=${PIPESTATUS[1]}
	[ $st -eq 0 ] || fail "echo.elf | head -c 2: exit $st (141: killed by SIGPIPE)"
	grep -q 'console output closed' "$T/err" || fail "echo.elf | head -c 2: stderr '$(cat "$T/err")'"
	# Ctrl-A x quits like QEMU (exit 0, one line on stderr).
	printf '\001x' | timeout 20 "$FTVM" run --bios none --kernel "$BM/echo.elf" >/dev/null 2>"$T/err"
	st=$?
	[ $st -eq 0 ] || fail "Ctrl-A x: exit $st"
	grep -q 'terminated (Ctrl-A x)' "$T/err" || fail "Ctrl-A x: stderr '$(cat "$T/err")'"
	# SIGTERM ends the run cleanly with 128 + 15, busy (echo.elf polls) or idle (idle.elf on an open stdin).
	for prog in echo idle; do
		timeout --preserve-status -s TERM 1 "$FTVM" run --bios none --kernel "$BM/$prog.elf" \
			< <(sleep 3) >/dev/null 2>"$T/err"
		st=$?
		[ $st -eq 143 ] || fail "SIGTERM during $prog.elf: exit $st"
		grep -q 'terminated by signal 15' "$T/err" || fail "SIGTERM during $prog.elf: stderr '$(cat "$T/err")'"
	done
fi

if [ $failures -ne 0 ]; then
	echo "$failures failure(s)"
	exit 1
fi
echo "all run_cli checks passed"
