/*
 * shared_reads.h — which reads of a shared disk a primary may log as digests only, and which of
 * its writes must wait for the backup's replay.
 *
 * With one disk both nodes reach, the backup answers a DISK_DIGEST by reading the shared disk
 * itself when it replays the record (replay/disk_replica.h, deferred reads). It then gets the
 * bytes the primary read as long as no write that the primary ran after that read has reached
 * the disk. The primary's back end runs requests in submission order, so the writes to fear are
 * those the guest submitted after the read, to an overlapping range:
 *   1. submitted while the read is in flight (before its completion is logged): the read is
 *      marked rewritten, and its completion is logged with its data (DISK_DONE), not a digest;
 *   2. submitted after the read's DISK_DIGEST was logged at icount I: the write is held (the
 *      Output Rule, on top of the usual acknowledgment) until the backup reports an icount past
 *      I, i.e. it has replayed the record and read the disk. The recorder then appends a CHECK
 *      at the next slice boundary, so the log moves past I even if the guest only waits.
 * Writes submitted before the read ran before it on the primary, so they are on the disk when
 * the backup reads. Everything remembered is bounded (SHARED_READS_MAX_INFLIGHT reads in flight,
 * SHARED_READS_MAX_RECENT logged digests not yet replayed): past a bound a read is simply logged
 * with its data, which is always safe.
 */
#ifndef FTVM_REPLAY_SHARED_READS_H
#define FTVM_REPLAY_SHARED_READS_H

#include <stdbool.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/event.h"
#include "vm/icount.h"

#define SHARED_READS_MAX_INFLIGHT 1024u
#define SHARED_READS_MAX_RECENT 4096u

struct shared_reads_stats {
	uint64_t digests;        /* reads logged as digests */
	uint64_t with_data;      /* reads logged with their data (rewritten in flight, or past a bound) */
	uint64_t writes_held;    /* writes that had to wait for the backup's replay */
};

struct shared_reads;

int shared_reads_create(struct shared_reads **out) FTVM_MUST_CHECK;
void shared_reads_destroy(struct shared_reads *s);
/* The guest submitted req on disk: a read is remembered while in flight; a write overlapping a
 * read in flight marks it rewritten. Returns the icount the backup must have replayed past before
 * this write may reach the disk, or 0 when it need not wait. */
icount_t shared_reads_submit(struct shared_reads *s, unsigned disk, const struct vm_disk_request *req);
/* Request `request` of disk completes, logged at icount (ok: a read that succeeded): true when
 * its completion may be logged as a digest (it is then remembered until the backup replayed it). */
bool shared_reads_complete(struct shared_reads *s, unsigned disk, uint64_t request, bool ok, icount_t icount);
/* The backup reported an icount: digests logged before it need not be remembered any more. */
void shared_reads_replayed(struct shared_reads *s, icount_t backup_icount);
const struct shared_reads_stats *shared_reads_get_stats(const struct shared_reads *s);

#endif
