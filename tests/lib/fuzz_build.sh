#!/usr/bin/env bash
# Builds a libFuzzer target of the tree with clang, ASan and UBSan (undefined behaviour fatal) over
# vm/, util/, tests/lib/fuzz_board.c and the given sources, into BUILD_DIR/NAME, and makes the
# fuzzer's work and seed directories there.
# usage: fuzz_build.sh SOURCE_DIR BUILD_DIR NAME SOURCE...
set -euo pipefail
src=$1 out=$2 name=$3
shift 3
command -v clang >/dev/null || { echo "clang missing: run scripts/setup" >&2; exit 1; }
mkdir -p "$out/fuzz-work" "$out/fuzz-seed"
clang -g -O1 -std=gnu17 -D_GNU_SOURCE -msse4.2 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -I"$src" -I"$src/tests/lib" \
	"$@" "$src/tests/lib/fuzz_board.c" "$src"/vm/*.c "$src"/util/*.c \
	$(pkg-config --cflags --libs libxxhash libnbd) -lfdt -lm -lpthread \
	-o "$out/$name"
