#!/bin/bash
# self_test.sh — check_layers.sh finds what it is meant to find: a synthetic tree with one
# violation of each kind must produce exactly those, and the same tree repaired must pass. Member
# calls (r->read()), comments, the image loaders' file reads, a private foo_internal.h including
# foo.h, and an interface header (no .c of its own) included both ways must not be reported.
#
# Usage: self_test.sh CHECK_LAYERS_SH
set -u
check=${1:?usage: self_test.sh CHECK_LAYERS_SH}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$T"/{util,vm,host,replay,common,logchannel,primary,backup,cmd,tests}
echo '#include "util/compiler.h"' >"$T/util/diag.h"
echo '#include "util/diag.h"' >"$T/util/compiler.h"
cat >"$T/vm/bus.c" <<'C'
#include "util/diag.h"
#include "vm/bus.h"
/* a comment may say read( or clock_gettime( */
static int f(struct r *r) { return r->read(r->opaque) + r->write(1) + clock_time_at(0); }
C
cat >"$T/vm/boot.c" <<'C'
#include "vm/bus.h"
static int load(const char *p) { int fd = open(p, 0); char b[4]; read(fd, b, 4); return close(fd); }
C
# A concern and its private header include each other; an interface header (ops.h, no ops.c)
# is included by the code it describes and includes it back: neither is a circle.
printf '#include "vm/cpu_internal.h"\n#include "vm/ops.h"\n' >"$T/vm/cpu.c"
echo '#include "vm/cpu.h"' >"$T/vm/cpu_internal.h"
echo '#include "vm/cpu.h"' >"$T/vm/ops.h"
echo '#include "vm/bus.h"' >"$T/host/world_live.c"
echo '#include "host/world_live.h"' >"$T/replay/recorder.c"
echo '#include "util/diag.h"' >"$T/common/arbiter.c"
echo '#include "common/arbiter.h"' >"$T/logchannel/channel.c"
echo '#include "replay/recorder.h"' >"$T/primary/ft_primary.c"
echo '#include "logchannel/channel.h"' >"$T/backup/ft_backup.c"
printf '#include "primary/ft_primary.h"\n#include "backup/ft_backup.h"\n' >"$T/cmd/main.c"
echo '#include "cmd/ftvm.h"' >"$T/tests/t.c"

out=$("$check" "$T") || fail "a clean tree fails: $out"

# One violation of each kind.
echo '#include "host/world_live.h"' >>"$T/vm/bus.c"
printf 'static long t(void) { struct timespec ts; clock_gettime(1, &ts); return ts.tv_sec; }\n' >>"$T/vm/bus.c"
echo 'static void w(int fd) { write(fd, "x", 1); }' >>"$T/vm/boot.c"
echo '#include "backup/ft_backup.h"' >>"$T/primary/ft_primary.c"
echo '#include "cmd/main.h"' >>"$T/common/arbiter.c"
echo '#include "arbiter_io.h"' >>"$T/common/arbiter.c"
echo '#include "guest/kvd.h"' >>"$T/replay/recorder.c"
mkdir -p "$T/extra" && echo 'int x;' >"$T/extra/x.c"
# Two concerns of one layer that use each other's code.
echo '#include "util/b.h"' >"$T/util/a.c"
echo '#include "util/a.h"' >"$T/util/b.c"

out=$("$check" "$T")
st=$?
echo "$out"
[ $st -eq 1 ] || fail "exit status $st with violations, want 1"
expect() { grep -qF -- "$1" <<<"$out" || fail "not reported: $1"; }
expect 'vm/bus.c:5 (vm/, layer 1) includes "host/world_live.h"'
expect 'vm/bus.c calls clock_gettime()'
expect 'vm/boot.c calls write()'
expect 'primary/ft_primary.c:2 (primary/, layer 6) includes "backup/ft_backup.h"'
expect 'common/arbiter.c:2 (common/, layer 4) includes "cmd/main.h"'
expect 'common/arbiter.c:3 includes "arbiter_io.h" without its folder'
expect 'replay/recorder.c:2 includes "guest/kvd.h": guest/ is not a layer'
expect 'extra/ holds C code but has no place in the layer table'
expect 'include circle between concerns: util/a, util/b'
# The layer violation vm/ -> host/ closes a circle with host/world_live.c's include of vm/bus.h.
expect 'include circle between concerns: host/world_live, vm/bus'
grep 'include circle' <<<"$out" | grep -qE 'vm/cpu|vm/ops' && fail "a private header or an interface reported as a circle"
n=$(grep '^layer violation' <<<"$out" | grep -vc 'include circle')
[ "$n" -eq 8 ] || fail "$n violations other than circles reported, want exactly 8 (no false positives)"
echo "PASS: every planted violation reported, nothing else"
