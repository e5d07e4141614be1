/*
 * test_replica_mark.c — the pairing mark beside a replica file (migrate/replica_mark.h): what is
 * written reads back; a missing mark, one that is a symlink, a FIFO, of another owner, of another
 * size, with a bad CRC, magic or name length is refused with a reason and never used; a planted
 * symlink at the temporary name is not followed when writing; NBD replicas and devices have none.
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
#include <unistd.h>

#include <cmocka.h>

#include "migrate/replica_mark.h"

static char dir[64], replica[128], mark[160];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ftvm-mark-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(replica, sizeof(replica), "%s/disk.img", dir);
	snprintf(mark, sizeof(mark), "%s%s", replica, REPLICA_MARK_SUFFIX);
	int fd = open(replica, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_good(void)
{
	struct replica_mark mk = { .epoch = 7, .disk_size = 64u << 20, .disk = 1 };
	char why[400];
	snprintf(mk.name, sizeof(mk.name), "kv-test");
	assert_int_equal(replica_mark_write(replica, &mk, why, sizeof(why)), 0);
}

static void expect_refused(int want)
{
	struct replica_mark got;
	char why[400] = "";
	assert_int_equal(replica_mark_read(replica, &got, why, sizeof(why)), want);
	assert_non_null(strstr(why, REPLICA_MARK_SUFFIX));
}

static void flip_byte(long at)
{
	int fd = open(mark, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

static void round_trip(void **state)
{
	(void)state;
	struct replica_mark got;
	char why[400];
	expect_refused(-ENOENT);
	write_good();
	assert_int_equal(replica_mark_read(replica, &got, why, sizeof(why)), 0);
	assert_int_equal(got.epoch, 7);
	assert_int_equal(got.disk_size, 64u << 20);
	assert_int_equal(got.disk, 1);
	assert_string_equal(got.name, "kv-test");
	struct stat st;
	assert_int_equal(stat(mark, &st), 0);
	assert_int_equal(st.st_size, REPLICA_MARK_SIZE);
	assert_int_equal(st.st_mode & 0777, 0600);
	replica_mark_clear(replica);
	expect_refused(-ENOENT);
}

static void damaged(void **state)
{
	(void)state;
	write_good();
	flip_byte(40); /* in the name: the CRC no longer matches */
	expect_refused(-EINVAL);
	write_good();
	assert_int_equal(truncate(mark, REPLICA_MARK_SIZE - 1), 0);
	expect_refused(-EINVAL);
	write_good();
	assert_int_equal(truncate(mark, 1 << 20), 0);
	expect_refused(-EINVAL);
}

static void hostile_files(void **state)
{
	(void)state;
	char target[200], tmp[200];
	snprintf(target, sizeof(target), "%s/elsewhere", dir);
	write_good();
	assert_int_equal(rename(mark, target), 0);
	assert_int_equal(symlink(target, mark), 0);
	struct replica_mark got;
	char why[400];
	assert_true(replica_mark_read(replica, &got, why, sizeof(why)) < 0); /* a good mark, but by a link */
	unlink(mark);
	assert_int_equal(mkfifo(mark, 0600), 0);
	expect_refused(-EINVAL); /* opened without blocking, refused as no regular file */
	unlink(mark);
	if (geteuid() == 0) {
		write_good();
		assert_int_equal(chown(mark, 65534, 65534), 0);
		expect_refused(-EINVAL);
		unlink(mark);
	}
	/* A link planted at the temporary name is replaced, never written through. */
	snprintf(tmp, sizeof(tmp), "%s.new", mark);
	int fd = open(target, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlink(target, tmp), 0);
	write_good();
	struct stat st;
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(replica_mark_read(replica, &got, why, sizeof(why)), 0);
}

static void no_mark_on_nbd_or_device(void **state)
{
	(void)state;
	struct replica_mark mk = { .epoch = 1, .disk_size = 512 }, got;
	char why[400];
	snprintf(mk.name, sizeof(mk.name), "kv-test");
	assert_true(replica_mark_write("nbd+unix:///e?socket=/tmp/x.sock", &mk, why, sizeof(why)) < 0);
	assert_int_equal(replica_mark_read("nbd+unix:///e?socket=/tmp/x.sock", &got, why, sizeof(why)), -ENOENT);
	assert_int_equal(replica_mark_write("/dev/null", &mk, why, sizeof(why)), -EOPNOTSUPP); /* no /dev/null.ftvm-pairing */
	assert_int_equal(access("/dev/null" REPLICA_MARK_SUFFIX, F_OK), -1);
	memset(mk.name, 'n', sizeof(mk.name) - 1);
	mk.name[sizeof(mk.name) - 1] = 0; /* 128 bytes: the longest name */
	assert_int_equal(replica_mark_write(replica, &mk, why, sizeof(why)), 0);
	assert_int_equal(replica_mark_read(replica, &got, why, sizeof(why)), 0);
	assert_int_equal(strlen(got.name), REPLICA_MARK_NAME_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_files, setup, teardown),
		cmocka_unit_test_setup_teardown(no_mark_on_nbd_or_device, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
