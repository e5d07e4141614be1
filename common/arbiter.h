/*
 * arbiter.h — the shared-disk test-and-set that decides, once per failover epoch, which node of a
 * VM may go on (the others must halt). Disk Paxos (Gafni & Lamport) over one shared file or block
 * device, using only single-sector O_DIRECT|O_DSYNC reads and writes; safety never depends on time.
 * Layout, algorithm and the safety argument: docs/arbiter.md.
 *
 * How the FT layer uses it:
 *   1. `ftvm arbiter init` (or arbiter_init()) formats the area once per VM.
 *   2. Each ftvm process opens it with arbiter_open(), naming its VM; a foreign area is refused.
 *   3. When a node loses its peer, it calls arbiter_claim(epoch, node) with the next failover epoch.
 *      ARBITER_WON: go on alone. ARBITER_LOST: halt the VM for good (winner says who won).
 *      -errno: nothing was decided for this caller; it must not go on (see arbiter_error()).
 *   4. arbiter_close().
 *
 * Rules the caller keeps: node ids are 0..nodes-1 and at most one process claims as a given node at a
 * time; epochs start at 1 and grow. A claim for an epoch lower than one already decided fails with
 * -ESTALE. A handle is not thread-safe.
 */
#ifndef FTVM_COMMON_ARBITER_H
#define FTVM_COMMON_ARBITER_H

#include <stddef.h>
#include <stdint.h>

#include "common/arbiter_io.h"
#include "util/compiler.h"

#define ARBITER_MAX_NODES 16u
#define ARBITER_DEFAULT_NODES 2u
#define ARBITER_AREA_ID_LEN 16u       /* random bytes chosen when the area is formatted */
#define ARBITER_VM_NAME_MAX 63u       /* bytes, without the terminating NUL */
#define ARBITER_FOREVER (-1)          /* timeout_ms: retry an unreachable disk without end */

enum arbiter_outcome {
	ARBITER_WON = 0,  /* this node won the epoch */
	ARBITER_LOST = 1, /* another node won it; *winner names it */
};

struct arbiter; /* an open area; opaque */

struct arbiter_decision {
	uint64_t epoch;
	unsigned winner;
};

struct arbiter_info {
	char vm_name[ARBITER_VM_NAME_MAX + 1];
	unsigned nodes;        /* node ids are 0..nodes-1 */
	unsigned slots;        /* epochs in flight or remembered per node; epoch e uses slot e % slots */
	unsigned sector_size;  /* bytes; every read and write is exactly one sector */
	uint64_t sectors;      /* sectors the area uses */
	uint8_t area_id[ARBITER_AREA_ID_LEN]; /* tells this area from another formatted for the same VM */
};

/* Formats PATH (a regular file, created if missing, or a block device) for VM vm_name and `nodes`
 * nodes. Refuses an area that already holds a valid arbiter header (-EEXIST) unless force is set:
 * re-formatting erases every decision. On failure err holds a one-line message. */
FTVM_MUST_CHECK int arbiter_init(const char *path, const char *vm_name, unsigned nodes, int force,
				 char err[ARBITER_ERR_MAX]);

/* Opens the area at PATH. vm_name must match the one given to arbiter_init(); NULL accepts any VM
 * (for inspection). Refuses uninitialised (-ENODATA), corrupt (-EUCLEAN), foreign (-EMEDIUMTYPE),
 * too small (-ENOSPC) or unreadable (-errno of the I/O) areas. */
FTVM_MUST_CHECK int arbiter_open(const char *path, const char *vm_name, struct arbiter **out,
				 char err[ARBITER_ERR_MAX]);

/* The test-and-set for `epoch` as `node`. Returns ARBITER_WON or ARBITER_LOST and sets *winner, or
 * -errno: -ESTALE (a higher epoch is already decided), -EUCLEAN (corrupt sector: no claim is granted
 * on doubt), -EINVAL (bad epoch or node), -ETIMEDOUT (disk unreachable until timeout_ms passed; with
 * ARBITER_FOREVER it retries without end, logging why). Every caller that gets ARBITER_WON or
 * ARBITER_LOST for an epoch gets the same winner, across crashes and restarts. */
FTVM_MUST_CHECK int arbiter_claim(struct arbiter *a, uint64_t epoch, unsigned node, int64_t timeout_ms,
				  unsigned *winner);

/* Decisions recorded on disk, newest epoch first (each node keeps its most recent ones). Writes up to
 * max entries to out and the number written to *count. */
FTVM_MUST_CHECK int arbiter_decided(struct arbiter *a, struct arbiter_decision *out, size_t max,
				    size_t *count);

void arbiter_get_info(const struct arbiter *a, struct arbiter_info *info);

/* One-line description of the last failure on this handle. */
const char *arbiter_error(const struct arbiter *a);

void arbiter_close(struct arbiter *a);

/* The algorithm over any I/O layer. Both take ownership of io: it is closed on failure, and by
 * arbiter_close() on success. `slots` 0 picks the default. */
FTVM_MUST_CHECK int arbiter_init_io(struct arbiter_io *io, const char *vm_name, unsigned nodes,
				    unsigned slots, int force, char err[ARBITER_ERR_MAX]);
FTVM_MUST_CHECK int arbiter_open_io(struct arbiter_io *io, const char *vm_name, struct arbiter **out,
				    char err[ARBITER_ERR_MAX]);

/* The number of sectors an area with these parameters uses. */
uint64_t arbiter_area_sectors(unsigned nodes, unsigned slots);

#endif
