/*
 * test_rdma.c — the RDMA transport of the logging channel over the emulated verbs fabric
 * (verbs_emul.c), through the public channel API: the handshake's TCP connection becomes the
 * side channel, records flow as WRITE WITH IMMEDIATE into the backup's ring, acks and heartbeats
 * flow back the same way. Covered: ordered, byte-checked delivery across many ring wraps with
 * records up to the maximum size; acks advancing; heartbeats keeping an idle channel up; BYE;
 * a stalled consumer making the primary block at its buffer bound with RSS flat, then draining;
 * a cut link caught by the silence timeout on both sides; the side channel closing (the peer's
 * process is gone) caught at once, also while the backup holds back (no spinning, nothing lost); a primary and a backup on different transports refused; bad
 * CONNDATA refused with the listener still usable. Not covered here: rdma.c's libibverbs calls
 * (no device on this machine). On a machine with an RDMA device (an HCA, or rdma_rxe over an
 * Ethernet link), FTVM_RDMA_TEST_DEVICE=verbs runs the same tests over libibverbs instead (the
 * cut-link test needs the emulated fabric and is skipped then).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "logchannel/channel.h"
#include "logchannel/channel_internal.h"
#include "logchannel/protocol.h"
#include "logchannel/rdma.h"
#include "logchannel/verbs.h"

#include "chan_harness.h"

static bool on_real_device;

/* Bytes of records that pass through the 4 MiB RDMA ring in the delivery test. */
#define DELIVERY_RECORDS 400000u

static void test_delivery(void **state)
{
	struct channel_config pc, bc;
	struct channel *p, *b;
	struct consumer c;
	/* Every 997th record is 1.5-4.5 KB, every 100003rd a maximal one: start just below one. */
	const uint64_t start = 100000, n = DELIVERY_RECORDS;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD);

	base_config(&pc);
	base_config(&bc);
	pc.start_lsn = start;
	open_pair(&pc, &bc, &p, &b);
	struct chrdma_stream *pstream = chlink_rdma_stream(p->link);
	struct chrdma_stream *bstream = chlink_rdma_stream(b->link);
	assert_non_null(pstream);
	assert_non_null(bstream);
	consumer_start(&c, b, start, n);

	uint64_t t0 = now_ms(), last_acked = start - 1, advances = 0;
	for (uint64_t lsn = start; lsn < start + n; lsn += 20000) {
		send_range(p, lsn, MIN(20000, start + n - lsn), buf);
		uint64_t a = channel_acked_lsn(p);
		assert_true(a >= last_acked);
		advances += a > last_acked;
		last_acked = a;
	}
	assert_int_equal(channel_wait_acked(p, start + n - 1, 20000), 0);
	uint64_t ms = now_ms() - t0;
	assert_int_equal(pthread_join(c.t, NULL), 0);
	assert_int_equal(c.final_rc, 0);
	assert_true(c.received == n);
	assert_true(c.bad == 0);
	assert_true(advances >= 5);

	struct channel_stats ps, bs;
	channel_get_stats(p, &ps);
	channel_get_stats(b, &bs);
	/* The stream went round the ring many times, and credit came back each time. */
	uint64_t wraps = atomic_load(&pstream->tx_head) / CHRDMA_RING_SIZE;
	print_message("%llu records, %.1f MB in %llu ms over the emulated fabric; %llu writes, "
		      "%llu ring wraps, %llu acks\n",
		      (unsigned long long)ps.records, ps.record_bytes / 1e6, (unsigned long long)ms,
		      (unsigned long long)ps.writes, (unsigned long long)wraps,
		      (unsigned long long)bs.acks);
	assert_true(ps.records == n && bs.records == n && ps.record_bytes == bs.record_bytes);
	assert_true(wraps >= 4);
	/* Every byte written was read (heartbeats still flow both ways: wait for the last ones). */
	uint64_t written = atomic_load(&pstream->tx_head);
	for (int i = 0; i < 250 && atomic_load(&bstream->rx_tail) < written; i++)
		sleep_ms(HB_MS);
	assert_true(atomic_load(&bstream->rx_tail) >= written);
	assert_true(ps.acks == bs.acks);

	/* The backup's icount arrives with its heartbeats. */
	uint64_t want_icount = (start + n - 1) * 10;
	for (int i = 0; i < 50 && channel_peer_icount(p) != want_icount; i++)
		sleep_ms(HB_MS);
	assert_true(channel_peer_icount(p) == want_icount);

	/* Idle for twice the timeout: heartbeats over RDMA keep both sides up. */
	check_idle_heartbeats(p, b);
	/* Orderly close: BYE arrives before the side channel closes, and is what the backup says. */
	close_with_bye(p, b);
	free(buf);
}

/* A backup that stops consuming: the primary blocks at its bound, memory stays flat. */
static void test_backpressure(void **state)
{
	struct channel *p, *b;
	const size_t rec = 4096;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD);

	open_bounded_pair(&p, &b);

	struct stall st;
	stall_producer(p, rec, buf, &st);
	struct channel_stats ps, bs;
	channel_get_stats(p, &ps);
	channel_get_stats(b, &bs);
	const struct chrdma_stream *bstream = chlink_rdma_stream(b->link);
	/* The tail first: a head read after it is never behind it. */
	uint64_t consumed = atomic_load(&bstream->rx_tail);
	uint64_t unread = atomic_load(&bstream->rx_head) - consumed;
	print_message("stalled after %llu records; sender queue %zu/%zu, receiver queue %zu/%zu, "
		      "RDMA ring %llu/%u; RSS %ld -> %ld KiB\n",
		      (unsigned long long)st.queued, ps.queued_bytes, ps.capacity, bs.queued_bytes,
		      bs.capacity, (unsigned long long)unread,
		      CHRDMA_RING_SIZE, st.rss_at_stall, st.rss_end);
	assert_true(st.eagain > 100);
	assert_true(ps.queued_bytes + CHPROTO_HDR_SIZE + rec > ps.capacity); /* sender ring full */
	assert_true(unread <= CHRDMA_RING_SIZE);
	/* Sender ring + RDMA ring + receiver ring + the receiver's staging: nothing else. */
	assert_true(st.queued * rec <
		    2 * CHANNEL_MIN_BUFFER + CHRDMA_RING_SIZE + 2 * CHANNEL_MAX_RECORD);
	assert_true(stall_rss_bounded(&st, 1024));
	assert_int_equal(channel_state(p), CHANNEL_UP);
	assert_int_equal(channel_state(b), CHANNEL_UP);

	/* Consuming again drains everything in order, and the producer goes on. */
	drain_stalled(p, b, st.queued, rec, buf);
	channel_close(p);
	channel_close(b);
	free(buf);
}

/* A cut link: nothing arrives either way, both sides fail on the silence timeout. */
static void test_cut_link(void **state)
{
	struct channel_config pc, bc;
	struct channel *p, *b;
	uint8_t rec[100] = { 0 };

	if (on_real_device)
		skip(); /* only the emulated fabric can cut its link on demand */
	base_config(&pc);
	base_config(&bc);
	open_pair(&pc, &bc, &p, &b);
	assert_int_equal(channel_send(p, 1, rec, sizeof(rec)), 0);
	uint64_t lsn;
	size_t len;
	assert_int_equal(channel_recv(b, &lsn, rec, sizeof(rec), &len, 2000), 0);
	channel_ack(b, lsn);
	assert_int_equal(channel_wait_acked(p, 1, 2000), 0);

	chrdma_emul_set_dropping(true);
	long pms = wait_down(p, 4 * TIMEOUT_MS), bms = wait_down(b, 4 * TIMEOUT_MS);
	chrdma_emul_set_dropping(false);
	print_message("cut link: primary down after %ld ms (%s), backup after %ld ms more (%s)\n",
		      pms, channel_error(p), bms, channel_error(b));
	assert_true(pms >= TIMEOUT_MS - 2 * HB_MS && pms < TIMEOUT_MS + 500);
	assert_true(bms >= 0 && bms < 500);
	assert_int_equal(channel_state(p), CHANNEL_TIMED_OUT);
	assert_int_equal(channel_state(b), CHANNEL_TIMED_OUT);
	assert_int_equal(channel_send(p, 2, rec, sizeof(rec)), -EPIPE);
	channel_close(p);
	channel_close(b);
}

/* The peer's process is gone: its side channel closes, the channel fails long before a timeout. */
static void test_side_channel_closed(void **state)
{
	struct channel_config pc, bc;
	struct channel *p, *b;
	uint8_t rec[100] = { 0 };

	base_config(&pc);
	base_config(&bc);
	bc.timeout_ms = pc.timeout_ms = 10000;
	bc.ack_on_receipt = true;
	open_pair(&pc, &bc, &p, &b);
	for (uint64_t lsn = 1; lsn <= 100; lsn++)
		assert_int_equal(channel_send_wait(p, lsn, rec, sizeof(rec), 1000), 0);
	assert_int_equal(channel_wait_acked(p, 100, 2000), 0); /* all 100 are at the backup */

	/* What the kernel does to the backup's TCP socket when its process dies. */
	assert_int_equal(shutdown(b->link->fd, SHUT_RDWR), 0);
	long ms = wait_down(p, 3000);
	print_message("side channel closed: primary down after %ld ms: %s\n", ms, channel_error(p));
	assert_true(ms >= 0 && ms < 1000);
	assert_int_equal(channel_state(p), CHANNEL_BROKEN);
	assert_non_null(strstr(channel_error(p), "side channel closed"));
	channel_close(p);

	/* Records that reached the backup before are still delivered, then the failure. */
	uint64_t lsn, got = 0;
	size_t len;
	int rc;
	while ((rc = channel_recv(b, &lsn, rec, sizeof(rec), &len, 2000)) == 0)
		assert_true(lsn == ++got);
	assert_int_equal(rc, -EPIPE);
	assert_true(got == 100);
	channel_close(b);
}

/*
 * The primary dies while the backup holds back (its consumer stopped): the backup neither spins
 * nor loses what landed — once the consumer resumes it gets every record that arrived, in order,
 * then the failure.
 */
static void test_failed_while_throttled(void **state)
{
	struct channel *p, *b;
	const size_t rec = 4096;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD);
	struct timespec c0, c1;

	open_bounded_pair(&p, &b);
	struct stall st;
	stall_producer(p, rec, buf, &st);
	assert_true(st.queued > 100);

	/* What the kernel does to the primary's TCP socket when its process dies. */
	assert_int_equal(shutdown(p->link->fd, SHUT_RDWR), 0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	sleep_ms(500);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	double cpu_ms = (double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
	print_message("queued %llu records; CPU while the backup held back, failed: %.1f ms in 500 ms\n",
		      (unsigned long long)st.queued, cpu_ms);
	assert_true(cpu_ms < 150);

	uint64_t lsn, got = 0;
	size_t len;
	int rc;
	while ((rc = channel_recv(b, &lsn, buf, CHANNEL_MAX_RECORD, &len, 2000)) == 0) {
		assert_true(lsn == got + 1 && len == rec && buf[0] == (uint8_t)lsn);
		got++;
	}
	print_message("then delivered %llu records in order, then: %s\n", (unsigned long long)got,
		      channel_error(b));
	assert_int_equal(rc, -EPIPE);
	/* Everything that had landed: the backup's queue and its RDMA ring, not just the queue. */
	assert_true(got * (rec + CHPROTO_HDR_SIZE) > CHANNEL_MIN_BUFFER + CHRDMA_RING_SIZE / 2);
	assert_true(got <= st.queued);
	assert_int_equal(channel_state(b), CHANNEL_BROKEN);
	assert_non_null(strstr(channel_error(b), "side channel closed"));
	channel_close(p);
	channel_close(b);
	free(buf);
}

/* A primary asking for RDMA and a backup listening for TCP (and the reverse) refuse each other. */
static void test_transport_mismatch(void **state)
{
	for (int flip = 0; flip < 2; flip++) {
		struct channel_config pc, bc;
		struct channel_err err;
		struct acceptor a;
		struct channel *p = NULL;
		char addr[64];

		base_config(&pc);
		base_config(&bc);
		(flip ? &pc : &bc)->transport = CHANNEL_TCP;
		struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
		acceptor_start(&a, l);
		int rc = channel_connect(&pc, addr, &p, &err);
		acceptor_join(&a);
		print_message("primary: %s\nbackup: %s\n", err.msg, a.err.msg);
		assert_int_equal(rc, -EPROTOTYPE);
		assert_int_equal(a.rc, -EPROTOTYPE);
		assert_non_null(strstr(err.msg, "wrong transport"));
		assert_non_null(strstr(a.err.msg, flip ? "expects RDMA" : "expects TCP"));
		channel_listener_close(l);
	}
}

/* A "primary" that speaks the handshake by hand and then sends a bad CONNDATA block. */
static void test_bad_conndata(void **state)
{
	struct channel_config bc;
	struct acceptor a;
	char addr[64];
	uint8_t frame[CHPROTO_HDR_SIZE + CHPROTO_HELLO_MAX];
	uint8_t hello[CHPROTO_HELLO_MAX];

	plain_config(&bc);
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	for (int round = 0; round < 2; round++) {
		acceptor_start(&a, l);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)channel_listener_port(l)),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		struct chproto_hello h = { .epoch = EPOCH, .start_lsn = 1,
					   .max_record = CHANNEL_MAX_RECORD, .heartbeat_ms = HB_MS,
					   .timeout_ms = TIMEOUT_MS, .transport = CHANNEL_RDMA };
		h.vm_id_len = (uint16_t)strlen(VM_ID);
		memcpy(h.vm_id, VM_ID, h.vm_id_len);
		uint32_t len = chproto_hello_encode(hello, &h);
		chproto_encode(frame, CHPROTO_HELLO, 0, hello, len);
		memcpy(frame + CHPROTO_HDR_SIZE, hello, len);
		assert_int_equal(write(fd, frame, CHPROTO_HDR_SIZE + len), CHPROTO_HDR_SIZE + len);
		uint8_t welcome[CHPROTO_HDR_SIZE];
		assert_int_equal(recv(fd, welcome, sizeof(welcome), MSG_WAITALL), sizeof(welcome));

		/* Round 0: a CONNDATA with a bad magic; round 1: a RECORD where CONNDATA belongs. */
		uint8_t cd[CHPROTO_CONNDATA_SIZE];
		struct chrdma_conndata bogus = { .qpn = 0x1234, .psn = 1, .mtu = 3,
						 .ring_size = CHRDMA_RING_SIZE, .addr = 4096 };
		chrdma_conndata_encode(cd, &bogus);
		cd[0] ^= 0xff;
		chproto_encode(frame, round == 0 ? CHPROTO_CONNDATA : CHPROTO_RECORD, 1, cd,
			       sizeof(cd));
		memcpy(frame + CHPROTO_HDR_SIZE, cd, sizeof(cd));
		assert_int_equal(write(fd, frame, CHPROTO_HDR_SIZE + sizeof(cd)),
				 CHPROTO_HDR_SIZE + sizeof(cd));
		acceptor_join(&a);
		print_message("round %d: backup: %s\n", round, a.err.msg);
		assert_int_equal(a.rc, -EPROTO);
		assert_non_null(strstr(a.err.msg, round == 0 ? "bad magic" : "expected CONNDATA"));
		close(fd);
	}
	/* The listener still serves a real primary. */
	struct channel_config pc;
	struct channel *p;
	struct channel_err err;
	plain_config(&pc);
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&pc, addr, &p, &err), 0);
	acceptor_join(&a);
	assert_int_equal(a.rc, 0);
	channel_close(p);
	channel_close(a.ch);
	channel_listener_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transport_mismatch), cmocka_unit_test(test_bad_conndata),
		cmocka_unit_test(test_side_channel_closed), cmocka_unit_test(test_cut_link),
		cmocka_unit_test(test_failed_while_throttled),
		cmocka_unit_test(test_backpressure),	   cmocka_unit_test(test_delivery),
	};
	const char *dev = getenv("FTVM_RDMA_TEST_DEVICE");
	on_real_device = dev && strcmp(dev, "verbs") == 0;
	if (on_real_device && !chrdma_verbs_ops()) {
		fprintf(stderr, "FTVM_RDMA_TEST_DEVICE=verbs, but this build has no libibverbs\n");
		return 77;
	}
	chrdma_select_device(on_real_device ? NULL : chrdma_emul_ops());
	struct channel_err err = { 0 };
	if (chrdma_probe(&err) < 0) {
		fprintf(stderr, "no RDMA transport here: %s\n", err.msg);
		return 77;
	}
	harness_transport = CHANNEL_RDMA;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
