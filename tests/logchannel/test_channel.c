/*
 * test_channel.c — the logging channel over real sockets on the loopback: ordered delivery of
 * millions of records of random sizes with content checks, acks and heartbeats advancing, the
 * bounded buffer under a consumer that stops reading, every kind of bad frame in both directions,
 * refused handshakes (VM id, epoch, version, malformed), and peers that are SIGKILLed or
 * SIGSTOPped in another process being detected within the timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "logchannel/channel.h"
#include "logchannel/channel_internal.h"
#include "logchannel/protocol.h"

#include "chan_harness.h"

/*
 * Milliseconds from @heard (a channel's last_rx_ns) until now. A silence timeout is checked
 * against this, not against when the test began to wait: the timer runs from the last byte the
 * channel heard, and under load the test thread, or a peer's last heartbeat, can be tens of ms
 * late without the channel being early.
 */
static uint64_t silent_since(uint64_t heard)
{
	return (chnet_now_ns() - heard) / 1000000u;
}

static void test_ordered_delivery(void **state)
{
	struct channel_config pc, bc;
	struct channel *p, *b;
	struct consumer c;
	const uint64_t start = 1000, n = 2000000;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD);

	base_config(&pc);
	base_config(&bc);
	pc.start_lsn = start;
	open_pair(&pc, &bc, &p, &b);
	assert_int_equal(channel_start_lsn(b), start);
	assert_true(channel_acked_lsn(p) == start - 1);
	consumer_start(&c, b, start, n);

	uint64_t t0 = now_ms(), last_acked = start - 1, advances = 0;
	for (uint64_t lsn = start; lsn < start + n; lsn += 100000) {
		send_range(p, lsn, MIN(100000, start + n - lsn), buf);
		uint64_t a = channel_acked_lsn(p);
		assert_true(a >= last_acked); /* acks never go back */
		advances += a > last_acked;
		last_acked = a;
	}
	assert_int_equal(channel_wait_acked(p, start + n - 1, 20000), 0);
	uint64_t ms = now_ms() - t0;
	assert_int_equal(pthread_join(c.t, NULL), 0);
	assert_int_equal(c.final_rc, 0);
	assert_true(c.received == n);
	assert_true(c.bad == 0);
	assert_true(channel_acked_lsn(p) == start + n - 1);
	assert_true(advances >= 10); /* acks flowed while streaming, not only at the end */
	assert_int_equal(channel_wait_acked(p, start + n, 50), -ETIMEDOUT); /* never sent */

	/* The backup's icount arrives with the next heartbeats. */
	uint64_t want_icount = (start + n - 1) * 10;
	for (int i = 0; i < 50 && channel_peer_icount(p) != want_icount; i++)
		sleep_ms(HB_MS);
	assert_true(channel_peer_icount(p) == want_icount);

	struct channel_stats ps, bs;
	channel_get_stats(p, &ps);
	channel_get_stats(b, &bs);
	print_message("%llu records, %.1f MB in %llu ms; %llu writes, %llu acks, %llu heartbeats\n",
		      (unsigned long long)ps.records, ps.record_bytes / 1e6, (unsigned long long)ms,
		      (unsigned long long)ps.writes, (unsigned long long)bs.acks,
		      (unsigned long long)ps.heartbeats);
	assert_true(ps.records == n && bs.records == n);
	assert_true(ps.record_bytes == bs.record_bytes);
	assert_true(ps.writes < n / 4);  /* small records were batched */
	assert_true(bs.acks < n / 2);	 /* acks were coalesced */
	assert_true(ps.acks == bs.acks); /* every ACK sent was received */
	assert_int_equal(channel_state(p), CHANNEL_UP);
	assert_int_equal(channel_state(b), CHANNEL_UP);

	/* Idle for twice the timeout: heartbeats both ways keep the channel up. */
	check_idle_heartbeats(p, b);
	close_with_bye(p, b);
	free(buf);
}

/* ---- 2. bounded buffer: a backup that stops reading ---- */

static void test_backpressure(void **state)
{
	struct channel *p, *b;
	const size_t rec = 4096;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD);

	open_bounded_pair(&p, &b);

	/* Nobody calls channel_recv(): send until no progress for well over the timeout. */
	struct stall st;
	stall_producer(p, rec, buf, &st);
	struct channel_stats ps, bs;
	channel_get_stats(p, &ps);
	channel_get_stats(b, &bs);
	print_message("stalled after %llu records; sender queue %zu/%zu, receiver queue %zu/%zu; "
		      "RSS %ld -> %ld KiB over %u refused sends\n",
		      (unsigned long long)st.queued, ps.queued_bytes, ps.capacity, bs.queued_bytes,
		      bs.capacity, st.rss_at_stall, st.rss_end, st.eagain);
	assert_true(st.eagain > 100);
	assert_true(ps.full == st.eagain);
	assert_true(ps.capacity == CHANNEL_MIN_BUFFER);
	assert_true(ps.queued_bytes <= ps.capacity);
	assert_true(ps.queued_bytes + CHPROTO_HDR_SIZE + rec > ps.capacity); /* it is full */
	assert_true(bs.queued_bytes <= bs.capacity);
	/* Sender ring + receiver ring + kernel socket buffers: nothing else holds records. */
	assert_true(st.queued * rec < 32 * MiB);
	assert_true(stall_rss_bounded(&st, 1024));
	/* Stalled is not dead: heartbeats kept both sides up past the timeout. */
	assert_int_equal(channel_state(p), CHANNEL_UP);
	assert_int_equal(channel_state(b), CHANNEL_UP);
	assert_int_equal(channel_send_wait(p, st.queued + 1, buf, rec, 50), -ETIMEDOUT);

	/* The consumer starts: everything queued drains in order and the producer goes on. */
	drain_stalled(p, b, st.queued, rec, buf);
	channel_close(p);
	channel_close(b);
	free(buf);
}

/* ack_on_receipt: the backup's channel thread acks what it holds, before anyone consumes it. */
static void test_ack_on_receipt(void **state)
{
	struct channel_config pc, bc;
	struct channel *p, *b;
	uint8_t buf[64] = { 0 };

	base_config(&pc);
	base_config(&bc);
	bc.ack_on_receipt = true;
	open_pair(&pc, &bc, &p, &b);
	for (uint64_t lsn = 1; lsn <= 1000; lsn++)
		assert_int_equal(channel_send_wait(p, lsn, buf, sizeof(buf), 2000), 0);
	/* Nobody calls channel_recv() or channel_ack(), and still every record is acked. */
	assert_int_equal(channel_wait_acked(p, 1000, 2000), 0);
	struct channel_stats bs;
	channel_get_stats(b, &bs);
	assert_true(bs.queued_bytes == 1000 * (16 + sizeof(buf)));
	assert_true(bs.acks >= 1);
	/* The records are all still there, in order, and a late channel_ack() is harmless. */
	for (uint64_t lsn = 1; lsn <= 1000; lsn++) {
		uint64_t got;
		size_t len;
		assert_int_equal(channel_recv(b, &got, buf, sizeof(buf), &len, 1000), 0);
		assert_true(got == lsn);
		channel_ack(b, got);
	}
	assert_int_equal(channel_state(p), CHANNEL_UP);
	assert_int_equal(channel_state(b), CHANNEL_UP);
	channel_close(p);
	channel_close(b);
}

/* Without it, nothing is acked before the consumer says so. */
static void test_ack_waits_for_consumer(void **state)
{
	struct channel_config pc, bc;
	struct channel *p, *b;
	uint8_t buf[64] = { 0 };
	uint64_t got;
	size_t len;

	base_config(&pc);
	base_config(&bc);
	open_pair(&pc, &bc, &p, &b);
	for (uint64_t lsn = 1; lsn <= 10; lsn++)
		assert_int_equal(channel_send(p, lsn, buf, sizeof(buf)), 0);
	assert_int_equal(channel_wait_acked(p, 1, 3 * HB_MS), -ETIMEDOUT);
	assert_int_equal(channel_recv(b, &got, buf, sizeof(buf), &len, 1000), 0);
	channel_ack(b, got);
	assert_int_equal(channel_wait_acked(p, 1, 1000), 0);
	assert_true(channel_acked_lsn(p) == 1); /* exactly what was acked, no more */

	/* channel_flush(): everything queued is handed to the kernel. */
	for (uint64_t lsn = 11; lsn <= 1000; lsn++)
		assert_int_equal(channel_send_wait(p, lsn, buf, sizeof(buf), 1000), 0);
	assert_int_equal(channel_flush(p, 2000), 0);
	struct channel_stats ps;
	channel_get_stats(p, &ps);
	assert_true(ps.queued_bytes == 0);

	/* A buffer too small: -EMSGSIZE with the size needed, and the record stays queued. */
	uint8_t small[8];
	assert_int_equal(channel_recv(b, &got, small, sizeof(small), &len, 1000), -EMSGSIZE);
	assert_int_equal(len, sizeof(buf));
	assert_int_equal(channel_recv(b, &got, buf, sizeof(buf), &len, 1000), 0);
	assert_true(got == 2 && len == sizeof(buf));
	channel_close(p);
	channel_close(b);
}

/* The backup's progress reaches the primary within a few ms, not a heartbeat interval later. */
static void test_icount_reports(void **state)
{
	struct channel_config pc, bc;
	struct channel *p, *b;

	base_config(&pc);
	base_config(&bc);
	pc.heartbeat_ms = bc.heartbeat_ms = 1000;
	pc.timeout_ms = bc.timeout_ms = 5000;
	open_pair(&pc, &bc, &p, &b);
	sleep_ms(50);
	for (icount_t icount = 1000; icount <= 5000; icount += 1000) {
		uint64_t t0 = now_ms();
		bool caught_up = icount % 2000 == 0;
		if (caught_up)
			channel_report_caught_up(b, icount);
		else
			channel_report_icount(b, icount);
		while (channel_peer_icount(p) != icount && now_ms() - t0 < 500)
			sleep_ms(1);
		uint64_t ms = now_ms() - t0;
		print_message("icount %llu (%s) seen by the primary after %llu ms\n",
			      (unsigned long long)icount, caught_up ? "caught up" : "replaying",
			      (unsigned long long)ms);
		assert_true(channel_peer_icount(p) == icount);
		assert_true(channel_peer_caught_up(p) == caught_up);
		assert_true(ms < 100); /* heartbeats alone come every 1000 ms here */
	}
	channel_close(p);
	channel_close(b);
}

/* ---- 3. handshake refusals ---- */

static void test_refuse_vm_id_and_epoch(void **state)
{
	struct channel_config pc, bc;
	struct channel_err err;
	struct acceptor a;
	struct channel *p = NULL;
	char addr[64];

	base_config(&bc);
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));

	base_config(&pc);
	pc.vm_id = "some-other-vm";
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&pc, addr, &p, &err), -EPERM);
	acceptor_join(&a);
	assert_null(p);
	assert_int_equal(a.rc, -EPERM);
	assert_non_null(strstr(err.msg, "expects VM id \"" VM_ID "\""));
	assert_non_null(strstr(err.msg, "sent \"some-other-vm\""));
	assert_non_null(strstr(a.err.msg, "some-other-vm"));

	base_config(&pc);
	pc.epoch = EPOCH + 1;
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&pc, addr, &p, &err), -ESTALE);
	acceptor_join(&a);
	assert_int_equal(a.rc, -ESTALE);
	assert_non_null(strstr(err.msg, "expects epoch 3, the primary sent epoch 4"));

	/* The listener is still good for the right primary. */
	base_config(&pc);
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&pc, addr, &p, &err), 0);
	acceptor_join(&a);
	assert_int_equal(a.rc, 0);
	channel_close(p);
	channel_close(a.ch);
	channel_listener_close(l);

	/* Nobody listening, bad address, bad config. */
	assert_int_equal(channel_connect(&pc, addr, &p, &err), -ECONNREFUSED);
	assert_int_equal(channel_connect(&pc, "127.0.0.1", &p, &err), -EINVAL);
	pc.vm_id = "";
	assert_int_equal(channel_connect(&pc, addr, &p, &err), -EINVAL);
}

/* A hand-made primary: plain blocking socket, frames built with protocol.h. */
static int raw_connect(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void raw_write(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void raw_read(int fd, void *p, size_t n)
{
	assert_int_equal(recv(fd, p, n, MSG_WAITALL), (ssize_t)n);
}

static void raw_hello(int fd, unsigned version, const char *vm, uint64_t epoch, uint64_t start)
{
	struct chproto_hello h = { .epoch = epoch, .start_lsn = start, .max_record = 4096,
				   .heartbeat_ms = HB_MS, .timeout_ms = TIMEOUT_MS };
	uint8_t hdr[CHPROTO_HDR_SIZE], payload[CHPROTO_HELLO_MAX];
	h.vm_id_len = (uint16_t)strlen(vm);
	memcpy(h.vm_id, vm, h.vm_id_len);
	uint32_t len = chproto_hello_encode(payload, &h);
	chproto_encode_version(hdr, version, CHPROTO_HELLO, 0, payload, len);
	raw_write(fd, hdr, sizeof(hdr));
	raw_write(fd, payload, len);
}

static void test_refuse_version_and_malformed(void **state)
{
	struct channel_config bc;
	struct acceptor a;
	struct chproto_hdr h;
	uint8_t hdr[CHPROTO_HDR_SIZE];
	char msg[CHPROTO_REFUSE_MAX + 1], why[256], addr[64];

	plain_config(&bc);
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	unsigned port = channel_listener_port(l);

	/* A primary of protocol version 2 is told why, in a frame it can parse up to the version. */
	acceptor_start(&a, l);
	int fd = raw_connect(port);
	raw_hello(fd, 2, VM_ID, EPOCH, 1);
	raw_read(fd, hdr, sizeof(hdr));
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), 0);
	assert_int_equal(h.kind, CHPROTO_REFUSE);
	assert_int_equal(h.arg, CHPROTO_REFUSE_VERSION);
	raw_read(fd, msg, h.len);
	msg[h.len] = '\0';
	assert_non_null(strstr(msg, "backup speaks 1, primary sent version 2"));
	assert_int_equal(recv(fd, hdr, 1, 0), 0); /* and the connection is closed */
	close(fd);
	acceptor_join(&a);
	assert_int_equal(a.rc, -EPROTONOSUPPORT);

	/* Garbage instead of a HELLO. */
	acceptor_start(&a, l);
	fd = raw_connect(port);
	raw_write(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	acceptor_join(&a);
	assert_int_equal(a.rc, -EPROTO);
	assert_non_null(strstr(a.err.msg, "garbage"));
	close(fd);

	/* A HELLO whose VM id length lies. */
	acceptor_start(&a, l);
	fd = raw_connect(port);
	uint8_t payload[CHPROTO_HELLO_FIXED + 4] = { 0 };
	put_le64(payload + 8, 1);
	put_le16(payload + 28, 100);
	memcpy(payload + CHPROTO_HELLO_FIXED, "abcd", 4);
	chproto_encode(hdr, CHPROTO_HELLO, 0, payload, sizeof(payload));
	raw_write(fd, hdr, sizeof(hdr));
	raw_write(fd, payload, sizeof(payload));
	acceptor_join(&a);
	assert_int_equal(a.rc, -EPROTO);
	assert_non_null(strstr(a.err.msg, "malformed HELLO"));
	close(fd);

	/* A truncated HELLO, then the peer goes away: dropped, the backup goes on waiting. */
	struct channel_listener_stats st;
	acceptor_start(&a, l);
	fd = raw_connect(port);
	raw_write(fd, hdr, 10);
	close(fd);
	fd = raw_connect(port); /* and the right primary after it */
	raw_hello(fd, CHPROTO_VERSION, VM_ID, EPOCH, 1);
	acceptor_join(&a);
	assert_int_equal(a.rc, 0);
	channel_listener_get_stats(l, &st);
	assert_int_equal(st.hung_up, 1);
	channel_close(a.ch);
	close(fd);

	/* A connection that never says anything: dropped after the handshake deadline, and the
	 * listener is still good for the next one. */
	channel_listener_close(l);
	bc.handshake_timeout_ms = 200;
	l = listen_local(&bc, addr, sizeof(addr));
	port = channel_listener_port(l);
	fd = raw_connect(port);
	struct channel *none = NULL;
	assert_int_equal(channel_accept(l, 500, &none, &a.err), -ETIMEDOUT);
	assert_null(none);
	channel_listener_get_stats(l, &st);
	assert_int_equal(st.timed_out, 1);
	char byte;
	assert_int_equal(recv(fd, &byte, 1, 0), 0); /* closed, with nothing said */
	close(fd);

	/* A record before any HELLO. */
	acceptor_start(&a, l);
	fd = raw_connect(port);
	chproto_encode(hdr, CHPROTO_RECORD, 1, NULL, 0);
	raw_write(fd, hdr, sizeof(hdr));
	acceptor_join(&a);
	assert_int_equal(a.rc, -EPROTO);
	assert_non_null(strstr(a.err.msg, "expected HELLO, got a RECORD frame"));
	close(fd);
	channel_listener_close(l);
}

/* ---- 4. bad frames after the handshake, primary -> backup ---- */

struct bad_case {
	const char *name;
	enum channel_state state;
	const char *msg;
};

/* Handshake by hand, send @good valid records, then @bad bytes (and close if @hangup). */
static void run_bad_case(const struct bad_case *bc_, const uint8_t *bad, size_t n, bool hangup)
{
	struct channel_config bc;
	struct acceptor a;
	uint8_t hdr[CHPROTO_HDR_SIZE], payload[64];
	char addr[64];
	const uint64_t start = 50, good = 5;

	plain_config(&bc);
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	acceptor_start(&a, l);
	int fd = raw_connect(channel_listener_port(l));
	raw_hello(fd, CHPROTO_VERSION, VM_ID, EPOCH, start);
	raw_read(fd, hdr, sizeof(hdr)); /* WELCOME */
	acceptor_join(&a);
	assert_int_equal(a.rc, 0);
	struct channel *b = a.ch;

	for (uint64_t lsn = start; lsn < start + good; lsn++) {
		memset(payload, (int)lsn, sizeof(payload));
		chproto_encode(hdr, CHPROTO_RECORD, lsn, payload, sizeof(payload));
		raw_write(fd, hdr, sizeof(hdr));
		raw_write(fd, payload, sizeof(payload));
	}
	raw_write(fd, bad, n);
	if (hangup)
		shutdown(fd, SHUT_WR);

	/* Records that arrived before the fault are still delivered, then the error. */
	for (uint64_t lsn = start; lsn < start + good; lsn++) {
		uint64_t got;
		size_t len;
		uint8_t buf[128];
		assert_int_equal(channel_recv(b, &got, buf, sizeof(buf), &len, 2000), 0);
		assert_true(got == lsn && len == sizeof(payload) && buf[0] == (uint8_t)lsn);
	}
	uint64_t got;
	size_t len;
	uint8_t buf[128];
	assert_int_equal(channel_recv(b, &got, buf, sizeof(buf), &len, 2000), -EPIPE);
	if (bc_->name)
		print_message("%-18s -> %s: %s\n", bc_->name, channel_state_name(channel_state(b)),
			      channel_error(b));
	if (bc_->state == CHANNEL_UP) /* any failure will do */
		assert_true(channel_state(b) == CHANNEL_PROTOCOL ||
			    channel_state(b) == CHANNEL_BROKEN);
	else
		assert_int_equal(channel_state(b), bc_->state);
	assert_true(channel_error(b)[0] != '\0');
	assert_non_null(strstr(channel_error(b), bc_->msg));
	/* Stays failed: nothing is re-established, further calls keep failing. */
	assert_int_equal(channel_recv(b, &got, buf, sizeof(buf), &len, 0), -EPIPE);
	close(fd);
	channel_close(b);
	channel_listener_close(l);
}

static void test_bad_frames_to_backup(void **state)
{
	uint8_t f[CHPROTO_HDR_SIZE + 600];
	uint8_t payload[600];

	memset(f, 0xa5, sizeof(f));
	run_bad_case(&(struct bad_case){ "garbage", CHANNEL_PROTOCOL, "garbage: bad frame magic" },
		     f, 64, false);

	memset(payload, 7, sizeof(payload));
	chproto_encode(f, CHPROTO_RECORD, 55, payload, sizeof(payload));
	memcpy(f + CHPROTO_HDR_SIZE, payload, sizeof(payload));
	run_bad_case(&(struct bad_case){ "truncated payload", CHANNEL_BROKEN, "truncated frame" },
		     f, CHPROTO_HDR_SIZE + 300, true);
	run_bad_case(&(struct bad_case){ "truncated header", CHANNEL_BROKEN, "truncated frame" }, f,
		     10, true);

	f[CHPROTO_HDR_SIZE + 100] ^= 0x40;
	run_bad_case(&(struct bad_case){ "corrupt payload", CHANNEL_PROTOCOL, "corrupt RECORD" }, f,
		     sizeof(f), false);

	chproto_encode(f, CHPROTO_RECORD, 55, NULL, 0xfffffff0u);
	run_bad_case(&(struct bad_case){ "oversized", CHANNEL_PROTOCOL, "oversized RECORD" }, f,
		     CHPROTO_HDR_SIZE, false);

	chproto_encode(f, 99, 0, NULL, 0);
	run_bad_case(&(struct bad_case){ "unknown kind", CHANNEL_PROTOCOL,
					 "unknown frame kind 99" },
		     f, CHPROTO_HDR_SIZE, false);

	chproto_encode_version(f, 9, CHPROTO_RECORD, 55, NULL, 0);
	run_bad_case(&(struct bad_case){ "wrong version", CHANNEL_PROTOCOL,
					 "protocol version 9" },
		     f, CHPROTO_HDR_SIZE, false);

	chproto_encode(f, CHPROTO_RECORD, 60, NULL, 0);
	run_bad_case(&(struct bad_case){ "LSN gap", CHANNEL_PROTOCOL,
					 "out-of-order LSN 60, expected 55" },
		     f, CHPROTO_HDR_SIZE, false);

	chproto_encode(f, CHPROTO_ACK, 1, NULL, 0);
	run_bad_case(&(struct bad_case){ "wrong direction", CHANNEL_PROTOCOL,
					 "unexpected ACK frame from the primary" },
		     f, CHPROTO_HDR_SIZE, false);

	chproto_encode(f, CHPROTO_BYE, 0, NULL, 0);
	run_bad_case(&(struct bad_case){ "BYE", CHANNEL_PEER_CLOSED, "BYE" }, f, CHPROTO_HDR_SIZE,
		     false);

	run_bad_case(&(struct bad_case){ "hang-up", CHANNEL_BROKEN, "closed by the peer" }, f, 0,
		     true);
}

/*
 * A primary that never reads: the backup's outgoing direction (ACKs, heartbeats) fills up. The
 * backup must keep reading and delivering records all the same (it once spun on a due ACK instead).
 */
struct raw_stream {
	int fd;
	uint64_t first, count;
	pthread_t t;
};

/*
 * The primary's side of test_backup_acks_blocked: reads the backup's ACKs only every
 * SLOW_ACK_PERIOD_MS, and meanwhile samples every millisecond how many bytes wait unacknowledged
 * in the backup's socket (@watch_fd), so the test can show the ACK path really was blocked.
 */
enum { SLOW_ACK_PERIOD_MS = 100 };

struct slow_ack_reader {
	int fd, watch_fd;
	atomic_bool stop;
	int max_unsent;
	pthread_t t;
};

static void *slow_ack_reader_body(void *arg)
{
	struct slow_ack_reader *r = arg;
	uint8_t junk[65536];

	while (!atomic_load(&r->stop)) {
		for (int ms = 0; ms < SLOW_ACK_PERIOD_MS && !atomic_load(&r->stop); ms++) {
			struct timespec ts = { 0, 1000000L };
			nanosleep(&ts, NULL);
			int unsent = 0;
			if (ioctl(r->watch_fd, SIOCOUTQ, &unsent) == 0 && unsent > r->max_unsent)
				r->max_unsent = unsent;
		}
		while (recv(r->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
	}
	return NULL;
}

static void *raw_stream_body(void *arg)
{
	struct raw_stream *r = arg;
	enum { BATCH = 1024, PAYLOAD = 8 };
	static uint8_t frames[BATCH * (CHPROTO_HDR_SIZE + PAYLOAD)];
	for (uint64_t lsn = r->first; lsn < r->first + r->count;) {
		size_t n = 0;
		for (int i = 0; i < BATCH && lsn < r->first + r->count; i++, lsn++) {
			uint8_t *f = frames + n;
			put_le64(f + CHPROTO_HDR_SIZE, lsn);
			chproto_encode(f, CHPROTO_RECORD, lsn, f + CHPROTO_HDR_SIZE, PAYLOAD);
			n += CHPROTO_HDR_SIZE + PAYLOAD;
		}
		if (send(r->fd, frames, n, MSG_NOSIGNAL) != (ssize_t)n)
			break;
	}
	return NULL;
}

/*
 * The backup keeps reading and delivering records while its ACKs cannot be written: a primary
 * that reads its socket only every SLOW_ACK_PERIOD_MS, with a tiny receive buffer, and a tiny
 * send buffer on the backup's socket keep the backup's ACKs piling up between reads.
 * (A primary that never reads at all stalls Linux TCP itself: with its receive window at zero it
 * drops the backup's segments, ACK numbers included, as beyond the window, and its own data
 * then waits out retransmission timeouts backing off to seconds — nothing the backup can help.)
 */
static void test_backup_acks_blocked(void **state)
{
	struct channel_config bc;
	struct acceptor a;
	struct raw_stream rs;
	uint8_t hdr[CHPROTO_HDR_SIZE];
	char addr[64];
	const uint64_t n = 200000;

	plain_config(&bc);
	bc.timeout_ms = 5000; /* the silent primary is not what this test is about */
	bc.ack_every = 1;
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	acceptor_start(&a, l);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)channel_listener_port(l)),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	raw_hello(fd, CHPROTO_VERSION, VM_ID, EPOCH, 1);
	raw_read(fd, hdr, sizeof(hdr)); /* WELCOME; nothing is read after this */
	acceptor_join(&a);
	assert_int_equal(a.rc, 0);
	/* White box: a small send buffer on the backup's socket, so ACKs fill it quickly. */
	assert_int_equal(setsockopt(a.ch->link->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);

	struct slow_ack_reader acks = { .fd = fd, .watch_fd = a.ch->link->fd };
	assert_int_equal(pthread_create(&acks.t, NULL, slow_ack_reader_body, &acks), 0);
	rs.fd = fd;
	rs.first = 1;
	rs.count = n;
	assert_int_equal(pthread_create(&rs.t, NULL, raw_stream_body, &rs), 0);
	uint8_t buf[64];
	for (uint64_t lsn = 1; lsn <= n; lsn++) {
		uint64_t got;
		size_t len;
		int rc = channel_recv(a.ch, &got, buf, sizeof(buf), &len, 3000);
		if (rc != 0)
			print_message("record %llu: %d %s\n", (unsigned long long)lsn, rc,
				      channel_error(a.ch));
		assert_int_equal(rc, 0);
		assert_true(got == lsn && get_le64(buf) == lsn);
		channel_ack(a.ch, got);
	}
	assert_int_equal(pthread_join(rs.t, NULL), 0);
	atomic_store(&acks.stop, true);
	assert_int_equal(pthread_join(acks.t, NULL), 0);
	struct channel_stats bs;
	channel_get_stats(a.ch, &bs);
	print_message("%llu acks sent to a primary that reads every %d ms; up to %d bytes of them "
		      "waited unacknowledged in the backup's socket\n",
		      (unsigned long long)bs.acks, SLOW_ACK_PERIOD_MS, acks.max_unsent);
	/*
	 * The ACK path was blocked: bytes waited in the socket, and of the ACK a record each that
	 * ack_every = 1 asks for, almost all were refused by the full socket and merged into the
	 * next cumulative one (a small socket fills with a few small frames: the kernel counts the
	 * buffers' overhead, not their payload).
	 */
	assert_true(acks.max_unsent > 0);
	assert_true(bs.acks < n / 10);
	assert_int_equal(channel_state(a.ch), CHANNEL_UP);
	channel_close(a.ch);
	close(fd);
	channel_listener_close(l);
}

/* Seeded random garbage, and headers that are right up to one random field: always a clean end. */
static void test_random_garbage_to_backup(void **state)
{
	uint8_t f[4096];
	uint64_t seed = 0x5eed;

	for (int i = 0; i < 40; i++) {
		size_t n = 1 + (size_t)(mix(seed + (uint64_t)i) % sizeof(f));
		for (size_t k = 0; k < n; k++)
			f[k] = (uint8_t)mix(seed ^ ((uint64_t)i << 32) ^ k);
		if (i % 2 && n >= CHPROTO_HDR_SIZE) {
			/* A plausible header: right magic and version, the rest random. */
			put_le32(f + CHPROTO_OFF_MAGIC, CHPROTO_MAGIC);
			f[CHPROTO_OFF_VERSION] = CHPROTO_VERSION;
			if (i % 4 == 1)
				f[CHPROTO_OFF_KIND] = CHPROTO_RECORD;
			if (i % 8 == 1)
				put_le16(f + CHPROTO_OFF_FLAGS, 0);
		}
		run_bad_case(&(struct bad_case){ NULL, CHANNEL_UP, "" }, f, n, true);
	}
}

/* ---- 5. bad input to the primary from a hand-made backup ---- */

struct connector {
	struct channel_config cfg;
	char addr[64];
	struct channel *ch;
	struct channel_err err;
	int rc;
	pthread_t t;
};

static void *connect_body(void *arg)
{
	struct connector *c = arg;
	c->rc = channel_connect(&c->cfg, c->addr, &c->ch, &c->err);
	return NULL;
}

static int raw_listen(unsigned *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Accept the primary, read its HELLO, answer @answer (@alen bytes; NULL: a WELCOME). */
static int raw_backup_accept(int lfd, struct connector *c, const uint8_t *answer, size_t alen)
{
	uint8_t hdr[CHPROTO_HDR_SIZE], payload[CHPROTO_HELLO_MAX];
	struct chproto_hdr h;
	char why[256];

	assert_int_equal(pthread_create(&c->t, NULL, connect_body, c), 0);
	int fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	raw_read(fd, hdr, sizeof(hdr));
	assert_int_equal(chproto_decode(hdr, &h, why, sizeof(why)), 0);
	assert_int_equal(h.kind, CHPROTO_HELLO);
	raw_read(fd, payload, h.len);
	if (answer) {
		raw_write(fd, answer, alen);
	} else {
		chproto_encode(hdr, CHPROTO_WELCOME, c->cfg.start_lsn, NULL, 0);
		raw_write(fd, hdr, sizeof(hdr));
	}
	return fd;
}

static void test_bad_input_to_primary(void **state)
{
	struct connector c;
	uint8_t f[CHPROTO_HDR_SIZE + 8];
	unsigned port;
	int lfd = raw_listen(&port);

	memset(&c, 0, sizeof(c));
	plain_config(&c.cfg);
	snprintf(c.addr, sizeof(c.addr), "127.0.0.1:%u", port);

	/* Garbage instead of WELCOME. */
	memset(f, 'x', sizeof(f));
	int fd = raw_backup_accept(lfd, &c, f, sizeof(f));
	assert_int_equal(pthread_join(c.t, NULL), 0);
	assert_int_equal(c.rc, -EPROTO);
	assert_non_null(strstr(c.err.msg, "garbage"));
	close(fd);

	/* A backup that accepts and never answers: the handshake times out. */
	c.cfg.connect_timeout_ms = 200;
	fd = raw_backup_accept(lfd, &c, f, 0);
	assert_int_equal(pthread_join(c.t, NULL), 0);
	assert_int_equal(c.rc, -ETIMEDOUT);
	close(fd);
	c.cfg.connect_timeout_ms = 2000;

	/* After WELCOME: an ACK for an LSN never sent. */
	fd = raw_backup_accept(lfd, &c, NULL, 0);
	assert_int_equal(pthread_join(c.t, NULL), 0);
	assert_int_equal(c.rc, 0);
	assert_int_equal(channel_send(c.ch, 1, "abc", 3), 0);
	assert_int_equal(channel_send(c.ch, 3, "abc", 3), -EINVAL); /* LSN gap refused locally */
	assert_int_equal(channel_send(c.ch, 2, f, CHANNEL_MAX_RECORD + 1), -EMSGSIZE);
	chproto_encode(f, CHPROTO_ACK, 1, NULL, 0);
	raw_write(fd, f, CHPROTO_HDR_SIZE);
	assert_int_equal(channel_wait_acked(c.ch, 1, 2000), 0);
	chproto_encode(f, CHPROTO_ACK, 7, NULL, 0);
	raw_write(fd, f, CHPROTO_HDR_SIZE);
	assert_int_equal(channel_wait_acked(c.ch, 7, 2000), -EPIPE);
	assert_int_equal(channel_state(c.ch), CHANNEL_PROTOCOL);
	assert_non_null(strstr(channel_error(c.ch), "bad ACK 7"));
	assert_int_equal(channel_send(c.ch, 2, "abc", 3), -EPIPE);
	channel_close(c.ch);
	close(fd);

	/* After WELCOME: a RECORD sent to the primary. */
	fd = raw_backup_accept(lfd, &c, NULL, 0);
	assert_int_equal(pthread_join(c.t, NULL), 0);
	assert_int_equal(c.rc, 0);
	chproto_encode(f, CHPROTO_RECORD, 1, "12345678", 8);
	memcpy(f + CHPROTO_HDR_SIZE, "12345678", 8);
	raw_write(fd, f, sizeof(f));
	assert_true(wait_down(c.ch, 2000) >= 0);
	assert_int_equal(channel_state(c.ch), CHANNEL_PROTOCOL);
	assert_non_null(strstr(channel_error(c.ch), "unexpected RECORD frame from the backup"));
	channel_close(c.ch);
	close(fd);

	/* After WELCOME: a corrupt heartbeat. */
	fd = raw_backup_accept(lfd, &c, NULL, 0);
	assert_int_equal(pthread_join(c.t, NULL), 0);
	assert_int_equal(c.rc, 0);
	chproto_encode(f, CHPROTO_HEARTBEAT, 5, NULL, 0);
	f[CHPROTO_OFF_ARG] ^= 2;
	raw_write(fd, f, CHPROTO_HDR_SIZE);
	assert_true(wait_down(c.ch, 2000) >= 0);
	assert_non_null(strstr(channel_error(c.ch), "corrupt HEARTBEAT"));
	channel_close(c.ch);
	close(fd);

	/* After WELCOME: silence (no heartbeats at all) fails the channel after the timeout. */
	fd = raw_backup_accept(lfd, &c, NULL, 0);
	assert_int_equal(pthread_join(c.t, NULL), 0);
	assert_int_equal(c.rc, 0);
	uint64_t heard = atomic_load(&c.ch->last_rx_ns);
	long ms = wait_down(c.ch, 3 * TIMEOUT_MS);
	assert_true(ms >= 0 && ms < TIMEOUT_MS + 300);
	assert_true(silent_since(heard) >= TIMEOUT_MS);
	assert_int_equal(channel_state(c.ch), CHANNEL_TIMED_OUT);
	assert_non_null(strstr(channel_error(c.ch), "peer silent"));
	channel_close(c.ch);
	close(fd);
	close(lfd);
}

/* ---- 6. peers in another process, killed or stopped ---- */

/* Child: a backup that receives and acks forever. Reports its port through @wfd. */
static void child_backup(int wfd)
{
	struct channel_config bc;
	struct channel_listener *l;
	struct channel *b;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD);

	base_config(&bc);
	if (channel_listen(&bc, "127.0.0.1:0", &l, NULL) < 0)
		_exit(2);
	unsigned port = channel_listener_port(l);
	if (write(wfd, &port, sizeof(port)) != sizeof(port))
		_exit(3);
	if (channel_accept(l, 5000, &b, NULL) < 0)
		_exit(4);
	for (;;) {
		uint64_t lsn;
		size_t len;
		int rc = channel_recv(b, &lsn, buf, CHANNEL_MAX_RECORD, &len, 1000);
		if (rc == 0) {
			channel_ack(b, lsn);
			channel_report_icount(b, lsn);
		} else if (rc != -ETIMEDOUT) {
			_exit(0);
		}
	}
}

/* Child: a primary that streams records forever to @port. */
static void child_primary(unsigned port)
{
	struct channel_config pc;
	struct channel *p;
	char addr[64], buf[256];

	base_config(&pc);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	if (channel_connect(&pc, addr, &p, NULL) < 0)
		_exit(2);
	memset(buf, 'p', sizeof(buf));
	for (uint64_t lsn = 1;; lsn++)
		if (channel_send_wait(p, lsn, buf, sizeof(buf), -1) < 0)
			_exit(0);
}

static pid_t spawn_backup(unsigned *port)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
		close(pfd[0]);
		child_backup(pfd[1]);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], port, sizeof(*port)), (ssize_t)sizeof(*port));
	close(pfd[0]);
	return pid;
}

struct fail_note {
	int calls;
	enum channel_state state;
};

static void on_failure(struct channel *ch, enum channel_state st, const char *why, void *opaque)
{
	struct fail_note *n = opaque;
	n->calls++;
	n->state = st;
}

static struct channel *connect_to_child(unsigned port, struct fail_note *note)
{
	struct channel_config pc;
	struct channel *p = NULL;
	char addr[64];

	base_config(&pc);
	pc.on_failure = on_failure;
	pc.opaque = note;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	assert_int_equal(channel_connect(&pc, addr, &p, NULL), 0);
	return p;
}

static void test_killed_backup(void **state)
{
	struct fail_note note = { 0 };
	unsigned port;
	char buf[512];
	pid_t pid = spawn_backup(&port);
	struct channel *p = connect_to_child(port, &note);

	memset(buf, 'k', sizeof(buf));
	uint64_t lsn = 1, t_end = now_ms() + 200;
	while (now_ms() < t_end)
		assert_int_equal(channel_send_wait(p, lsn++, buf, sizeof(buf), 1000), 0);
	assert_true(channel_acked_lsn(p) > 0);
	assert_true(channel_peer_icount(p) > 0);

	assert_int_equal(kill(pid, SIGKILL), 0);
	uint64_t t0 = now_ms();
	/* Keep producing, as a vCPU would: the failure surfaces as -EPIPE. */
	int rc = 0;
	while (rc == 0 || rc == -EAGAIN) {
		rc = channel_send(p, lsn, buf, sizeof(buf));
		lsn += rc == 0;
		if (rc == -EAGAIN)
			sleep_ms(1);
		assert_true(now_ms() - t0 < 3 * TIMEOUT_MS);
	}
	uint64_t ms = now_ms() - t0;
	print_message("killed backup detected after %llu ms: %s\n", (unsigned long long)ms,
		      channel_error(p));
	assert_int_equal(rc, -EPIPE);
	assert_true(ms < TIMEOUT_MS);
	assert_true(channel_state(p) == CHANNEL_BROKEN || channel_state(p) == CHANNEL_TIMED_OUT);
	assert_int_equal(note.calls, 1);
	assert_int_equal(note.state, channel_state(p));
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	channel_close(p);
	assert_int_equal(note.calls, 1); /* a local close is not a failure */
}

static void test_stopped_backup(void **state)
{
	struct fail_note note = { 0 };
	unsigned port;
	pid_t pid = spawn_backup(&port);
	struct channel *p = connect_to_child(port, &note);

	assert_int_equal(channel_send(p, 1, "x", 1), 0);
	assert_int_equal(channel_wait_acked(p, 1, 2000), 0);
	sleep_ms(3 * HB_MS);
	/* SIGSTOP: the connection stays open but the peer says nothing — only the timer sees it. */
	assert_int_equal(kill(pid, SIGSTOP), 0);
	uint64_t heard = atomic_load(&p->last_rx_ns); /* a heartbeat in flight may come later */
	long ms = wait_down(p, 3 * TIMEOUT_MS);
	print_message("stopped backup detected after %ld ms, %llu ms after its last heartbeat: %s\n",
		      ms, (unsigned long long)silent_since(heard), channel_error(p));
	assert_true(ms >= 0 && ms < TIMEOUT_MS + 300);
	assert_true(silent_since(heard) >= TIMEOUT_MS);
	assert_int_equal(channel_state(p), CHANNEL_TIMED_OUT);
	assert_int_equal(note.calls, 1);
	kill(pid, SIGKILL);
	kill(pid, SIGCONT);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	channel_close(p);
}

static void test_killed_primary(void **state)
{
	struct channel_config bc;
	struct acceptor a;
	char addr[64];

	base_config(&bc);
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		child_primary(channel_listener_port(l));
	}
	acceptor_start(&a, l);
	acceptor_join(&a);
	assert_int_equal(a.rc, 0);
	struct channel *b = a.ch;
	uint8_t buf[512];
	uint64_t lsn, expect = 1;
	size_t len;
	for (int i = 0; i < 20000; i++) {
		assert_int_equal(channel_recv(b, &lsn, buf, sizeof(buf), &len, 2000), 0);
		assert_true(lsn == expect++);
		channel_ack(b, lsn);
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	uint64_t t0 = now_ms();
	int rc;
	/* Drain what was received before the kill, then the failure. */
	while ((rc = channel_recv(b, &lsn, buf, sizeof(buf), &len, 3 * TIMEOUT_MS)) == 0) {
		assert_true(lsn == expect++);
		channel_ack(b, lsn);
	}
	uint64_t ms = now_ms() - t0;
	print_message("killed primary detected after %llu ms (%llu records): %s\n",
		      (unsigned long long)ms, (unsigned long long)(expect - 1), channel_error(b));
	assert_int_equal(rc, -EPIPE);
	assert_true(ms < TIMEOUT_MS);
	assert_int_equal(channel_state(b), CHANNEL_BROKEN);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	channel_close(b);
	channel_listener_close(l);
}

/* ---- 7. IPv6 loopback ---- */

static void test_ipv6(void **state)
{
	struct channel_config c;
	struct channel_listener *l;
	struct acceptor a;
	struct channel *p;
	struct channel_err err;
	char addr[64];

	base_config(&c);
	if (channel_listen(&c, "[::1]:0", &l, NULL) < 0) {
		print_message("no IPv6 loopback here\n");
		skip();
	}
	snprintf(addr, sizeof(addr), "[::1]:%u", channel_listener_port(l));
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&c, addr, &p, &err), 0);
	acceptor_join(&a);
	assert_int_equal(a.rc, 0);
	struct consumer cons;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD);
	consumer_start(&cons, a.ch, 1, 20000);
	send_range(p, 1, 20000, buf);
	assert_int_equal(channel_wait_acked(p, 20000, 5000), 0);
	assert_int_equal(pthread_join(cons.t, NULL), 0);
	assert_true(cons.received == 20000 && cons.bad == 0);
	channel_close(p);
	channel_close(a.ch);
	channel_listener_close(l);
	free(buf);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refuse_vm_id_and_epoch),
		cmocka_unit_test(test_ack_on_receipt),
		cmocka_unit_test(test_ack_waits_for_consumer),
		cmocka_unit_test(test_icount_reports),
		cmocka_unit_test(test_refuse_version_and_malformed),
		cmocka_unit_test(test_bad_frames_to_backup),
		cmocka_unit_test(test_backup_acks_blocked),
		cmocka_unit_test(test_random_garbage_to_backup),
		cmocka_unit_test(test_bad_input_to_primary),
		cmocka_unit_test(test_killed_backup),
		cmocka_unit_test(test_stopped_backup),
		cmocka_unit_test(test_killed_primary),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_ordered_delivery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
