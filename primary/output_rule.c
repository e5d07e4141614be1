/*
 * output_rule.c — held outputs and their releaser thread (see output_rule.h).
 *
 * The queue is liburcu's wait-free concurrent queue: the vCPU enqueues without a lock; only the
 * releaser dequeues. The releaser sleeps on an eventfd when the queue is empty and otherwise waits
 * in the gate for the head's LSN, so an acknowledgment releases the output without another hop.
 *
 * A thread that waits for held outputs to leave — the vCPU when the held bytes reach their bound,
 * a drain at the end of a run — sleeps on the `progress` condition; the releaser signals it after
 * each output it finishes, and only when someone announced a wait (`progress_waiters`), so the
 * common path takes no lock. The waiter announces itself before it checks, the releaser updates
 * the counts before it looks for waiters: one of the two always sees the other.
 */
#define DIAG_MODULE "output"
#include "primary/output_rule.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <urcu/wfcqueue.h>

#include "util/diag.h"
#include "util/time.h"

/* liburcu's queue publishes a node with its own atomics (inline assembly), which ThreadSanitizer
 * cannot see: tell it that enqueueing a held output happens before the releaser reads it. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define HANDOFF_RELEASE(p) __tsan_release(p)
#define HANDOFF_ACQUIRE(p) __tsan_acquire(p)
#else
#define HANDOFF_RELEASE(p) ((void)(p))
#define HANDOFF_ACQUIRE(p) ((void)(p))
#endif

enum held_kind { HELD_CONSOLE, HELD_NET, HELD_DISK };

struct held_output {
	struct cds_wfcq_node node;
	uint64_t lsn;
	icount_t replayed_past;     /* also wait until the backup replayed past this icount (0: no) */
	uint64_t held_at_ns;
	enum held_kind kind;
	unsigned device;
	struct vm_disk_request req; /* HELD_DISK; req.data points at data[] for writes */
	size_t len;
	uint8_t data[];
};

struct output_rule {
	struct vm_world live;
	struct output_gate gate;
	struct cds_wfcq_head head;
	struct cds_wfcq_tail tail;
	int wake_fd;
	atomic_bool stopping;
	atomic_bool releaser_sleeping;
	atomic_uint_fast64_t held, held_bytes, released, dropped, max_wait_us;
	atomic_uint_fast64_t hold_bucket[FT_HOLD_BUCKETS + 1];   /* per bucket, the last beyond 1 s */
	atomic_uint_fast64_t hold_sum_us;
	pthread_mutex_t progress_lock;
	pthread_cond_t progress;      /* an output left the queue, or the rule stops (CLOCK_MONOTONIC) */
	atomic_uint progress_waiters;
	pthread_t releaser;
};

/* A waiter re-checks at least this often: a bound on any wait, not the way it is woken. */
#define PROGRESS_WAIT_MAX_MS 1000

static void wake(struct output_rule *rule)
{
	uint64_t one = 1;
	if (write(rule->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		DIAG_RATELIMITED(DIAG_WARN, "cannot wake the releaser: %s", strerror(errno));
}

static void perform(struct output_rule *rule, struct held_output *o)
{
	const struct vm_world_ops *ops = rule->live.ops;
	switch (o->kind) {
	case HELD_CONSOLE:
		ops->console_out(rule->live.ctx, o->data, o->len);
		break;
	case HELD_NET:
		ops->net_tx(rule->live.ctx, o->device, o->data, o->len);
		break;
	case HELD_DISK:
		ops->disk_submit(rule->live.ctx, o->device, &o->req);
		break;
	}
}

static void finish(struct output_rule *rule, struct held_output *o, bool performed)
{
	uint64_t waited_us = (time_mono_ns() - o->held_at_ns) / 1000;
	if (performed) {
		atomic_fetch_add(&rule->released, 1);
		uint64_t max = atomic_load(&rule->max_wait_us);
		while (waited_us > max && !atomic_compare_exchange_weak(&rule->max_wait_us, &max, waited_us))
			;
		size_t b = 0;
		while (b < FT_HOLD_BUCKETS && waited_us > ft_hold_bucket_us[b])
			b++;
		atomic_fetch_add(&rule->hold_bucket[b], 1);
		atomic_fetch_add(&rule->hold_sum_us, waited_us);
	} else {
		atomic_fetch_add(&rule->dropped, 1);
	}
	atomic_fetch_sub(&rule->held_bytes, o->len);
	atomic_fetch_sub(&rule->held, 1);
	free(o);
	if (atomic_load(&rule->progress_waiters) > 0) {
		pthread_mutex_lock(&rule->progress_lock);
		pthread_cond_broadcast(&rule->progress);
		pthread_mutex_unlock(&rule->progress_lock);
	}
}

/* Sleeps until done(rule) or the monotonic deadline_ns passes; returns done(rule). */
static bool wait_progress(struct output_rule *rule, bool (*done)(struct output_rule *, size_t), size_t arg,
			  uint64_t deadline_ns)
{
	if (done(rule, arg))
		return true;
	pthread_mutex_lock(&rule->progress_lock);
	atomic_fetch_add(&rule->progress_waiters, 1);
	for (;;) {
		if (done(rule, arg))
			break;
		uint64_t now = time_mono_ns();
		if (now >= deadline_ns)
			break;
		uint64_t t = now + PROGRESS_WAIT_MAX_MS * TIME_NS_PER_MS;
		if (t > deadline_ns)
			t = deadline_ns;
		struct timespec until = time_mono_timespec(t);
		pthread_cond_timedwait(&rule->progress, &rule->progress_lock, &until);
	}
	atomic_fetch_sub(&rule->progress_waiters, 1);
	pthread_mutex_unlock(&rule->progress_lock);
	return done(rule, arg);
}

static void *releaser_main(void *arg)
{
	struct output_rule *rule = arg;

	while (!atomic_load(&rule->stopping)) {
		struct cds_wfcq_node *n = __cds_wfcq_first_nonblocking(&rule->head, &rule->tail);
		if (n == NULL || n == CDS_WFCQ_WOULDBLOCK) {
			atomic_store(&rule->releaser_sleeping, true);
			/* Re-check after announcing sleep, so an enqueue in between is not missed. */
			if (cds_wfcq_empty(&rule->head, &rule->tail)) {
				struct pollfd p = { .fd = rule->wake_fd, .events = POLLIN };
				if (poll(&p, 1, 100) > 0) {
					uint64_t v;
					(void)!read(rule->wake_fd, &v, sizeof(v));
				}
			}
			atomic_store(&rule->releaser_sleeping, false);
			continue;
		}
		struct held_output *o = caa_container_of(n, struct held_output, node);
		HANDOFF_ACQUIRE(o);
		int ret = rule->gate.wait(rule->gate.ctx, o->lsn, 50);
		if (ret == 0 && o->replayed_past && rule->gate.wait_replayed)
			ret = rule->gate.wait_replayed(rule->gate.ctx, o->replayed_past, 50);
		if (ret == -ETIMEDOUT)
			continue;
		n = __cds_wfcq_dequeue_blocking(&rule->head, &rule->tail);
		o = caa_container_of(n, struct held_output, node);
		if (ret == 0)
			perform(rule, o);
		finish(rule, o, ret == 0);
	}
	return NULL;
}

static int init_progress(struct output_rule *rule)
{
	int ret = time_cond_init(&rule->progress);
	if (ret < 0)
		return ret;
	ret = -pthread_mutex_init(&rule->progress_lock, NULL);
	if (ret < 0)
		pthread_cond_destroy(&rule->progress);
	return ret;
}

int output_rule_create(struct vm_world live, struct output_gate gate, struct output_rule **out)
{
	struct output_rule *rule = calloc(1, sizeof(*rule));
	int ret;

	if (!rule)
		return -ENOMEM;
	rule->live = live;
	rule->gate = gate;
	cds_wfcq_init(&rule->head, &rule->tail);
	rule->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rule->wake_fd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = init_progress(rule);
	if (ret < 0)
		goto fail_fd;
	ret = -pthread_create(&rule->releaser, NULL, releaser_main, rule);
	if (ret < 0)
		goto fail_progress;
	*out = rule;
	return 0;
fail_progress:
	pthread_cond_destroy(&rule->progress);
	pthread_mutex_destroy(&rule->progress_lock);
fail_fd:
	close(rule->wake_fd);
fail:
	cds_wfcq_destroy(&rule->head, &rule->tail);
	free(rule);
	return ret;
}

void output_rule_destroy(struct output_rule *rule)
{
	if (!rule)
		return;
	atomic_store(&rule->stopping, true);
	wake(rule);
	pthread_mutex_lock(&rule->progress_lock);
	pthread_cond_broadcast(&rule->progress);
	pthread_mutex_unlock(&rule->progress_lock);
	pthread_join(rule->releaser, NULL);
	struct cds_wfcq_node *n;
	while ((n = __cds_wfcq_dequeue_blocking(&rule->head, &rule->tail)) != NULL)
		finish(rule, caa_container_of(n, struct held_output, node), false);
	pthread_cond_destroy(&rule->progress);
	pthread_mutex_destroy(&rule->progress_lock);
	close(rule->wake_fd);
	cds_wfcq_destroy(&rule->head, &rule->tail);
	free(rule);
}

/* Whether `len` more bytes may be held: within the bound, or nothing held (one output of any
 * size may wait alone), or the rule stops. */
static bool has_room(struct output_rule *rule, size_t len)
{
	return atomic_load(&rule->held_bytes) + len <= OUTPUT_RULE_MAX_HELD_BYTES || atomic_load(&rule->held) == 0 ||
	       atomic_load(&rule->stopping);
}

static bool nothing_held(struct output_rule *rule, size_t unused)
{
	(void)unused;
	return atomic_load(&rule->held) == 0;
}

static void hold(struct output_rule *rule, struct held_output *o)
{
	/* Bounded memory: the producer waits while too much is held, until the releaser makes room
	 * (it always does: outputs leave on acknowledgment, or are dropped when this node halts). */
	wait_progress(rule, has_room, o->len, UINT64_MAX);
	o->held_at_ns = time_mono_ns();
	cds_wfcq_node_init(&o->node);
	atomic_fetch_add(&rule->held, 1);
	atomic_fetch_add(&rule->held_bytes, o->len);
	HANDOFF_RELEASE(o);
	cds_wfcq_enqueue(&rule->head, &rule->tail, &o->node);
	if (atomic_load(&rule->releaser_sleeping))
		wake(rule);
}

static struct held_output *held_new(uint64_t lsn, enum held_kind kind, unsigned device, const void *data, size_t len)
{
	struct held_output *o = malloc(sizeof(*o) + len);
	if (!o) {
		DIAG_RATELIMITED(DIAG_ERROR, "out of memory holding an output of %zu bytes", len);
		return NULL;
	}
	o->lsn = lsn;
	o->replayed_past = 0;
	o->kind = kind;
	o->device = device;
	o->len = len;
	if (len)
		memcpy(o->data, data, len);
	return o;
}

void output_rule_console(struct output_rule *rule, uint64_t lsn, const uint8_t *buf, size_t len)
{
	struct held_output *o = held_new(lsn, HELD_CONSOLE, 0, buf, len);
	if (o)
		hold(rule, o);
}

void output_rule_net(struct output_rule *rule, uint64_t lsn, unsigned nic, const uint8_t *frame, size_t len)
{
	struct held_output *o = held_new(lsn, HELD_NET, nic, frame, len);
	if (o)
		hold(rule, o);
}

void output_rule_disk(struct output_rule *rule, uint64_t lsn, unsigned disk, const struct vm_disk_request *req)
{
	output_rule_disk_after(rule, lsn, 0, disk, req);
}

void output_rule_disk_after(struct output_rule *rule, uint64_t lsn, icount_t replayed_past, unsigned disk,
			    const struct vm_disk_request *req)
{
	size_t len = req->op == VM_DISK_WRITE ? req->len : 0;
	struct held_output *o = held_new(lsn, HELD_DISK, disk, req->data, len);
	if (!o)
		return;
	o->replayed_past = replayed_past;
	o->req = *req;
	o->req.data = len ? o->data : NULL;
	hold(rule, o);
}

int output_rule_drain(struct output_rule *rule, int timeout_ms)
{
	uint64_t deadline = time_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * TIME_NS_PER_MS;
	return wait_progress(rule, nothing_held, 0, deadline) ? 0 : -ETIMEDOUT;
}

void output_rule_kick(struct output_rule *rule)
{
	wake(rule);
}

void output_rule_get_stats(struct output_rule *rule, struct output_rule_stats *st)
{
	st->held = atomic_load(&rule->held);
	st->held_bytes = atomic_load(&rule->held_bytes);
	st->released = atomic_load(&rule->released);
	st->dropped = atomic_load(&rule->dropped);
	st->max_wait_us = atomic_load(&rule->max_wait_us);
	/* Cumulative from one load of each bucket, so the histogram read is consistent in itself. */
	uint64_t n = 0;
	for (size_t b = 0; b < FT_HOLD_BUCKETS; b++)
		st->hold_le[b] = n += atomic_load(&rule->hold_bucket[b]);
	st->hold_count = n + atomic_load(&rule->hold_bucket[FT_HOLD_BUCKETS]);
	st->hold_sum_us = atomic_load(&rule->hold_sum_us);
}
