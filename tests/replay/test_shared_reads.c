/*
 * test_shared_reads.c — the shared-disk read rules of replay/shared_reads.h: a read is logged as
 * a digest unless an overlapping write was submitted while it was in flight; a write over a read
 * logged as a digest waits for the backup to replay past that read's icount, and no longer once
 * it has; non-overlapping writes and other disks never wait; past its bounds a read is logged
 * with its data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "replay/shared_reads.h"

static struct vm_disk_request req(uint64_t id, enum vm_disk_op op, uint64_t sector, uint32_t sectors)
{
	return (struct vm_disk_request){ .id = id, .op = op, .sector = sector, .len = sectors * 512 };
}

static void test_rewritten_in_flight_is_logged_with_data(void **state)
{
	struct shared_reads *s;
	assert_int_equal(shared_reads_create(&s), 0);
	struct vm_disk_request r1 = req(1, VM_DISK_READ, 8, 8), r2 = req(2, VM_DISK_READ, 100, 8);
	struct vm_disk_request w = req(3, VM_DISK_WRITE, 15, 1); /* the last sector of r1 */
	assert_int_equal(shared_reads_submit(s, 0, &r1), 0);
	assert_int_equal(shared_reads_submit(s, 0, &r2), 0);
	assert_int_equal(shared_reads_submit(s, 0, &w), 0);      /* nothing logged yet: no wait */
	assert_false(shared_reads_complete(s, 0, 1, true, 1000)); /* r1 rewritten: data */
	assert_true(shared_reads_complete(s, 0, 2, true, 1000));  /* r2 untouched: digest */
	assert_false(shared_reads_complete(s, 0, 3, false, 1000)); /* a write's completion */
	const struct shared_reads_stats *st = shared_reads_get_stats(s);
	assert_int_equal(st->digests, 1);
	assert_int_equal(st->with_data, 1);
	shared_reads_destroy(s);
}

static void test_write_after_digest_waits_for_replay(void **state)
{
	struct shared_reads *s;
	assert_int_equal(shared_reads_create(&s), 0);
	struct vm_disk_request r = req(1, VM_DISK_READ, 64, 8), r2 = req(2, VM_DISK_READ, 64, 1);
	assert_int_equal(shared_reads_submit(s, 0, &r), 0);
	assert_true(shared_reads_complete(s, 0, 1, true, 5000));
	assert_int_equal(shared_reads_submit(s, 0, &r2), 0);
	assert_true(shared_reads_complete(s, 0, 2, true, 7000));
	struct vm_disk_request w = req(3, VM_DISK_WRITE, 60, 5);   /* overlaps sector 64 */
	struct vm_disk_request far = req(4, VM_DISK_WRITE, 72, 8); /* just after the read */
	assert_int_equal(shared_reads_submit(s, 0, &w), 7000);     /* the later of the two reads */
	assert_int_equal(shared_reads_submit(s, 0, &far), 0);
	assert_int_equal(shared_reads_submit(s, 1, &w), 0);        /* another disk */
	struct vm_disk_request flush = req(5, VM_DISK_FLUSH, 0, 0);
	assert_int_equal(shared_reads_submit(s, 0, &flush), 0);
	shared_reads_replayed(s, 5001);                            /* past the first read only */
	assert_int_equal(shared_reads_submit(s, 0, &w), 7000);
	shared_reads_replayed(s, 7000);                            /* at the second: not past it */
	assert_int_equal(shared_reads_submit(s, 0, &w), 7000);
	shared_reads_replayed(s, 7001);
	assert_int_equal(shared_reads_submit(s, 0, &w), 0);
	assert_int_equal(shared_reads_get_stats(s)->writes_held, 3);
	shared_reads_destroy(s);
}

static void test_bounds_fall_back_to_data(void **state)
{
	struct shared_reads *s;
	assert_int_equal(shared_reads_create(&s), 0);
	/* More reads in flight than remembered: the ones not remembered are logged with data. */
	for (uint64_t id = 1; id <= SHARED_READS_MAX_INFLIGHT + 3; id++) {
		struct vm_disk_request r = req(id, VM_DISK_READ, id * 8, 8);
		assert_int_equal(shared_reads_submit(s, 0, &r), 0);
	}
	unsigned digests = 0;
	for (uint64_t id = 1; id <= SHARED_READS_MAX_INFLIGHT + 3; id++)
		digests += shared_reads_complete(s, 0, id, true, id);
	assert_int_equal(digests, SHARED_READS_MAX_INFLIGHT);
	/* More digests than remembered while the backup replays nothing: data again. */
	for (uint64_t id = 5000; digests < SHARED_READS_MAX_RECENT; id++) {
		struct vm_disk_request r = req(id, VM_DISK_READ, 0, 1);
		assert_int_equal(shared_reads_submit(s, 0, &r), 0);
		digests += shared_reads_complete(s, 0, id, true, id);
	}
	struct vm_disk_request r = req(99999, VM_DISK_READ, 0, 1);
	assert_int_equal(shared_reads_submit(s, 0, &r), 0);
	assert_false(shared_reads_complete(s, 0, 99999, true, 99999));
	shared_reads_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rewritten_in_flight_is_logged_with_data),
		cmocka_unit_test(test_write_after_digest_waits_for_replay),
		cmocka_unit_test(test_bounds_fall_back_to_data),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
