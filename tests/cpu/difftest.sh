#!/usr/bin/env bash
# difftest.sh — runs one bare-metal program under qemu-system-riscv64 -M virt -bios none and under
# ftvm (the hart runner, or `ftvm run --bios none --kernel`), and requires the same UART output and
# the same finisher status. Usage: difftest.sh RUNNER ELF  (RUNNER is "ftvm:PATH" or a runner
# binary, both under the interpreter; "ftvm-jit:PATH" and "jit:RUNNER" run the same with --cpu jit)
set -u
runner=$1
elf=$2
name=$(basename "$elf" .elf)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

timeout 20 qemu-system-riscv64 -M virt -m 256M -bios none -nographic -monitor none -serial stdio \
	-kernel "$elf" </dev/null >"$tmp/qemu.out" 2>"$tmp/qemu.err"
qemu_rc=$?
case $runner in
ftvm:*) timeout 20 "${runner#ftvm:}" run --cpu interp --bios none --kernel "$elf" </dev/null >"$tmp/ftvm.out" 2>"$tmp/ftvm.err" ;;
ftvm-jit:*) timeout 20 "${runner#ftvm-jit:}" run --cpu jit --bios none --kernel "$elf" </dev/null >"$tmp/ftvm.out" \
	2>"$tmp/ftvm.err" ;;
jit:*) timeout 20 "${runner#jit:}" --cpu jit "$elf" </dev/null >"$tmp/ftvm.out" 2>"$tmp/ftvm.err" ;;
*) timeout 20 "$runner" "$elf" </dev/null >"$tmp/ftvm.out" 2>"$tmp/ftvm.err" ;;
esac
ftvm_rc=$?

# QEMU's -nographic console may translate \n to \r\n; compare the guest's bytes.
tr -d '\r' <"$tmp/qemu.out" >"$tmp/qemu.txt"
tr -d '\r' <"$tmp/ftvm.out" >"$tmp/ftvm.txt"
status=0
if [ "$qemu_rc" -ne 0 ]; then
	echo "$name: qemu exited with $qemu_rc (the program itself fails on the reference)"
	cat "$tmp/qemu.err"
	status=1
fi
if ! [ -s "$tmp/qemu.txt" ]; then
	echo "$name: qemu printed nothing"
	status=1
fi
if ! diff -u "$tmp/qemu.txt" "$tmp/ftvm.txt"; then
	echo "$name: output differs from qemu (- qemu, + ftvm)"
	cat "$tmp/ftvm.err"
	status=1
fi
if [ "$qemu_rc" -ne "$ftvm_rc" ]; then
	echo "$name: exit status qemu=$qemu_rc ftvm=$ftvm_rc"
	cat "$tmp/ftvm.err"
	status=1
fi
[ $status -eq 0 ] && echo "$name: same output as qemu ($(wc -l <"$tmp/qemu.txt") lines)"
exit $status
