/*
 * test_output_rule.c — the Output Rule with a scripted gate and a recording live world: nothing
 * leaves before the gate passes its LSN, outputs leave in the order produced (reads behind writes),
 * a write over a read the backup has not replayed also waits for its replay,
 * a halted node drops what it held, and memory stays bounded: past the bound the producer sleeps
 * until an output leaves, and a drain waits for the last one or gives up at its timeout.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "primary/output_rule.h"

/* The gate: outputs up to `acked` may leave; `cancel` makes every wait answer -ECANCELED. */
static atomic_uint_fast64_t acked;
static atomic_bool cancel;

static int gate_wait(void *ctx, uint64_t lsn, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited++) {
		if (atomic_load(&cancel))
			return -ECANCELED;
		if (atomic_load(&acked) >= lsn)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

/* How far the backup's replay has gone, for writes over reads it has yet to replay. */
static atomic_uint_fast64_t replayed;

static int gate_wait_replayed(void *ctx, icount_t icount, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited++) {
		if (atomic_load(&cancel))
			return -ECANCELED;
		if (atomic_load(&replayed) > icount)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

/* The live world records what it was asked to do. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char performed[64][32];
static unsigned nperformed;

static void note(const char *what)
{
	pthread_mutex_lock(&log_lock);
	if (nperformed < 64)
		snprintf(performed[nperformed++], sizeof(performed[0]), "%s", what);
	pthread_mutex_unlock(&log_lock);
}

static unsigned count_performed(void)
{
	pthread_mutex_lock(&log_lock);
	unsigned n = nperformed;
	pthread_mutex_unlock(&log_lock);
	return n;
}

static void w_console(void *ctx, const uint8_t *buf, size_t len)
{
	char s[32];
	snprintf(s, sizeof(s), "con:%.*s", (int)len, (const char *)buf);
	note(s);
}

static void w_net(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	char s[32];
	snprintf(s, sizeof(s), "net%u:%zu", nic, len);
	note(s);
}

static void w_disk(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	char s[32];
	snprintf(s, sizeof(s), "disk%u:%s:%llu", disk, req->op == VM_DISK_WRITE ? "w" : "r",
		 (unsigned long long)req->id);
	note(s);
	if (req->op == VM_DISK_WRITE)
		assert_int_equal(req->data[0], 0xab); /* the held copy, not the caller's buffer */
}

static const struct vm_world_ops live_ops = { .console_out = w_console, .net_tx = w_net, .disk_submit = w_disk };

static int reset(void **state)
{
	atomic_store(&acked, 0);
	atomic_store(&replayed, 0);
	atomic_store(&cancel, false);
	nperformed = 0;
	return 0;
}

static void wait_performed(unsigned n)
{
	for (int i = 0; i < 2000 && count_performed() < n; i++)
		usleep(1000);
}

static void test_nothing_leaves_before_ack(void **state)
{
	struct output_rule *rule;
	struct output_rule_stats st;
	assert_int_equal(output_rule_create((struct vm_world){ .ops = &live_ops },
					    (struct output_gate){ .wait = gate_wait }, &rule), 0);
	output_rule_console(rule, 5, (const uint8_t *)"a", 1);
	uint8_t frame[60] = { 0 };
	output_rule_net(rule, 7, 0, frame, sizeof(frame));
	usleep(100000);
	assert_int_equal(count_performed(), 0);
	output_rule_get_stats(rule, &st);
	assert_int_equal(st.held, 2);
	atomic_store(&acked, 5);
	wait_performed(1);
	usleep(50000);
	assert_int_equal(count_performed(), 1); /* the frame (lsn 7) still waits */
	assert_string_equal(performed[0], "con:a");
	atomic_store(&acked, 7);
	wait_performed(2);
	assert_string_equal(performed[1], "net0:60");
	assert_int_equal(output_rule_drain(rule, 1000), 0);
	output_rule_get_stats(rule, &st);
	assert_int_equal(st.released, 2);
	assert_int_equal(st.held, 0);
	output_rule_destroy(rule);
}

static void test_order_kept_reads_behind_writes(void **state)
{
	struct output_rule *rule;
	uint8_t data[512];
	memset(data, 0xab, sizeof(data));
	assert_int_equal(output_rule_create((struct vm_world){ .ops = &live_ops },
					    (struct output_gate){ .wait = gate_wait }, &rule), 0);
	struct vm_disk_request w = { .id = 1, .op = VM_DISK_WRITE, .sector = 0, .len = 512, .data = data };
	struct vm_disk_request r = { .id = 2, .op = VM_DISK_READ, .sector = 0, .len = 512 };
	output_rule_disk(rule, 10, 0, &w);
	memset(data, 0, sizeof(data)); /* the guest reuses its buffer: the held copy must not change */
	output_rule_disk(rule, 0, 0, &r); /* a read produced later, needing no ack, still waits its turn */
	usleep(50000);
	assert_int_equal(count_performed(), 0);
	atomic_store(&acked, 10);
	wait_performed(2);
	assert_string_equal(performed[0], "disk0:w:1");
	assert_string_equal(performed[1], "disk0:r:2");
	output_rule_destroy(rule);
}

/* A write that must also wait for the backup's replay (shared disk, replay/shared_reads.h): the
 * ack alone does not release it, nor what was produced after it; the replay passing does. */
static void test_write_waits_for_replay(void **state)
{
	struct output_rule *rule;
	uint8_t data[512];
	memset(data, 0xab, sizeof(data));
	assert_int_equal(output_rule_create((struct vm_world){ .ops = &live_ops },
					    (struct output_gate){ .wait = gate_wait, .wait_replayed = gate_wait_replayed },
					    &rule), 0);
	struct vm_disk_request w = { .id = 3, .op = VM_DISK_WRITE, .sector = 8, .len = 512, .data = data };
	output_rule_disk_after(rule, 4, 5000, 0, &w);
	output_rule_console(rule, 4, (const uint8_t *)"b", 1);
	atomic_store(&acked, 4);
	atomic_store(&replayed, 5000); /* at the read's icount, not past it */
	usleep(100000);
	assert_int_equal(count_performed(), 0);
	atomic_store(&replayed, 5001);
	wait_performed(2);
	assert_int_equal(count_performed(), 2);
	assert_string_equal(performed[0], "disk0:w:3");
	assert_string_equal(performed[1], "con:b");
	output_rule_destroy(rule);
}

static void test_halt_drops_held_outputs(void **state)
{
	struct output_rule *rule;
	struct output_rule_stats st;
	assert_int_equal(output_rule_create((struct vm_world){ .ops = &live_ops },
					    (struct output_gate){ .wait = gate_wait }, &rule), 0);
	for (int i = 0; i < 5; i++)
		output_rule_console(rule, 100 + (uint64_t)i, (const uint8_t *)"x", 1);
	atomic_store(&cancel, true);
	output_rule_kick(rule);
	assert_int_equal(output_rule_drain(rule, 2000), 0);
	output_rule_get_stats(rule, &st);
	assert_int_equal(st.dropped, 5);
	assert_int_equal(st.released, 0);
	assert_int_equal(count_performed(), 0);
	output_rule_destroy(rule);
}

/* Past OUTPUT_RULE_MAX_HELD_BYTES the producer sleeps until an output leaves, then goes on; a
 * drain waits for the last one (and gives up at its timeout while the gate stays shut). The
 * outputs are small so that freeing one is quick even under ThreadSanitizer. */
#define SMALL_OUTPUT (1u << 20)
#define FIT (OUTPUT_RULE_MAX_HELD_BYTES / SMALL_OUTPUT)

struct producer {
	struct output_rule *rule;
	const uint8_t *frame;
	atomic_uint produced;
};

static void *produce(void *arg)
{
	struct producer *pr = arg;
	for (uint64_t lsn = 1; lsn <= FIT + 1; lsn++) {
		output_rule_net(pr->rule, lsn, 0, pr->frame, SMALL_OUTPUT);
		atomic_fetch_add(&pr->produced, 1);
	}
	return NULL;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void test_bound_pauses_the_producer(void **state)
{
	struct output_rule *rule;
	struct output_rule_stats st;
	struct timespec t0;
	pthread_t t;
	uint8_t *frame = calloc(1, SMALL_OUTPUT);
	assert_non_null(frame);
	assert_int_equal(output_rule_create((struct vm_world){ .ops = &live_ops },
					    (struct output_gate){ .wait = gate_wait }, &rule), 0);
	struct producer pr = { .rule = rule, .frame = frame };
	assert_int_equal(pthread_create(&t, NULL, produce, &pr), 0);
	/* FIT outputs fill the bound; the next one waits for room. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (atomic_load(&pr.produced) < FIT && ms_since(&t0) < 20000)
		usleep(1000);
	usleep(200000);
	unsigned before = atomic_load(&pr.produced);
	output_rule_get_stats(rule, &st);
	int drained = output_rule_drain(rule, 100);
	/* One output leaves: its release must wake the producer at once. A missed wake-up would
	 * leave it to the waiters' 1 s re-check, about 700 ms from now. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	atomic_store(&acked, 1);
	while (atomic_load(&pr.produced) < FIT + 1 && ms_since(&t0) < 5000)
		usleep(1000);
	long resumed_ms = ms_since(&t0);
	unsigned after = atomic_load(&pr.produced);
	atomic_store(&acked, FIT + 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(before, FIT);
	assert_int_equal(st.held_bytes, (uint64_t)FIT * SMALL_OUTPUT);
	assert_int_equal(drained, -ETIMEDOUT);
	assert_int_equal(after, FIT + 1);
	if (resumed_ms >= 400)
		fail_msg("the producer resumed %ld ms after room was made", resumed_ms);
	assert_int_equal(output_rule_drain(rule, 10000), 0);
	output_rule_get_stats(rule, &st);
	assert_int_equal(st.released, FIT + 1);
	assert_int_equal(st.held_bytes, 0);
	output_rule_destroy(rule);
	free(frame);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_nothing_leaves_before_ack, reset),
		cmocka_unit_test_setup(test_order_kept_reads_behind_writes, reset),
		cmocka_unit_test_setup(test_write_waits_for_replay, reset),
		cmocka_unit_test_setup(test_halt_drops_held_outputs, reset),
		cmocka_unit_test_setup(test_bound_pauses_the_producer, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
