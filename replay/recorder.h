/*
 * recorder.h — the recording world: wraps a live world and logs every input it delivers.
 *
 * The recorder is built for one machine and sits between it and a live world (host/world_live.h):
 * machine_run(m, recorder_world(rec), ...). Every event the live
 * world hands to the machine is first appended to the log, stamped with the icount at which it is
 * applied; every output passes through it on its way out and is folded into running digests. At
 * fixed icounts it appends CHECK records (CPU digest every RECORDER_CHECK_CPU_EVERY instructions,
 * full machine digest every RECORDER_CHECK_MACHINE_EVERY) so a replayer can prove it is on the
 * recorded path. Where the records go (a file, the logging channel) is the sink's business.
 */
#ifndef FTVM_REPLAY_RECORDER_H
#define FTVM_REPLAY_RECORDER_H

#include <stdint.h>
#include "replay/eventlog.h"
#include "replay/shared_reads.h"
#include "util/compiler.h"
#include "vm/event.h"
#include "vm/machine.h"

#define RECORDER_CHECK_CPU_EVERY ((icount_t)1 << 21)
#define RECORDER_CHECK_MACHINE_EVERY ((icount_t)1 << 28)

struct recorder_sink {
	/* Appends one record; returns its LSN through *lsn. Negative errno stops the machine. */
	int (*append)(void *ctx, enum evlog_kind kind, icount_t icount, const uint8_t *payload, uint32_t len,
		      uint64_t *lsn);
	void *ctx;
};

/* Counters, per kind, for `--stats` and the control socket; reading never resets them. */
struct recorder_stats {
	uint64_t records[EVLOG_END + 1];
	uint64_t bytes[EVLOG_END + 1];
};

struct recorder;

/* Records machine m, whose inputs come from and whose outputs go to `live`, into `sink`. */
int recorder_create(struct machine *m, struct vm_world live, struct recorder_sink sink,
		    struct recorder **out) FTVM_MUST_CHECK;
void recorder_destroy(struct recorder *rec);
/* How successful disk reads are logged. */
enum recorder_disk_reads {
	RECORDER_READS_DATA,    /* DISK_DONE with the bytes (the default): the log alone replays */
	RECORDER_READS_DIGEST,  /* DISK_DIGEST: the replayer has its own copy of every disk */
	RECORDER_READS_SHARED,  /* DISK_DIGEST where the backup can read the same bytes off the shared
				 * disk, DISK_DONE with data where not (replay/shared_reads.h) */
};
int recorder_set_disk_reads(struct recorder *rec, enum recorder_disk_reads mode) FTVM_MUST_CHECK;
/* RECORDER_READS_SHARED, inside the disk_submit of the world below the recorder: the icount the
 * backup must have replayed past before the write being submitted may reach the disk (0: none). */
icount_t recorder_write_wait_past(const struct recorder *rec);
/* RECORDER_READS_SHARED: the backup reported replaying at backup_icount (vCPU thread). */
void recorder_backup_replayed(struct recorder *rec, icount_t backup_icount);
/* RECORDER_READS_SHARED: how reads were logged and writes held (NULL in other modes). */
const struct shared_reads_stats *recorder_shared_reads_stats(const struct recorder *rec);
/* The world to give machine_run(). */
struct vm_world recorder_world(struct recorder *rec);
/* After machine_run() returns: a final CHECK and the END record. */
int recorder_finish(struct recorder *rec, enum machine_exit exit, int status) FTVM_MUST_CHECK;
const struct recorder_stats *recorder_get_stats(const struct recorder *rec);
const struct evlog_outputs *recorder_outputs(const struct recorder *rec);

#endif
