/*
 * crashio.h — a crash-simulating sector layer for the arbiter tests, after SQLite's crash VFS.
 *
 * The "disk" is a plain file. Writes stay pending in the process until sync(); at the planned Nth
 * write the claimant dies, leaving that write (and anything else unsynced) applied, dropped, replaced
 * by garbage or torn in half. Dying means _exit(CRASH_EXIT_STATUS), or, if the test set a crash
 * point with crashio_set_crash_point(), a longjmp there (the claimant's handle is then abandoned
 * and only closed), which lets one process simulate thousands of crashes quickly. Separately, a window of I/O operations can
 * fail with -EIO to imitate a disk that is unreachable for a while.
 */
#ifndef FTVM_TESTS_ARBITER_CRASHIO_H
#define FTVM_TESTS_ARBITER_CRASHIO_H

#include <setjmp.h>

#include "common/arbiter_io.h"

#define CRASH_EXIT_STATUS 77

enum crash_mode {
	CRASH_NONE,
	CRASH_AFTER_WRITE, /* the Nth write reaches the disk, then the process dies */
	CRASH_DROP,        /* the Nth write (unsynced) is lost */
	CRASH_GARBLE,      /* the Nth write leaves random bytes in its sector */
	CRASH_TORN,        /* the first half of the Nth write lands, the rest keeps the old bytes */
	CRASH_MODES,
};

struct crash_plan {
	enum crash_mode mode;
	unsigned at_write;   /* 1-based count of write_sector calls */
	unsigned fail_from;  /* 1-based count of I/O operations (reads and writes) ... */
	unsigned fail_count; /* ... of which this many fail with -EIO; 0: none */
	unsigned seed;       /* for garbage bytes */
};

/* Opens the file at path as a disk of sector_size-byte sectors (created and sized to `sectors` if
 * sectors > 0). */
struct arbiter_io *crashio_open(const char *path, unsigned sector_size, uint64_t sectors,
				const struct crash_plan *plan);
/* Where a crash of this io jumps to instead of exiting; NULL restores _exit. */
void crashio_set_crash_point(struct arbiter_io *io, jmp_buf *env);
unsigned crashio_writes(struct arbiter_io *io);   /* write_sector calls so far */
unsigned crashio_pending(struct arbiter_io *io);  /* writes not yet synced */
const char *crashio_mode_name(enum crash_mode mode);

#endif
