/*
 * test_auth.c — the logging channel against peers that do not hold the pairing key.
 *
 * A recording TCP proxy sits between a real primary and a backup where a test needs the bytes on
 * the wire: what the backup told a peer with the wrong key, what a real primary sent (replayed
 * later to a new backup), whether record contents are visible. Checked: another key, no key
 * (plaintext HELLO of the protocol without TLS), a replayed handshake, strangers that hang up in
 * the TLS handshake, many silent connections while the real primary connects, refusals that
 * carry no VM id nor epoch before authentication, peer strings made printable, and TLS 1.3 with
 * an (EC)DHE exchange actually negotiated.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan_harness.h"
#include "logchannel/channel_internal.h"
#include "logchannel/tls.h"

/* An epoch whose bytes and decimal digits cannot appear by chance. */
#define BIG_EPOCH 0x1122334455667788ull
#define BIG_EPOCH_TEXT "1234605616436508552"

static const struct channel_key other_key = { .bytes = { 1, 2, 3, 4, 5, 6, 7, 8 } };

/* ---- a recording proxy: listens, connects to @target, copies both ways, keeps every byte ---- */

struct capture {
	uint8_t *buf;
	size_t len, cap;
};

struct proxy {
	int lfd;
	unsigned port, target;
	struct capture up, down; /* client -> server, server -> client */
	atomic_int stop;
	pthread_t t;
};

static void capture_add(struct capture *c, const uint8_t *p, size_t n)
{
	if (c->len + n > c->cap) {
		c->cap = (c->len + n) * 2;
		c->buf = realloc(c->buf, c->cap);
		assert_non_null(c->buf);
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

static int tcp_connect(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void *proxy_body(void *arg)
{
	struct proxy *px = arg;
	uint8_t buf[65536];
	int c = accept(px->lfd, NULL, NULL);
	int s = tcp_connect(px->target);
	struct pollfd p[2] = { { .fd = c, .events = POLLIN }, { .fd = s, .events = POLLIN } };

	while (!atomic_load(&px->stop) && (p[0].fd >= 0 || p[1].fd >= 0)) {
		if (poll(p, 2, 20) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(i == 0 ? s : c, SHUT_WR);
				p[i].fd = -1;
				continue;
			}
			capture_add(i == 0 ? &px->up : &px->down, buf, (size_t)n);
			if (send(i == 0 ? s : c, buf, (size_t)n, MSG_NOSIGNAL) != n) {
				p[0].fd = p[1].fd = -1;
			}
		}
	}
	close(c);
	close(s);
	return NULL;
}

static void proxy_start(struct proxy *px, unsigned target)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	memset(px, 0, sizeof(*px));
	px->target = target;
	px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(px->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(px->lfd, 4), 0);
	assert_int_equal(getsockname(px->lfd, (struct sockaddr *)&sa, &len), 0);
	px->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&px->t, NULL, proxy_body, px), 0);
}

static void proxy_stop(struct proxy *px)
{
	atomic_store(&px->stop, 1);
	pthread_join(px->t, NULL);
	close(px->lfd);
}

static void proxy_free(struct proxy *px)
{
	free(px->up.buf);
	free(px->down.buf);
}

/* A listener for @bc and a proxy in front of it: @addr the listener's address, @via the proxy's. */
static struct channel_listener *listen_behind_proxy(const struct channel_config *bc, struct proxy *px,
						     char addr[64], char via[64])
{
	struct channel_listener *l = listen_local(bc, addr, 64);
	proxy_start(px, channel_listener_port(l));
	snprintf(via, 64, "127.0.0.1:%u", px->port);
	return l;
}

static bool contains(const struct capture *c, const void *needle, size_t n)
{
	return c->len >= n && memmem(c->buf, c->len, needle, n) != NULL;
}

/* Nothing about the VM: not its id, not its epoch (as bytes or as text). */
static void assert_says_nothing(const struct capture *c)
{
	uint8_t le[8];
	put_le64(le, BIG_EPOCH);
	assert_false(contains(c, VM_ID, strlen(VM_ID)));
	assert_false(contains(c, le, sizeof(le)));
	assert_false(contains(c, BIG_EPOCH_TEXT, strlen(BIG_EPOCH_TEXT)));
}

static void big_epoch_config(struct channel_config *c)
{
	base_config(c);
	c->epoch = BIG_EPOCH;
	c->handshake_timeout_ms = 500;
}

static void listener_stats(struct channel_listener *l, struct channel_listener_stats *st)
{
	channel_listener_get_stats(l, st);
	print_message("listener: %llu connections, %llu failed TLS, %llu hung up, %llu timed out, "
		      "%llu evicted, %llu refused, %llu accepted\n",
		      (unsigned long long)st->connections, (unsigned long long)st->auth_failed,
		      (unsigned long long)st->hung_up, (unsigned long long)st->timed_out,
		      (unsigned long long)st->evicted, (unsigned long long)st->refused,
		      (unsigned long long)st->accepted);
}

/* channel_accept(@l, @ms) on another thread, while this one plays the peer. */
struct waiter {
	struct channel_listener *l;
	int ms, rc;
	struct channel *ch;
	struct channel_err err;
	pthread_t t;
};

static void *waiter_body(void *arg)
{
	struct waiter *w = arg;
	w->rc = channel_accept(w->l, w->ms, &w->ch, &w->err);
	return NULL;
}

static void waiter_start(struct waiter *w, struct channel_listener *l, int ms)
{
	memset(w, 0, sizeof(*w));
	w->l = l;
	w->ms = ms;
	assert_int_equal(pthread_create(&w->t, NULL, waiter_body, w), 0);
}

/* The backup dropped every peer and kept waiting: no channel for its owner. */
static void waiter_saw_nobody(struct waiter *w)
{
	assert_int_equal(pthread_join(w->t, NULL), 0);
	assert_int_equal(w->rc, -ETIMEDOUT);
	assert_null(w->ch);
}

/* The right primary still gets through @l, quickly. Returns the ms it took. */
static uint64_t right_primary_pairs(struct channel_listener *l, const char *addr)
{
	struct channel_config pc;
	struct channel_err err;
	struct acceptor a;
	struct channel *p = NULL;

	big_epoch_config(&pc);
	acceptor_start(&a, l);
	uint64_t t0 = now_ms();
	assert_int_equal(channel_connect(&pc, addr, &p, &err), 0);
	uint64_t ms = now_ms() - t0;
	acceptor_join(&a);
	assert_int_equal(a.rc, 0);
	channel_close(p);
	channel_close(a.ch);
	return ms;
}

/*
 * The backup dropped @auth_failed peers for failing TLS and opened @accepted channels; the right
 * primary still pairs through @l after them. Closes @l.
 */
static void check_then_pair(struct channel_listener *l, const char *addr, uint64_t auth_failed,
			    uint64_t accepted)
{
	struct channel_listener_stats st;

	listener_stats(l, &st);
	assert_int_equal(st.auth_failed, auth_failed);
	assert_int_equal(st.accepted, accepted);
	right_primary_pairs(l, addr);
	channel_listener_close(l);
}

/* ---- another key ---- */

static void test_wrong_key(void **state)
{
	struct channel_config bc, pc;
	struct channel_err err = { 0 };
	struct channel *p = NULL;
	struct waiter w;
	struct proxy px;
	char addr[64], via[64];

	big_epoch_config(&bc);
	struct channel_listener *l = listen_behind_proxy(&bc, &px, addr, via);

	big_epoch_config(&pc);
	pc.key = &other_key;
	waiter_start(&w, l, 1000);
	assert_int_equal(channel_connect(&pc, via, &p, &err), -EACCES);
	assert_null(p);
	print_message("primary with another key: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "TLS handshake failed"));
	waiter_saw_nobody(&w);
	proxy_stop(&px);
	assert_says_nothing(&px.down);
	assert_true(px.down.len < 64); /* a TLS alert at most: the key is checked before ServerHello */
	proxy_free(&px);
	check_then_pair(l, addr, 1, 0);
}

/* ---- no key: the plaintext HELLO of the protocol without TLS ---- */

static void test_no_key(void **state)
{
	struct channel_config bc;
	struct channel_err aerr;
	struct channel *b = NULL;
	struct capture got = { 0 };
	uint8_t hdr[CHPROTO_HDR_SIZE], payload[CHPROTO_HELLO_MAX], buf[4096];
	char addr[64];

	big_epoch_config(&bc);
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	struct chproto_hello h = { .epoch = BIG_EPOCH, .start_lsn = 1, .max_record = 4096,
				   .heartbeat_ms = HB_MS, .timeout_ms = TIMEOUT_MS };
	h.vm_id_len = (uint16_t)strlen(VM_ID);
	memcpy(h.vm_id, VM_ID, h.vm_id_len);
	uint32_t len = chproto_hello_encode(payload, &h);
	chproto_encode(hdr, CHPROTO_HELLO, 0, payload, len);
	int fd = tcp_connect(channel_listener_port(l));
	assert_int_equal(send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL), sizeof(hdr));
	assert_int_equal(send(fd, payload, len, MSG_NOSIGNAL), len);
	assert_int_equal(channel_accept(l, 300, &b, &aerr), -ETIMEDOUT);
	assert_null(b);
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssize_t n;
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		capture_add(&got, buf, (size_t)n);
	/* Closed by the backup (reset: it left our HELLO unread). */
	assert_true(n == 0 || errno == ECONNRESET);
	close(fd);
	print_message("a plaintext HELLO got %zu bytes back%s\n", got.len,
		      got.len && got.buf[0] == 0x15 ? " (a TLS alert)" : "");
	assert_says_nothing(&got);
	assert_true(got.len == 0 || got.buf[0] == 0x15); /* nothing, or one TLS alert record */
	free(got.buf);
	check_then_pair(l, addr, 1, 0);
}

/* ---- a replayed handshake ---- */

static void test_replayed_handshake(void **state)
{
	struct channel_config bc, pc;
	struct channel_err err, aerr;
	struct acceptor a;
	struct channel *p = NULL, *b = NULL;
	struct proxy px;
	uint8_t rec[300];
	char addr[64], via[64];

	/* A real primary pairs through the proxy and sends records with a visible pattern. */
	big_epoch_config(&bc);
	bc.ack_on_receipt = true;
	struct channel_listener *l = listen_behind_proxy(&bc, &px, addr, via);
	big_epoch_config(&pc);
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&pc, via, &p, &err), 0);
	acceptor_join(&a);
	assert_int_equal(a.rc, 0);
	memset(rec, 'Z', sizeof(rec));
	memcpy(rec, "SECRET-RECORD-", 14);
	for (uint64_t lsn = 1; lsn <= 20; lsn++)
		assert_int_equal(channel_send_wait(p, lsn, rec, sizeof(rec), 1000), 0);
	assert_int_equal(channel_wait_acked(p, 20, 2000), 0);
	assert_true(chtls_forward_secret(p->link->tls) && chtls_forward_secret(a.ch->link->tls));
	char how[96];
	print_message("negotiated: %s\n", chtls_describe(p->link->tls, how, sizeof(how)));
	channel_close(p);
	channel_close(a.ch);
	proxy_stop(&px);
	channel_listener_close(l);
	/* On the wire: neither the records nor the HELLO in the clear. */
	assert_false(contains(&px.up, "SECRET-RECORD-", 14));
	assert_false(contains(&px.up, VM_ID, strlen(VM_ID)));
	print_message("recorded %zu bytes from the primary\n", px.up.len);

	/* The same bytes, replayed to a new backup with the same key, get nowhere. */
	l = listen_local(&bc, addr, sizeof(addr));
	int fd = tcp_connect(channel_listener_port(l));
	(void)send(fd, px.up.buf, px.up.len, MSG_NOSIGNAL);
	assert_int_equal(channel_accept(l, 500, &b, &aerr), -ETIMEDOUT);
	assert_null(b);
	close(fd);
	proxy_free(&px);
	check_then_pair(l, addr, 1, 0);
}

/* ---- strangers who hang up in the middle of the TLS handshake ---- */

static void test_hangup_mid_handshake(void **state)
{
	struct channel_config bc, pc;
	struct channel_err err;
	struct acceptor a;
	struct waiter w;
	struct channel *p = NULL;
	struct proxy px;
	char addr[64], via[64];

	/* Record a real ClientHello to send half of it. */
	big_epoch_config(&bc);
	struct channel_listener *l = listen_behind_proxy(&bc, &px, addr, via);
	big_epoch_config(&pc);
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&pc, via, &p, &err), 0);
	acceptor_join(&a);
	channel_close(p);
	channel_close(a.ch);
	proxy_stop(&px);
	assert_true(px.up.len > 100);
	size_t hello_len = 5 + ((size_t)px.up.buf[3] << 8 | px.up.buf[4]); /* first TLS record */

	waiter_start(&w, l, 1000);
	for (int i = 0; i < 3; i++) {
		int fd = tcp_connect(channel_listener_port(l));
		size_t n = i == 0 ? 0 : i == 1 ? hello_len / 2 : hello_len;
		if (n)
			assert_int_equal(send(fd, px.up.buf, n, MSG_NOSIGNAL), (ssize_t)n);
		if (i == 2) /* a whole ClientHello: wait for the ServerHello, then go away */
			assert_true(recv(fd, (char[16]){ 0 }, 16, 0) > 0);
		close(fd);
	}
	waiter_saw_nobody(&w);
	proxy_free(&px);
	check_then_pair(l, addr, 3, 1); /* each failed TLS: it closed during the handshake */
}

/* ---- silent connections do not starve the real primary ---- */

static void test_silent_strangers(void **state)
{
	struct channel_config bc;
	struct channel_listener_stats st;
	enum { SILENT = 3 * CHANNEL_MAX_PENDING };
	int fds[SILENT];
	char addr[64];

	big_epoch_config(&bc);
	bc.handshake_timeout_ms = 2000;
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	for (int i = 0; i < SILENT; i++)
		fds[i] = tcp_connect(channel_listener_port(l));
	uint64_t ms = right_primary_pairs(l, addr);
	print_message("the primary paired in %llu ms behind %d silent connections\n",
		      (unsigned long long)ms, SILENT);
	assert_true(ms < 1000);
	listener_stats(l, &st);
	assert_int_equal(st.accepted, 1);
	assert_true(st.evicted >= SILENT - CHANNEL_MAX_PENDING);
	for (int i = 0; i < SILENT; i++)
		close(fds[i]);
	channel_listener_close(l);
}

/* ---- out of file descriptors: the backup waits, it does not spin ---- */

static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void test_out_of_descriptors(void **state)
{
	struct channel_config bc;
	struct channel_listener_stats st;
	struct channel_err aerr;
	struct channel *b = NULL;
	struct rlimit saved, tight;
	int fds[4];
	char addr[64];

	big_epoch_config(&bc);
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	for (int i = 0; i < 4; i++)
		fds[i] = tcp_connect(channel_listener_port(l)); /* waiting in the backlog */
	/*
	 * No descriptor at or above the lowest free one: accept() fails with EMFILE. (Some are
	 * taken first: poll() wants the limit above the number of descriptors it is given.)
	 */
	int filler[64], nfill = 0, lowest;
	while ((lowest = dup(0)) >= 0 && lowest < 48 && nfill < 64)
		filler[nfill++] = lowest;
	assert_true(lowest >= 0);
	close(lowest);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	tight = saved;
	tight.rlim_cur = (rlim_t)lowest;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
	double c0 = cpu_ms();
	int rc = channel_accept(l, 500, &b, &aerr);
	double used = cpu_ms() - c0;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	print_message("500 ms without descriptors: %.1f ms of CPU\n", used);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(used < 150);
	/* With descriptors again, the waiting connections are taken (and time out: silent). */
	assert_int_equal(channel_accept(l, 300, &b, &aerr), -ETIMEDOUT);
	listener_stats(l, &st);
	assert_int_equal(st.connections, 4);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	while (nfill > 0)
		close(filler[--nfill]);
	right_primary_pairs(l, addr);
	channel_listener_close(l);
}

/* ---- after authentication: refusals name things, with the peer's strings made printable ---- */

static void test_refusal_sanitized(void **state)
{
	struct channel_config bc, pc;
	struct channel_err err;
	struct acceptor a;
	struct channel *p = NULL;
	char addr[64], out[64];

	channel_sanitize(out, sizeof(out), "ok\x1b[31m\nx\\");
	assert_string_equal(out, "ok\\x1b[31m\\x0ax\\x5c");
	channel_sanitize(out, 8, "abcdefghij");
	assert_string_equal(out, "abcdefg");

	big_epoch_config(&bc);
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	big_epoch_config(&pc);
	pc.vm_id = "evil\x1b]0;title\x07\nftvm: forged line";
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&pc, addr, &p, &err), -EPERM);
	acceptor_join(&a);
	assert_int_equal(a.rc, -EPERM);
	print_message("backup: %s\n", a.err.msg);
	assert_null(strchr(a.err.msg, '\x1b'));
	assert_null(strchr(a.err.msg, '\n'));
	assert_non_null(strstr(a.err.msg, "evil\\x1b]0;title\\x07\\x0aftvm: forged line"));
	/* What the primary prints of the backup's answer is made printable again. */
	const char *answer = strstr(err.msg, ": wrong VM");
	assert_non_null(answer);
	assert_null(strchr(answer, '\x1b'));
	assert_null(strchr(answer, '\n'));
	/* The authenticated primary is told what the backup expects. */
	assert_non_null(strstr(err.msg, "expects VM id \"" VM_ID "\""));
	channel_listener_close(l);
}

/*
 * A log offered to a migration's destination (and a migration to a backup) is refused with reason
 * PURPOSE, both sides saying what each takes; a migration's destination takes any epoch, and may
 * refuse the stream after WELCOME: the sender's channel fails as "refused" with the message.
 */
static void test_purpose(void **state)
{
	struct channel_config bc, pc;
	struct channel_err err;
	struct acceptor a;
	struct channel *p = NULL, *b = NULL;
	char addr[64];
	(void)state;

	base_config(&bc);
	bc.purpose = CHANNEL_PURPOSE_MIGRATION;
	struct channel_listener *l = listen_local(&bc, addr, sizeof(addr));
	base_config(&pc);
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&pc, addr, &p, &err), -ENOPROTOOPT);
	acceptor_join(&a);
	assert_int_equal(a.rc, -ENOPROTOOPT);
	assert_non_null(strstr(err.msg, "this node takes a migration stream, the peer offered an event log"));
	channel_listener_close(l);

	base_config(&bc);
	l = listen_local(&bc, addr, sizeof(addr));
	base_config(&pc);
	pc.purpose = CHANNEL_PURPOSE_MIGRATION;
	acceptor_start(&a, l);
	assert_int_equal(channel_connect(&pc, addr, &p, &err), -ENOPROTOOPT);
	acceptor_join(&a);
	assert_non_null(strstr(a.err.msg, "takes an event log, the peer offered a migration stream"));
	channel_listener_close(l);

	/* Another epoch is no reason to refuse a migration; a refused stream reaches the sender. */
	base_config(&bc);
	bc.purpose = CHANNEL_PURPOSE_MIGRATION;
	base_config(&pc);
	pc.purpose = CHANNEL_PURPOSE_MIGRATION;
	pc.epoch = bc.epoch + 41;
	open_pair(&pc, &bc, &p, &b);
	assert_int_equal(channel_peer_epoch(b), pc.epoch);
	assert_int_equal(channel_refuse(b, "the source's VM has another configuration: \x1b"), 0);
	channel_close(b);
	assert_true(wait_down(p, 5000) >= 0);
	assert_int_equal(channel_state(p), CHANNEL_REFUSED);
	assert_non_null(strstr(channel_error(p), "refused the stream: the source's VM has another configuration"));
	assert_null(strchr(channel_error(p), '\x1b'));
	channel_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_no_key),
		cmocka_unit_test(test_replayed_handshake),
		cmocka_unit_test(test_hangup_mid_handshake),
		cmocka_unit_test(test_silent_strangers),
		cmocka_unit_test(test_out_of_descriptors),
		cmocka_unit_test(test_refusal_sanitized),
		cmocka_unit_test(test_purpose),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
