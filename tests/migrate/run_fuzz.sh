#!/usr/bin/env bash
# Builds the migration stream decoder's libFuzzer target (fuzz_migration.c) with clang, ASan and
# UBSan over vm/, util/ and the stream decoder, writes a valid stream as the seed, and runs the
# fuzzer for a bounded time. Fails on any crash, sanitizer report or leak; the crashing input is
# left in BUILD_DIR/fuzz-work/.
# usage: run_fuzz.sh SOURCE_DIR BUILD_DIR SECONDS
set -euo pipefail
src=$1 out=$2 secs=$3
"$src/tests/lib/fuzz_build.sh" "$src" "$out" fuzz_migration "$src/tests/migrate/fuzz_migration.c" \
	"$src/migrate/mig_stream.c"
FUZZ_MIGRATION_SEED="$out/fuzz-seed/stream" "$out/fuzz_migration"
"$out/fuzz_migration" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
	-artifact_prefix="$out/fuzz-work/" "$out/fuzz-work" "$out/fuzz-seed" 2>&1 | tail -n 5
echo "fuzz: no crash in ${secs}s"
