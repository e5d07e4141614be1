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
 * The bundled Linux guest, when built, gets the same treatment from power-on to its self-test's
 * power-off, tracking from the first instruction: OpenSBI, the kernel's page tables, and real
 * drivers for virtio-blk, virtio-net (frames arrive every few million instructions) and
 * virtio-rng.
 *
 * Usage: test_dirty WRITER_ELF GUEST_DIR (either may be missing: its case skips)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dirty_check.h"

#define WARMUP 300000u   /* the writer has set up its queue and page tables by then */
#define ROUNDS 90u

static const char *elf, *guest_dir;

static void run_both(struct dc_pair *p, icount_t stop)
{
	int sa, sb;
	assert_int_equal(machine_run(p->a, script_world_world(p->wa), stop, &sa), MACHINE_EXIT_STOP_ICOUNT);
	assert_int_equal(machine_run(p->b, script_world_world(p->wb), stop, &sb), MACHINE_EXIT_STOP_ICOUNT);
	assert_int_equal(machine_icount(p->a), stop);
	assert_int_equal(machine_icount(p->b), stop);
}

/* After a round: every changed page marked, and nothing the guest could see differs from b. */
static void check_round(struct dc_pair *p, struct dc_tracker *t, const char *what, unsigned k)
{
	char why[160];
	if (!dc_tracker_round(t, why, sizeof(why)))
		fail_msg("%s round %u, icount %llu: %s", what, k, (unsigned long long)machine_icount(p->a), why);
	if (machine_digest(p->a, true) != machine_digest(p->b, true))
		fail_msg("%s round %u, icount %llu: digests differ with tracking on", what, k,
			 (unsigned long long)machine_icount(p->a));
	assert_int_equal(p->wa->outputs, p->wb->outputs);
	assert_int_equal(p->wa->events, p->wb->events);
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
	if (access(elf, R_OK))
		skip();  /* no riscv64-unknown-elf-gcc */
	struct dc_pair p;
	struct dc_tracker t;
	assert_int_equal(dc_pair_create_writer(&p, elf, 11), 0);
	size_t words = machine_dirty_words(p.a);
	uint64_t *bitmap = calloc(words, sizeof(*bitmap));
	assert_non_null(bitmap);

	assert_int_equal(machine_dirty_collect(p.a, bitmap, words), -EINVAL);  /* not tracking */
	run_both(&p, WARMUP);
	assert_int_equal(dc_tracker_start(&t, p.a), 0);
	assert_int_equal(machine_dirty_start(p.a), -EALREADY);
	assert_int_equal(machine_dirty_collect(p.a, bitmap, words - 1), -EINVAL);

	uint64_t s = 0x9e3779b97f4a7c15ull;
	size_t rounds_with_changes = 0;
	icount_t at = WARMUP;
	for (unsigned k = 0; k < ROUNDS; k++) {
		size_t changed = t.changed;
		at += round_length(&s);
		run_both(&p, at);
		check_round(&p, &t, "writer", k);
		rounds_with_changes += t.changed > changed;
	}
	/* Every kind of write ran while tracking. */
	uint64_t counts[DC_KINDS];
	memcpy(counts, t.ram + DC_COUNTS_OFFSET, sizeof(counts));
	printf("kinds run:");
	for (unsigned i = 0; i < DC_KINDS; i++) {
		printf(" %llu", (unsigned long long)counts[i]);
		assert_true(counts[i] > 0);
	}
	printf("\n%u rounds to icount %llu: %zu pages changed, %zu marked (%.3f marked per changed page)\n", ROUNDS,
	       (unsigned long long)at, t.changed, t.marked, t.changed ? (double)t.marked / (double)t.changed : 0.0);
	assert_true(rounds_with_changes > ROUNDS / 2);
	/* Precise enough to be worth having: not every page the hart could reach. */
	assert_true(t.marked < t.changed * 2 + ROUNDS * 8);

	machine_dirty_stop(p.a);
	assert_int_equal(machine_dirty_collect(p.a, bitmap, words), -EINVAL);
	/* Off again, still the same guest. */
	run_both(&p, at + 200000);
	assert_int_equal(machine_digest(p.a, true), machine_digest(p.b, true));
	free(bitmap);
	dc_tracker_free(&t);
	dc_pair_destroy(&p);
}

#define LINUX_ROUND 3000000u
#define LINUX_MAX_ROUNDS 200u

static void test_linux(void **state)
{
	char paths[3][4096];
	snprintf(paths[0], sizeof(paths[0]), "%s/Image", guest_dir);
	snprintf(paths[1], sizeof(paths[1]), "%s/fw_dynamic.bin", guest_dir);
	snprintf(paths[2], sizeof(paths[2]), "%s/initramfs.cpio", guest_dir);
	for (unsigned i = 0; i < 3; i++)
		if (access(paths[i], R_OK))
			skip();
	struct machine_config mc = { .kernel = paths[0], .bios = paths[1], .initrd = paths[2],
				     .append = "console=ttyS0 panic=1 ftvm.workload=selftest", .mem_mib = 128,
				     .ndisks = 1, .disk_bytes = { 16ull << 20 }, .nnics = 1, .rng = true };
	memcpy(mc.nic_mac[0], "\x52\x54\x00\x12\x34\x56", 6);
	struct dc_pair p;
	struct dc_tracker t;
	assert_int_equal(dc_pair_create(&p, &mc, 3, 3000000), 0);
	assert_int_equal(dc_tracker_start(&t, p.a), 0);
	unsigned k;
	enum machine_exit ea = MACHINE_EXIT_STOP_ICOUNT;
	for (k = 0; k < LINUX_MAX_ROUNDS && ea == MACHINE_EXIT_STOP_ICOUNT; k++) {
		icount_t stop = (icount_t)(k + 1) * LINUX_ROUND + k * 7919u % 1000u;
		int sa, sb;
		ea = machine_run(p.a, script_world_world(p.wa), stop, &sa);
		enum machine_exit eb = machine_run(p.b, script_world_world(p.wb), stop, &sb);
		assert_int_equal(ea, eb);
		assert_int_equal(sa, sb);
		assert_int_equal(machine_icount(p.a), machine_icount(p.b));
		check_round(&p, &t, "Linux", k);
	}
	printf("Linux: %u rounds to icount %llu (%s): %zu pages changed, %zu marked (%.3f per changed page)\n", k,
	       (unsigned long long)machine_icount(p.a), ea == MACHINE_EXIT_POWEROFF ? "power-off" : "still running",
	       t.changed, t.marked, t.changed ? (double)t.marked / (double)t.changed : 0.0);
	assert_int_equal(ea, MACHINE_EXIT_POWEROFF);
	assert_true(t.changed > 1000);
	dc_tracker_free(&t);
	dc_pair_destroy(&p);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s WRITER_ELF GUEST_DIR\n", argv[0]);
		return 2;
	}
	elf = argv[1];
	guest_dir = argv[2];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tracking),
		cmocka_unit_test(test_linux),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
