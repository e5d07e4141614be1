/*
 * test_pause.c — machine_pause()/machine_resume() from a control thread while the vCPU runs.
 *
 * Machine A runs the writer guest (writer.c) on its own vCPU thread; the main thread, acting as a
 * snapshot or migration thread would, holds it at pseudo-random wall-clock moments, checks that
 * it stays still while held (icount and RAM digest unchanged over a wait), collects its dirty
 * pages and compares them with the pages that changed since the previous hold, and lets it go.
 * Machine B runs the same guest to the same icount without any of it. Their digests and outputs
 * must be equal: a pause moves no boundary and injects nothing. Also: a hold taken before the run
 * starts keeps the run from executing anything, and machine_pause() on the vCPU thread itself is
 * refused (-EDEADLK). Runs under ThreadSanitizer in scripts/test.
 *
 * Both machines run in a world that caps slices as the live world does (SLICE instructions), so
 * a hold never waits for more than one slice.
 *
 * Usage: test_pause WRITER_ELF
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dirty_check.h"

#define SLICE 20000u
#define END 12000000u
#define MIN_HOLDS 8u

static const char *elf;

/* The script world with slices capped; the first horizon call tries a pause from the vCPU thread. */
struct sliced {
	struct vm_world inner;
	struct machine *m;
	bool tried;
	int self_pause;
};

static void s_console_out(void *ctx, const uint8_t *buf, size_t len)
{
	struct sliced *w = ctx;
	w->inner.ops->console_out(w->inner.ctx, buf, len);
}

static void s_net_tx(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	struct sliced *w = ctx;
	w->inner.ops->net_tx(w->inner.ctx, nic, frame, len);
}

static void s_disk_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	struct sliced *w = ctx;
	w->inner.ops->disk_submit(w->inner.ctx, disk, req);
}

static void s_rng_request(void *ctx, unsigned dev, uint32_t len)
{
	struct sliced *w = ctx;
	w->inner.ops->rng_request(w->inner.ctx, dev, len);
}

static int s_next_event(void *ctx, icount_t now, struct vm_event *ev)
{
	struct sliced *w = ctx;
	return w->inner.ops->next_event(w->inner.ctx, now, ev);
}

static icount_t s_horizon(void *ctx, icount_t now)
{
	struct sliced *w = ctx;
	if (w->m && !w->tried) {
		w->tried = true;
		w->self_pause = machine_pause(w->m);
		if (w->self_pause == 0)
			machine_resume(w->m);
	}
	icount_t h = w->inner.ops->horizon(w->inner.ctx, now);
	return MIN(h, now + SLICE);
}

static int s_idle(void *ctx, icount_t now, icount_t deadline, uint64_t deadline_time)
{
	struct sliced *w = ctx;
	return w->inner.ops->idle(w->inner.ctx, now, deadline, deadline_time);
}

static const struct vm_world_ops sliced_ops = {
	.console_out = s_console_out,
	.net_tx = s_net_tx,
	.disk_submit = s_disk_submit,
	.rng_request = s_rng_request,
	.next_event = s_next_event,
	.horizon = s_horizon,
	.idle = s_idle,
};

struct vcpu {
	struct machine *m;
	struct vm_world world;
	enum machine_exit exit;
	int status;
	atomic_bool done;
};

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	v->exit = machine_run(v->m, v->world, END, &v->status);
	atomic_store(&v->done, true);
	return NULL;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000 };
	nanosleep(&ts, NULL);
}

static void test_pause(void **state)
{
	struct dc_pair p;
	struct dc_tracker t;
	assert_int_equal(dc_pair_create_writer(&p, elf, 5), 0);
	struct machine *a = p.a, *b = p.b;
	struct sliced sa = { .inner = script_world_world(p.wa), .m = a };
	struct sliced sb = { .inner = script_world_world(p.wb) };

	/* Held before the run starts: the run executes nothing until let go. */
	assert_int_equal(machine_pause(a), 0);
	struct vcpu v = { .m = a, .world = { .ops = &sliced_ops, .ctx = &sa } };
	atomic_init(&v.done, false);
	pthread_t thread;
	assert_int_equal(pthread_create(&thread, NULL, vcpu_main, &v), 0);
	sleep_us(20000);
	assert_int_equal(machine_icount(a), 0);
	assert_false(atomic_load(&v.done));
	assert_int_equal(dc_tracker_start(&t, a), 0);
	machine_resume(a);

	uint64_t s = 0x2545f4914f6cdd1dull;
	unsigned holds = 0, moving = 0;
	icount_t last = 0;
	while (!atomic_load(&v.done)) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		sleep_us((unsigned)(s % 3000));
		assert_int_equal(machine_pause(a), 0);
		icount_t at = machine_icount(a);
		uint64_t d = machine_digest(a, true);
		sleep_us(500);
		assert_int_equal(machine_icount(a), at);   /* held still */
		assert_int_equal(machine_digest(a, true), d);
		char why[160];
		if (!dc_tracker_round(&t, why, sizeof(why)))
			fail_msg("hold %u at icount %llu: %s", holds, (unsigned long long)at, why);
		moving += at > last;
		last = at;
		holds++;
		machine_resume(a);
	}
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(v.exit, MACHINE_EXIT_STOP_ICOUNT);
	assert_int_equal(sa.self_pause, -EDEADLK);
	/* A hold with no run in progress returns at once and holds nothing up after. */
	assert_int_equal(machine_pause(a), 0);
	machine_resume(a);
	printf("%u holds, %u of them at a new icount\n", holds, moving);
	assert_true(holds >= MIN_HOLDS);
	assert_true(moving >= MIN_HOLDS / 2);

	int st;
	assert_int_equal(machine_run(b, (struct vm_world){ .ops = &sliced_ops, .ctx = &sb }, END, &st),
			 MACHINE_EXIT_STOP_ICOUNT);
	assert_int_equal(machine_icount(a), machine_icount(b));
	if (machine_digest(a, true) != machine_digest(b, true))
		fail_msg("the held machine's digest differs from the plain run's at icount %u", END);
	assert_int_equal(p.wa->outputs, p.wb->outputs);
	assert_int_equal(p.wa->events, p.wb->events);
	dc_tracker_free(&t);
	dc_pair_destroy(&p);
}

int main(int argc, char **argv)
{
	int code = dc_writer_arg(argc, argv, &elf);
	if (code)
		return code;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pause),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
