/*
 * test_backends.c — the live back ends: raw disk image, TAP device, host entropy.
 *
 * Each back end posts events to a sink from its own thread; the test sink copies them into a list
 * and lets the test wait for the next one. The TAP test runs in a fresh network namespace
 * (unshare(CLONE_NEWNET), so it needs root): it creates a tap through the back end, sends a frame
 * into it from the host side with an AF_PACKET socket and expects a NET_RX event, then sends a
 * frame through the back end and expects the socket to see it. It skips, saying why, when
 * /dev/net/tun or the namespace is unavailable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "host/backend.h"

#define WAIT_MS 5000
#define SECTOR 512u
#define IMAGE_SECTORS 64u
#define TEST_ETHERTYPE 0x88b5   /* IEEE local experimental: nothing else on the wire uses it */

/* ---- a sink that keeps copies of the posted events ---- */

struct posted {
	struct vm_event ev;
	uint8_t *data;
};

struct sink {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct posted items[64];
	unsigned head, count, total;
};

static void sink_post(void *ctx, const struct vm_event *ev)
{
	struct sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	if (s->count < 64) {
		struct posted *p = &s->items[(s->head + s->count++) % 64];
		p->ev = *ev;
		p->data = ev->len ? malloc(ev->len) : NULL;
		if (p->data)
			memcpy(p->data, ev->data, ev->len);
		p->ev.data = p->data;
		s->total++;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
}

static struct sink *sink_new(void)
{
	struct sink *s = calloc(1, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	return s;
}

static struct backend_sink sink_of(struct sink *s)
{
	return (struct backend_sink){ .post = sink_post, .ctx = s };
}

/* Takes the next event (caller frees data); false after WAIT_MS without one. */
static bool sink_wait(struct sink *s, struct posted *out)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&s->lock);
	while (!s->count)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT)
			break;
	bool got = s->count > 0;
	if (got) {
		*out = s->items[s->head];
		s->head = (s->head + 1) % 64;
		s->count--;
	}
	pthread_mutex_unlock(&s->lock);
	return got;
}

static void sink_free(struct sink *s)
{
	struct posted p = { 0 };
	while (s->count && sink_wait(s, &p))
		free(p.data);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- disk ---- */

static char image_path[64];

static int make_image(size_t bytes)
{
	strcpy(image_path, "/tmp/ftvm-disk-XXXXXX");
	int fd = mkstemp(image_path);
	assert_true(fd >= 0);
	uint8_t *buf = malloc(bytes);
	for (size_t i = 0; i < bytes; i++)
		buf[i] = (uint8_t)(i / SECTOR + i);
	assert_int_equal(write(fd, buf, bytes), (ssize_t)bytes);
	free(buf);
	close(fd);
	return 0;
}

static void expect_done(struct sink *s, uint64_t id, uint32_t status, uint32_t len, struct posted *out)
{
	assert_true(sink_wait(s, out));
	assert_int_equal(out->ev.kind, VM_EV_DISK_DONE);
	assert_int_equal(out->ev.device, 2);
	assert_int_equal(out->ev.request, id);
	assert_int_equal(out->ev.status, status);
	assert_int_equal(out->ev.len, len);
}

static void test_disk_round_trip(void **state)
{
	char err[256] = "";
	struct disk_backend *disk;
	struct sink *s = sink_new();
	struct posted p = { 0 };
	assert_int_equal(make_image(IMAGE_SECTORS * SECTOR), 0);
	assert_int_equal(disk_backend_open(image_path, false, 2, sink_of(s), &disk, err, sizeof(err)), 0);
	assert_int_equal(disk_backend_size(disk), IMAGE_SECTORS * SECTOR);

	/* read sectors 3-4 */
	disk_backend_submit(disk, &(struct vm_disk_request){ .id = 1, .op = VM_DISK_READ, .sector = 3, .len = 2 * SECTOR });
	expect_done(s, 1, VM_DISK_OK, 2 * SECTOR, &p);
	for (unsigned i = 0; i < 2 * SECTOR; i++)
		assert_int_equal(p.data[i], (uint8_t)((3 * SECTOR + i) / SECTOR + 3 * SECTOR + i));
	free(p.data);

	/* write, flush, read back; the request's buffer may change right after submit */
	uint8_t wr[SECTOR];
	memset(wr, 0x3c, sizeof(wr));
	disk_backend_submit(disk, &(struct vm_disk_request){ .id = 2, .op = VM_DISK_WRITE, .sector = 10, .len = SECTOR, .data = wr });
	memset(wr, 0, sizeof(wr));
	disk_backend_submit(disk, &(struct vm_disk_request){ .id = 3, .op = VM_DISK_FLUSH });
	disk_backend_submit(disk, &(struct vm_disk_request){ .id = 4, .op = VM_DISK_READ, .sector = 10, .len = SECTOR });
	/* past the end */
	disk_backend_submit(disk, &(struct vm_disk_request){ .id = 5, .op = VM_DISK_READ, .sector = IMAGE_SECTORS - 1, .len = 2 * SECTOR });
	disk_backend_drain(disk);
	expect_done(s, 2, VM_DISK_OK, 0, &p);
	expect_done(s, 3, VM_DISK_OK, 0, &p);
	expect_done(s, 4, VM_DISK_OK, SECTOR, &p);
	memset(wr, 0x3c, sizeof(wr));
	assert_memory_equal(p.data, wr, SECTOR);
	free(p.data);
	expect_done(s, 5, VM_DISK_IOERR, 0, &p);
	disk_backend_close(disk);

	/* the bytes are on the image */
	int fd = open(image_path, O_RDONLY);
	uint8_t back[SECTOR];
	assert_int_equal(pread(fd, back, SECTOR, 10 * SECTOR), SECTOR);
	assert_memory_equal(back, wr, SECTOR);
	close(fd);

	/* read-only: writes fail, the image is unchanged */
	assert_int_equal(disk_backend_open(image_path, true, 2, sink_of(s), &disk, err, sizeof(err)), 0);
	memset(wr, 0x99, sizeof(wr));
	disk_backend_submit(disk, &(struct vm_disk_request){ .id = 6, .op = VM_DISK_WRITE, .sector = 10, .len = SECTOR, .data = wr });
	expect_done(s, 6, VM_DISK_IOERR, 0, &p);
	disk_backend_close(disk);
	fd = open(image_path, O_RDONLY);
	assert_int_equal(pread(fd, back, SECTOR, 10 * SECTOR), SECTOR);
	assert_int_equal(back[0], 0x3c);
	close(fd);

	unlink(image_path);
	sink_free(s);
}

static void test_disk_open_errors(void **state)
{
	char err[256] = "";
	struct disk_backend *disk = NULL;
	struct sink *s = sink_new();
	assert_int_equal(disk_backend_open("/nonexistent/ftvm.img", false, 0, sink_of(s), &disk, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/ftvm.img"));
	assert_non_null(strstr(err, "No such file"));

	assert_int_equal(make_image(SECTOR + 100), 0);
	assert_int_equal(disk_backend_open(image_path, false, 0, sink_of(s), &disk, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "multiple of 512"));
	unlink(image_path);

	assert_int_equal(disk_backend_open("/tmp", false, 0, sink_of(s), &disk, err, sizeof(err)) < 0, 1);
	assert_true(strlen(err) > 0);
	sink_free(s);
}

/* ---- entropy ---- */

static void test_rng_backend(void **state)
{
	struct sink *s = sink_new();
	struct posted a = { 0 }, b = { 0 };
	rng_backend_request(1, 100, sink_of(s));
	rng_backend_request(1, 100000, sink_of(s));
	assert_true(sink_wait(s, &a));
	assert_int_equal(a.ev.kind, VM_EV_RNG);
	assert_int_equal(a.ev.device, 1);
	assert_int_equal(a.ev.len, 100);
	assert_true(sink_wait(s, &b));
	assert_int_equal(b.ev.len, VM_EVENT_MAX_BYTES);
	/* two draws of 100 random bytes are not the same */
	assert_memory_not_equal(a.data, b.data, 100);
	free(a.data);
	free(b.data);
	sink_free(s);
}

/* ---- TAP ---- */

static int ifindex_up(const char *name)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
	close(fd);
	return (int)if_nametoindex(name);
}

static size_t test_frame(uint8_t *f, uint8_t tag)
{
	static const uint8_t src[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	memset(f, 0xff, 6);                 /* broadcast */
	memcpy(f + 6, src, 6);
	f[12] = TEST_ETHERTYPE >> 8;
	f[13] = TEST_ETHERTYPE & 0xff;
	for (unsigned i = 14; i < 64; i++)
		f[i] = (uint8_t)(tag + i);
	return 64;
}

/* The next NET_RX carrying our ethertype (the kernel may send its own frames into the tap). */
static bool wait_test_rx(struct sink *s, struct posted *p)
{
	while (sink_wait(s, p)) {
		if (p->ev.kind == VM_EV_NET_RX && p->ev.len >= 14 && p->data[12] == (TEST_ETHERTYPE >> 8) &&
		    p->data[13] == (TEST_ETHERTYPE & 0xff))
			return true;
		free(p->data);
	}
	return false;
}

static void test_tap(void **state)
{
	char err[256] = "";
	struct tap_backend *tap = NULL;
	struct posted p = { 0 };
	if (access("/dev/net/tun", R_OK | W_OK) != 0) {
		fprintf(stderr, "SKIP test_tap: /dev/net/tun is not available: %s\n", strerror(errno));
		skip();
	}
	if (unshare(CLONE_NEWNET) != 0) {
		fprintf(stderr, "SKIP test_tap: cannot create a network namespace (needs root): %s\n", strerror(errno));
		skip();
	}
	/* a bad name and an unusable device give clear errors */
	struct sink *s = sink_new();
	assert_int_equal(tap_backend_open("this-name-is-far-too-long", 0, sink_of(s), &tap, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad interface name"));

	assert_int_equal(tap_backend_open("ftvmt0", 1, sink_of(s), &tap, err, sizeof(err)), 0);
	int ifindex = ifindex_up("ftvmt0");
	assert_true(ifindex > 0);
	int sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(TEST_ETHERTYPE));
	assert_true(sock >= 0);
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(TEST_ETHERTYPE), .sll_ifindex = ifindex };
	assert_int_equal(bind(sock, (struct sockaddr *)&ll, sizeof(ll)), 0);

	/* host -> guest: the frame arrives as it was sent */
	uint8_t frame[64];
	size_t flen = test_frame(frame, 7);
	assert_int_equal(send(sock, frame, flen, 0), (ssize_t)flen);
	assert_true(wait_test_rx(s, &p));
	assert_int_equal(p.ev.device, 1);
	assert_int_equal(p.ev.len, flen);
	assert_memory_equal(p.data, frame, flen);
	free(p.data);

	/* guest -> host */
	uint8_t out[64];
	test_frame(out, 9);
	tap_backend_send(tap, out, sizeof(out));
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	uint8_t got[2048];
	ssize_t n = -1;
	while (poll(&pfd, 1, WAIT_MS) == 1) {
		n = recv(sock, got, sizeof(got), 0);
		if (n >= 14 && got[12] == (TEST_ETHERTYPE >> 8) && got[6 + 5] == 0x01)
			break;
	}
	assert_int_equal(n, 64);
	assert_memory_equal(got, out, 64);
	close(sock);
	tap_backend_close(tap);

	/* a tap an administrator created beforehand is attached; a tun device of that name is refused */
	if (system("ip tuntap add dev ftvmt1 mode tap && ip tuntap add dev ftvmtun1 mode tun") != 0) {
		fprintf(stderr, "SKIP part of test_tap: 'ip tuntap add' failed\n");
		sink_free(s);
		return;
	}
	assert_int_equal(tap_backend_open("ftvmt1", 0, sink_of(s), &tap, err, sizeof(err)), 0);
	tap_backend_close(tap);
	assert_true(tap_backend_open("ftvmtun1", 0, sink_of(s), &tap, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "ftvmtun1"));
	assert_non_null(strstr(err, "cannot attach"));
	sink_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disk_round_trip),
		cmocka_unit_test(test_disk_open_errors),
		cmocka_unit_test(test_rng_backend),
		cmocka_unit_test(test_tap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
