/*
 * test_ft_state.c — the FT state machine both roles run (common/ft_state.h): transitions happen
 * only from the states the caller names and only along the documented table; waiters sleep until
 * a state they want is entered (woken by the change, not by a tick) or their timeout passes; of
 * two threads racing for a verdict exactly one wins; the status copy carries the reason and the
 * role a backup takes when it goes live. Run under ThreadSanitizer too (scripts/test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "common/ft_state.h"
#include "util/time.h"

#define S(s) FT_STATE_BIT(FT_STATE_##s)
#define ALL_STATES (FT_STATE_BIT(FT_STATE_DONE + 1) - 1)

static void test_transitions_follow_the_table(void **state)
{
	struct ft_state fs;
	struct ft_state_snapshot snap;

	assert_int_equal(ft_state_init(&fs, "primary", FT_STATE_WAITING), 0);
	/* Not in the from-mask: refused, nothing changes. */
	assert_false(ft_state_set(&fs, S(PROTECTED), FT_STATE_ARBITRATING, "no"));
	assert_int_equal(ft_state_get(&fs), FT_STATE_WAITING);
	/* In the mask but not in the table (waiting cannot jump to alone): refused too. */
	assert_false(ft_state_set(&fs, ALL_STATES, FT_STATE_ALONE, "no"));
	assert_int_equal(ft_state_get(&fs), FT_STATE_WAITING);
	assert_true(ft_state_set(&fs, S(WAITING), FT_STATE_PROTECTED, NULL));
	/* Legal from protected, but the caller asked only from waiting (it lost a race): refused. */
	assert_false(ft_state_set(&fs, S(WAITING), FT_STATE_ARBITRATING, "no"));
	assert_false(ft_state_set(&fs, S(WAITING) | S(ARBITRATING), FT_STATE_DONE, "no"));
	assert_int_equal(ft_state_get(&fs), FT_STATE_PROTECTED);
	assert_true(ft_state_set(&fs, S(PROTECTED), FT_STATE_ARBITRATING, "backup lost: timed out"));
	assert_true(ft_state_set(&fs, S(ARBITRATING), FT_STATE_ALONE, NULL));
	ft_state_snapshot(&fs, &snap);
	assert_int_equal(snap.state, FT_STATE_ALONE);
	assert_int_equal(snap.transitions, 3);
	assert_string_equal(snap.reason, "backup lost: timed out"); /* NULL kept the reason */
	assert_string_equal(snap.role, "primary");
	assert_true(ft_state_set(&fs, S(ALONE), FT_STATE_DONE, NULL));
	/* Final: nothing leaves done or halted, whatever the mask says. */
	for (int to = 0; to <= FT_STATE_DONE; to++) {
		assert_false(ft_state_set(&fs, ALL_STATES, (enum ft_role_state)to, "no"));
		assert_false(ft_state_legal(FT_STATE_HALTED, (enum ft_role_state)to));
	}
	ft_state_snapshot(&fs, &snap);
	assert_int_equal(snap.state, FT_STATE_DONE);
	assert_int_equal(snap.transitions, 4);
	assert_string_equal(snap.reason, "backup lost: timed out");
	ft_state_destroy(&fs);
}

static void test_backup_going_live_reports_primary(void **state)
{
	struct ft_state fs;
	struct ft_state_snapshot snap;

	assert_int_equal(ft_state_init(&fs, "backup", FT_STATE_WAITING), 0);
	assert_true(ft_state_set(&fs, S(WAITING), FT_STATE_PROTECTED, NULL));
	ft_state_snapshot(&fs, &snap);
	assert_string_equal(snap.role, "backup");
	assert_string_equal(snap.reason, "");
	assert_true(ft_state_set(&fs, S(PROTECTED), FT_STATE_ARBITRATING, "primary lost: peer closed"));
	ft_state_snapshot(&fs, &snap);
	assert_string_equal(snap.role, "backup");
	assert_true(ft_state_set(&fs, S(ARBITRATING), FT_STATE_GOING_LIVE, NULL));
	ft_state_snapshot(&fs, &snap);
	assert_string_equal(snap.role, "primary");
	assert_int_equal(snap.state, FT_STATE_GOING_LIVE);
	/* A failed go-live halts with its own reason, and the role stays what it became. */
	assert_true(ft_state_set(&fs, S(GOING_LIVE), FT_STATE_HALTED, "won the arbiter but cannot go live: x"));
	ft_state_snapshot(&fs, &snap);
	assert_string_equal(snap.reason, "won the arbiter but cannot go live: x");
	assert_string_equal(snap.role, "primary");
	ft_state_destroy(&fs);
}

static void test_wait_times_out(void **state)
{
	struct ft_state fs;

	assert_int_equal(ft_state_init(&fs, "primary", FT_STATE_PROTECTED), 0);
	/* Already there: no sleep at all. */
	uint64_t t0 = time_mono_ns();
	assert_int_equal(ft_state_wait(&fs, S(PROTECTED) | S(DONE), 10000), FT_STATE_PROTECTED);
	assert_true(time_mono_ns() - t0 < 1000 * TIME_NS_PER_MS);
	t0 = time_mono_ns();
	assert_int_equal(ft_state_wait(&fs, S(ALONE), 80), -ETIMEDOUT);
	uint64_t took = time_mono_ns() - t0;
	assert_true(took >= 80 * TIME_NS_PER_MS);
	assert_true(took < 2000 * TIME_NS_PER_MS);
	assert_int_equal(ft_state_wait(&fs, S(ALONE), 0), -ETIMEDOUT);
	ft_state_destroy(&fs);
}

struct waiter {
	struct ft_state *fs;
	unsigned mask;
	int timeout_ms;
	int result;
	uint64_t woke_ns;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	w->result = ft_state_wait(w->fs, w->mask, w->timeout_ms);
	w->woke_ns = time_mono_ns();
	return NULL;
}

static void test_waiters_wake_on_the_change(void **state)
{
	enum { N = 4 };
	struct ft_state fs;
	struct waiter w[N + 1];
	pthread_t t[N + 1];

	assert_int_equal(ft_state_init(&fs, "primary", FT_STATE_WAITING), 0);
	for (int i = 0; i < N; i++) {
		w[i] = (struct waiter){ .fs = &fs, .mask = S(ALONE) | S(HALTED) | S(DONE), .timeout_ms = i % 2 ? -1 : 20000 };
		assert_int_equal(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
	}
	/* One that wants a state never entered: the other changes wake it, it sleeps on and times out. */
	w[N] = (struct waiter){ .fs = &fs, .mask = S(GOING_LIVE), .timeout_ms = 300 };
	assert_int_equal(pthread_create(&t[N], NULL, waiter_main, &w[N]), 0);
	usleep(50 * 1000);
	assert_true(ft_state_set(&fs, S(WAITING), FT_STATE_PROTECTED, NULL));
	usleep(20 * 1000);
	assert_true(ft_state_set(&fs, S(PROTECTED), FT_STATE_ARBITRATING, "backup lost"));
	usleep(20 * 1000);
	uint64_t set_ns = time_mono_ns();
	assert_true(ft_state_set(&fs, S(ARBITRATING), FT_STATE_ALONE, NULL));
	for (int i = 0; i <= N; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(w[i].result, FT_STATE_ALONE);
		/* Woken by the change itself: well under any polling tick the old loops used. */
		assert_true(w[i].woke_ns - set_ns < 200 * TIME_NS_PER_MS);
	}
	assert_int_equal(w[N].result, -ETIMEDOUT);
	ft_state_destroy(&fs);
}

struct racer {
	struct ft_state *fs;
	pthread_barrier_t *go;
	enum ft_role_state to;
	bool won;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	pthread_barrier_wait(r->go);
	r->won = ft_state_set(r->fs, S(ARBITRATING), r->to, r->to == FT_STATE_ALONE ? "alone" : "halted");
	return NULL;
}

static void test_one_verdict_wins(void **state)
{
	for (int round = 0; round < 200; round++) {
		struct ft_state fs;
		struct ft_state_snapshot snap;
		pthread_barrier_t go;
		struct racer r[2] = { { .fs = &fs, .go = &go, .to = FT_STATE_ALONE },
				      { .fs = &fs, .go = &go, .to = FT_STATE_HALTED } };
		pthread_t t[2];

		assert_int_equal(ft_state_init(&fs, "primary", FT_STATE_ARBITRATING), 0);
		pthread_barrier_init(&go, NULL, 2);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, racer_main, &r[i]), 0);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_true(r[0].won != r[1].won);
		ft_state_snapshot(&fs, &snap);
		const struct racer *winner = r[0].won ? &r[0] : &r[1];
		assert_int_equal(snap.state, winner->to);
		assert_string_equal(snap.reason, winner->to == FT_STATE_ALONE ? "alone" : "halted");
		assert_int_equal(snap.transitions, 1);
		pthread_barrier_destroy(&go);
		ft_state_destroy(&fs);
	}
}

static void test_state_time(void **state)
{
	struct ft_state fs;
	struct ft_state_snapshot snap;

	assert_int_equal(ft_state_init(&fs, "backup", FT_STATE_WAITING), 0);
	usleep(60 * 1000);
	ft_state_snapshot(&fs, &snap);
	assert_true(snap.state_ms >= 60);
	assert_true(ft_state_set(&fs, S(WAITING), FT_STATE_PROTECTED, NULL));
	ft_state_snapshot(&fs, &snap);
	assert_true(snap.state_ms < 60); /* the clock restarts with the state */
	ft_state_destroy(&fs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transitions_follow_the_table),
		cmocka_unit_test(test_backup_going_live_reports_primary),
		cmocka_unit_test(test_wait_times_out),
		cmocka_unit_test(test_waiters_wake_on_the_change),
		cmocka_unit_test(test_one_verdict_wins),
		cmocka_unit_test(test_state_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
