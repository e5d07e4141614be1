/*
 * mig_disks.h — the disks of a live copy (migration with --copy-storage, the FT clone of a pair
 * with replicated disks): the sender's side of the STORAGE part of the stream (docs/migration.md).
 *
 * The disks are the live world's: their back ends track the blocks the guest writes
 * (disk_backend_dirty_*), and this module reads the images through handles of its own while the
 * guest runs. Round 0 covers every byte — holes (SEEK_DATA/SEEK_HOLE) and all-zero blocks as
 * ZERO ranges, the rest as data — and every later round the blocks collected since. Sections are
 * written wherever the caller says (its message buffer), so pacing, counting and sending stay the
 * sender's.
 */
#ifndef FTVM_MIGRATE_MIG_DISKS_H
#define FTVM_MIGRATE_MIG_DISKS_H

#include <stddef.h>
#include <stdint.h>
#include "host/world_live.h"
#include "util/compiler.h"

struct mig_disks;

/* Where sections go: room() returns at least need bytes to build one in (or NULL after an error,
 * which it reports), used() takes the section just built (len bytes, covering disk_bytes). */
struct mig_disk_sink {
	uint8_t *(*room)(void *ctx, size_t need);
	int (*used)(void *ctx, size_t len, uint64_t disk_bytes);
	void *ctx;
};

/* Opens a reader for each disk of the world: 0, or -errno with why. */
int mig_disks_open(struct world_live *w, struct mig_disks **out, char *why, size_t whylen) FTVM_MUST_CHECK;
/* Makes round 0 a resync from pairing `epoch` (before mig_disks_track(), which takes the blocks the
 * back ends wrote since that pairing): those go as data, every other block as its digest. 0, or
 * -ENOMEM when a back end kept no record of its writes (then round 0 stays a full copy). */
int mig_disks_resync(struct mig_disks *d, uint64_t epoch) FTVM_MUST_CHECK;
bool mig_disks_resyncing(const struct mig_disks *d);
/* Adds to a resync's data the blocks a spare's refusal named as differing ("repair=DISK:BLOCK
 * [+COUNT],... ." within text, DISK_DIRTY_BLOCK blocks, mig_dest.c): 0 with *blocks, or -EINVAL
 * (no list, or a malformed one, or one outside the disks: nothing added). */
int mig_disks_repair(struct mig_disks *d, const char *text, uint64_t *blocks) FTVM_MUST_CHECK;
/* The list's parser: the ranges of ndisks disks of nblocks[i] blocks set in maps[i] (NULL: only
 * checked). 0 with *blocks, or -EINVAL (nothing set). */
int mig_repair_parse(const char *text, unsigned ndisks, const uint64_t *nblocks, uint64_t *const *maps,
		     uint64_t *blocks) FTVM_MUST_CHECK;
/* Starts dirty-block tracking in every back end (before round 0 reads anything): 0 or -ENOMEM. */
int mig_disks_track(struct mig_disks *d) FTVM_MUST_CHECK;
/* The body of DISKS (at most 8 + 8 * MACHINE_MAX_DISKS + 8 + 4 bytes at out): returns its length. */
size_t mig_disks_describe(const struct mig_disks *d, uint8_t *out);
uint64_t mig_disks_total(const struct mig_disks *d);
/* Bytes sent as digests so far (a resync's round 0). */
uint64_t mig_disks_digested(const struct mig_disks *d);
/* Adds the blocks written since the last look to those to send: returns their bytes. */
uint64_t mig_disks_collect(struct mig_disks *d);
/* Sends every byte of every disk (all), or the blocks collected (which are then cleared). */
int mig_disks_send(struct mig_disks *d, bool all, const struct mig_disk_sink *sink) FTVM_MUST_CHECK;
/* Stops tracking and closes the readers (NULL is fine). */
void mig_disks_close(struct mig_disks *d);

#endif
