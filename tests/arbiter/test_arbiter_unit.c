/*
 * test_arbiter_unit.c — cmocka unit tests of common/arbiter: basic test-and-set, refusal of bad
 * areas (uninitialised, corrupt, foreign, too small, wrong sector size, unreadable), refusal of stale
 * epochs, the ring of epoch slots, recovery from one torn copy, retries of a failing disk and the
 * deadline. Areas live in the working directory; the sector-level tampering uses the plain-file
 * crash layer so it can address any sector size.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/arbiter.h"
#include "common/arbiter_io.h"
#include "tests/arbiter/crashio.h"

#define VM "unit-vm"
#define AREA "unit-area.img"
#define OTHER_AREA "unit-other.img"
#define SSZ 512u
#define NODES 3u
#define SLOTS 4u
#define TIMEOUT_MS 10000
#define COPIES 2u
#define HEADER_VM_NAME_OFF 40u /* docs/arbiter.md: the VM name field of every sector */

/* Sector indexes from docs/arbiter.md. */
static uint64_t block_sector(unsigned slot, unsigned node, unsigned copy)
{
	return 1u + NODES * COPIES + ((uint64_t)slot * NODES + node) * COPIES + copy;
}

static void format(const char *path, const char *vm, unsigned ssz)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter_io *io;

	unlink(path);
	io = crashio_open(path, ssz, arbiter_area_sectors(NODES, SLOTS), NULL);
	assert_non_null(io);
	assert_int_equal(arbiter_init_io(io, vm, NODES, SLOTS, 0, err), 0);
}

static int open_area(const char *path, unsigned ssz, const char *vm, struct arbiter **a, char *err)
{
	struct arbiter_io *io = crashio_open(path, ssz, 0, NULL);

	assert_non_null(io);
	return arbiter_open_io(io, vm, a, err);
}

static struct arbiter *open_ok(void)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter *a = NULL;

	assert_int_equal(open_area(AREA, SSZ, VM, &a, err), 0);
	return a;
}

static void read_sector(const char *path, unsigned ssz, uint64_t index, uint8_t *buf)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, ssz, (off_t)(index * ssz)), ssz);
	close(fd);
}

static void write_sector(const char *path, unsigned ssz, uint64_t index, const uint8_t *buf)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, ssz, (off_t)(index * ssz)), ssz);
	close(fd);
}

static void flip_byte(const char *path, uint64_t index, unsigned offset)
{
	uint8_t buf[SSZ];

	read_sector(path, SSZ, index, buf);
	buf[offset] ^= 0x5a;
	write_sector(path, SSZ, index, buf);
}

static int claim(struct arbiter *a, uint64_t epoch, unsigned node, unsigned *winner)
{
	return arbiter_claim(a, epoch, node, TIMEOUT_MS, winner);
}

/* The real I/O layer: a file with O_DIRECT|O_DSYNC and 4096-byte sectors. */
static void test_real_file_claims(void **state)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter_decision d[4];
	struct arbiter_info info;
	struct arbiter *a = NULL;
	unsigned winner = 99;
	size_t count = 0;

	unlink(AREA);
	assert_int_equal(arbiter_init(AREA, VM, 2, 0, err), 0);
	assert_int_equal(arbiter_init(AREA, VM, 2, 0, err), -EEXIST);
	assert_int_equal(arbiter_open(AREA, VM, &a, err), 0);
	arbiter_get_info(a, &info);
	assert_string_equal(info.vm_name, VM);
	assert_int_equal(info.nodes, 2);
	assert_int_equal(info.sector_size, 4096);
	assert_int_equal(claim(a, 1, 1, &winner), ARBITER_WON);
	assert_int_equal(winner, 1);
	assert_int_equal(claim(a, 1, 0, &winner), ARBITER_LOST);
	assert_int_equal(winner, 1);
	assert_int_equal(claim(a, 2, 0, &winner), ARBITER_WON);
	assert_int_equal(winner, 0);
	assert_int_equal(arbiter_decided(a, d, 4, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(d[0].epoch, 2);
	assert_int_equal(d[0].winner, 0);
	assert_int_equal(d[1].epoch, 1);
	assert_int_equal(d[1].winner, 1);
	arbiter_close(a);

	/* --force re-formats and forgets */
	assert_int_equal(arbiter_init(AREA, VM, 2, 1, err), 0);
	assert_int_equal(arbiter_open(AREA, VM, &a, err), 0);
	assert_int_equal(arbiter_decided(a, d, 4, &count), 0);
	assert_int_equal(count, 0);
	arbiter_close(a);
	unlink(AREA);
}

static void test_uninitialised_refused(void **state)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter *a = NULL;
	uint8_t junk[SSZ];
	struct arbiter_io *io;

	unlink(AREA);
	io = crashio_open(AREA, SSZ, arbiter_area_sectors(NODES, SLOTS), NULL); /* zeros */
	assert_int_equal(arbiter_open_io(io, VM, &a, err), -ENODATA);
	assert_non_null(strstr(err, "not an initialised"));
	for (unsigned i = 0; i < SSZ; i++)
		junk[i] = (uint8_t)(i * 7 + 3);
	write_sector(AREA, SSZ, 0, junk);
	assert_int_equal(open_area(AREA, SSZ, VM, &a, err), -ENODATA);
	unlink(AREA);
	io = crashio_open(AREA, SSZ, 0, NULL); /* empty */
	assert_int_equal(arbiter_open_io(io, VM, &a, err), -ENODATA);
	unlink(AREA);
}

static void test_corrupt_header_refused(void **state)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter *a = NULL;

	format(AREA, VM, SSZ);
	flip_byte(AREA, 0, HEADER_VM_NAME_OFF + 2);
	assert_int_equal(open_area(AREA, SSZ, NULL, &a, err), -EUCLEAN);
	assert_non_null(strstr(err, "corrupt"));
	unlink(AREA);
}

static void test_wrong_vm_refused(void **state)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter *a = NULL;

	format(AREA, VM, SSZ);
	assert_int_equal(open_area(AREA, SSZ, "another-vm", &a, err), -EMEDIUMTYPE);
	assert_non_null(strstr(err, "belongs to VM 'unit-vm'"));
	assert_int_equal(open_area(AREA, SSZ, NULL, &a, err), 0); /* inspection accepts any VM */
	arbiter_close(a);
	unlink(AREA);
}

static void test_too_small_refused(void **state)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter *a = NULL;
	struct arbiter_io *io;

	format(AREA, VM, SSZ);
	assert_int_equal(truncate(AREA, (off_t)(arbiter_area_sectors(NODES, SLOTS) - 1) * SSZ), 0);
	assert_int_equal(open_area(AREA, SSZ, VM, &a, err), -ENOSPC);
	assert_non_null(strstr(err, "too small"));
	unlink(AREA);

	/* init on a fixed-size device that is too small */
	io = crashio_open(AREA, SSZ, 8, NULL);
	assert_int_equal(arbiter_init_io(io, VM, NODES, SLOTS, 0, err), -ENOSPC);
	unlink(AREA);
}

static void test_sector_size_mismatch_refused(void **state)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter *a = NULL;

	format(AREA, VM, SSZ);
	assert_int_equal(open_area(AREA, 4096, VM, &a, err), -EUCLEAN);
	assert_non_null(strstr(err, "512-byte sectors"));
	unlink(AREA);
}

static void test_unreadable_refused(void **state)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter *a = NULL;

	assert_int_equal(arbiter_open("/nonexistent/arbiter.img", VM, &a, err), -ENOENT);
	assert_int_equal(arbiter_open(".", VM, &a, err), -EISDIR);
}

/* Both copies of a block garbled: doubt, so no claim is granted. */
static void test_corrupt_block_refused(void **state)
{
	struct arbiter *a;
	unsigned winner = 99;

	format(AREA, VM, SSZ);
	flip_byte(AREA, block_sector(1, 2, 0), 200);
	flip_byte(AREA, block_sector(1, 2, 1), 200);
	a = open_ok();
	assert_int_equal(claim(a, 1, 0, &winner), -EUCLEAN);
	assert_int_equal(winner, 99);
	assert_non_null(strstr(arbiter_error(a), "block of node 2 in slot 1 is corrupt"));
	assert_int_equal(claim(a, 2, 0, &winner), ARBITER_WON); /* other slots still work */
	arbiter_close(a);
	unlink(AREA);
}

/* One torn copy (a crash in the middle of a write) leaves the other: the claim goes on. */
static void test_one_torn_copy_tolerated(void **state)
{
	struct arbiter *a;
	unsigned winner = 99;

	format(AREA, VM, SSZ);
	a = open_ok();
	assert_int_equal(claim(a, 1, 1, &winner), ARBITER_WON);
	arbiter_close(a);
	/* node 1's newest block copy (seq 2, phase 2) is copy 0 */
	flip_byte(AREA, block_sector(1, 1, 0), 300);
	a = open_ok();
	assert_int_equal(claim(a, 5, 2, &winner), ARBITER_WON); /* slot 1 again: reads the torn block */
	assert_int_equal(claim(a, 5, 1, &winner), ARBITER_LOST);
	assert_int_equal(winner, 2);
	arbiter_close(a);
	unlink(AREA);
}

/* A sector copied in from another VM's area is refused, not used. */
static void test_foreign_sector_refused(void **state)
{
	char err[ARBITER_ERR_MAX];
	uint8_t buf[SSZ];
	struct arbiter *a;
	unsigned winner = 99;

	format(AREA, VM, SSZ);
	format(OTHER_AREA, "other-vm", SSZ);
	read_sector(OTHER_AREA, SSZ, block_sector(2, 1, 1), buf);
	write_sector(AREA, SSZ, block_sector(2, 1, 1), buf);
	assert_int_equal(open_area(AREA, SSZ, VM, &a, err), 0);
	assert_int_equal(claim(a, 2, 0, &winner), -EMEDIUMTYPE);
	assert_non_null(strstr(arbiter_error(a), "another VM"));
	arbiter_close(a);
	unlink(AREA);
	unlink(OTHER_AREA);
}

static void test_stale_epoch_refused(void **state)
{
	struct arbiter *a;
	unsigned winner = 99;

	format(AREA, VM, SSZ);
	a = open_ok();
	assert_int_equal(claim(a, 5, 1, &winner), ARBITER_WON);
	assert_int_equal(claim(a, 3, 0, &winner), -ESTALE);
	assert_non_null(strstr(arbiter_error(a), "older than epoch 5"));
	assert_int_equal(claim(a, 5, 0, &winner), ARBITER_LOST); /* the decided epoch still answers */
	assert_int_equal(winner, 1);
	assert_int_equal(claim(a, 6, 0, &winner), ARBITER_WON);
	assert_int_equal(claim(a, 5, 2, &winner), -ESTALE);
	arbiter_close(a);
	unlink(AREA);
}

static void test_bad_arguments(void **state)
{
	char err[ARBITER_ERR_MAX];
	struct arbiter *a;
	unsigned winner;

	format(AREA, VM, SSZ);
	a = open_ok();
	assert_int_equal(claim(a, 0, 0, &winner), -EINVAL);
	assert_int_equal(claim(a, 1, NODES, &winner), -EINVAL);
	arbiter_close(a);
	assert_int_equal(arbiter_init_io(crashio_open(AREA, SSZ, 0, NULL), "", 2, 0, 1, err), -EINVAL);
	assert_int_equal(arbiter_init_io(crashio_open(AREA, SSZ, 0, NULL), "a\nb", 2, 0, 1, err), -EINVAL);
	assert_int_equal(arbiter_init_io(crashio_open(AREA, SSZ, 0, NULL), VM, 0, 0, 1, err), -EINVAL);
	assert_int_equal(arbiter_init_io(crashio_open(AREA, SSZ, 0, NULL), VM, ARBITER_MAX_NODES + 1, 0, 1, err),
			 -EINVAL);
	unlink(AREA);
}

/* Many epochs through a ring of SLOTS slots: every answer stays right and the records keep the
 * newest decisions, newest first. */
static void test_slot_ring_and_history(void **state)
{
	struct arbiter_decision d[64];
	struct arbiter *a;
	unsigned winner;
	size_t count = 0;

	format(AREA, VM, SSZ);
	a = open_ok();
	for (uint64_t e = 1; e <= 40; e++) {
		unsigned first = (unsigned)(e % NODES);

		assert_int_equal(claim(a, e, first, &winner), ARBITER_WON);
		for (unsigned n = 0; n < NODES; n++) {
			assert_int_equal(claim(a, e, n, &winner), n == first ? ARBITER_WON : ARBITER_LOST);
			assert_int_equal(winner, first);
		}
	}
	assert_int_equal(arbiter_decided(a, d, 64, &count), 0);
	assert_true(count >= 16);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(d[i].epoch, 40 - i);
		assert_int_equal(d[i].winner, d[i].epoch % NODES);
	}
	arbiter_close(a);
	unlink(AREA);
}

/* The disk fails for a while: the claim waits it out; for ever failing, the deadline ends it. */
static void test_unreachable_disk_retried_then_timeout(void **state)
{
	char err[ARBITER_ERR_MAX];
	struct crash_plan plan = { .fail_from = 3, .fail_count = 6 };
	struct arbiter *a;
	struct timespec t0, t1;
	unsigned winner = 99;
	long ms;

	format(AREA, VM, SSZ);
	assert_int_equal(arbiter_open_io(crashio_open(AREA, SSZ, 0, &plan), VM, &a, err), 0);
	assert_int_equal(claim(a, 1, 2, &winner), ARBITER_WON);
	arbiter_close(a);

	plan.fail_from = 2; /* the header read at open succeeds, then nothing */
	plan.fail_count = 1000000;
	assert_int_equal(arbiter_open_io(crashio_open(AREA, SSZ, 0, &plan), VM, &a, err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(arbiter_claim(a, 1, 0, 300, &winner), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms <= 1000);
	assert_non_null(strstr(arbiter_error(a), "Input/output error"));
	arbiter_close(a);
	unlink(AREA);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_file_claims),
		cmocka_unit_test(test_uninitialised_refused),
		cmocka_unit_test(test_corrupt_header_refused),
		cmocka_unit_test(test_wrong_vm_refused),
		cmocka_unit_test(test_too_small_refused),
		cmocka_unit_test(test_sector_size_mismatch_refused),
		cmocka_unit_test(test_unreadable_refused),
		cmocka_unit_test(test_corrupt_block_refused),
		cmocka_unit_test(test_one_torn_copy_tolerated),
		cmocka_unit_test(test_foreign_sector_refused),
		cmocka_unit_test(test_stale_epoch_refused),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_slot_ring_and_history),
		cmocka_unit_test(test_unreachable_disk_retried_then_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
