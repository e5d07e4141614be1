#!/usr/bin/env bash
# Builds the event log decoder's libFuzzer target with clang (ASan + UBSan) and runs it for a
# bounded time over the corpus kept beside this script. Fails on any crash or sanitizer report.
# usage: run_fuzz.sh SOURCE_DIR BUILD_DIR SECONDS
set -euo pipefail
src=$1 out=$2 secs=$3
here=$src/tests/eventlog
command -v clang >/dev/null || { echo "clang missing: run scripts/setup" >&2; exit 1; }
mkdir -p "$out/fuzz-work"
clang -g -O1 -std=gnu17 -D_GNU_SOURCE -msse4.2 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -I"$src" \
	"$here/fuzz_eventlog.c" "$src/replay/eventlog.c" "$src/util/crc32c.c" \
	$(pkg-config --cflags --libs libxxhash) -lpthread -o "$out/fuzz_eventlog"
# New inputs go to a scratch corpus; the kept corpus is read-only seed material.
"$out/fuzz_eventlog" -max_total_time="$secs" -max_len=70000 -timeout=10 \
	-artifact_prefix="$out/fuzz-work/" "$out/fuzz-work" "$here/corpus" 2>&1 | tail -n 5
echo "fuzz: no crash in ${secs}s"
