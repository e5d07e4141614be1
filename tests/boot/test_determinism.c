/*
 * test_determinism.c — two runs of the bundled guest on the virtual-clock world reach identical
 * machine digests (CPU, devices and all of RAM) at the same icounts, and print the same console
 * output; a run with a different entropy seed diverges. Uses the machine API directly.
 *
 * Usage: test_determinism GUEST_DIR. Exits 77 (skipped) when GUEST_DIR has no guest yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/machine.h"
#include "host/world_live.h"

#define SKIP 77
#define NCHECK 5
#define DISK_BYTES (64ull << 20)

/* Checkpoints spread over firmware, early kernel, driver probing (virtio-rng reads entropy there),
 * userspace, and the power-off at the end of the self-test (~120 M instructions). */
static const icount_t checkpoints[NCHECK] = { 5000000, 20000000, 50000000, 90000000, ICOUNT_MAX };

struct run_result {
	uint64_t digest[NCHECK];
	icount_t reached[NCHECK];
	uint64_t config_digest;
	char console[1 << 16];
	size_t console_len;
};

static int temp_file(const char *what, uint64_t size, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "/tmp/ftvm-det-%s-XXXXXX", what);
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
		perror("temp file");
		exit(1);
	}
	return fd;
}

static void run_guest(const char *dir, uint64_t seed, struct run_result *res)
{
	char image[4096], initrd[4096], bios[4096], disk[64], console[64], err[512];
	snprintf(image, sizeof(image), "%s/Image", dir);
	snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio", dir);
	snprintf(bios, sizeof(bios), "%s/fw_dynamic.bin", dir);
	int disk_fd = temp_file("disk", DISK_BYTES, disk, sizeof(disk));
	int console_fd = temp_file("console", 0, console, sizeof(console));

	struct world_live_config wc = {
		.clock = WORLD_CLOCK_VIRTUAL,
		.ndisks = 1,
		.disk_path = { disk },
		.rng_seed = seed,
		.console_in_fd = -1,
		.console_out_fd = console_fd,
	};
	struct world_live *w;
	if (world_live_create(&wc, &w, err, sizeof(err))) {
		fprintf(stderr, "world: %s\n", err);
		exit(1);
	}
	struct machine_config mc = {
		.bios = bios, .kernel = image, .initrd = initrd,
		.append = "console=ttyS0 panic=1 ftvm.workload=selftest",
		.mem_mib = 256, .ndisks = 1, .disk_bytes = { DISK_BYTES }, .rng = true,
	};
	struct machine *m;
	if (machine_create(&mc, &m, err, sizeof(err))) {
		fprintf(stderr, "machine: %s\n", err);
		exit(1);
	}
	res->config_digest = machine_config_digest(m);
	for (int i = 0; i < NCHECK; i++) {
		int status;
		enum machine_exit why = machine_run(m, world_live_world(w), checkpoints[i], &status);
		enum machine_exit want = checkpoints[i] == ICOUNT_MAX ? MACHINE_EXIT_POWEROFF : MACHINE_EXIT_STOP_ICOUNT;
		if (why != want || status != 0) {
			fprintf(stderr, "run ended with %d (status %d) at icount %llu, want %d\n", why, status,
				(unsigned long long)machine_icount(m), want);
			exit(1);
		}
		res->reached[i] = machine_icount(m);
		res->digest[i] = machine_digest(m, true);
	}
	machine_destroy(m);
	world_live_flush(w);
	world_live_destroy(w);
	ssize_t n = pread(console_fd, res->console, sizeof(res->console), 0);
	res->console_len = n > 0 ? (size_t)n : 0;
	close(console_fd);
	close(disk_fd);
	unlink(console);
	unlink(disk);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s GUEST_DIR\n", argv[0]);
		return 2;
	}
	char probe[4096];
	snprintf(probe, sizeof(probe), "%s/Image", argv[1]);
	if (access(probe, R_OK) != 0) {
		printf("SKIP: no bundled guest in %s (build it with guest/build)\n", argv[1]);
		return SKIP;
	}
	static struct run_result a, b, c;
	run_guest(argv[1], 1, &a);
	run_guest(argv[1], 1, &b);
	run_guest(argv[1], 2, &c);
	int failures = 0;
	for (int i = 0; i < NCHECK; i++) {
		printf("checkpoint %d: icount %llu/%llu digest %016llx %016llx (seed 2: %016llx)\n", i,
		       (unsigned long long)a.reached[i], (unsigned long long)b.reached[i],
		       (unsigned long long)a.digest[i], (unsigned long long)b.digest[i], (unsigned long long)c.digest[i]);
		if (a.reached[i] != b.reached[i] || a.digest[i] != b.digest[i]) {
			printf("FAIL: runs with the same seed differ at checkpoint %d\n", i);
			failures++;
		}
	}
	if (a.console_len == 0 || a.console_len != b.console_len || memcmp(a.console, b.console, a.console_len)) {
		printf("FAIL: console output differs (%zu vs %zu bytes)\n", a.console_len, b.console_len);
		failures++;
	}
	if (a.config_digest != c.config_digest) {
		printf("FAIL: the seed changed the configuration digest\n");
		failures++;
	}
	if (a.digest[NCHECK - 1] == c.digest[NCHECK - 1]) {
		printf("FAIL: a different entropy seed left the final state unchanged\n");
		failures++;
	}
	if (a.digest[0] != c.digest[0]) {
		printf("FAIL: the seed changed state before any entropy was requested\n");
		failures++;
	}
	printf("%s\n", failures ? "determinism: FAILED" : "determinism: ok");
	return failures ? 1 : 0;
}
