#!/usr/bin/env bash
# Builds the domain XML loader's libFuzzer target with clang (ASan + UBSan) and runs it for a
# bounded time over the seed corpus beside this script and the shipped examples. Fails on any
# crash, sanitizer report or leak.
# usage: run_fuzz.sh SOURCE_DIR BUILD_DIR SECONDS
set -euo pipefail
src=$1 out=$2 secs=$3
here=$src/tests/domain
command -v clang >/dev/null || { echo "clang missing: run scripts/setup" >&2; exit 1; }
mkdir -p "$out/fuzz-work" "$out/fuzz-seeds"
cp "$here"/corpus/* "$src"/docs/examples/*.xml "$out/fuzz-seeds/"
clang -g -O1 -std=gnu17 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -I"$src" \
	"$here/fuzz_domain.c" "$src/cmd/domain_xml.c" "$src/util/parse.c" "$src/util/nbd_uri.c" \
	$(pkg-config --cflags --libs libxml-2.0 libvirt) -o "$out/fuzz_domain"
"$out/fuzz_domain" -max_total_time="$secs" -max_len=8192 -timeout=10 \
	-artifact_prefix="$out/fuzz-work/" "$out/fuzz-work" "$out/fuzz-seeds" 2>&1 | tail -n 5
echo "fuzz: no crash in ${secs}s"
