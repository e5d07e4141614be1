/*
 * ftvm-disk.c — the `disk` workload: sequential and random I/O on /dev/vda with a printed score.
 * DESTRUCTIVE: it overwrites the first FTVM_DISK_MB MiB of the disk (boot with a scratch disk).
 *
 * Phases, all with O_DIRECT so the device (not the page cache) is measured:
 *   1. sequential write of the region in 64 KiB blocks of a pseudo-random stream, then fdatasync;
 *   2. sequential read of the region, checked against the same stream;
 *   3. FTVM_DISK_OPS random 4 KiB reads at pseudo-random block offsets (fixed seed);
 *   4. FTVM_DISK_OPS random 4 KiB writes at such offsets, then fdatasync.
 * Parameters from the kernel command line: ftvm.disk.mb=N (default 32, capped at the disk size),
 * ftvm.disk.ops=N (default 1000). Output: "disk: score seq-write A MB/s, seq-read B MB/s,
 * rand-read C IOPS, rand-write D IOPS". Exit status 1 on an I/O error or a mismatch.
 */
#include "applets.h"
#include "guestlib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DISK_DEVICE "/dev/vda"
#define DEFAULT_MB 32
#define DEFAULT_OPS 1000
#define SEQ_BLOCK (64 * 1024)
#define RAND_BLOCK 4096
#define STREAM_SEED 0x1234567887654321ull
#define OFFSET_SEED 0x0badc0ffee0ddf00ull

static void fill_stream(unsigned char *buf, size_t len, uint64_t *state)
{
	for (size_t i = 0; i < len; i += sizeof(uint64_t)) {
		uint64_t r = guest_prng_next(state);
		memcpy(buf + i, &r, sizeof(r));
	}
}

static uint64_t rate(uint64_t amount, uint64_t ns)
{
	return ns ? amount * NSEC_PER_SEC / ns : 0;
}

/* Sequential phase: write (and sync) or read-and-check the region; returns elapsed ns or -errno. */
static int64_t sequential(int fd, uint64_t bytes, unsigned char *buf, unsigned char *expect, int writing)
{
	uint64_t state = STREAM_SEED, t0 = guest_now_ns();
	int err = 0;

	for (uint64_t off = 0; off < bytes && !err; off += SEQ_BLOCK) {
		fill_stream(writing ? buf : expect, SEQ_BLOCK, &state);
		if (writing) {
			err = guest_pwrite_all(fd, buf, SEQ_BLOCK, (off_t)off);
		} else {
			err = guest_pread_all(fd, buf, SEQ_BLOCK, (off_t)off);
			if (err == 0 && memcmp(buf, expect, SEQ_BLOCK) != 0) {
				guest_log("data read at %llu differs from what was written",
					  (unsigned long long)off);
				err = -EIO;
			}
		}
	}
	if (!err && writing && fdatasync(fd) < 0)
		err = -errno;
	return err ? err : (int64_t)(guest_now_ns() - t0);
}

/* Random phase: ops 4 KiB reads or writes at random block offsets; elapsed ns or -errno. */
static int64_t random_io(int fd, uint64_t bytes, uint64_t ops, unsigned char *buf, int writing)
{
	uint64_t state = OFFSET_SEED, blocks = bytes / RAND_BLOCK, t0 = guest_now_ns();
	int err = 0;

	for (uint64_t i = 0; i < ops && !err; i++) {
		off_t off = (off_t)(guest_prng_next(&state) % blocks * RAND_BLOCK);
		err = writing ? guest_pwrite_all(fd, buf, RAND_BLOCK, off)
			      : guest_pread_all(fd, buf, RAND_BLOCK, off);
	}
	if (!err && writing && fdatasync(fd) < 0)
		err = -errno;
	return err ? err : (int64_t)(guest_now_ns() - t0);
}

int disk_main(int argc, char **argv)
{
	uint64_t mb, ops, size, bytes;
	unsigned char *buf = NULL, *expect = NULL;
	int64_t t[4];
	int fd, status = 1;

	if (guest_env_u64("FTVM_DISK_MB", DEFAULT_MB, &mb) < 0 ||
	    guest_env_u64("FTVM_DISK_OPS", DEFAULT_OPS, &ops) < 0 || mb == 0) {
		guest_log("ftvm.disk.mb and ftvm.disk.ops take a positive number");
		return 2;
	}
	fd = open(DISK_DEVICE, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		guest_log("%s: %s", DISK_DEVICE, strerror(errno));
		return 1;
	}
	if (guest_device_size(fd, &size) < 0 || size < SEQ_BLOCK) {
		guest_log("%s: no usable size", DISK_DEVICE);
		goto out;
	}
	bytes = mb << 20 < size ? mb << 20 : size / SEQ_BLOCK * SEQ_BLOCK;
	if (posix_memalign((void **)&buf, SEQ_BLOCK, SEQ_BLOCK) ||
	    posix_memalign((void **)&expect, SEQ_BLOCK, SEQ_BLOCK)) {
		guest_log("out of memory");
		goto out;
	}
	printf("disk: %llu MiB region, %llu random ops\n", (unsigned long long)(bytes >> 20),
	       (unsigned long long)ops);
	fflush(stdout);
	t[0] = sequential(fd, bytes, buf, expect, 1);
	t[1] = t[0] < 0 ? t[0] : sequential(fd, bytes, buf, expect, 0);
	t[2] = t[1] < 0 ? t[1] : random_io(fd, bytes, ops, buf, 0);
	t[3] = t[2] < 0 ? t[2] : random_io(fd, bytes, ops, buf, 1);
	if (t[3] < 0) {
		guest_log("I/O failed: %s", strerror((int)-t[3]));
		goto out;
	}
	printf("disk: score seq-write %llu MB/s, seq-read %llu MB/s, rand-read %llu IOPS, "
	       "rand-write %llu IOPS\n",
	       (unsigned long long)(rate(bytes, (uint64_t)t[0]) >> 20),
	       (unsigned long long)(rate(bytes, (uint64_t)t[1]) >> 20),
	       (unsigned long long)rate(ops, (uint64_t)t[2]), (unsigned long long)rate(ops, (uint64_t)t[3]));
	status = 0;
out:
	free(buf);
	free(expect);
	close(fd);
	return status;
}
