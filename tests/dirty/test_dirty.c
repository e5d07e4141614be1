/*
 * test_dirty.c — dirty-page tracking against the truth, and its invisibility to the guest.
 *
 * The writer guest (writer.c) writes pseudo-random pages every way it can: plain, narrow,
 * compressed and floating-point stores, AMOs, LR/SC, stores across a page boundary, S-mode and
 * MPRV stores through Sv39 (which also set A/D bits in the page table), and virtio-blk reads into
 * RAM. Machine A tracks dirty pages, machine B, built the same, does not; both run in copies of the
 * same deterministic world (tests/state/script_world.h) to the same icounts, in rounds of very
 * different lengths. After every round A's bitmap is compared with a copy of RAM from the
 * previous collection: a page whose bytes changed and is not marked fails the test (a marked
 * page whose bytes did not change is allowed: a store of equal bytes). And after every round A
 * and B must have the same digest (CPU, devices and all of RAM: what the backup's CHECK compares),
 * icount and outputs: tracking changes nothing the guest can see.
 *
 * Usage: test_dirty WRITER_ELF
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dirty_check.h"

#define WARMUP 300000u   /* the writer has set up its queue and page tables by then */
#define ROUNDS 90u

static const char *elf;

static void run_both(struct machine *a, struct script_world *wa, struct machine *b, struct script_world *wb,
		     icount_t stop)
{
	int sa, sb;
	assert_int_equal(machine_run(a, script_world_world(wa), stop, &sa), MACHINE_EXIT_STOP_ICOUNT);
	assert_int_equal(machine_run(b, script_world_world(wb), stop, &sb), MACHINE_EXIT_STOP_ICOUNT);
	assert_int_equal(machine_icount(a), stop);
	assert_int_equal(machine_icount(b), stop);
}

/* Round lengths from one instruction to a million, so that rounds end inside every kind of write. */
static icount_t round_length(uint64_t *s)
{
	static const icount_t lengths[] = { 1, 3, 50, 1000, 20000, 150000, 400000, 1000000 };
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return lengths[*s % 8] + *s % 97;
}

static void test_tracking(void **state)
{
	struct dc_pair p;
	assert_int_equal(dc_pair_create(&p, elf, 11), 0);
	struct machine *a = p.a, *b = p.b;
	struct script_world *wa = p.wa, *wb = p.wb;
	size_t words = machine_dirty_words(a), ram_size;
	uint64_t *bitmap = calloc(words, sizeof(*bitmap));
	assert_non_null(bitmap);

	assert_int_equal(machine_dirty_collect(a, bitmap, words), -EINVAL);  /* not tracking */
	run_both(a, wa, b, wb, WARMUP);
	assert_int_equal(machine_dirty_start(a), 0);
	assert_int_equal(machine_dirty_start(a), -EALREADY);
	assert_int_equal(machine_dirty_collect(a, bitmap, words - 1), -EINVAL);

	const uint8_t *ram = machine_ram_const(a, &ram_size);
	uint8_t *before = malloc(ram_size);
	assert_non_null(before);
	memcpy(before, ram, ram_size);
	uint64_t s = 0x9e3779b97f4a7c15ull;
	size_t changed = 0, marked = 0, rounds_with_changes = 0;
	icount_t at = WARMUP;
	for (unsigned k = 0; k < ROUNDS; k++) {
		at += round_length(&s);
		run_both(a, wa, b, wb, at);
		long n = machine_dirty_collect(a, bitmap, words);
		assert_true(n >= 0);
		struct dc_round r = dc_compare(before, ram, ram_size, bitmap);
		assert_int_equal((size_t)n, r.marked);
		if (r.missed)
			fail_msg("round %u, icount %llu: %zu changed page(s) not marked, the first at guest address 0x%llx",
				 k, (unsigned long long)at, r.missed,
				 (unsigned long long)(0x80000000ull + r.first_missed * DC_PAGE));
		if (machine_digest(a, true) != machine_digest(b, true))
			fail_msg("round %u: icount %llu: digests differ with tracking on", k, (unsigned long long)at);
		assert_int_equal(wa->outputs, wb->outputs);
		assert_int_equal(wa->events, wb->events);
		changed += r.changed;
		marked += r.marked;
		rounds_with_changes += r.changed > 0;
		memcpy(before, ram, ram_size);
	}
	/* Every kind of write ran while tracking. */
	uint64_t counts[DC_KINDS];
	memcpy(counts, ram + DC_COUNTS_OFFSET, sizeof(counts));
	printf("kinds run:");
	for (unsigned i = 0; i < DC_KINDS; i++) {
		printf(" %llu", (unsigned long long)counts[i]);
		assert_true(counts[i] > 0);
	}
	printf("\n%u rounds to icount %llu: %zu pages changed, %zu marked (%.3f marked per changed page)\n", ROUNDS,
	       (unsigned long long)at, changed, marked, changed ? (double)marked / (double)changed : 0.0);
	assert_true(rounds_with_changes > ROUNDS / 2);
	/* Precise enough to be worth having: not every page the hart could reach. */
	assert_true(marked < changed * 2 + ROUNDS * 8);

	machine_dirty_stop(a);
	assert_int_equal(machine_dirty_collect(a, bitmap, words), -EINVAL);
	/* Off again, still the same guest. */
	run_both(a, wa, b, wb, at + 200000);
	assert_int_equal(machine_digest(a, true), machine_digest(b, true));
	free(before);
	free(bitmap);
	dc_pair_destroy(&p);
}

int main(int argc, char **argv)
{
	int code = dc_writer_arg(argc, argv, &elf);
	if (code)
		return code;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tracking),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
