/*
 * ftvm-selftest.c — the `selftest` workload: checks the guest's devices and prints a verdict.
 *
 * Checks, each printed as "selftest: <name> ok (...)" or "selftest: <name> FAILED: ...":
 *   memory    8 MiB written and read back;
 *   timer     a 100 ms sleep takes between 100 ms and 5 s of CLOCK_MONOTONIC (timer interrupts);
 *   rng       /dev/hwrng is the virtio RNG and gives varying bytes;
 *   disk      /dev/vda: the last 4 KiB are saved, overwritten with random bytes, synced, read back
 *             with O_DIRECT (from the device, not the page cache), compared, then restored;
 *   loopback  16 KiB each way over a TCP connection on 127.0.0.1;
 *   pagezero  an unprivileged process that mapped, touched and unmapped a page sharing page 0's
 *             slot in the emulator's TLB, then loads 2, 4 or 8 bytes from address 1, dies of SIGSEGV
 *             (each width in its own child);
 *   peer      only with FTVM_PEER=IP:PORT (kernel command line ftvm.peer=...): a line sent to that
 *             TCP echo server comes back unchanged; skipped otherwise.
 * The last line is "selftest: PASS" or "selftest: FAIL (N of M checks)"; the exit status is the
 * number of failed checks, which init turns into the machine's exit status.
 */
#include "applets.h"
#include "guestlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define DETAIL_MAX 160
#define MEMORY_BYTES (8u << 20)
#define SLEEP_MS 100
#define SLEEP_MAX_NS (5 * NSEC_PER_SEC)
#define RNG_DEVICE "/dev/hwrng"
#define RNG_CURRENT "/sys/class/misc/hw_random/rng_current"
#define RNG_BYTES 32
#define DISK_DEVICE "/dev/vda"
#define DISK_BLOCK 4096
#define NET_BYTES (16 * 1024)
#define NET_TIMEOUT_MS 5000
#define PEER_LINE_MAX 128
#define NOBODY 65534
#define PAGE_BYTES 4096
#define TLB_ALIAS_OF_PAGE0 ((void *)0x100000) /* 256 pages up: the same slot of a 256-entry TLB */

typedef int (*check_fn)(char *detail);

static int fail(char *detail, int err, const char *what)
{
	snprintf(detail, DETAIL_MAX, "%s: %s", what, strerror(err < 0 ? -err : err));
	return err < 0 ? err : -err;
}

static int check_memory(char *detail)
{
	size_t words = MEMORY_BYTES / sizeof(uint64_t);
	uint64_t *mem = malloc(MEMORY_BYTES), seed = 0x9e3779b97f4a7c15ull, state = seed;
	int err = 0;

	if (!mem)
		return fail(detail, -ENOMEM, "malloc");
	for (size_t i = 0; i < words; i++)
		mem[i] = guest_prng_next(&state);
	state = seed;
	for (size_t i = 0; i < words; i++) {
		if (mem[i] != guest_prng_next(&state)) {
			snprintf(detail, DETAIL_MAX, "word %zu differs", i);
			err = -EIO;
			break;
		}
	}
	if (!err)
		snprintf(detail, DETAIL_MAX, "%u MiB", MEMORY_BYTES >> 20);
	free(mem);
	return err;
}

static int check_timer(char *detail)
{
	uint64_t t0 = guest_now_ns(), elapsed;

	guest_sleep_ms(SLEEP_MS);
	elapsed = guest_now_ns() - t0;
	snprintf(detail, DETAIL_MAX, "%u ms sleep took %llu us", SLEEP_MS,
		 (unsigned long long)(elapsed / 1000));
	if (elapsed < SLEEP_MS * NSEC_PER_MSEC || elapsed > SLEEP_MAX_NS)
		return -ETIME;
	return 0;
}

/* Reads exactly len bytes, waiting at most NET_TIMEOUT_MS for each chunk. */
static int read_timeout(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, NET_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int check_rng(char *detail)
{
	unsigned char a[RNG_BYTES], b[RNG_BYTES];
	char current[64] = "";
	int fd, err;

	fd = open(RNG_CURRENT, O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, current, sizeof(current) - 1);
		current[n > 0 ? n : 0] = '\0';
		current[strcspn(current, "\n")] = '\0';
		close(fd);
	}
	if (strncmp(current, "virtio", strlen("virtio")) != 0) {
		snprintf(detail, DETAIL_MAX, "current hw_random source is '%s', not virtio", current);
		return -ENODEV;
	}
	fd = open(RNG_DEVICE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(detail, -errno, RNG_DEVICE);
	err = read_timeout(fd, a, sizeof(a));
	if (err == 0)
		err = read_timeout(fd, b, sizeof(b));
	close(fd);
	if (err < 0)
		return fail(detail, err, "reading " RNG_DEVICE);
	if (memcmp(a, b, sizeof(a)) == 0) {
		snprintf(detail, DETAIL_MAX, "two reads returned the same bytes");
		return -EIO;
	}
	snprintf(detail, DETAIL_MAX, "%s, %zu bytes", current, sizeof(a) + sizeof(b));
	return 0;
}

static int check_disk(char *detail)
{
	unsigned char *saved = NULL, *pattern = NULL, *back = NULL;
	uint64_t size = 0;
	off_t off;
	int fd, err;

	fd = open(DISK_DEVICE, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return fail(detail, -errno, DISK_DEVICE);
	err = guest_device_size(fd, &size);
	if (err < 0) {
		fail(detail, err, "size");
		goto out;
	}
	if (size < DISK_BLOCK) {
		snprintf(detail, DETAIL_MAX, "disk has only %llu bytes", (unsigned long long)size);
		err = -ENOSPC;
		goto out;
	}
	off = (off_t)(size / DISK_BLOCK - 1) * DISK_BLOCK;
	if (posix_memalign((void **)&saved, DISK_BLOCK, DISK_BLOCK) ||
	    posix_memalign((void **)&pattern, DISK_BLOCK, DISK_BLOCK) ||
	    posix_memalign((void **)&back, DISK_BLOCK, DISK_BLOCK)) {
		err = fail(detail, -ENOMEM, "buffers");
		goto out;
	}
	err = guest_pread_all(fd, saved, DISK_BLOCK, off);
	if (err == 0)
		err = guest_random(pattern, DISK_BLOCK);
	if (err == 0)
		err = guest_pwrite_all(fd, pattern, DISK_BLOCK, off);
	if (err == 0 && fdatasync(fd) < 0)
		err = -errno;
	if (err == 0)
		err = guest_pread_all(fd, back, DISK_BLOCK, off);
	if (err < 0) {
		fail(detail, err, "I/O");
		goto out;
	}
	if (memcmp(pattern, back, DISK_BLOCK) != 0) {
		snprintf(detail, DETAIL_MAX, "block at %lld read back differently", (long long)off);
		err = -EIO;
	}
	int restore = guest_pwrite_all(fd, saved, DISK_BLOCK, off);
	if (restore == 0 && fdatasync(fd) < 0)
		restore = -errno;
	if (restore < 0 && err == 0)
		err = fail(detail, restore, "restoring the block");
	if (err == 0)
		snprintf(detail, DETAIL_MAX, "%s, %llu MiB, block at %lld written and read back",
			 DISK_DEVICE, (unsigned long long)(size >> 20), (long long)off);
out:
	free(saved);
	free(pattern);
	free(back);
	close(fd);
	return err;
}

/* Connects to addr, giving up after NET_TIMEOUT_MS. */
static int connect_timeout(const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0;
	socklen_t len = sizeof(err);
	struct pollfd pfd;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 && errno != EINPROGRESS) {
		err = -errno;
		goto fail;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, NET_TIMEOUT_MS) <= 0) {
		err = -ETIMEDOUT;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		err = err ? -err : -errno;
		goto fail;
	}
	if (fcntl(fd, F_SETFL, 0) < 0) {
		err = -errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return err;
}

/* Sends NET_BYTES from one socket and reads them at the other. */
static int transfer(int from, int to, unsigned char *buf, unsigned char *back)
{
	int err = guest_random(buf, NET_BYTES);

	if (err == 0)
		err = guest_write_all(from, buf, NET_BYTES);
	if (err == 0)
		err = read_timeout(to, back, NET_BYTES);
	if (err == 0 && memcmp(buf, back, NET_BYTES) != 0)
		err = -EIO;
	return err;
}

static int check_loopback(char *detail)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	static unsigned char buf[NET_BYTES], back[NET_BYTES];
	int lfd, cfd = -1, sfd = -1, err;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return fail(detail, -errno, "socket");
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) {
		err = fail(detail, -errno, "listen on 127.0.0.1");
		goto out;
	}
	cfd = connect_timeout(&addr);
	if (cfd < 0) {
		err = fail(detail, cfd, "connect to 127.0.0.1");
		goto out;
	}
	sfd = accept(lfd, NULL, NULL);
	if (sfd < 0) {
		err = fail(detail, -errno, "accept");
		goto out;
	}
	err = transfer(cfd, sfd, buf, back);
	if (err == 0)
		err = transfer(sfd, cfd, buf, back);
	if (err < 0)
		fail(detail, err, "transfer");
	else
		snprintf(detail, DETAIL_MAX, "%d KiB each way on port %u", NET_BYTES / 1024,
			 ntohs(addr.sin_port));
out:
	if (sfd >= 0)
		close(sfd);
	if (cfd >= 0)
		close(cfd);
	close(lfd);
	return err;
}

/* In a child that has given up root: map, touch and unmap the alias page, then load `size` bytes
 * from address 1. Returns only if the load did not fault. */
static void load_from_one(unsigned size)
{
	uint64_t v = 0;
	if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
		_exit(2);
	void *p = mmap(TLB_ALIAS_OF_PAGE0, PAGE_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		_exit(3);
	memset(p, 0x5a, PAGE_BYTES);
	munmap(p, PAGE_BYTES);
#if defined(__riscv)
	/* The exact instructions of the attack: one load of each width, misaligned, at address 1. */
	switch (size) {
	case 2: __asm__ volatile("lh %0, 0(%1)" : "=r"(v) : "r"(1ul) : "memory"); break;
	case 4: __asm__ volatile("lw %0, 0(%1)" : "=r"(v) : "r"(1ul) : "memory"); break;
	default: __asm__ volatile("ld %0, 0(%1)" : "=r"(v) : "r"(1ul) : "memory"); break;
	}
#else
	/* The native build (the host tests of kvd) compiles this file too; the check itself is for
	 * the guest. */
	volatile uintptr_t one = 1;
	switch (size) {
	case 2: v = *(volatile uint16_t *)one; break;
	case 4: v = *(volatile uint32_t *)one; break;
	default: v = *(volatile uint64_t *)one; break;
	}
#endif
	_exit(v == 0x5a5a5a5a5a5a5a5aull ? 4 : 5);
}

static int check_pagezero(char *detail)
{
	static const unsigned sizes[] = { 2, 4, 8 };
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int status;
		pid_t pid = fork();
		if (pid < 0)
			return fail(detail, -errno, "fork");
		if (pid == 0)
			load_from_one(sizes[i]);
		if (waitpid(pid, &status, 0) < 0)
			return fail(detail, -errno, "waitpid");
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV) {
			snprintf(detail, DETAIL_MAX, "%u-byte load from address 1: %s %d", sizes[i],
				 WIFSIGNALED(status) ? "signal" : "exit status",
				 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			return -EIO;
		}
	}
	snprintf(detail, DETAIL_MAX, "2-, 4- and 8-byte loads from address 1 as uid %d: SIGSEGV", NOBODY);
	return 0;
}

static int check_peer(char *detail)
{
	const char *peer = getenv("FTVM_PEER");
	char line[PEER_LINE_MAX], back[PEER_LINE_MAX];
	struct sockaddr_in addr;
	uint64_t nonce;
	int fd, err;

	if (guest_parse_ipv4_port(peer, &addr) < 0) {
		snprintf(detail, DETAIL_MAX, "ftvm.peer='%s' is not IP:PORT", peer);
		return -EINVAL;
	}
	err = guest_random(&nonce, sizeof(nonce));
	if (err < 0)
		return fail(detail, err, "getrandom");
	int len = snprintf(line, sizeof(line), "ftvm-selftest %016llx\n", (unsigned long long)nonce);
	fd = connect_timeout(&addr);
	if (fd < 0)
		return fail(detail, fd, peer);
	err = guest_write_all(fd, line, (size_t)len);
	if (err == 0)
		err = read_timeout(fd, back, (size_t)len);
	close(fd);
	if (err < 0)
		return fail(detail, err, peer);
	if (memcmp(line, back, (size_t)len) != 0) {
		snprintf(detail, DETAIL_MAX, "%s echoed something else", peer);
		return -EIO;
	}
	snprintf(detail, DETAIL_MAX, "%s echoed %d bytes", peer, len);
	return 0;
}

int selftest_main(int argc, char **argv)
{
	static const struct {
		const char *name;
		check_fn fn;
		bool needs_peer;
	} checks[] = {
		{ "memory", check_memory, false }, { "timer", check_timer, false },
		{ "rng", check_rng, false },       { "disk", check_disk, false },
		{ "loopback", check_loopback, false }, { "pagezero", check_pagezero, false },
		{ "peer", check_peer, true },
	};
	bool have_peer = getenv("FTVM_PEER") && *getenv("FTVM_PEER");
	unsigned failed = 0, run = 0;
	uint64_t t0 = guest_now_ns();

	for (size_t i = 0; i < GUEST_ARRAY_SIZE(checks); i++) {
		char detail[DETAIL_MAX] = "";
		if (checks[i].needs_peer && !have_peer) {
			printf("selftest: %s skipped (no ftvm.peer=IP:PORT)\n", checks[i].name);
			continue;
		}
		run++;
		if (checks[i].fn(detail) < 0) {
			failed++;
			printf("selftest: %s FAILED: %s\n", checks[i].name, detail);
		} else {
			printf("selftest: %s ok (%s)\n", checks[i].name, detail);
		}
		fflush(stdout);
	}
	printf("selftest: took %llu ms\n", (unsigned long long)((guest_now_ns() - t0) / NSEC_PER_MSEC));
	if (failed)
		printf("selftest: FAIL (%u of %u checks)\n", failed, run);
	else
		printf("selftest: PASS (%u checks)\n", run);
	fflush(stdout);
	return (int)failed;
}
