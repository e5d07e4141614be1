/*
 * test_wall_clock.c — guest time in the live world's wall-clock mode follows wall time even when the
 * vCPU's speed changes abruptly. The test plays the vCPU: it asks the world for events at slice
 * boundaries the way machine_run does, applies every TIME anchor to its own vm_clock as the machine
 * would, and compares that guest time with the wall clock.
 *
 * The case that matters: a vCPU held for a long stretch between two boundaries (an FT primary
 * waiting for its backup's acks, a paused process) and then running at full speed. The world's
 * speed estimate then covers the held stretch; before the rate was bounded, the anchor it produced
 * carried guest time minutes past wall time in the next slice, and the guest's next timer waited
 * those minutes out (an FT test's guest stalled mid-boot that way).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "host/world_live.h"
#include "util/time.h"
#include "vm/clock.h"
#include "vm/event.h"

#define SLICE (1ull << 20)
#define TICKS_PER_MS (CLOCK_TIMEBASE_HZ / 1000)

struct player {
	struct world_live *w;
	struct vm_world world;
	struct vm_clock clock;
	icount_t now;
	uint64_t t0_ns;
	int64_t max_ahead_ms;   /* guest time minus wall time, the most seen */
	unsigned anchors;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static int64_t ahead_ms(const struct player *p)
{
	uint64_t wall = (time_mono_ns() - p->t0_ns) / (1000000000ull / CLOCK_TIMEBASE_HZ);
	uint64_t guest = clock_time_at(&p->clock, p->now);
	return ((int64_t)guest - (int64_t)wall) / (int64_t)TICKS_PER_MS;
}

/* One slice boundary: `insns` more instructions executed, then every pending event taken. */
static void boundary(struct player *p, icount_t insns)
{
	struct vm_event ev;
	p->now += insns;
	while (p->world.ops->next_event(p->world.ctx, p->now, &ev) == 1) {
		assert_int_equal(ev.kind, VM_EV_TIME);
		clock_anchor(&p->clock, ev.icount, ev.time, ev.ticks_per_insn);
		p->anchors++;
	}
	int64_t a = ahead_ms(p);
	if (a > p->max_ahead_ms)
		p->max_ahead_ms = a;
}

static void start(struct player *p)
{
	char err[256];
	int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(null_fd >= 0);
	struct world_live_config cfg = { .clock = WORLD_CLOCK_WALL, .console_in_fd = -1, .console_out_fd = null_fd };
	assert_int_equal(world_live_create(&cfg, &p->w, err, sizeof(err)), 0);
	p->world = world_live_world(p->w);
	clock_init(&p->clock);
	p->t0_ns = time_mono_ns();  /* before the world's own start: its wall time is never ahead of ours */
}

static void test_held_then_full_speed(void **state)
{
	(void)state;
	struct player p = { 0 };
	start(&p);
	/* A steady vCPU: a slice per millisecond. */
	for (int i = 0; i < 100; i++) {
		boundary(&p, SLICE);
		sleep_ms(1);
	}
	/* Held: 400 ms of wall time for a thousand instructions. */
	sleep_ms(400);
	boundary(&p, 1000);
	/* Full speed: slices back to back, far faster than any real vCPU. */
	for (int i = 0; i < 2000; i++)
		boundary(&p, SLICE);
	/* Steady again: guest time must settle back onto wall time. */
	for (int i = 0; i < 300; i++) {
		boundary(&p, SLICE);
		sleep_ms(1);
	}
	int64_t end = ahead_ms(&p);
	printf("anchors %u, guest time at most %lld ms ahead of wall time, %lld ms at the end\n", p.anchors,
	       (long long)p.max_ahead_ms, (long long)end);
	/* At most the correction window (50 ms) of drift, one slice at the fastest rate (50 ms) and the
	 * boundary that notices, plus scheduling noise; the unbounded rate overshot by minutes. */
	assert_true(p.max_ahead_ms <= 160);
	assert_true(end <= 60 && end >= -60);
	world_live_destroy(p.w);
}

/* A vCPU slower than the fastest rate the corrections use still gets wall time: anchors lift it. */
static void test_slow_vcpu_keeps_up(void **state)
{
	(void)state;
	struct player p = { 0 };
	start(&p);
	for (int i = 0; i < 60; i++) {
		boundary(&p, SLICE / 64);   /* 16 K instructions per 5 ms: about 3 M per second */
		sleep_ms(5);
	}
	int64_t end = ahead_ms(&p);
	printf("slow vCPU: %lld ms from wall time after 300 ms, %u anchors\n", (long long)end, p.anchors);
	assert_true(end <= 60 && end >= -60);
	world_live_destroy(p.w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_then_full_speed),
		cmocka_unit_test(test_slow_vcpu_keeps_up),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
