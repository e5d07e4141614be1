/*
 * test_lag_clock.c — the primary's icount -> wall-time history that turns the backup's reported
 * icount into a lag in time (primary/lag_clock.h): samples at most once a millisecond, the lag is
 * "how long ago the primary was where the backup is now", a backup ahead of the newest sample is
 * not behind, and one older than the whole history gets the history's span.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "primary/lag_clock.h"

#define MS 1000000ull

static void test_lag_in_time(void **state)
{
	struct lag_clock *lc = calloc(1, sizeof(*lc));
	/* The primary runs 1000 instructions per ms for 100 ms (t = 1 s .. 1.1 s). */
	for (uint64_t ms = 0; ms <= 100; ms++)
		lag_clock_note(lc, 1000 * ms, 1000 * MS + ms * MS);
	uint64_t now = 1100 * MS;
	assert_int_equal(lc->count, 101);
	/* A backup at the primary's newest icount is not behind. */
	assert_true(lag_clock_behind_ns(lc, 100000, now) == 0);
	assert_true(lag_clock_behind_ns(lc, 200000, now) == 0);
	/* 30 ms worth of instructions behind: the primary passed that point 30 ms ago (sample at
	 * 70 ms has icount 70000 == peer, so the first sample past it is 71 ms: 29 ms ago). */
	assert_true(lag_clock_behind_ns(lc, 70000, now) == 29 * MS);
	assert_true(lag_clock_behind_ns(lc, 69500, now) == 30 * MS);
	/* Time goes on while the primary is paused: the same backup icount is further behind. */
	assert_true(lag_clock_behind_ns(lc, 69500, now + 50 * MS) == 80 * MS);
	/* Samples closer than a millisecond, or at an unchanged icount, are not kept. */
	lag_clock_note(lc, 100500, now + MS / 2);
	lag_clock_note(lc, 100000, now + 2 * MS);
	assert_int_equal(lc->count, 101);
	free(lc);
}

static void test_history_wraps(void **state)
{
	struct lag_clock *lc = calloc(1, sizeof(*lc));
	const uint64_t n = 3 * LAG_CLOCK_SAMPLES + 17;
	for (uint64_t i = 1; i <= n; i++)
		lag_clock_note(lc, 10 * i, i * MS);
	uint64_t now = n * MS;
	/* Within the history: exact to the sample. */
	assert_true(lag_clock_behind_ns(lc, 10 * (n - 100), now) == 99 * MS);
	/* Older than the oldest sample held: the span of the history. */
	uint64_t oldest = n - LAG_CLOCK_SAMPLES + 1;
	assert_true(lag_clock_behind_ns(lc, 5, now) == (n - oldest) * MS);
	assert_true(lag_clock_behind_ns(lc, 10 * (oldest - 1), now) == (n - oldest) * MS);
	/* An empty history knows of no lag. */
	struct lag_clock *empty = calloc(1, sizeof(*empty));
	assert_true(lag_clock_behind_ns(empty, 5, now) == 0);
	free(empty);
	free(lc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lag_in_time),
		cmocka_unit_test(test_history_wraps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
