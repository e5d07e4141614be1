/*
 * test_mig_converge.c — the pre-copy's stop decision (migrate/mig_converge.h): the expected pause
 * counts the fixed costs (holding the vCPU, the device state, the confirmation) beside the bytes
 * left; the link's rate is the lowest of the recent measurable rounds; rounds too small to
 * measure the link do not override bigger ones; fixed costs above the target still let the
 * migration end once the bytes are few; sizes that would overflow a naive product do not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "migrate/mig_converge.h"

#define MS 1000000ull /* ns */
#define MB 1000000ull /* bytes */

/* A round of @bytes at @mb_per_s MB/s, its last ACK awaited @confirm_ns once written out. */
static void round_at(struct mig_converge *c, uint64_t bytes, uint64_t mb_per_s, uint64_t hold_ns, uint64_t confirm_ns)
{
	mig_converge_round(c, bytes, bytes * 1000000000ull / (mb_per_s * MB), hold_ns);
	mig_converge_confirmed(c, confirm_ns);
}

static void nothing_measured_goes_only_with_nothing_left(void **state)
{
	(void)state;
	struct mig_converge c = { 0 };
	struct mig_converge_verdict v = mig_converge_judge(&c, 4096, 30);
	assert_false(v.go);
	assert_int_equal(v.rate, 0);
	v = mig_converge_judge(&c, 0, 30);
	assert_true(v.go);
	/* A round with nothing to send measures no rate either. */
	mig_converge_round(&c, 0, 5 * MS, 0);
	assert_false(mig_converge_judge(&c, 4096, 30).go);
}

static void bytes_alone_at_the_rate(void **state)
{
	(void)state;
	struct mig_converge c = { 0 };
	round_at(&c, 10 * MB, 5, 0, 0);
	/* 100 KB at 5 MB/s: 20 ms. */
	struct mig_converge_verdict v = mig_converge_judge(&c, 100000, 30);
	assert_int_equal(v.rate, 5 * MB);
	assert_int_equal(v.fixed_us, 0);
	assert_int_equal(v.expected_us, 20000);
	assert_true(v.go);
	/* 200 KB: 40 ms. */
	v = mig_converge_judge(&c, 200000, 30);
	assert_int_equal(v.expected_us, 40000);
	assert_false(v.go);
}

static void fixed_costs_count(void **state)
{
	(void)state;
	struct mig_converge c = { .state_bytes = 25000, .encode_ns = 1 * MS };
	round_at(&c, 10 * MB, 5, 4 * MS, 4500000);
	/* 50 KB of pages + 25 KB of device state at 5 MB/s is 15 ms; hold 4 + encode 1 + two
	 * confirmations of 4.5 = 14. */
	struct mig_converge_verdict v = mig_converge_judge(&c, 50000, 30);
	assert_int_equal(v.fixed_us, 14000);
	assert_int_equal(v.expected_us, 29000);
	assert_true(v.go);
	/* The bytes alone (15 ms) would fit; with the fixed costs 10 KB more do not. */
	v = mig_converge_judge(&c, 60000, 30);
	assert_int_equal(v.expected_us, 31000);
	assert_false(v.go);
	/* The confirmation is the shortest wait seen: a quicker one lets the same bytes go, and a
	 * slower one later (a round's backlog behind its last message) does not take that back. */
	round_at(&c, 10 * MB, 5, 4 * MS, 2500000);
	v = mig_converge_judge(&c, 60000, 30);
	assert_int_equal(v.expected_us, 27000);
	assert_true(v.go);
	round_at(&c, 10 * MB, 5, 4 * MS, 60 * MS);
	assert_int_equal(mig_converge_judge(&c, 60000, 30).expected_us, 27000);
	/* So does a confirmation measured apart from any round (the start of the stream's). */
	mig_converge_confirmed(&c, 500000);
	assert_int_equal(mig_converge_judge(&c, 60000, 30).expected_us, 23000);
	mig_converge_confirmed(&c, 0); /* not measured: nothing changes */
	assert_int_equal(mig_converge_judge(&c, 60000, 30).expected_us, 23000);
}

static void hold_is_the_longest_of_recent_rounds(void **state)
{
	(void)state;
	struct mig_converge c = { 0 };
	round_at(&c, 10 * MB, 5, 12 * MS, 0);
	round_at(&c, 10 * MB, 5, 1 * MS, 0);
	round_at(&c, 10 * MB, 5, 2 * MS, 0);
	assert_int_equal(mig_converge_judge(&c, 0, 30).fixed_us, 12000);
	/* Three rounds later the slow hold has aged out. */
	round_at(&c, 10 * MB, 5, 3 * MS, 0);
	assert_int_equal(mig_converge_judge(&c, 0, 30).fixed_us, 3000);
}

static void rate_is_the_lowest_of_recent_rounds(void **state)
{
	(void)state;
	struct mig_converge c = { 0 };
	round_at(&c, 1 * MB, 4, 0, 0);
	round_at(&c, 1 * MB, 10, 0, 0);
	round_at(&c, 1 * MB, 20, 0, 0);
	/* One fast round does not promise its rate to the stop-and-copy. */
	struct mig_converge_verdict v = mig_converge_judge(&c, 100000, 30);
	assert_int_equal(v.rate, 4 * MB);
	assert_int_equal(v.expected_us, 25000);
	round_at(&c, 1 * MB, 8, 0, 0);
	assert_int_equal(mig_converge_judge(&c, 100000, 30).rate, 8 * MB);
}

static void small_rounds_do_not_measure_the_link(void **state)
{
	(void)state;
	struct mig_converge c = { 0 };
	/* Only small rounds so far: the lowest of them stands for the link. */
	round_at(&c, 32768, 50, 0, 0);
	round_at(&c, 16384, 2, 0, 0);
	assert_int_equal(mig_converge_judge(&c, 4096, 30).rate, 2 * MB);
	/* A measurable round replaces them, and later small ones change nothing. */
	round_at(&c, 4 * MB, 5, 0, 0);
	round_at(&c, 8192, 80, 0, 0);
	assert_int_equal(mig_converge_judge(&c, 4096, 30).rate, 5 * MB);
}

static void fixed_costs_above_the_target(void **state)
{
	(void)state;
	struct mig_converge c = { 0 };
	round_at(&c, 10 * MB, 5, 20 * MS, 20 * MS);
	/* 60 ms before any byte: the target cannot be met, so the bytes get a quarter of it (7.5 ms). */
	struct mig_converge_verdict v = mig_converge_judge(&c, 35000, 30);
	assert_int_equal(v.expected_us, 67000);
	assert_true(v.go);
	v = mig_converge_judge(&c, 40000, 30);
	assert_int_equal(v.expected_us, 68000);
	assert_false(v.go);
	/* The same when the fixed costs leave less than a quarter of the target. */
	struct mig_converge d = { 0 };
	round_at(&d, 10 * MB, 5, 0, 12 * MS);
	assert_true(mig_converge_judge(&d, 35000, 30).go);
	assert_false(mig_converge_judge(&d, 40000, 30).go);
}

static void huge_sizes_do_not_overflow(void **state)
{
	(void)state;
	struct mig_converge c = { 0 };
	mig_converge_round(&c, 1ull << 20, 1000ull * 1000 * MS, 0); /* 1 MiB in 1000 s: 1048 bytes/s */
	struct mig_converge_verdict v = mig_converge_judge(&c, 1ull << 50, 30);
	assert_false(v.go);
	assert_true(v.expected_us > (1ull << 50) / 1049 * 1000000);
	/* A round too fast for its nanoseconds still has a rate. */
	struct mig_converge d = { 0 };
	mig_converge_round(&d, MIG_CONVERGE_MEASURABLE, 1ull << 62, 0);
	assert_true(mig_converge_judge(&d, 1, 30).rate >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(nothing_measured_goes_only_with_nothing_left),
		cmocka_unit_test(bytes_alone_at_the_rate),
		cmocka_unit_test(fixed_costs_count),
		cmocka_unit_test(hold_is_the_longest_of_recent_rounds),
		cmocka_unit_test(rate_is_the_lowest_of_recent_rounds),
		cmocka_unit_test(small_rounds_do_not_measure_the_link),
		cmocka_unit_test(fixed_costs_above_the_target),
		cmocka_unit_test(huge_sizes_do_not_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
