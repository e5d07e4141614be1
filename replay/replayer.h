/*
 * replayer.h — the replaying world: feeds the machine the recorded inputs at their icounts.
 *
 * The replayer reads records from a source (a log file, or the logging channel on a backup) one
 * ahead of the machine. It tells the machine to run exactly to the next record's icount, applies
 * input records there, and verifies CHECK records against digests of its own machine: the first
 * difference stops the run with a message naming the icount, the LSN and what differed. Outputs are
 * digested the same way the recorder did and then dropped (console bytes can be shown). Disk
 * requests can run on the replayer's own copy of each disk (disk_replica.h): the copy then ends
 * equal to the recorded disk, and DISK_DIGEST records are answered from it, checked against their
 * digest — a difference is a divergence, and the copy's bytes never reach the guest.
 */
#ifndef FTVM_REPLAY_REPLAYER_H
#define FTVM_REPLAY_REPLAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "replay/disk_replica.h"
#include "replay/eventlog.h"
#include "replay/logfile.h"
#include "util/compiler.h"
#include "vm/event.h"
#include "vm/machine.h"

struct replay_source {
	/* Next record, valid until the following call: 1 = record, 0 = the log ends here (no more
	 * will come), negative errno with a message on a bad log. May block (channel). */
	int (*next)(void *ctx, struct evlog_record *rec, char *err, size_t errlen);
	void *ctx;
};

/* A source reading a log file that logfile_open() opened. */
struct replay_source replay_source_file(struct logfile_reader *reader);

struct replayer_options {
	int console_fd;                       /* where replayed console output is shown, or -1 */
	struct disk_replica *disk[MACHINE_MAX_DISKS]; /* the disks' copies (the caller's), or NULL */
	uint64_t perturb_lsn;                 /* test hook: corrupt the first input record at or after this LSN (0 = off) */
};

struct replayer_stats {
	uint64_t records[EVLOG_END + 1];
	uint64_t bytes[EVLOG_END + 1];
	uint64_t checks_verified;
	uint64_t machine_checks_verified;
	icount_t last_icount;
	uint64_t last_lsn;
};

/* Ways a replay can end, from replayer_finish(). */
enum replay_result {
	REPLAY_MATCHED,     /* reached the END record with identical digests and exit */
	REPLAY_INCOMPLETE,  /* every record matched, but the log ends without END (recorder died) */
	REPLAY_DIVERGED,    /* a CHECK, an output or the exit differed */
	REPLAY_BAD_LOG,     /* the log is corrupt, truncated inside a record, or does not fit the machine */
};

struct replayer;

/* Replays src on machine m, which must be at the icount where the log starts (power-on). */
int replayer_create(struct machine *m, struct replay_source src, const struct replayer_options *opts,
		    struct replayer **out) FTVM_MUST_CHECK;
void replayer_destroy(struct replayer *r);
/* The world to give machine_run(). */
struct vm_world replayer_world(struct replayer *r);
/* After machine_run() returns: checks the end of the log against how the machine ended, and
 * writes a one-line verdict to msg. */
enum replay_result replayer_finish(struct replayer *r, enum machine_exit exit, int status, char *msg,
				   size_t msglen);
const struct replayer_stats *replayer_get_stats(const struct replayer *r);

/* Where a replay stands in its log between two runs: what a snapshot taken there needs to resume
 * the replay (docs/state-format.md, REPLAY; replay_position.h carries it in a state). */
struct replay_position {
	uint64_t log_config_digest;       /* the log header's: filled by the caller */
	uint64_t log_start_lsn;
	uint64_t next_lsn;                /* the first record not yet consumed */
	icount_t next_icount;             /* and its icount */
	uint64_t records_digest;          /* of every record before it (kind, lsn, icount, payload) */
	struct evlog_outputs outputs;     /* running output digests, as CHECK records carry them */
	uint64_t checks_verified;
	uint64_t machine_checks_verified;
};

/* After machine_run() stopped at an icount (MACHINE_EXIT_STOP_ICOUNT): the position there. -EINVAL
 * (reason in err) when the replay has failed or the log has no record beyond this point. */
int replayer_position(struct replayer *r, struct replay_position *p, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Before the first machine_run() of a machine restored from a snapshot: skips the source to exactly
 * p->next_lsn (the record there must be at p->next_icount) and takes p's output digests and counts.
 * -EINVAL or the log's error, with the reason in err. */
int replayer_resume(struct replayer *r, const struct replay_position *p, char *err, size_t errlen) FTVM_MUST_CHECK;

#endif
