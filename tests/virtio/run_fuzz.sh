#!/usr/bin/env bash
# Builds the device models' libFuzzer target (fuzz_devices.c) with clang, ASan and UBSan, and runs
# it for a bounded time over the seed corpus beside this script. Fails on any crash, sanitizer
# report or leak; the crashing input is left in BUILD_DIR/fuzz-work/.
# usage: run_fuzz.sh SOURCE_DIR BUILD_DIR SECONDS
set -euo pipefail
src=$1 out=$2 secs=$3
here=$src/tests/virtio
command -v clang >/dev/null || { echo "clang missing: run scripts/setup" >&2; exit 1; }
mkdir -p "$out/fuzz-work"
vm=$src/vm
clang -g -O1 -std=gnu17 -D_GNU_SOURCE -msse4.2 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -I"$src" \
	"$here/fuzz_devices.c" "$vm"/bus.c "$vm"/plic.c "$vm"/clint.c "$vm"/uart.c "$vm"/virtio_mmio.c \
	"$vm"/virtio_blk.c "$vm"/virtio_net.c "$vm"/virtio_rng.c "$vm"/cpu.c "$vm"/cpu_csr.c "$vm"/cpu_mmu.c \
	"$vm"/cpu_decode.c "$vm"/cpu_rvc.c "$vm"/cpu_fpu.c "$vm"/finisher.c "$vm"/state_io.c "$vm"/cpu_state.c "$src"/util/diag.c "$src"/util/ram_pages.c \
	$(pkg-config --cflags --libs libxxhash) -lm -lpthread -o "$out/fuzz_devices"
"$out/fuzz_devices" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$out/fuzz-work/" "$out/fuzz-work" "$here/corpus" 2>&1 | tail -n 5
echo "fuzz: no crash in ${secs}s"
