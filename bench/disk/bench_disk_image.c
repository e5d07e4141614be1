/*
 * bench_disk_image.c — the host side of a disk alone, without a guest: the I/O path every virtio-blk
 * request of a live run takes (util/disk_image.h), one request at a time as the back end runs them.
 *
 * Usage: bench_disk_image SPEC MiB OPS — SPEC a raw file or an NBD URI of at least MiB MiB.
 * Phases: sequential 64 KiB writes over the first MiB MiB and a flush, sequential 64 KiB reads of
 * it, OPS random 4 KiB reads and OPS random 4 KiB writes in it (a fixed seed) and a flush.
 * Prints one line: "SPEC seq-write A MB/s seq-read B MB/s rand-read C IOPS rand-write D IOPS".
 * bench/disk/disk_bench.py runs it on each kind of disk beside the guest's own measurement.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/disk_image.h"
#include "util/time.h"

#define SEQ_BLOCK (64u << 10)
#define RAND_BLOCK 4096u

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int main(int argc, char **argv)
{
	char err[512];
	struct disk_image *img;
	if (argc != 4) {
		fprintf(stderr, "usage: bench_disk_image SPEC MiB OPS\n");
		return 2;
	}
	uint64_t bytes = strtoull(argv[2], NULL, 10) << 20, ops = strtoull(argv[3], NULL, 10);
	if (disk_image_open(argv[1], false, &img, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_disk_image: %s\n", err);
		return 1;
	}
	if (bytes == 0 || bytes > disk_image_size(img) || ops == 0) {
		fprintf(stderr, "bench_disk_image: MiB must be 1..the disk's size, OPS positive\n");
		return 2;
	}
	uint8_t *buf = malloc(SEQ_BLOCK);
	if (!buf)
		return 1;
	memset(buf, 0x5a, SEQ_BLOCK);
	double t[4];
	int bad = 0;
	for (int phase = 0; phase < 4 && !bad; phase++) {
		bool write = phase == 0 || phase == 3;
		uint64_t x = 0x0badc0ffee0ddf00ull, t0 = time_mono_ns();
		if (phase < 2) {
			for (uint64_t off = 0; off < bytes && !bad; off += SEQ_BLOCK)
				bad = write ? disk_image_write(img, buf, SEQ_BLOCK, off) : disk_image_read(img, buf, SEQ_BLOCK, off);
		} else {
			for (uint64_t i = 0; i < ops && !bad; i++) {
				uint64_t off = next(&x) % (bytes / RAND_BLOCK) * RAND_BLOCK;
				bad = write ? disk_image_write(img, buf, RAND_BLOCK, off) : disk_image_read(img, buf, RAND_BLOCK, off);
			}
		}
		if (!bad && write)
			bad = disk_image_flush(img);
		t[phase] = (double)(time_mono_ns() - t0) / 1e9;
	}
	disk_image_close(img);
	free(buf);
	if (bad) {
		fprintf(stderr, "bench_disk_image: I/O failed: %s\n", strerror(-bad));
		return 1;
	}
	printf("%s seq-write %.0f MB/s seq-read %.0f MB/s rand-read %.0f IOPS rand-write %.0f IOPS\n", argv[1],
	       (double)bytes / t[0] / (1 << 20), (double)bytes / t[1] / (1 << 20), (double)ops / t[2],
	       (double)ops / t[3]);
	return 0;
}
