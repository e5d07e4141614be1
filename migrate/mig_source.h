/*
 * mig_source.h — the sending side of a live migration: pre-copy of a running VM's RAM over a
 * logging channel opened for a migration (docs/migration.md), a short stop-and-copy, and the
 * hand-over.
 *
 * The steps (mig_source_run()):
 *   1. connect (TLS with the channel key, HELLO with the migration purpose), start dirty-page
 *      tracking with the vCPU held for an instant, send START;
 *   2. round 0: every page the host ever backed and that is not all zeros, while the vCPU runs
 *      (and, copying storage, every byte of every disk: data, or zero ranges for holes and
 *      all-zero blocks; each later round also sends the disk blocks written meanwhile);
 *   3. each further round: the pages written during the previous one. After a round the link's
 *      rate is measured (bytes confirmed by the destination / time); when the pages left would
 *      cross the link within the downtime target, go to 5;
 *   4. when the guest dirties memory faster than half the link's rate, the vCPU is held for a
 *      growing share of wall time (auto-converge: 20 %, 40 %, ... 95 %, 99 %; the guest sees only time
 *      passing). After max_rounds rounds the migration is given up: CANCEL, the VM runs on;
 *   5. stop-and-copy: the vCPU held, the disks drained, the final state (devices and the pages
 *      of the last round) sent as STATE messages, then COMPLETE;
 *   6. the destination's ACK of COMPLETE says it holds the whole state. Only then is the VM
 *      handed over: this copy stops for good (world_live_hand_over()), HANDOVER is sent.
 *   7. once HANDOVER is confirmed, the frames for the guest that reached this host since the
 *      stop are forwarded to the destination until the network has learned where the VM is now
 *      (mig_frames.h); then the stream ends.
 * A failure before 6 — the destination refusing, dying, the link breaking or timing out —
 * stops tracking and lets the vCPU go on: the VM keeps running here, the message says why.
 *
 * With an arbiter area (arbiter.path), the arbiter judges the hand-over (docs/migration.md, "The
 * hand-over with an arbiter"): the destination runs only once it won epoch e+1 in the area, and
 * acknowledges HANDOVER only then. Once COMPLETE has been sent, the destination may hold the whole
 * state, so this side never lets the vCPU go on its own: without the ACK of HANDOVER it claims
 * epoch e+1 itself, runs on if it wins it and stops for good if the destination did.
 */
#ifndef FTVM_MIGRATE_MIG_SOURCE_H
#define FTVM_MIGRATE_MIG_SOURCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "host/world_live.h"
#include "logchannel/channel_types.h"
#include "util/compiler.h"
#include "vm/machine.h"

#define MIG_DEFAULT_DOWNTIME_MS 30u
#define MIG_DEFAULT_MAX_ROUNDS 30u

/* A VM's arbiter area, where its migrations record each hand-over under a new epoch. */
struct mig_arbiter {
	const char *path;               /* NULL: none (the hand-over is not recorded) */
	uint64_t epoch;                 /* the epoch this copy runs in */
	unsigned node;                  /* its node id in the area */
};

struct arbiter;
/*
 * Opens the arbiter area of a (a->path) for VM vm and checks that this copy is current in it: the
 * area has two nodes or more, a->node among them, and no epoch decided above a->epoch nor a->epoch
 * itself for another node (else -ESTALE: a newer copy may run). 0 with *out, else -errno and err.
 */
int mig_arbiter_open(const struct mig_arbiter *a, const char *vm, struct arbiter **out, char *err, size_t errlen)
	FTVM_MUST_CHECK;

struct mig_source_config {
	struct machine *m;
	struct world_live *world;
	const char *to;                 /* HOST:PORT of `ftvm incoming` */
	enum channel_transport transport; /* the channel's link: TCP (default) or RDMA verbs */
	const struct channel_key *key;
	const char *vm_id;              /* the VM's name: the destination expects it */
	uint64_t epoch;                 /* the epoch the destination will run in */
	unsigned downtime_ms;           /* target of the stop-and-copy */
	uint64_t bandwidth_mbit;        /* cap on the link's use; 0: none */
	unsigned max_rounds;            /* give up after this many rounds */
	/* FT clone (docs/ft-clone.md): START says so, and once the destination accepted it commit()
	 * is called (the arbiter records the new pairing; non-zero gives up); once the destination
	 * holds the whole state the live world is cut (world_live_cut()) instead of handed over:
	 * this copy goes on. */
	bool clone;
	/* The disks come too (`--copy-storage`, the FT clone of replicated disks): the world's disks
	 * are tracked and copied beside the pages (docs/migration.md, STORAGE). */
	bool copy_storage;
	/* FT clone with the disks, to a node that comes back: only the blocks written since pairing
	 * resync_epoch go as data, the rest as digests the spare compares (docs/disks.md, Resync); a
	 * spare whose replica does not match refuses, and the clone fails. */
	bool resync;
	uint64_t resync_epoch;
	/* A resync again after the spare's refusal named the blocks that differ (its message, NULL:
	 * none): those go as data too (mig_disks_repair()). */
	const char *resync_repair;
	int (*commit)(void *ctx, char *err, size_t errlen);
	/* FT clone, optional: called last before the cut, with the vCPU held and the destination
	 * holding the whole state (the new primary's log connection must still be up); non-zero
	 * gives up, as a failure before the cut does. */
	int (*cut_ready)(void *ctx, char *err, size_t errlen);
	/* Optional: called in the stop-and-copy with the vCPU held, before the disks are drained (an
	 * FT primary lets the Output Rule release what it holds, so nothing of the run so far leaves
	 * after the hand-over); non-zero gives up, as a failure before COMPLETE does. */
	int (*held)(void *ctx, char *err, size_t errlen);
	void *commit_ctx;               /* of commit(), cut_ready() and held() */
	/* A migration (not a clone) of a VM with an arbiter area: the destination runs in epoch
	 * arbiter.epoch + 1, as the next node id of the area, and the hand-over is judged there. */
	struct mig_arbiter arbiter;
};

/* The job's statistics, named after libvirt's job stats (virDomainGetJobStats). */
struct mig_stats {
	char phase[16];                 /* setup, precopy, stop-and-copy, completed, failed, cancelled */
	uint32_t iteration;             /* rounds of pages so far (0: the first) */
	uint64_t memory_total;          /* guest RAM bytes */
	uint64_t memory_processed;      /* RAM bytes sent, all rounds */
	uint64_t memory_remaining;      /* dirty bytes left at the last look */
	uint64_t memory_touched;        /* RAM bytes the guest has touched: backed when the pre-copy
	                                 * began, or dirtied since (what memory_processed compares to) */
	uint64_t disk_total;            /* bytes of the disks copied (copy_storage) */
	uint64_t disk_processed;        /* disk bytes sent, data and zero ranges */
	uint64_t disk_digested;         /* disk bytes sent as digests (a resync) */
	uint64_t disk_remaining;        /* dirty disk bytes left at the last look */
	uint64_t dirty_rate;            /* pages per second the guest dirtied in the last round */
	uint64_t data_transferred;      /* bytes of messages sent */
	uint64_t link_bps;              /* bytes per second the last round crossed the link */
	uint64_t expected_downtime_ms;  /* the pause a stop-and-copy now would take (mig_converge.h) */
	uint64_t expected_fixed_ms;     /* its part that does not shrink with the bytes left */
	uint64_t downtime_ms;           /* vCPU held for the stop-and-copy until the confirmation */
	uint64_t downtime_us;           /* the same in microseconds */
	uint64_t downtime_sent_us;      /* held until COMPLETE was written to the socket (what QEMU's
	                                 * query-migrate "downtime" counts: the source's side alone) */
	uint64_t total_time_ms;
	unsigned throttle_pct;          /* auto-converge: share of wall time the vCPU is held */
	bool refused;                   /* failed by the destination's REFUSE (error: its message) */
	uint64_t arbiter_epoch;         /* with an arbiter: the epoch this copy holds after the job */
	uint64_t frames_forwarded;      /* the guest's frames sent on after the hand-over (mig_frames.h) */
	uint64_t frames_dropped;        /* and those dropped beyond its bounds */
	char error[320];
};

struct mig_job {
	struct mig_source_config cfg;
	pthread_mutex_t lock;           /* guards stats */
	struct mig_stats stats;
	pthread_t thread;
	bool started, done, lock_inited;
	atomic_bool cancel;             /* mig_job_cancel(): give up at the next round or before the cut */
	int result;
};

/*
 * Runs the migration on the calling thread: 0 once handed over (this copy is stopped: its run
 * ends with -ECANCELED and world_live_handed_over()), else -errno with the reason in the stats'
 * error and the VM running as before.
 */
int mig_source_run(struct mig_job *job) FTVM_MUST_CHECK;

/* The same on a thread of its own. */
int mig_job_start(struct mig_job *job, const struct mig_source_config *cfg) FTVM_MUST_CHECK;
void mig_job_init(struct mig_job *job, const struct mig_source_config *cfg);
/* A copy of the statistics, any thread. */
void mig_job_get_stats(struct mig_job *job, struct mig_stats *out);
bool mig_job_done(struct mig_job *job);
/* Any thread: the job gives up (CANCEL, the VM runs on here) at its next round, or before the
 * hand-over or cut; a job already past them is not undone. */
void mig_job_cancel(struct mig_job *job);
/* Joins the thread (if started): the result of mig_source_run(). */
int mig_job_join(struct mig_job *job);

#endif
