#!/usr/bin/env bash
# run_digest.sh — differential runs of the bare-metal FPU digest program (tests/fpu/guest).
#
#   run_digest.sh host QEMU ELF HOST_TWIN  QEMU's output up to the "ops ... digest" line must equal
#                                          the host twin's (vm/cpu_fpu.c fed the same instruction
#                                          words), which checks the FPU without the integer core.
#   run_digest.sh ftvm FTVM ELF            `ftvm run --bios none --kernel ELF` against QEMU through
#                                          tests/cpu/difftest.sh; exits 77 (ctest SKIP) with the
#                                          reason while `ftvm run` has no --bios option.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-}

case $mode in
ftvm)
	ftvm=$2 elf=$3
	[ -x "$ftvm" ] || { echo "FAIL: $ftvm is not built"; exit 1; }
	if ! "$ftvm" run --help 2>&1 | grep -q -- '--bios'; then
		echo "SKIPPED: '$ftvm run' has no --bios option yet, so it cannot run bare-metal programs"
		exit 77
	fi
	exec "$here/../cpu/difftest.sh" "ftvm:$ftvm" "$elf"
	;;
host)
	qemu=$2 elf=$3 twin=$4
	;;
*)
	echo "usage: $0 host QEMU ELF HOST_TWIN | ftvm FTVM ELF" >&2
	exit 2
	;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! timeout 120 "$qemu" -M virt -bios none -nographic -monitor none -serial stdio -kernel "$elf" \
	</dev/null >"$work/qemu.raw"; then
	echo "FAIL: qemu exited non-zero"; cat "$work/qemu.raw"; exit 1
fi
tr -d '\r' <"$work/qemu.raw" | sed '/^ops /q' >"$work/expected"
grep -q '^ops ' "$work/expected" || { echo "FAIL: qemu printed no digest line"; cat "$work/qemu.raw"; exit 1; }
"$twin" >"$work/actual" || { echo "FAIL: host twin exited non-zero"; exit 1; }
if ! diff -u "$work/expected" "$work/actual" >"$work/diff"; then
	echo "FAIL: $(grep -c '^+[^+]' "$work/diff") of $(wc -l <"$work/expected") lines differ from QEMU (- qemu, + ftvm FPU):"
	head -60 "$work/diff"
	exit 1
fi
echo "PASS: $(wc -l <"$work/expected") lines identical to QEMU: $(grep '^ops ' "$work/expected")"
