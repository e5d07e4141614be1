/*
 * ft_node.c — see ft_node.h: a node that restores redundancy to its spares by FT clones.
 *
 * Threads: the vCPU thread runs ft_node_run() (the machine, then each primary's setup); the
 * clone thread tries the spares while the node is alone; the control thread reads the status
 * and serves `ft enable` / `ft disable`. What they share is under n->lock: the phase, the current
 * primary (created and destroyed by the vCPU thread only while the clone thread is not running),
 * the counters, the spares and the clone job's statistics (mig_job has its own lock). Starting
 * and stopping the clone thread (vCPU and control threads) is serialised by n->ops. The log
 * connection of a clone is opened by the clone thread during the pre-copy and taken over by the
 * vCPU thread's primary after the cut (log_ch, under n->lock). The clone
 * thread sleeps on n->wake between tries (stop wakes it), and on a protected primary's FT state
 * until it goes alone (for at most 100 ms at a time, to see stop).
 */
#define DIAG_MODULE "ft-node"
#include "cmd/ft_node.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/exit_code.h"
#include "common/arbiter.h"
#include "host/backend.h"
#include "host/world_live.h"
#include "logchannel/channel.h"
#include "migrate/mig_source.h"
#include "primary/ft_primary.h"
#include "util/diag.h"
#include "util/time.h"

#define CLONE_BACKOFF_FIRST_MS 100u
#define CLONE_BACKOFF_MAX_MS 2000u
/* How long the clone thread sleeps at most on a protected primary's state (then it checks stop). */
#define PRIMARY_WATCH_MS 100
/* A migration's stop-and-copy waits this long at most for the Output Rule and the backup's replay. */
#define MIGRATE_RELEASE_MS 10000
/* Decisions read from the arbiter area to learn the node id this node won its epoch as. */
#define NODE_ARBITER_HISTORY 32

enum node_phase {
	NODE_ALONE,      /* the machine runs in the live world, the clone thread tries the spares */
	NODE_PRIMARY,    /* the machine runs recorded, for the backup made by the last clone */
};

struct ft_node {
	struct vm_command *c;
	struct ft_options fo;
	const struct channel_key *key;
	char vm_id[128];

	pthread_mutex_t lock;           /* guards everything below */
	pthread_cond_t wake;            /* clone thread: stop, or time to look again */
	enum node_phase phase;
	struct ft_primary *p;           /* NODE_PRIMARY */
	uint64_t epoch;                 /* the pairing's: won (alone), or the primary's */
	uint64_t alone_since_ns;        /* 0: protected */
	uint64_t clones, failovers;
	bool stop;                      /* the clone thread ends */
	bool disable;                   /* ft_node_disable(): the run was cut to drop the backup */
	bool migrating;                 /* a live migration of this node runs: no clone starts */
	bool cut_pending;               /* a clone cut the run; the vCPU thread has not taken it yet */
	bool regroup;                   /* a migration's source kept the VM in a newer epoch: the run
	                                 * was cut to end its pairing, the node goes on alone in it */
	char enabled_peer[FT_NODE_PEER_MAX]; /* ft_node_enable()'s spare */
	bool job_used;                  /* job holds the statistics of a clone tried */
	struct mig_job job;
	const char *cloned_to;          /* the spare of the clone that succeeded */
	struct channel *log_ch;         /* the clone's log connection to it, until a primary adopts it */
	uint64_t handed_over_ns;        /* when that clone's hand-over was confirmed */
	pthread_t thread;
	bool thread_started;            /* under lock; started and joined under ops */
	pthread_mutex_t ops;            /* the clone thread's start and stop (vCPU and control threads) */
};

/* The settings of this node's primary of `epoch` with the backup at peer. */
static struct ft_primary_config primary_config(struct ft_node *n, uint64_t epoch, const char *peer)
{
	struct ft_options *fo = &n->fo;
	return (struct ft_primary_config){
		.vm_name = fo->co.vm, .vm_id = n->vm_id, .epoch = epoch, .peer = peer, .arbiter = fo->arbiter,
		.node = 0, .timeout_ms = fo->timeout_ms, .heartbeat_ms = fo->heartbeat_ms,
		.max_lag_ms = (unsigned)fo->max_lag_ms, .rdma = false, .replicated_disks = !fo->disk_shared, .key = n->key,
		.disks = fo->disk_shared ? NULL : n->c->world,
	};
}

/* Takes the clone's log connection (the caller's from here; NULL: none). */
static struct channel *take_log(struct ft_node *n)
{
	pthread_mutex_lock(&n->lock);
	struct channel *ch = n->log_ch;
	n->log_ch = NULL;
	pthread_mutex_unlock(&n->lock);
	return ch;
}

/* ---- the clone thread ---- */

/* One clone try's context for its callbacks: the node and the spare it goes to. */
struct clone_ctx {
	struct ft_node *n;
	const char *spare;
};

/* mig_source_config.commit: the arbiter records the new pairing before any page is sent (claim
 * of the epoch between the old pairing's and the new one's, as node 0: only this node claims it). */
static int record_pairing(struct ft_node *n, char *err, size_t errlen)
{
	char aerr[ARBITER_ERR_MAX];
	struct arbiter *arb;
	unsigned winner = 0;

	int ret = arbiter_open(n->fo.arbiter, n->fo.co.vm, &arb, aerr);
	if (ret < 0) {
		snprintf(err, errlen, "arbiter %s: %s", n->fo.arbiter, aerr);
		return ret;
	}
	ret = arbiter_claim(arb, n->epoch + 1, 0, 2000, &winner);
	if (ret == ARBITER_LOST)
		snprintf(err, errlen, "the arbiter gave epoch %llu to node %u: another node made a pairing",
			 (unsigned long long)(n->epoch + 1), winner);
	else if (ret < 0)
		snprintf(err, errlen, "arbiter: %s", arbiter_error(arb));
	arbiter_close(arb);
	/* This node's replicas start the new pairing too: marked for a resync should it come back
	 * (outside the guest's pause; the mark is a hint, the digests decide). */
	if (ret == ARBITER_WON)
		ft_options_mark_replicas(&n->fo, &n->c->rw, n->epoch + 2);
	return ret == ARBITER_WON ? 0 : ret < 0 ? ret : -EPERM;
}

/*
 * mig_source_config.commit, once the spare accepted START: the new pairing is recorded, then the
 * log connection to the spare is opened (the spare listens for it from the stream's start), while
 * the guest runs: the pause of the stop-and-copy holds none of it.
 */
static int begin_pairing(void *ctx, char *err, size_t errlen)
{
	struct clone_ctx *t = ctx;
	struct ft_node *n = t->n;
	int ret = record_pairing(n, err, errlen);
	if (ret)
		return ret;
	struct ft_primary_config pc = primary_config(n, n->epoch + 2, t->spare);
	struct channel *ch;
	uint64_t t0 = time_mono_ns();
	ret = ft_primary_dial(&pc, &ch, err, errlen);
	if (ret)
		return ret;
	diag_info("log connection to %s open in %.1f ms, before the cut", t->spare, (time_mono_ns() - t0) / 1e6);
	pthread_mutex_lock(&n->lock);
	n->log_ch = ch;
	pthread_mutex_unlock(&n->lock);
	return 0;
}

/* mig_source_config.cut_ready: the log connection is still up (the channel's own heartbeats). */
static int log_up(void *ctx, char *err, size_t errlen)
{
	struct ft_node *n = ((struct clone_ctx *)ctx)->n;
	pthread_mutex_lock(&n->lock);
	int ret = n->log_ch && channel_state(n->log_ch) == CHANNEL_UP ? 0 : -EPIPE;
	if (ret)
		snprintf(err, errlen, "the log connection to the spare failed before the cut: %s",
			 n->log_ch ? channel_error(n->log_ch) : "not open");
	pthread_mutex_unlock(&n->lock);
	return ret;
}

/* Under n->lock: waits up to ms, or until stopped. */
static void nap_locked(struct ft_node *n, unsigned ms)
{
	struct timespec until = time_mono_timespec(time_mono_ns() + ms * TIME_NS_PER_MS);
	if (!n->stop)
		pthread_cond_timedwait(&n->wake, &n->lock, &until);
}

/* Under n->lock: is the node alone, so that a clone is due? */
static bool alone_locked(struct ft_node *n)
{
	if (n->phase == NODE_ALONE)
		return true;
	struct ft_status st;
	ft_primary_get_status(n->p, &st);
	if (st.state != FT_STATE_ALONE)
		return false;
	if (!n->alone_since_ns) {
		n->alone_since_ns = time_mono_ns();
		n->failovers++;
	}
	return true;
}

/* One try to `spare` (a resync, with the blocks a refusal named as `repair`, or a full copy): 0
 * once the live world is cut, -EPERM when the spare refused a resync. */
static int clone_try(struct ft_node *n, const char *spare, bool resync, const char *repair)
{
	struct clone_ctx t = { .n = n, .spare = spare };
	struct mig_source_config cfg = {
		.m = n->c->m, .world = n->c->world, .to = spare, .key = n->key, .vm_id = n->fo.co.vm,
		.epoch = n->epoch + 2, .bandwidth_mbit = n->fo.clone_bandwidth_mbit, .clone = true,
		.copy_storage = !n->fo.disk_shared && world_live_ndisks(n->c->world) > 0,
		.resync = resync, .resync_epoch = n->epoch, .resync_repair = repair,
		.commit = begin_pairing, .cut_ready = log_up, .commit_ctx = &t,
	};
	pthread_mutex_lock(&n->lock);
	if (n->job_used)
		pthread_mutex_destroy(&n->job.lock);
	mig_job_init(&n->job, &cfg);
	n->job_used = true;
	bool stop = n->stop;
	pthread_mutex_unlock(&n->lock);
	if (stop)
		return -ECANCELED;
	diag_info("FT clone of %s to %s for epoch %llu%s", n->fo.co.vm, spare, (unsigned long long)cfg.epoch,
		  resync ? " (resync of the blocks written since the pairing)" : "");
	int ret = mig_source_run(&n->job);
	if (ret) {
		struct mig_stats ms;
		mig_job_get_stats(&n->job, &ms);
		channel_close(take_log(n));
		/* The spare's refusals of a resync say so (mig_dest.c); another refusal (another
		 * configuration, say) would refuse a full copy as well. */
		if (resync && ms.refused && strstr(ms.error, "resync"))
			return -EPERM; /* clone_to() says so, and copies */
		diag_warn("FT clone to %s failed, still alone: %s", spare, ms.error);
	}
	return ret;
}

static bool stopping(struct ft_node *n)
{
	pthread_mutex_lock(&n->lock);
	bool stop = n->stop;
	pthread_mutex_unlock(&n->lock);
	return stop;
}

/* The try that follows a refusal: the spare listens again once it has dropped the refused
 * stream, which takes it a moment, so a refused connection is tried again for a few seconds. */
#define RETRY_CONNECT_TRIES 30u
#define RETRY_CONNECT_MS 100u

static int clone_again(struct ft_node *n, const char *spare, bool resync, const char *repair)
{
	int ret = clone_try(n, spare, resync, repair);
	for (unsigned i = 0; ret == -ECONNREFUSED && i < RETRY_CONNECT_TRIES; i++) {
		pthread_mutex_lock(&n->lock);
		nap_locked(n, RETRY_CONNECT_MS);
		bool stop = n->stop;
		pthread_mutex_unlock(&n->lock);
		if (stop)
			break;
		ret = clone_try(n, spare, resync, repair);
	}
	return ret;
}

/*
 * One clone to `spare`: 0 once the live world is cut (the vCPU thread goes on from there). With
 * replicated disks a resync comes first (docs/disks.md, Resync). A spare whose replica differs in
 * a few blocks the source did not write names them: a second resync sends them as data (and
 * compares every other block again). A spare whose replica is not this pairing's, or differs in
 * more, refuses, and a full copy follows at once (a resync that broke otherwise is tried again
 * with the next clone).
 */
static int clone_to(struct ft_node *n, const char *spare)
{
	bool resync = !n->fo.disk_shared && world_live_ndisks(n->c->world) > 0;
	int ret = clone_try(n, spare, resync, NULL);
	struct mig_stats ms;
	if (ret == -EPERM && !stopping(n)) {
		mig_job_get_stats(&n->job, &ms);
		if (strstr(ms.error, "repair=")) {
			diag_warn("FT clone to %s: the spare refused the resync (%s); resyncing again with those blocks",
				  spare, ms.error);
			ret = clone_again(n, spare, true, ms.error);
		}
	}
	if (ret == -EPERM && !stopping(n)) {
		mig_job_get_stats(&n->job, &ms);
		diag_warn("FT clone to %s: the spare refused the resync (%s); copying the whole replica", spare,
			  ms.error);
		ret = clone_again(n, spare, false, NULL);
	}
	return ret;
}

static void *clone_main(void *arg)
{
	struct ft_node *n = arg;
	unsigned backoff = CLONE_BACKOFF_FIRST_MS;

	pthread_mutex_lock(&n->lock);
	while (!n->stop) {
		if (!alone_locked(n)) {
			/* n->p stays while this thread runs: the vCPU thread replaces it only after a join. */
			struct ft_primary *p = n->p;
			pthread_mutex_unlock(&n->lock);
			(void)ft_primary_wait_alone(p, PRIMARY_WATCH_MS);
			pthread_mutex_lock(&n->lock);
			continue;
		}
		for (unsigned i = 0; i < n->fo.nspares && !n->stop; i++) {
			pthread_mutex_unlock(&n->lock);
			int ret = clone_to(n, n->fo.spare[i]);
			pthread_mutex_lock(&n->lock);
			if (ret == 0) {
				n->cloned_to = n->fo.spare[i];
				n->cut_pending = true;
				n->handed_over_ns = time_mono_ns();
				pthread_mutex_unlock(&n->lock);
				return NULL;
			}
		}
		nap_locked(n, backoff);
		backoff = backoff * 2 > CLONE_BACKOFF_MAX_MS ? CLONE_BACKOFF_MAX_MS : backoff * 2;
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

/* Under n->ops: starts the clone thread when there are spares and it is not running. */
static int start_cloning(struct ft_node *n)
{
	int ret = 0;
	pthread_mutex_lock(&n->lock);
	if (n->fo.nspares && !n->thread_started && !n->migrating) {
		n->stop = false;
		n->cloned_to = NULL;
		ret = -pthread_create(&n->thread, NULL, clone_main, n);
		n->thread_started = ret == 0;
	}
	pthread_mutex_unlock(&n->lock);
	return ret;
}

/* Under n->ops: ends the clone thread (a clone under way gives up, unless it already cut). */
static void stop_cloning(struct ft_node *n)
{
	pthread_mutex_lock(&n->lock);
	if (!n->thread_started) {
		pthread_mutex_unlock(&n->lock);
		return;
	}
	n->stop = true;
	if (n->job_used)
		mig_job_cancel(&n->job);
	pthread_cond_broadcast(&n->wake);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	pthread_mutex_lock(&n->lock);
	n->thread_started = false;
	pthread_mutex_unlock(&n->lock);
}

static int start_cloning_op(struct ft_node *n)
{
	pthread_mutex_lock(&n->ops);
	int ret = start_cloning(n);
	pthread_mutex_unlock(&n->ops);
	return ret;
}

static void stop_cloning_op(struct ft_node *n)
{
	pthread_mutex_lock(&n->ops);
	stop_cloning(n);
	pthread_mutex_unlock(&n->ops);
}

int ft_node_enable(struct ft_node *n, const char *peer, char *err, size_t errlen)
{
	if (strlen(peer) >= FT_NODE_PEER_MAX || !strchr(peer, ':')) {
		snprintf(err, errlen, "ft enable: the peer must be HOST:PORT (at most %u bytes)", FT_NODE_PEER_MAX - 1);
		return -EINVAL;
	}
	pthread_mutex_lock(&n->ops);
	pthread_mutex_lock(&n->lock);
	bool protected = n->phase == NODE_PRIMARY && !n->alone_since_ns, migrating = n->migrating;
	uint64_t epoch = n->epoch;
	pthread_mutex_unlock(&n->lock);
	int ret = 0;
	if (migrating) {
		snprintf(err, errlen, "ft enable: the VM is being migrated; its destination restores redundancy");
		ret = -EBUSY;
	} else if (protected) {
		snprintf(err, errlen, "ft enable: the VM is protected already (epoch %llu); `ft disable` first",
			 (unsigned long long)epoch);
		ret = -EALREADY;
	} else {
		stop_cloning(n);
		pthread_mutex_lock(&n->lock);
		snprintf(n->enabled_peer, sizeof(n->enabled_peer), "%s", peer);
		n->fo.spare[0] = n->enabled_peer;
		n->fo.nspares = 1;
		n->disable = false;
		pthread_mutex_unlock(&n->lock);
		ret = start_cloning(n);
		if (ret)
			snprintf(err, errlen, "ft enable: cannot start the clone thread: %s", strerror(-ret));
	}
	pthread_mutex_unlock(&n->ops);
	return ret;
}

int ft_node_disable(struct ft_node *n, char *err, size_t errlen)
{
	pthread_mutex_lock(&n->ops);
	pthread_mutex_lock(&n->lock);
	bool migrating = n->migrating;
	pthread_mutex_unlock(&n->lock);
	if (migrating) {
		pthread_mutex_unlock(&n->ops);
		snprintf(err, errlen, "ft disable: the VM is being migrated; disable FT on its destination");
		return -EBUSY;
	}
	stop_cloning(n);
	pthread_mutex_lock(&n->lock);
	n->fo.nspares = 0;
	if (n->phase == NODE_PRIMARY) {
		/* The vCPU thread ends the primary's log with END, which the backup replays to its end
		 * and then exits without going live; the VM runs on alone. */
		n->disable = true;
		world_live_cut(n->c->world);
	}
	pthread_mutex_unlock(&n->lock);
	pthread_mutex_unlock(&n->ops);
	return 0;
}

/* ---- live migration of this node (docs/migration.md, "Migrating an FT node") ---- */

/* The node id this node holds its epoch as: the winner, when the arbiter decided it (a node that
 * won it alone: 0 as a primary that lost its backup, 1 as a backup gone live, any as the
 * destination of a migration), else 0 (a primary, whose pairing's epoch is decided only when one
 * of the pair is lost). */
static int node_id(struct ft_node *n, unsigned *id, char *err, size_t errlen)
{
	char aerr[ARBITER_ERR_MAX];
	struct arbiter *arb;
	struct arbiter_decision d[NODE_ARBITER_HISTORY];
	size_t count = 0;
	int ret = arbiter_open(n->fo.arbiter, n->fo.co.vm, &arb, aerr);
	if (ret) {
		snprintf(err, errlen, "arbiter %s: %s", n->fo.arbiter, aerr);
		return ret;
	}
	ret = arbiter_decided(arb, d, NODE_ARBITER_HISTORY, &count);
	if (ret)
		snprintf(err, errlen, "arbiter %s: %s", n->fo.arbiter, arbiter_error(arb));
	arbiter_close(arb);
	*id = 0;
	for (size_t i = 0; !ret && i < count; i++)
		if (d[i].epoch == n->epoch)
			*id = d[i].winner;
	return ret;
}

/* mig_source_config.held: with the vCPU held, what the Output Rule holds leaves (once the backup
 * acknowledged its log, or the primary went alone): nothing of the run leaves after the cut; and
 * the backup replays all of the log before the destination may write to a shared disk. The
 * primary stays while the vCPU is held: the vCPU thread replaces it only after its run ended.
 * Before COMPLETE can leave, the primary learns that this node claims epoch + 1: from then on
 * the epoch may be decided, and a claim of its own epoch refused for that waits for the
 * judgement (ft_node_migrate_end() delivers it) instead of halting. */
static int release_outputs(void *ctx, char *err, size_t errlen)
{
	struct ft_node *n = ctx;
	pthread_mutex_lock(&n->lock);
	struct ft_primary *p = n->phase == NODE_PRIMARY ? n->p : NULL;
	if (p)
		ft_primary_judging(p, n->epoch + 1);
	pthread_mutex_unlock(&n->lock);
	int ret = p ? ft_primary_release_outputs(p, MIGRATE_RELEASE_MS) : 0;
	if (ret == -ECANCELED)
		snprintf(err, errlen, "this primary halted (it lost the arbiter): it holds its outputs for good");
	else if (ret)
		snprintf(err, errlen, "the backup had not acknowledged and replayed the log after %d ms",
			 MIGRATE_RELEASE_MS);
	return ret;
}

int ft_node_migrate_begin(struct ft_node *n, struct mig_source_config *cfg, char *err, size_t errlen)
{
	int ret = 0;
	pthread_mutex_lock(&n->ops);
	pthread_mutex_lock(&n->lock);
	if (n->migrating) {
		snprintf(err, errlen, "migrate: a migration of this VM runs already");
		ret = -EBUSY;
	}
	n->migrating = true;
	pthread_mutex_unlock(&n->lock);
	if (ret) {
		pthread_mutex_unlock(&n->ops);
		return ret;
	}
	/* No clone meanwhile: a clone's claim of the next epoch would race the hand-over's. */
	stop_cloning(n);
	pthread_mutex_lock(&n->lock);
	bool cut = n->cut_pending;
	uint64_t epoch = n->epoch;
	pthread_mutex_unlock(&n->lock);
	unsigned node = 0;
	if (cut) {
		snprintf(err, errlen, "migrate: a clone has just made a new backup; try again once the VM is protected");
		ret = -EAGAIN;
	} else {
		ret = node_id(n, &node, err, errlen);
	}
	if (ret) {
		pthread_mutex_lock(&n->lock);
		n->migrating = false;
		pthread_mutex_unlock(&n->lock);
		if (!cut && start_cloning(n))
			diag_error("cannot restart the clone thread");
		pthread_mutex_unlock(&n->ops);
		return ret;
	}
	cfg->arbiter = (struct mig_arbiter){ .path = n->fo.arbiter, .epoch = epoch, .node = node };
	/* Replicated disks: the destination's replicas must end equal to this node's. */
	cfg->copy_storage |= !n->fo.disk_shared && world_live_ndisks(n->c->world) > 0;
	cfg->held = release_outputs;
	cfg->commit_ctx = n;
	pthread_mutex_unlock(&n->ops);
	diag_info("migration of %s to %s: hand-over in epoch %llu (this node %u of epoch %llu)", n->fo.co.vm, cfg->to,
		  (unsigned long long)(epoch + 1), node, (unsigned long long)epoch);
	return 0;
}

void ft_node_migrate_end(struct ft_node *n, int result, uint64_t arbiter_epoch)
{
	pthread_mutex_lock(&n->ops);
	pthread_mutex_lock(&n->lock);
	n->migrating = false;
	pthread_cond_broadcast(&n->wake);   /* the run thread may wait for this job's end */
	/* Handed over: the run ends (a primary's log with END), nothing restarts here. */
	bool restart = result != 0;
	if (result && arbiter_epoch > n->epoch) {
		/* The hand-over failed after COMPLETE and this node won the new epoch itself: its
		 * pairing's epoch is spent (a backup of it could win no claim), so it goes on alone in
		 * the new one and clones from there. */
		n->epoch = arbiter_epoch;
		if (n->phase == NODE_PRIMARY) {
			/* Losing the backup now (its log ends, or it fails) must not claim the spent epoch;
			 * a claim of it refused meanwhile waits for this (ft_primary_judging()). */
			ft_primary_supersede(n->p, arbiter_epoch);
			n->regroup = true;
			world_live_cut(n->c->world);
		}
	} else if (n->phase == NODE_PRIMARY && n->p) {
		/* No new epoch here: handed over (the destination holds it) or failed before COMPLETE. */
		ft_primary_judging(n->p, 0);
	}
	pthread_mutex_unlock(&n->lock);
	if (restart && start_cloning(n))
		diag_error("cannot restart the clone thread: the VM runs on alone");
	pthread_mutex_unlock(&n->ops);
}

/* ---- the vCPU thread ---- */

static void set_alone(struct ft_node *n, uint64_t epoch)
{
	pthread_mutex_lock(&n->lock);
	n->phase = NODE_ALONE;
	n->epoch = epoch;
	if (!n->alone_since_ns)
		n->alone_since_ns = time_mono_ns();
	pthread_mutex_unlock(&n->lock);
}

/* Step 3 of ft_node.h: the primary of the new pairing with the spare that took the clone, on the
 * log connection the clone opened (a channel that failed since makes it lose that backup at once). */
static int become_primary(struct ft_node *n, char *err, size_t errlen)
{
	uint64_t epoch = n->epoch + 2;
	struct ft_primary_config cfg = primary_config(n, epoch, n->cloned_to);
	struct ft_primary *p = NULL;
	struct channel *ch = take_log(n);
	int ret = ch ? ft_primary_create(&cfg, n->c->m, world_live_world(n->c->world), &p, err, errlen) : -ENOTCONN;
	if (!ch)
		snprintf(err, errlen, "the clone opened no log connection");
	else if (ret)
		channel_close(ch);
	else
		ret = ft_primary_adopt(p, ch, err, errlen);
	pthread_mutex_lock(&n->lock);
	/* Whatever came of it, the pairing's epochs are spent: the next clone records beyond them. */
	n->epoch = epoch;
	if (!ret) {
		n->phase = NODE_PRIMARY;
		n->p = p;
		n->clones++;
		n->alone_since_ns = 0;
	}
	pthread_mutex_unlock(&n->lock);
	if (ret)
		ft_primary_destroy(p);
	return ret;
}

/* The primary's run ended: its outputs leave, then it is gone (the node is alone or done). */
static int end_primary(struct ft_node *n, enum machine_exit why, int status, bool *halted)
{
	world_live_flush(n->c->world);
	int ret = ft_primary_finish(n->p, why, status);
	struct ft_status st;
	ft_primary_get_status(n->p, &st);
	*halted = ret == -ECANCELED || st.state == FT_STATE_HALTED;
	if (*halted)
		fprintf(stderr, "ftvm %s: %s\n", n->c->role->name, st.reason);
	pthread_mutex_lock(&n->lock);
	struct ft_primary *p = n->p;
	n->p = NULL;
	n->phase = NODE_ALONE;
	pthread_mutex_unlock(&n->lock);
	ft_primary_destroy(p);
	return ret;
}

/* A migration's job uses the live world until it ends (after the hand-over it still forwards the
 * guest's frames to the destination): the world must outlive it. Each step of the job is bounded
 * by its own timeout. */
static void wait_migration_end(struct ft_node *n)
{
	pthread_mutex_lock(&n->lock);
	while (n->migrating) {
		struct timespec until = time_mono_timespec(time_mono_ns() + 100 * TIME_NS_PER_MS);
		pthread_cond_timedwait(&n->wake, &n->lock, &until);
	}
	pthread_mutex_unlock(&n->lock);
}

int ft_node_run(struct ft_node *n, uint64_t epoch, uint64_t failovers, struct ft_primary *p)
{
	char err[512];
	int status = 0;

	pthread_mutex_lock(&n->lock);
	n->failovers = failovers;
	pthread_mutex_unlock(&n->lock);
	if (p) {
		pthread_mutex_lock(&n->lock);
		n->phase = NODE_PRIMARY;
		n->p = p;
		n->epoch = epoch;
		pthread_mutex_unlock(&n->lock);
	} else {
		set_alone(n, epoch);
	}
	for (;;) {
		if (start_cloning_op(n) < 0)
			diag_error("cannot start the clone thread: the VM runs on alone");
		struct vm_world world = n->phase == NODE_PRIMARY ? ft_primary_world(n->p) : world_live_world(n->c->world);
		enum machine_exit why = machine_run(n->c->m, world, ICOUNT_MAX, &status);
		bool cut = world_live_take_cut(n->c->world) && why == MACHINE_EXIT_ERROR && status == -ECANCELED;
		stop_cloning_op(n);
		pthread_mutex_lock(&n->lock);
		bool disable = n->disable, regroup = n->regroup;
		n->disable = n->regroup = n->cut_pending = false;
		pthread_mutex_unlock(&n->lock);
		if (n->phase == NODE_PRIMARY) {
			bool halted = false;
			int ret = end_primary(n, why, status, &halted);
			/* Halted after the hand-over (the backup lost meanwhile, the destination's epoch
			 * decided): this copy stops as a handed-over one does. */
			if (halted && !world_live_handed_over(n->c->world))
				return FTVM_EXIT_HALTED;
			if (!cut && !halted && ret < 0)
				diag_warn("ending the primary: %s", strerror(-ret));
		}
		if (!cut) {
			wait_migration_end(n);
			return vm_command_finish(n->c, why, status, NULL);
		}
		if (disable || regroup) {
			if (disable)
				diag_warn("fault tolerance disabled: the backup was dropped, the VM runs on alone");
			else
				diag_warn("the migration's source kept the VM in epoch %llu: the backup of the older "
					  "pairing was dropped, the VM runs on alone", (unsigned long long)n->epoch);
			set_alone(n, n->epoch);
			continue;
		}
		/* The spare restored the state into a hart with an empty TLB: this one empties its own,
		 * so both walk the page tables (setting A/D bits in guest memory) at the same instructions:
		 * a warm TLB here would skip walks the backup makes where the guest cleared an A bit. */
		machine_flush_tlb(n->c->m);
		/* The spare's replicas equal these at the cut: the new pairing's writes count from here. */
		for (unsigned i = 0; i < world_live_ndisks(n->c->world); i++)
			disk_backend_written_reset(world_live_disk_backend(n->c->world, i));
		if (become_primary(n, err, sizeof(err))) {
			diag_warn("the clone's backup did not take the log (%s): alone again", err);
			continue;
		}
		/* The guest was held from the stop-and-copy to the hand-over's confirmation (the job's
		 * downtime), then until this thread, woken by the cut, has the primary ready to run on. */
		struct mig_stats ms;
		mig_job_get_stats(&n->job, &ms);
		pthread_mutex_lock(&n->lock);
		double after_ms = (time_mono_ns() - n->handed_over_ns) / 1e6;
		pthread_mutex_unlock(&n->lock);
		diag_warn("protected again: primary of epoch %llu with %s; guest held %.1f ms (stop-and-copy %llu ms, "
			  "then %.1f ms to run as its primary); clone of %llu bytes in %llu ms",
			  (unsigned long long)n->epoch, n->cloned_to, (double)ms.downtime_ms + after_ms,
			  (unsigned long long)ms.downtime_ms, after_ms, (unsigned long long)ms.data_transferred,
			  (unsigned long long)ms.total_time_ms);
	}
}

/* ---- life cycle and status ---- */

int ft_node_create(struct vm_command *c, const struct ft_options *fo, const struct channel_key *key,
		   const char *vm_id, struct ft_node **out)
{
	struct ft_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->c = c;
	n->fo = *fo;
	n->key = key;
	snprintf(n->vm_id, sizeof(n->vm_id), "%s", vm_id);
	pthread_mutex_init(&n->lock, NULL);
	pthread_mutex_init(&n->ops, NULL);
	int ret = time_cond_init(&n->wake);
	if (ret) {
		pthread_mutex_destroy(&n->ops);
		pthread_mutex_destroy(&n->lock);
		free(n);
		return ret;
	}
	*out = n;
	return 0;
}

void ft_node_status(void *ctx, struct ft_status *st)
{
	struct ft_node *n = ctx;
	pthread_mutex_lock(&n->lock);
	if (n->phase == NODE_PRIMARY && n->p) {
		ft_primary_get_status(n->p, st);
	} else {
		memset(st, 0, sizeof(*st));
		st->state = n->alone_since_ns ? FT_STATE_ALONE : FT_STATE_WAITING; /* waiting: not run yet */
		st->icount = machine_progress(n->c->m);
		snprintf(st->peer_state, sizeof(st->peer_state), "gone");
	}
	snprintf(st->role, sizeof(st->role), "primary");
	st->epoch = n->epoch;
	st->failovers = n->failovers;
	st->clones = n->clones;
	st->unprotected_ms = n->alone_since_ns ? (time_mono_ns() - n->alone_since_ns) / 1000000u : 0;
	if (n->job_used) {
		struct mig_stats ms;
		mig_job_get_stats(&n->job, &ms);
		snprintf(st->clone_phase, sizeof(st->clone_phase), "%s", ms.phase);
		st->clone_bytes = ms.data_transferred;
		st->clone_remaining = ms.memory_remaining + ms.disk_remaining;
		st->clone_disk_bytes = ms.disk_processed;
		st->clone_disk_digested = ms.disk_digested;
		snprintf(st->clone_error, sizeof(st->clone_error), "%s", ms.error);
	}
	pthread_mutex_unlock(&n->lock);
}

void ft_node_destroy(struct ft_node *n)
{
	if (!n)
		return;
	stop_cloning_op(n);
	ft_primary_destroy(n->p);
	channel_close(n->log_ch);
	if (n->job_used)
		pthread_mutex_destroy(&n->job.lock);
	pthread_mutex_destroy(&n->ops);
	pthread_cond_destroy(&n->wake);
	pthread_mutex_destroy(&n->lock);
	free(n);
}
