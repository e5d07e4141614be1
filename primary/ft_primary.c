/*
 * ft_primary.c — the primary of an FT pair (see ft_primary.h for the failover steps).
 *
 * Threads: the vCPU thread runs the machine, appends records (channel_send, lock-free) and holds
 * outputs; the channel thread (logchannel/) moves bytes; the releaser (output_rule.c) performs
 * outputs once acknowledged; the monitor thread below sleeps on two eventfds — the channel's, readable
 * once it failed, and its own, written when this node ends FT for another reason (set_state) — and
 * runs the arbitration. The node's FT state is common/ft_state.h: changed only through
 * ft_state_set(), waited for with ft_state_wait(); the counters beside it are atomics. A live
 * migration's hand-over under way (ft_primary_judging()) and its outcome (ft_primary_supersede())
 * change under judge_lock, where a refused claim waits for them (judge_cond).
 */
#define DIAG_MODULE "primary"
#include "primary/ft_primary.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/arbiter.h"
#include "common/ft_state.h"
#include "host/backend.h"
#include "host/world_live.h"
#include "replay/eventlog.h"
#include "logchannel/channel.h"
#include "primary/lag_clock.h"
#include "primary/output_rule.h"
#include "replay/recorder.h"
#include "util/diag.h"
#include "util/time.h"

struct ft_primary {
	struct ft_primary_config cfg;
	char vm_name[128];
	char vm_id[128];
	char arbiter_path[4096];
	struct vm_world live;
	struct channel *ch;
	struct arbiter *arb;
	struct recorder *rec;
	struct output_rule *rule;
	struct machine *machine;
	struct ft_state fs;
	atomic_uint_fast64_t last_lsn;  /* LSN of the last record appended */
	atomic_uint_fast64_t last_icount; /* and its icount */
	atomic_uint_fast64_t superseded; /* ft_primary_supersede(): a later epoch this node holds (0: none);
	                                  * stored under judge_lock, read anywhere */
	pthread_mutex_t judge_lock;
	pthread_cond_t judge_cond;      /* judging or superseded changed */
	uint64_t judging;               /* ft_primary_judging(): the epoch this node claims (0: none) */
	atomic_uint_fast64_t log_bytes, log_records, throttled_ms, failovers;
	atomic_uint_fast64_t last_gap_us;  /* last failover: from the backup's last frame to running alone */
	atomic_uint_fast64_t lag_ns;    /* the backup's lag in time, published by the vCPU thread */
	struct lag_clock lag;           /* vCPU thread only */
	icount_t written_gen_icount;    /* vCPU thread only: where the disks' written generation began */
	uint64_t written_gen_ns;
	pthread_t monitor;
	int monitor_wake_fd;            /* eventfd: the state reached a verdict the monitor must see */
	bool monitor_started;
	bool fs_ready;
	uint8_t frame[EVLOG_MAX_RECORD];
};

#define S(s) FT_STATE_BIT(FT_STATE_##s)
/* States in which this node has a verdict: it runs on (alone, done) or halts. */
#define VERDICT (S(ALONE) | S(DONE) | S(HALTED))

static enum ft_role_state get_state(struct ft_primary *p)
{
	return ft_state_get(&p->fs);
}

/* A transition made outside the monitor thread: the monitor is woken to see it (it sleeps with
 * no timeout). */
static void set_state(struct ft_primary *p, unsigned from_mask, enum ft_role_state to)
{
	uint64_t one = 1;
	if (!ft_state_set(&p->fs, from_mask, to, NULL) || p->monitor_wake_fd < 0)
		return;
	if (write(p->monitor_wake_fd, &one, sizeof(one)) < 0)
		diag_warn("cannot wake the monitor: %s", strerror(errno));
}

/* ---- the sink: records go over the channel ---- */

/* Waits for the arbitration to end; 0 when this node runs on, -ECANCELED when it halts. */
static int wait_for_verdict(struct ft_primary *p)
{
	return ft_state_wait(&p->fs, VERDICT, -1) == FT_STATE_HALTED ? -ECANCELED : 0;
}

static int sink_append(void *ctx, enum evlog_kind kind, icount_t icount, const uint8_t *payload, uint32_t len,
		       uint64_t *lsn_out)
{
	struct ft_primary *p = ctx;
	uint64_t lsn = atomic_load(&p->last_lsn) + 1;
	struct evlog_record r = { .kind = kind, .lsn = lsn, .icount = icount, .len = len, .payload = payload };
	size_t n = evlog_encode_record(&r, p->frame);

	atomic_store(&p->last_icount, icount);
	atomic_store(&p->last_lsn, lsn);
	*lsn_out = lsn;
	atomic_fetch_add(&p->log_bytes, n);
	atomic_fetch_add(&p->log_records, 1);
	for (;;) {
		enum ft_role_state s = get_state(p);
		if (s == FT_STATE_ALONE || s == FT_STATE_DONE)
			return 0; /* no backup: nothing to send */
		if (s == FT_STATE_HALTED)
			return -ECANCELED;
		if (s == FT_STATE_ARBITRATING)
			return wait_for_verdict(p);
		/* A full buffer pauses the vCPU here until the backup catches up. */
		int ret = channel_send_wait(p->ch, lsn, p->frame, n, 100);
		if (ret == 0)
			return 0;
		if (ret == -ETIMEDOUT)
			continue;
		if (ret == -EPIPE)
			return wait_for_verdict(p);
		diag_error("cannot send record lsn %llu: %s", (unsigned long long)lsn, strerror(-ret));
		return ret;
	}
}

/* ---- the gate of the Output Rule ---- */

static int gate_wait(void *ctx, uint64_t lsn, int timeout_ms)
{
	struct ft_primary *p = ctx;
	switch (get_state(p)) {
	case FT_STATE_ALONE:
		return 0;
	case FT_STATE_HALTED:
		return -ECANCELED;
	case FT_STATE_GOING_LIVE: /* a backup's state only */
	case FT_STATE_DONE:
	case FT_STATE_PROTECTED:
	case FT_STATE_WAITING:
		if (channel_state(p->ch) == CHANNEL_UP || channel_acked_lsn(p->ch) >= lsn) {
			int ret = channel_wait_acked(p->ch, lsn, timeout_ms);
			if (ret == 0)
				return 0;
			if (ret == -ETIMEDOUT)
				return ret;
		}
		/* the channel failed: hold until the arbiter decides */
		__attribute__((fallthrough));
	case FT_STATE_ARBITRATING:
		switch (ft_state_wait(&p->fs, S(ALONE) | S(HALTED), timeout_ms)) {
		case FT_STATE_ALONE:
			return 0;
		case FT_STATE_HALTED:
			return -ECANCELED;
		default:
			return -ETIMEDOUT;
		}
	}
	return -ETIMEDOUT;
}

/* A write to the shared disk over a range the backup has yet to read for a replayed DISK_DIGEST:
 * wait until the backup's reported icount is past that read's (replay/shared_reads.h). The backup
 * reports its icount every few ms while it moves; the recorder has made sure the log goes past. */
static int gate_wait_replayed(void *ctx, icount_t icount, int timeout_ms)
{
	struct ft_primary *p = ctx;
	for (int waited = 0;; waited++) {
		enum ft_role_state s = get_state(p);
		if (s == FT_STATE_ALONE)
			return 0;
		if (s == FT_STATE_HALTED)
			return -ECANCELED;
		if (s == FT_STATE_PROTECTED && p->ch && channel_peer_icount(p->ch) > icount)
			return 0;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		/* A millisecond at a time, as the lag bound waits; a change of state ends it at once. */
		ft_state_wait(&p->fs, s == FT_STATE_PROTECTED ? ~S(PROTECTED) : S(ALONE) | S(HALTED), 1);
	}
}

/* ---- the FT output world between the recorder and the live world ---- */

static void ftw_console_out(void *ctx, const uint8_t *buf, size_t len)
{
	struct ft_primary *p = ctx;
	output_rule_console(p->rule, atomic_load(&p->last_lsn), buf, len);
}

static void ftw_net_tx(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	struct ft_primary *p = ctx;
	output_rule_net(p->rule, atomic_load(&p->last_lsn), nic, frame, len);
}

/* A shared disk is seen by the backup when it goes live: its writes are outputs, held like the
 * rest. A replicated disk is this node's alone (the backup runs the same requests on its own
 * replica, and after a failover this copy is never used again), so its requests go straight to
 * the back end and reads never wait behind held outputs. */
static void ftw_disk_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	struct ft_primary *p = ctx;
	if (p->cfg.replicated_disks)
		p->live.ops->disk_submit(p->live.ctx, disk, req);
	else
		output_rule_disk_after(p->rule, atomic_load(&p->last_lsn), recorder_write_wait_past(p->rec), disk, req);
}

static void ftw_rng_request(void *ctx, unsigned dev, uint32_t len)
{
	struct ft_primary *p = ctx;
	p->live.ops->rng_request(p->live.ctx, dev, len);
}

static int ftw_next_event(void *ctx, icount_t now, struct vm_event *ev)
{
	struct ft_primary *p = ctx;
	if (get_state(p) == FT_STATE_HALTED)
		return -ECANCELED;
	return p->live.ops->next_event(p->live.ctx, now, ev);
}

/* Waits longer than this per slice only while the backup is really stuck (the heartbeat timeout
 * then ends FT): lag control slows the vCPU, it never stops it for long. */
#define LAG_WAIT_MAX_MS 50

/* The backup's lag in time (lag_clock.h), published for status. */
static uint64_t measure_lag(struct ft_primary *p, icount_t now)
{
	uint64_t t = time_mono_ns();
	lag_clock_note(&p->lag, now, t);
	icount_t peer = p->ch ? channel_peer_icount(p->ch) : 0;
	/* A backup that waits for log has replayed all the primary produced: it is not behind. */
	bool caught_up = p->ch && channel_peer_caught_up(p->ch);
	uint64_t behind = peer && !caught_up ? lag_clock_behind_ns(&p->lag, peer, t) : 0;
	atomic_store(&p->lag_ns, behind);
	return behind;
}

/* At most this often the disks' written generations turn (a copy of a bitmap each). */
#define WRITTEN_GEN_MIN_NS (20 * 1000000ull)

/*
 * Replicated disks: the blocks a returning backup's replica may lack are those written after the
 * last icount its replay had passed (host/backend.h). The backup runs each disk request on its
 * replica as its replay submits it, so once its reported icount is past I it holds every write
 * submitted before I. Called on the vCPU thread at `now`: a write submitted from here on sets its
 * bits after this turn, in the new generation; one whose bits went to the generation dropped here
 * was submitted before the current one began (at written_gen_icount), which the backup passed.
 * So the two generations kept always cover every write the backup may lack — and a block they
 * miss would still be compared by digest at the resync, never taken unchecked.
 */
static void follow_backup_writes(struct ft_primary *p, icount_t now)
{
	if (!p->cfg.disks || !p->cfg.replicated_disks || !p->ch || get_state(p) != FT_STATE_PROTECTED ||
	    channel_peer_icount(p->ch) <= p->written_gen_icount)
		return;
	uint64_t t = time_mono_ns();
	if (t - p->written_gen_ns < WRITTEN_GEN_MIN_NS)
		return;
	for (unsigned i = 0; i < world_live_ndisks(p->cfg.disks); i++) {
		struct disk_backend *be = world_live_disk_backend(p->cfg.disks, i);
		if (be)
			disk_backend_written_rotate(be);
	}
	p->written_gen_icount = now;
	p->written_gen_ns = t;
}

static icount_t ftw_horizon(void *ctx, icount_t now)
{
	struct ft_primary *p = ctx;
	uint64_t max_ns = (uint64_t)p->cfg.max_lag_ms * 1000000ull;
	follow_backup_writes(p, now);
	/* Lag bound: while the backup is too far behind, the vCPU waits for it a millisecond at a time
	 * (the lag is sampled from the channel); losing the backup ends the wait at once. */
	if (p->ch)
		recorder_backup_replayed(p->rec, channel_peer_icount(p->ch));
	for (unsigned waited = 0; waited < LAG_WAIT_MAX_MS && get_state(p) == FT_STATE_PROTECTED; waited++) {
		if (measure_lag(p, now) <= max_ns || !max_ns)
			break;
		if (ft_state_wait(&p->fs, ~S(PROTECTED), 1) >= 0)
			break;
		atomic_fetch_add(&p->throttled_ms, 1);
	}
	return p->live.ops->horizon(p->live.ctx, now);
}

static int ftw_idle(void *ctx, icount_t now, icount_t deadline, uint64_t deadline_time)
{
	struct ft_primary *p = ctx;
	if (get_state(p) == FT_STATE_HALTED)
		return -ECANCELED;
	return p->live.ops->idle(p->live.ctx, now, deadline, deadline_time);
}

static const struct vm_world_ops ft_output_ops = {
	.console_out = ftw_console_out,
	.net_tx = ftw_net_tx,
	.disk_submit = ftw_disk_submit,
	.rng_request = ftw_rng_request,
	.next_event = ftw_next_event,
	.horizon = ftw_horizon,
	.idle = ftw_idle,
};

/* ---- losing the backup ---- */

/* Whether the area decided the pairing's epoch for another node (a backup gone live elsewhere). */
static bool pairing_lost(struct ft_primary *p)
{
	struct arbiter_decision d[32];
	size_t n = 0;
	if (arbiter_decided(p->arb, d, sizeof(d) / sizeof(d[0]), &n))
		return true; /* no answer: no claim is made on doubt */
	for (size_t i = 0; i < n; i++)
		if (d[i].epoch == p->cfg.epoch && d[i].winner != p->cfg.node)
			return true;
	return false;
}

/*
 * The claim of the pairing's epoch was refused because a later epoch is decided (-ESTALE). When
 * this node is the claimant of a later epoch in a live migration's hand-over (ft_primary_judging()),
 * that epoch may be its own: wait for the judgement instead of halting. True when this node won
 * it (ft_primary_supersede()) and nobody won the pairing's epoch: it runs on alone.
 */
static bool await_judgement(struct ft_primary *p)
{
	pthread_mutex_lock(&p->judge_lock);
	uint64_t judging = p->judging;
	if (judging > p->cfg.epoch && atomic_load(&p->superseded) <= p->cfg.epoch)
		diag_warn("the claim of epoch %llu was refused (a later epoch is decided) while this node claims epoch "
			  "%llu in a migration's hand-over: waiting for its judgement",
			  (unsigned long long)p->cfg.epoch, (unsigned long long)judging);
	while (p->judging > p->cfg.epoch && atomic_load(&p->superseded) <= p->cfg.epoch)
		pthread_cond_wait(&p->judge_cond, &p->judge_lock);
	bool won = atomic_load(&p->superseded) > p->cfg.epoch;
	pthread_mutex_unlock(&p->judge_lock);
	return won && !pairing_lost(p);
}

/* Runs in the arbitrating state, which the caller entered with `why` as its reason. */
static void arbitrate(struct ft_primary *p, const char *why)
{
	unsigned winner = 0;
	char msg[300];

	uint64_t later = atomic_load(&p->superseded);
	int ret = ARBITER_WON;
	if (later > p->cfg.epoch)
		diag_warn("%s; this node holds epoch %llu already: running on without a backup", why,
			  (unsigned long long)later);
	else {
		diag_warn("%s; holding outputs and claiming the arbiter for epoch %llu", why,
			  (unsigned long long)p->cfg.epoch);
		ret = arbiter_claim(p->arb, p->cfg.epoch, p->cfg.node, ARBITER_FOREVER, &winner);
		/* Refused because this node won a later epoch (or may have: its judgement is pending):
		 * it runs on all the same once it holds that epoch, and nobody else won this one. */
		if (ret == -ESTALE && await_judgement(p))
			ret = ARBITER_WON;
	}
	if (ret == ARBITER_WON) {
		diag_warn("won the arbiter for epoch %llu: releasing held outputs, running on without a backup",
			 (unsigned long long)p->cfg.epoch);
		struct channel_stats cs = { 0 };
		if (p->ch)
			channel_get_stats(p->ch, &cs);
		if (cs.last_rx_ns)
			atomic_store(&p->last_gap_us, (time_mono_ns() - cs.last_rx_ns) / 1000);
		atomic_fetch_add(&p->failovers, 1);
		ft_state_set(&p->fs, S(ARBITRATING), FT_STATE_ALONE, NULL);
	} else {
		if (ret == ARBITER_LOST)
			snprintf(msg, sizeof(msg), "lost the arbiter for epoch %llu to node %u: halting this VM for good",
				 (unsigned long long)p->cfg.epoch, winner);
		else if (ret == -ESTALE)
			snprintf(msg, sizeof(msg), "a later epoch than %llu is decided, not for this node: halting this "
				 "VM for good (it runs where that epoch went)", (unsigned long long)p->cfg.epoch);
		else
			snprintf(msg, sizeof(msg), "arbiter failed (%s): halting this VM, no claim is made on doubt",
				 arbiter_error(p->arb));
		diag_error("%s", msg);
		ft_state_set(&p->fs, S(ARBITRATING), FT_STATE_HALTED, msg);
	}
	output_rule_kick(p->rule);
}

/* Both events it waits for stay readable once they happened (neither eventfd is read), so the
 * wait needs no timeout: a channel failure or an end of FT cannot be missed. */
static void *monitor_main(void *arg)
{
	struct ft_primary *p = arg;
	struct pollfd pfd[2] = {
		{ .fd = channel_event_fd(p->ch), .events = POLLIN },
		{ .fd = p->monitor_wake_fd, .events = POLLIN },
	};

	for (;;) {
		int n = poll(pfd, 2, -1);
		if (n < 0 && errno != EINTR) {
			diag_error("monitor: poll: %s", strerror(errno));
			return NULL;
		}
		enum ft_role_state s = get_state(p);
		if (s == FT_STATE_DONE || s == FT_STATE_HALTED || s == FT_STATE_ALONE)
			return NULL;
		if (n > 0 && channel_state(p->ch) != CHANNEL_UP) {
			char why[300];
			snprintf(why, sizeof(why), "backup lost: %.250s", channel_error(p->ch));
			if (ft_state_set(&p->fs, S(PROTECTED), FT_STATE_ARBITRATING, why))
				arbitrate(p, why);
			return NULL;
		}
	}
}

int ft_primary_create(const struct ft_primary_config *cfg, struct machine *m, struct vm_world live,
		      struct ft_primary **out, char *err, size_t errlen)
{
	struct ft_primary *p = calloc(1, sizeof(*p));
	char aerr[ARBITER_ERR_MAX];
	int ret;

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->cfg = *cfg;
	snprintf(p->vm_name, sizeof(p->vm_name), "%s", cfg->vm_name);
	snprintf(p->vm_id, sizeof(p->vm_id), "%s", cfg->vm_id);
	snprintf(p->arbiter_path, sizeof(p->arbiter_path), "%s", cfg->arbiter);
	p->cfg.vm_name = p->vm_name;
	p->cfg.vm_id = p->vm_id;
	p->cfg.arbiter = p->arbiter_path;
	p->machine = m;
	p->live = live;
	p->monitor_wake_fd = -1;
	pthread_mutex_init(&p->judge_lock, NULL);
	pthread_cond_init(&p->judge_cond, NULL);
	ret = ft_state_init(&p->fs, "primary", FT_STATE_WAITING);
	if (ret < 0) {
		snprintf(err, errlen, "cannot create the FT state: %s", strerror(-ret));
		pthread_cond_destroy(&p->judge_cond);
		pthread_mutex_destroy(&p->judge_lock);
		free(p);
		return ret;
	}
	p->fs_ready = true;
	p->monitor_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->monitor_wake_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot create the monitor's eventfd: %s", strerror(-ret));
		goto fail;
	}

	ret = arbiter_open(cfg->arbiter, cfg->vm_name, &p->arb, aerr);
	if (ret < 0) {
		snprintf(err, errlen, "arbiter %s: %s", cfg->arbiter, aerr);
		goto fail;
	}
	struct output_gate gate = { .wait = gate_wait, .wait_replayed = gate_wait_replayed, .ctx = p };
	ret = output_rule_create(live, gate, &p->rule);
	if (ret < 0) {
		snprintf(err, errlen, "cannot start the output releaser: %s", strerror(-ret));
		goto fail;
	}
	ret = recorder_create(m, (struct vm_world){ .ops = &ft_output_ops, .ctx = p },
			      (struct recorder_sink){ .append = sink_append, .ctx = p }, &p->rec);
	if (ret < 0) {
		snprintf(err, errlen, "cannot create the recorder: %s", strerror(-ret));
		goto fail;
	}
	ret = recorder_set_disk_reads(p->rec, cfg->replicated_disks ? RECORDER_READS_DIGEST : RECORDER_READS_SHARED);
	if (ret < 0) {
		snprintf(err, errlen, "cannot set up the disk read log: %s", strerror(-ret));
		goto fail;
	}
	*out = p;
	return 0;
fail:
	ft_primary_destroy(p);
	return ret;
}

int ft_primary_dial(const struct ft_primary_config *cfg, struct channel **out, char *err, size_t errlen)
{
	struct channel_err cerr = { 0 };
	struct channel_config cc;

	channel_config_init(&cc);
	cc.vm_id = cfg->vm_id;
	cc.epoch = cfg->epoch;
	cc.start_lsn = 1;
	cc.transport = cfg->rdma ? CHANNEL_RDMA : CHANNEL_TCP;
	cc.key = cfg->key;
	if (cfg->timeout_ms)
		cc.timeout_ms = cfg->timeout_ms;
	if (cfg->heartbeat_ms)
		cc.heartbeat_ms = cfg->heartbeat_ms;
	int ret = channel_connect(&cc, cfg->peer, out, &cerr);
	if (ret < 0)
		snprintf(err, errlen, "cannot connect to the backup at %s: %s", cfg->peer, cerr.msg);
	return ret;
}

int ft_primary_adopt(struct ft_primary *p, struct channel *ch, char *err, size_t errlen)
{
	p->ch = ch;
	ft_state_set(&p->fs, S(WAITING), FT_STATE_PROTECTED, NULL);
	int ret = -pthread_create(&p->monitor, NULL, monitor_main, p);
	if (ret < 0) {
		snprintf(err, errlen, "cannot start the monitor thread: %s", strerror(-ret));
		return ret;
	}
	p->monitor_started = true;
	return 0;
}

int ft_primary_connect(struct ft_primary *p, char *err, size_t errlen)
{
	struct channel *ch;
	int ret = ft_primary_dial(&p->cfg, &ch, err, errlen);
	return ret < 0 ? ret : ft_primary_adopt(p, ch, err, errlen);
}

struct vm_world ft_primary_world(struct ft_primary *p)
{
	return recorder_world(p->rec);
}

int ft_primary_finish(struct ft_primary *p, enum machine_exit exit, int status)
{
	int ret = 0;
	enum ft_role_state s = get_state(p);

	if (s == FT_STATE_HALTED)
		return -ECANCELED;
	ret = recorder_finish(p->rec, exit, status);
	if (ret < 0)
		return ret;
	if (s == FT_STATE_PROTECTED) {
		/* The backup must have the END record before we call the run finished. */
		uint64_t last = atomic_load(&p->last_lsn);
		ret = channel_wait_acked(p->ch, last, (int)(p->cfg.timeout_ms ? p->cfg.timeout_ms * 4 : 4000));
		if (ret < 0 && get_state(p) == FT_STATE_PROTECTED)
			diag_warn("the backup did not acknowledge the end of the log: %s", strerror(-ret));
		if (ret < 0)
			(void)!wait_for_verdict(p);
	}
	if (get_state(p) == FT_STATE_HALTED)
		return -ECANCELED;
	ret = output_rule_drain(p->rule, 10000);
	set_state(p, S(PROTECTED), FT_STATE_DONE);
	const struct shared_reads_stats *sr = recorder_shared_reads_stats(p->rec);
	if (sr)
		diag_info("shared disk: %llu reads logged as digests, %llu with their data; %llu writes waited for the backup's replay",
			  (unsigned long long)sr->digests, (unsigned long long)sr->with_data,
			  (unsigned long long)sr->writes_held);
	return ret;
}

void ft_primary_supersede(struct ft_primary *p, uint64_t epoch)
{
	pthread_mutex_lock(&p->judge_lock);
	atomic_store(&p->superseded, epoch);
	p->judging = 0;
	pthread_cond_broadcast(&p->judge_cond);
	pthread_mutex_unlock(&p->judge_lock);
}

void ft_primary_judging(struct ft_primary *p, uint64_t epoch)
{
	pthread_mutex_lock(&p->judge_lock);
	p->judging = epoch;
	pthread_cond_broadcast(&p->judge_cond);
	pthread_mutex_unlock(&p->judge_lock);
}

int ft_primary_release_outputs(struct ft_primary *p, int timeout_ms)
{
	uint64_t deadline = time_mono_ns() + (uint64_t)timeout_ms * TIME_NS_PER_MS;
	if (get_state(p) == FT_STATE_HALTED)
		return -ECANCELED;
	int ret = output_rule_drain(p->rule, timeout_ms);
	if (ret)
		return get_state(p) == FT_STATE_HALTED ? -ECANCELED : ret;
	/* Then the backup replays all of the log: it reads the shared disk itself for the reads the
	 * log holds as digests, and once this VM runs on another host, that host writes there. */
	uint64_t lsn = atomic_load(&p->last_lsn);
	icount_t icount = atomic_load(&p->last_icount);
	for (;;) {
		enum ft_role_state s = get_state(p);
		if (s == FT_STATE_ALONE)
			return 0;
		if (s == FT_STATE_HALTED)
			return -ECANCELED;
		if (s == FT_STATE_PROTECTED && p->ch && channel_acked_lsn(p->ch) >= lsn && channel_peer_caught_up(p->ch) &&
		    channel_peer_icount(p->ch) >= icount)
			return 0;
		if (time_mono_ns() >= deadline)
			return -ETIMEDOUT;
		ft_state_wait(&p->fs, s == FT_STATE_PROTECTED ? ~S(PROTECTED) : S(ALONE) | S(HALTED), 1);
	}
}

bool ft_primary_wait_alone(struct ft_primary *p, int timeout_ms)
{
	return ft_state_wait(&p->fs, S(ALONE), timeout_ms) == FT_STATE_ALONE;
}

void ft_primary_get_status(struct ft_primary *p, struct ft_status *st)
{
	struct output_rule_stats os = { 0 };
	struct ft_state_snapshot fss;

	memset(st, 0, sizeof(*st));
	ft_state_snapshot(&p->fs, &fss);
	snprintf(st->role, sizeof(st->role), "%s", fss.role);
	st->state = fss.state;
	st->state_ms = fss.state_ms;
	snprintf(st->reason, sizeof(st->reason), "%s", fss.reason);
	st->epoch = p->cfg.epoch;
	st->icount = machine_progress(p->machine);
	st->log_bytes = atomic_load(&p->log_bytes);
	st->log_records = atomic_load(&p->log_records);
	st->last_lsn = atomic_load(&p->last_lsn);
	st->failovers = atomic_load(&p->failovers);
	st->throttled_ms = atomic_load(&p->throttled_ms);
	if (p->ch) {
		st->peer_icount = channel_peer_icount(p->ch);
		st->backup_lag_ms = (double)atomic_load(&p->lag_ns) / 1e6;
		st->acked_lsn = channel_acked_lsn(p->ch);
		snprintf(st->peer_state, sizeof(st->peer_state), "%s", channel_state_name(channel_state(p->ch)));
	}
	if (p->rule) {
		output_rule_get_stats(p->rule, &os);
		st->outputs_held = os.held;
		st->outputs_released = os.released;
		memcpy(st->hold_le, os.hold_le, sizeof(st->hold_le));
		st->hold_count = os.hold_count;
		st->hold_sum_us = os.hold_sum_us;
	}
	st->last_failover_gap_ms = (double)atomic_load(&p->last_gap_us) / 1e3;
}

void ft_primary_destroy(struct ft_primary *p)
{
	if (!p)
		return;
	/* Ends the monitor's watch; an arbitration under way finishes first (joined below), one that
	 * waits for a hand-over's judgement as refused. */
	ft_primary_judging(p, 0);
	if (p->fs_ready)
		set_state(p, S(WAITING) | S(PROTECTED), FT_STATE_DONE);
	if (p->monitor_started)
		pthread_join(p->monitor, NULL);
	if (p->monitor_wake_fd >= 0)
		close(p->monitor_wake_fd);
	output_rule_destroy(p->rule);
	recorder_destroy(p->rec);
	if (p->ch)
		channel_close(p->ch);
	if (p->arb)
		arbiter_close(p->arb);
	if (p->fs_ready)
		ft_state_destroy(&p->fs);
	pthread_cond_destroy(&p->judge_cond);
	pthread_mutex_destroy(&p->judge_lock);
	free(p);
}
