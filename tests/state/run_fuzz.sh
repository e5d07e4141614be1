#!/usr/bin/env bash
# Builds the state decoder's libFuzzer target (fuzz_state.c) with clang, ASan and UBSan over all of
# vm/ and util/, writes a valid state as the seed (prefixed with the mode byte: 1 = CRCs fixed up,
# 0 = as is), and runs the fuzzer for a bounded time. Fails on any crash, sanitizer report or leak;
# the crashing input is left in BUILD_DIR/fuzz-work/.
# usage: run_fuzz.sh SOURCE_DIR BUILD_DIR SECONDS
set -euo pipefail
src=$1 out=$2 secs=$3
"$src/tests/lib/fuzz_build.sh" "$src" "$out" fuzz_state "$src/tests/state/fuzz_state.c"
FUZZ_STATE_SEED="$out/fuzz-seed/state" "$out/fuzz_state"
{ printf '\001'; cat "$out/fuzz-seed/state"; } >"$out/fuzz-seed/fixed"
{ printf '\000'; cat "$out/fuzz-seed/state"; } >"$out/fuzz-seed/plain"
rm "$out/fuzz-seed/state"
"$out/fuzz_state" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
	-artifact_prefix="$out/fuzz-work/" "$out/fuzz-work" "$out/fuzz-seed" 2>&1 | tail -n 5
echo "fuzz: no crash in ${secs}s"
