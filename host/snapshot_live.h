/*
 * snapshot_live.h — saving a running machine to a snapshot file while its vCPU runs on (the
 * control socket's `snapshot` command; docs/control.md, docs/state-format.md).
 *
 * A pre-copy into memory: dirty tracking starts (the vCPU held for an instant), every page the
 * guest has touched is copied into a private copy of RAM while the vCPU runs, then a few rounds
 * copy again only the pages dirtied meanwhile while there are many; the last round holds the vCPU
 * (machine_pause), copies the pages dirtied since the previous round, saves the devices and stops
 * tracking; then the vCPU goes on (unless the caller keeps it held, to stop the VM) and the copy
 * is written to the file, which appears at its name only when complete. The copy costs as much
 * host memory as the RAM the guest touched, for the length of the save.
 *
 * Nothing the guest can see changes: the vCPU waits only at slice boundaries and tracking marks
 * pages without changing them. Any failure stops tracking and lets the vCPU go on as before.
 */
#ifndef FTVM_HOST_SNAPSHOT_LIVE_H
#define FTVM_HOST_SNAPSHOT_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/icount.h"
#include "vm/machine.h"

/* How the save reports its progress, all optional: phases "tracking", "copying" (bytes copied of
 * the RAM touched), "final" (the vCPU held), "writing" (bytes written); cancelled() asks the save
 * to give up (-ECANCELED) between steps. */
struct snapshot_live_progress {
	void (*phase)(void *ctx, const char *phase);
	void (*bytes)(void *ctx, uint64_t done, uint64_t total);
	bool (*cancelled)(void *ctx);
	void *ctx;
};

struct snapshot_live_result {
	icount_t icount;           /* where the snapshot stands */
	uint64_t bytes;            /* of the file */
	uint64_t ram_touched;      /* bytes of RAM the guest had touched at the start */
	uint64_t pages_copied;     /* pages copied while the vCPU ran, all rounds */
	uint64_t pages_final;      /* pages copied with the vCPU held */
	unsigned rounds;           /* copy rounds, the held one included */
	uint64_t pause_ns;         /* the vCPU held for the final round */
	uint64_t total_ns;
};

/*
 * Saves m, running on another thread (or not running), to path (replaced only when `replace`).
 * With keep_held, returns 0 with the vCPU still held by one machine_pause() (the caller stops the
 * VM, then calls machine_resume()); on failure the vCPU is never left held. 0, or -errno with
 * the reason in err.
 */
int snapshot_live_save(struct machine *m, const char *path, bool replace, bool keep_held,
		       const struct snapshot_live_progress *progress, struct snapshot_live_result *result, char *err,
		       size_t errlen) FTVM_MUST_CHECK;

#endif
