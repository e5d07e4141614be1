/*
 * chan_harness.c — helpers shared by the logging-channel tests (chan_harness.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chan_harness.h"

enum channel_transport harness_transport = CHANNEL_TCP;

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

const struct channel_key harness_key = { .bytes = { 0x3c, 0x91, 0x5e, 0x07, 0xa2, 0x68, 0xd4, 0x1b,
							0xf0, 0x2d, 0x86, 0x4a, 0xc9, 0x73, 0x15, 0xbe,
							0x58, 0xe1, 0x0f, 0x9a, 0x34, 0xc7, 0x62, 0xdb,
							0x8e, 0x21, 0xa5, 0x4f, 0x70, 0x13, 0xec, 0x96 } };

void base_config(struct channel_config *c)
{
	channel_config_init(c);
	c->vm_id = VM_ID;
	c->epoch = EPOCH;
	c->heartbeat_ms = HB_MS;
	c->timeout_ms = TIMEOUT_MS;
	c->connect_timeout_ms = 2000;
	c->buffer_bytes = 4 * MiB;
	c->transport = harness_transport;
	c->key = &harness_key;
}

void plain_config(struct channel_config *c)
{
	base_config(c);
	c->key = NULL;
	c->plaintext = true;
}

/* ---- record contents: a pure function of the LSN, so the receiver can check every byte ---- */

uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

#define LARGE_EVERY 100003u

size_t record_len(uint64_t lsn)
{
	uint64_t h = mix(lsn);
	if (lsn % LARGE_EVERY == 0)
		return CHANNEL_MAX_RECORD - (h % 3) * 4097; /* includes the maximum exactly */
	if (lsn % 997 == 0)
		return 1500 + h % 3000;
	return h % 120; /* zero-length records too */
}

void record_fill(uint64_t lsn, uint8_t *buf, size_t len)
{
	uint64_t s = mix(lsn ^ 0x9e3779b97f4a7c15ull);
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(buf + i, &s, 8);
	}
	for (; i < len; i++)
		buf[i] = (uint8_t)(s >> (8 * (i & 7)));
}

/* ---- opening channels ---- */

static void *accept_body(void *arg)
{
	struct acceptor *a = arg;
	a->rc = channel_accept(a->l, 5000, &a->ch, &a->err);
	return NULL;
}

void acceptor_start(struct acceptor *a, struct channel_listener *l)
{
	memset(a, 0, sizeof(*a));
	a->l = l;
	assert_int_equal(pthread_create(&a->t, NULL, accept_body, a), 0);
}

void acceptor_join(struct acceptor *a)
{
	assert_int_equal(pthread_join(a->t, NULL), 0);
}

struct channel_listener *listen_local(const struct channel_config *c, char *addr, size_t n)
{
	struct channel_listener *l = NULL;
	assert_int_equal(channel_listen(c, "127.0.0.1:0", &l, NULL), 0);
	snprintf(addr, n, "127.0.0.1:%u", channel_listener_port(l));
	return l;
}

void open_pair(const struct channel_config *pc, const struct channel_config *bc,
		      struct channel **p, struct channel **b)
{
	struct acceptor a;
	struct channel_err err;
	char addr[64];
	struct channel_listener *l = listen_local(bc, addr, sizeof(addr));

	acceptor_start(&a, l);
	int rc = channel_connect(pc, addr, p, &err);
	acceptor_join(&a);
	assert_int_equal(rc, 0);
	assert_int_equal(a.rc, 0);
	*b = a.ch;
	channel_listener_close(l);
}

void open_bounded_pair(struct channel **p, struct channel **b)
{
	struct channel_config pc, bc;

	base_config(&pc);
	base_config(&bc);
	pc.buffer_bytes = bc.buffer_bytes = CHANNEL_MIN_BUFFER;
	open_pair(&pc, &bc, p, b);
}

long wait_down(struct channel *ch, int timeout_ms)
{
	uint64_t t0 = now_ms();
	struct pollfd p = { .fd = channel_event_fd(ch), .events = POLLIN };
	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return (long)(now_ms() - t0);
}

/* ---- 1. ordered delivery of millions of records ---- */

void *consume_body(void *arg)
{
	struct consumer *c = arg;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD), *want = malloc(CHANNEL_MAX_RECORD);
	uint64_t expect = c->first;

	while (c->received < c->count) {
		uint64_t lsn;
		size_t len;
		int rc = channel_recv(c->ch, &lsn, buf, CHANNEL_MAX_RECORD, &len, 10000);
		if (rc < 0) {
			c->final_rc = rc;
			break;
		}
		record_fill(lsn, want, len);
		if (lsn != expect || len != record_len(lsn) || memcmp(buf, want, len) != 0)
			c->bad++;
		expect = lsn + 1;
		c->received++;
		channel_ack(c->ch, lsn);
		if (c->report_icount)
			channel_report_icount(c->ch, lsn * 10);
	}
	free(buf);
	free(want);
	return NULL;
}

void consumer_start(struct consumer *c, struct channel *ch, uint64_t first, uint64_t count)
{
	memset(c, 0, sizeof(*c));
	c->ch = ch;
	c->first = first;
	c->count = count;
	c->report_icount = true;
	assert_int_equal(pthread_create(&c->t, NULL, consume_body, c), 0);
}

void send_range(struct channel *p, uint64_t first, uint64_t count, uint8_t *buf)
{
	for (uint64_t lsn = first; lsn < first + count; lsn++) {
		size_t len = record_len(lsn);
		record_fill(lsn, buf, len);
		int rc = channel_send_wait(p, lsn, buf, len, 10000);
		assert_int_equal(rc, 0);
	}
}

long rss_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define RSS_COUNTS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define RSS_COUNTS_SANITIZER 1
#endif
#endif

bool stall_rss_bounded(const struct stall *st, long bound_kib)
{
#ifdef RSS_COUNTS_SANITIZER
	print_message("RSS growth not judged under a sanitizer (%ld KiB here)\n", st->rss_end - st->rss_at_stall);
	return true;
#else
	return st->rss_at_stall > 0 && st->rss_end - st->rss_at_stall < bound_kib;
#endif
}

void stall_producer(struct channel *p, size_t rec, uint8_t *buf, struct stall *st)
{
	uint64_t lsn = 1, last_progress = now_ms();

	memset(st, 0, sizeof(*st));
	st->rss_at_stall = -1;
	while (now_ms() - last_progress < 3 * TIMEOUT_MS) {
		memset(buf, (int)lsn, rec);
		int rc = channel_send(p, lsn, buf, rec);
		if (rc == 0) {
			lsn++;
			last_progress = now_ms();
			continue;
		}
		assert_int_equal(rc, -EAGAIN);
		st->eagain++;
		if (st->rss_at_stall < 0 && now_ms() - last_progress > 100)
			st->rss_at_stall = rss_kib();
		sleep_ms(1);
	}
	st->queued = lsn - 1;
	st->rss_end = rss_kib();
}

void drain_stalled(struct channel *p, struct channel *b, uint64_t queued, size_t rec, uint8_t *buf)
{
	struct consumer c;

	/* Queued records were filled with memset, not record_fill: check order and length only. */
	for (uint64_t i = 1; i <= queued; i++) {
		uint64_t got;
		size_t len;
		assert_int_equal(channel_recv(b, &got, buf, CHANNEL_MAX_RECORD, &len, 5000), 0);
		assert_true(got == i && len == rec && buf[0] == (uint8_t)i);
		channel_ack(b, got);
	}
	consumer_start(&c, b, queued + 1, 1000);
	send_range(p, queued + 1, 1000, buf);
	assert_int_equal(channel_wait_acked(p, queued + 1000, 5000), 0);
	assert_int_equal(pthread_join(c.t, NULL), 0);
	assert_true(c.received == 1000 && c.bad == 0);
}

void check_idle_heartbeats(struct channel *p, struct channel *b)
{
	struct channel_stats ps, bs, ps2, bs2;

	channel_get_stats(p, &ps);
	channel_get_stats(b, &bs);
	sleep_ms(2 * TIMEOUT_MS);
	channel_get_stats(p, &ps2);
	channel_get_stats(b, &bs2);
	assert_int_equal(channel_state(p), CHANNEL_UP);
	assert_int_equal(channel_state(b), CHANNEL_UP);
	assert_true(ps2.heartbeats - ps.heartbeats >= TIMEOUT_MS / HB_MS);
	assert_true(bs2.heartbeats - bs.heartbeats >= TIMEOUT_MS / HB_MS);
}

void close_with_bye(struct channel *p, struct channel *b)
{
	channel_close(p);
	assert_true(wait_down(b, 2000) >= 0);
	assert_int_equal(channel_state(b), CHANNEL_PEER_CLOSED);
	assert_non_null(strstr(channel_error(b), "BYE"));
	channel_close(b);
}
