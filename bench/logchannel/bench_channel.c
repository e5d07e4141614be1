/*
 * bench_channel.c — the logging channel over loopback TCP, against its targets and against plain
 * TCP measured side by side in the same run; each channel measurement twice: as ftvm runs it,
 * inside TLS 1.3 (pre-shared key + ECDHE), and in the channel's plaintext mode, so the cost of
 * the encryption shows as a ratio.
 *
 *   1. Throughput: N records of 32 B and of 1500 B streamed primary -> backup as fast as the
 *      producer can (channel_send, retrying on -EAGAIN), the backup receiving, checking the LSN
 *      order and acking; timed from the first send to the ack of the last record. Baseline: the
 *      same number of bytes through a bare TCP connection (one writer, one reader, 256 KiB calls).
 *   2. Ack round trip under a steady stream: records of 256 B at a fixed rate (a busy and a
 *      quiet one), acked by the consumer or on receipt; an Output-Rule thread waits
 *      (channel_wait_acked) for every Kth LSN and records send -> ack-seen time.
 *      Baseline: a 24-byte ping-pong over a bare TCP connection with TCP_NODELAY.
 *
 * usage: bench_channel [--quick]     (never run by ctest)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "logchannel/channel.h"

#define TARGET_LARGE_MBPS 1000.0 /* target: over 1 GB/s for large records */
#define TARGET_ACK_P99_US 100.0  /* target: ack p99 under 100 us while streaming */
#define HDR_BYTES 24             /* frame header, docs/channel-protocol.md */
#define RAW_CHUNK (256 * 1024)
#define RTT_RECORD 256
#define RTT_RATE_FAST 20000 /* records/s: a busy guest */
#define RTT_RATE_SLOW 2000  /* records/s: a quiet one */
#define RTT_SECONDS_QUICK 1
#define RTT_SECONDS 4
#define RTT_SAMPLE_EVERY 4
#define VM_ID "bench-vm"
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process (all threads, user + system). */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_channel: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

/* ---- channel pair ---- */

struct pair {
	struct channel *p, *b;
};

struct accept_arg {
	struct channel_listener *l;
	struct channel *ch;
	int rc;
};

static void *accept_body(void *arg)
{
	struct accept_arg *a = arg;
	a->rc = channel_accept(a->l, 5000, &a->ch, NULL);
	return NULL;
}

static bool ack_on_receipt;
static bool use_tls; /* the channel as ftvm runs it; false: plaintext mode (the baseline) */
static struct channel_key bench_key;

static void pair_open(struct pair *pr)
{
	struct channel_config c;
	struct channel_listener *l;
	struct accept_arg a = { 0 };
	pthread_t t;
	char addr[64];

	channel_config_init(&c);
	c.vm_id = VM_ID;
	c.ack_on_receipt = ack_on_receipt;
	c.key = use_tls ? &bench_key : NULL;
	c.plaintext = !use_tls;
	int rc = channel_listen(&c, "127.0.0.1:0", &l, NULL);
	if (rc < 0)
		die("listen", rc);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", channel_listener_port(l));
	a.l = l;
	pthread_create(&t, NULL, accept_body, &a);
	rc = channel_connect(&c, addr, &pr->p, NULL);
	pthread_join(t, NULL);
	if (rc < 0 || a.rc < 0)
		die("connect", rc < 0 ? rc : a.rc);
	pr->b = a.ch;
	channel_listener_close(l);
}

static void pair_close(struct pair *pr)
{
	channel_close(pr->p);
	channel_close(pr->b);
}

struct sink {
	struct channel *b;
	uint64_t count, bad;
	pthread_t t;
};

static void *sink_body(void *arg)
{
	struct sink *s = arg;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD);
	uint64_t expect = 1;
	for (uint64_t i = 0; i < s->count; i++) {
		uint64_t lsn;
		size_t len;
		if (channel_recv(s->b, &lsn, buf, CHANNEL_MAX_RECORD, &len, 10000) < 0) {
			s->bad++;
			break;
		}
		s->bad += lsn != expect;
		expect = lsn + 1;
		channel_ack(s->b, lsn);
	}
	free(buf);
	return NULL;
}

/* ---- 1. throughput ---- */

struct tput {
	double rec_per_s, mb_per_s, wire_mb_per_s;
	uint64_t writes;
};

static struct tput channel_throughput(size_t size, uint64_t n)
{
	struct pair pr;
	struct sink s = { .count = n };
	struct tput r = { 0 };
	uint8_t *buf = malloc(size);

	memset(buf, 0x5c, size);
	pair_open(&pr);
	s.b = pr.b;
	pthread_create(&s.t, NULL, sink_body, &s);
	double t0 = now_s();
	for (uint64_t lsn = 1; lsn <= n;) {
		int rc = channel_send(pr.p, lsn, buf, size);
		if (rc == 0)
			lsn++;
		else if (rc == -EAGAIN)
			rc = channel_send_wait(pr.p, lsn, buf, size, 10000), lsn += rc == 0;
		if (rc < 0 && rc != -EAGAIN)
			die("send", rc);
	}
	int rc = channel_wait_acked(pr.p, n, 30000);
	double dt = now_s() - t0;
	if (rc < 0)
		die("wait_acked", rc);
	pthread_join(s.t, NULL);
	if (s.bad)
		die("receive order", EPROTO);
	struct channel_stats st;
	channel_get_stats(pr.p, &st);
	r.rec_per_s = (double)n / dt;
	r.mb_per_s = (double)n * (double)size / dt / 1e6;
	r.wire_mb_per_s = (double)n * (double)(size + HDR_BYTES) / dt / 1e6;
	r.writes = st.writes;
	pair_close(&pr);
	free(buf);
	return r;
}

static void tcp_pair(int fds[2])
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0)
		die("raw listen", errno);
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fds[0], (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("raw connect", errno);
	fds[1] = accept(l, NULL, NULL);
	close(l);
	setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct raw_reader {
	int fd;
	uint64_t bytes;
	pthread_t t;
};

static void *raw_read_body(void *arg)
{
	struct raw_reader *r = arg;
	uint8_t *buf = malloc(RAW_CHUNK);
	uint64_t got = 0;
	while (got < r->bytes) {
		ssize_t n = read(r->fd, buf, RAW_CHUNK);
		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	free(buf);
	return NULL;
}

/* Bare TCP: the same bytes, one writer, one reader. Returns MB/s. */
static double raw_throughput(uint64_t bytes)
{
	int fds[2];
	struct raw_reader r;
	uint8_t *buf = malloc(RAW_CHUNK);

	memset(buf, 0x5c, RAW_CHUNK);
	tcp_pair(fds);
	r.fd = fds[1];
	r.bytes = bytes;
	pthread_create(&r.t, NULL, raw_read_body, &r);
	double t0 = now_s();
	for (uint64_t sent = 0; sent < bytes;) {
		ssize_t n = write(fds[0], buf, (size_t)(bytes - sent < RAW_CHUNK ? bytes - sent : RAW_CHUNK));
		if (n <= 0)
			die("raw write", errno);
		sent += (uint64_t)n;
	}
	pthread_join(r.t, NULL);
	double dt = now_s() - t0;
	close(fds[0]);
	close(fds[1]);
	free(buf);
	return (double)bytes / dt / 1e6;
}

/* ---- 2. ack round trip ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
	return (double)v[(size_t)((double)(n - 1) * p)] / 1000.0;
}

struct rtt_waiter {
	struct channel *p;
	_Atomic uint64_t *sent_at; /* indexed by LSN */
	uint64_t n, *lat;
	size_t nlat;
	pthread_t t;
};

static void *rtt_wait_body(void *arg)
{
	struct rtt_waiter *w = arg;
	for (uint64_t lsn = RTT_SAMPLE_EVERY; lsn <= w->n; lsn += RTT_SAMPLE_EVERY) {
		/* Waiting before the record is even sent is fine: as the Output Rule would. */
		if (channel_wait_acked(w->p, lsn, 5000) < 0)
			break;
		uint64_t seen = now_ns();
		w->lat[w->nlat++] = seen - atomic_load(&w->sent_at[lsn]);
	}
	return NULL;
}

static void channel_rtt(uint64_t n, unsigned rate_per_s, double *p50, double *p99, double *pmax,
			double *rate)
{
	struct pair pr;
	struct sink s = { .count = n };
	struct rtt_waiter w = { .n = n };
	uint8_t buf[RTT_RECORD];

	memset(buf, 0x11, sizeof(buf));
	w.sent_at = calloc(n + 2, sizeof(*w.sent_at));
	w.lat = malloc(sizeof(uint64_t) * (n / RTT_SAMPLE_EVERY + 1));
	pair_open(&pr);
	s.b = pr.b;
	w.p = pr.p;
	pthread_create(&s.t, NULL, sink_body, &s);
	pthread_create(&w.t, NULL, rtt_wait_body, &w);
	uint64_t period = 1000000000ull / rate_per_s, next = now_ns();
	double t0 = now_s();
	for (uint64_t lsn = 1; lsn <= n; lsn++) {
		next += period;
		struct timespec ts = { .tv_sec = (time_t)(next / 1000000000ull),
				       .tv_nsec = (long)(next % 1000000000ull) };
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		atomic_store(&w.sent_at[lsn], now_ns());
		int rc = channel_send_wait(pr.p, lsn, buf, sizeof(buf), 5000);
		if (rc < 0)
			die("send", rc);
	}
	*rate = (double)n / (now_s() - t0);
	pthread_join(w.t, NULL);
	pthread_join(s.t, NULL);
	qsort(w.lat, w.nlat, sizeof(uint64_t), cmp_u64);
	*p50 = pct(w.lat, w.nlat, 0.50);
	*p99 = pct(w.lat, w.nlat, 0.99);
	*pmax = (double)w.lat[w.nlat - 1] / 1000.0;
	pair_close(&pr);
	free(w.lat);
	free((void *)w.sent_at);
}

struct pong {
	int fd;
	uint64_t n;
	pthread_t t;
};

static void *pong_body(void *arg)
{
	struct pong *p = arg;
	uint8_t m[HDR_BYTES];
	for (uint64_t i = 0; i < p->n; i++) {
		if (recv(p->fd, m, sizeof(m), MSG_WAITALL) != (ssize_t)sizeof(m) ||
		    write(p->fd, m, sizeof(m)) != (ssize_t)sizeof(m))
			break;
	}
	return NULL;
}

/* Bare TCP ping-pong of a 24-byte message: the floor for any ack round trip here. */
static void raw_rtt(uint64_t n, double *p50, double *p99)
{
	int fds[2];
	struct pong pg;
	uint8_t m[HDR_BYTES] = { 0 };
	uint64_t *lat = malloc(sizeof(uint64_t) * n);

	tcp_pair(fds);
	pg.fd = fds[1];
	pg.n = n;
	pthread_create(&pg.t, NULL, pong_body, &pg);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		if (write(fds[0], m, sizeof(m)) != (ssize_t)sizeof(m) ||
		    recv(fds[0], m, sizeof(m), MSG_WAITALL) != (ssize_t)sizeof(m))
			die("ping", errno);
		lat[i] = now_ns() - t0;
	}
	pthread_join(pg.t, NULL);
	qsort(lat, n, sizeof(uint64_t), cmp_u64);
	*p50 = pct(lat, n, 0.50);
	*p99 = pct(lat, n, 0.99);
	close(fds[0]);
	close(fds[1]);
	free(lat);
}

/* Other work on the machine moves every number here: print it with them. */
static void print_load(const char *when)
{
	double l[3];
	if (getloadavg(l, 3) == 3)
		printf("%s: load average %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

static void print_host(const char *argv0)
{
	struct utsname u;
	char commit[64] = "unknown", cmd[512];
	snprintf(cmd, sizeof(cmd), "git -C \"$(dirname '%s')\" rev-parse --short HEAD 2>/dev/null",
		 argv0);
	FILE *f = popen(cmd, "r");

	uname(&u);
	if (f) {
		if (fgets(commit, sizeof(commit), f))
			commit[strcspn(commit, "\n")] = '\0';
		pclose(f);
	}
	printf("host: %s %s %s, %ld CPUs; commit %s\n", u.nodename, u.sysname, u.release,
	       sysconf(_SC_NPROCESSORS_ONLN), commit);
	print_load("load at start");
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	uint64_t n_small = quick ? 1000000 : 5000000, n_large = quick ? 200000 : 1000000;
	unsigned rtt_seconds = quick ? RTT_SECONDS_QUICK : RTT_SECONDS;
	uint64_t n_rtt_raw = quick ? 5000 : 25000;

	print_host(argv[0]);
	for (unsigned i = 0; i < sizeof(bench_key.bytes); i++)
		bench_key.bytes[i] = (uint8_t)(i * 37 + 11);
	printf("\n== throughput over loopback TCP (channel in TLS, plaintext channel, bare TCP; same "
	       "bytes) ==\n");
	const size_t sizes[] = { 32, 1500 };
	for (unsigned i = 0; i < 2; i++) {
		uint64_t n = sizes[i] == 32 ? n_small : n_large;
		struct tput t[2];
		for (int tls = 0; tls < 2; tls++) {
			use_tls = tls;
			t[tls] = channel_throughput(sizes[i], n);
			printf("%5zu B records, %-9s %10.0f records/s  %8.1f MB/s payload  %8.1f MB/s "
			       "on the wire  (%llu writes, %.0f records/write)\n",
			       sizes[i], tls ? "TLS:" : "plaintext:", t[tls].rec_per_s, t[tls].mb_per_s,
			       t[tls].wire_mb_per_s, (unsigned long long)t[tls].writes,
			       (double)n / (double)t[tls].writes);
		}
		double raw = raw_throughput(n * (sizes[i] + HDR_BYTES));
		printf("%5s            bare TCP %8.1f MB/s; TLS/plaintext = %.2f, TLS/bare = %.2f, "
		       "plaintext/bare = %.2f",
		       "", raw, t[1].mb_per_s / t[0].mb_per_s, t[1].wire_mb_per_s / raw,
		       t[0].wire_mb_per_s / raw);
		if (sizes[i] == 1500)
			printf("; TLS vs target %.0f MB/s = %.2f %s", TARGET_LARGE_MBPS,
			       t[1].mb_per_s / TARGET_LARGE_MBPS,
			       t[1].mb_per_s >= TARGET_LARGE_MBPS ? "(met)" : "(NOT met)");
		printf("\n");
	}

	printf("\n== ack round trip while streaming %d B records (every %dth LSN waited for) ==\n",
	       RTT_RECORD, RTT_SAMPLE_EVERY);
	double r50, r99;
	raw_rtt(n_rtt_raw, &r50, &r99);
	printf("bare TCP ping-pong, 24 B (the floor): p50 %.1f us  p99 %.1f us\n", r50, r99);
	prctl(PR_SET_TIMERSLACK, 1UL); /* pace the stream with microsecond sleeps */
	const unsigned rates[] = { RTT_RATE_FAST, RTT_RATE_SLOW };
	for (unsigned i = 0; i < ARRAY_LEN(rates); i++) {
		for (int mode = 0; mode < 2; mode++) {
			double c50[2], c99[2];
			for (int tls = 0; tls < 2; tls++) {
				double cmax, rate;
				uint64_t n = (uint64_t)rates[i] * rtt_seconds;
				use_tls = tls;
				ack_on_receipt = mode == 1;
				double cpu0 = cpu_s();
				channel_rtt(n, rates[i], &c50[tls], &c99[tls], &cmax, &rate);
				double cpu_us = (cpu_s() - cpu0) * 1e6 / (double)n;
				printf("%6.0f records/s, %-22s %-10s p50 %7.1f us  p99 %8.1f us  max "
				       "%8.1f us; p99 vs target %.0f us: %.2f %s; p50/bare %.1f; CPU "
				       "%.1f us/record\n",
				       rate, mode ? "ack_on_receipt:" : "ack by the consumer:",
				       tls ? "TLS" : "plaintext", c50[tls], c99[tls], cmax,
				       TARGET_ACK_P99_US, c99[tls] / TARGET_ACK_P99_US,
				       c99[tls] < TARGET_ACK_P99_US ? "(met)" : "(NOT met)",
				       c50[tls] / r50, cpu_us);
			}
			printf("%38s TLS/plaintext: p50 %.2f  p99 %.2f\n", "", c50[1] / c50[0],
			       c99[1] / c99[0]);
		}
	}
	ack_on_receipt = false;
	print_load("load at end");
	return 0;
}
