/*
 * lc_peer.c — one end of a logging channel as a separate process, for integration tests that put
 * the two ends in different network namespaces (test_netns.sh).
 *
 *   lc_peer recv HOST:PORT VM_ID EPOCH N   backup: accept one primary, take N records, check
 *                                          every byte and the LSN order, ack, then expect BYE
 *   lc_peer send HOST:PORT VM_ID EPOCH N   primary: connect (retrying while nobody listens),
 *                                          send N records of random sizes, wait for the last ack
 *   lc_peer keygen FILE                    write a new channel key to FILE
 * recv and send take the channel key from the file named by $LC_PEER_KEY.
 *
 * Record contents are a function of the LSN, so the receiver checks them without a side channel.
 * Exit status: 0 success, 1 usage, 2 channel failure, 3 connection refused by the backup
 * (VM id / epoch / version), 4 data mismatch.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logchannel/channel.h"

#define EXIT_USAGE 1
#define EXIT_CHANNEL 2
#define EXIT_REFUSED 3
#define EXIT_MISMATCH 4
#define CONNECT_RETRY_MS 50
#define CONNECT_TRIES 100
#define WAIT_MS 10000
/*
 * Longer than TCP's initial retransmission timeout (1 s): a segment lost on a link that has
 * just come up must not read as a dead peer in this test of the data path.
 */
#define PEER_TIMEOUT_MS 3000

static size_t record_len(uint64_t lsn)
{
	uint64_t h = lsn * 0x9e3779b97f4a7c15ull;
	if (lsn % 5003 == 0)
		return 64 * 1024 + (h >> 50);
	return (size_t)(h >> 56) + 1;
}

static void record_fill(uint64_t lsn, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(lsn * 31 + i * 7);
}

static int do_recv(const struct channel_config *cfg, const char *addr, uint64_t n)
{
	struct channel_listener *l;
	struct channel *b;
	struct channel_err err;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD), *want = malloc(CHANNEL_MAX_RECORD);
	int rc = channel_listen(cfg, addr, &l, NULL);

	if (rc < 0) {
		fprintf(stderr, "lc_peer: listen %s: %s\n", addr, strerror(-rc));
		return EXIT_CHANNEL;
	}
	rc = channel_accept(l, WAIT_MS, &b, &err);
	channel_listener_close(l);
	if (rc < 0) {
		fprintf(stderr, "lc_peer: accept: %s\n", err.msg);
		return rc == -EPERM || rc == -ESTALE ? EXIT_REFUSED : EXIT_CHANNEL;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t lsn;
		size_t len;
		rc = channel_recv(b, &lsn, buf, CHANNEL_MAX_RECORD, &len, WAIT_MS);
		if (rc < 0) {
			fprintf(stderr, "lc_peer: recv: %s (%s)\n", strerror(-rc), channel_error(b));
			return EXIT_CHANNEL;
		}
		record_fill(lsn, want, len);
		if (lsn != i + 1 || len != record_len(lsn) || memcmp(buf, want, len) != 0) {
			fprintf(stderr, "lc_peer: record %llu: wrong LSN, length or bytes\n",
				(unsigned long long)lsn);
			return EXIT_MISMATCH;
		}
		channel_ack(b, lsn);
		channel_report_icount(b, lsn);
	}
	uint64_t lsn;
	size_t len;
	rc = channel_recv(b, &lsn, buf, CHANNEL_MAX_RECORD, &len, WAIT_MS);
	if (rc != -EPIPE || channel_state(b) != CHANNEL_PEER_CLOSED) {
		fprintf(stderr, "lc_peer: expected an orderly close, got %d (%s)\n", rc,
			channel_error(b));
		return EXIT_CHANNEL;
	}
	printf("lc_peer recv: %llu records checked\n", (unsigned long long)n);
	channel_close(b);
	free(buf);
	free(want);
	return 0;
}

static int do_send(const struct channel_config *cfg, const char *addr, uint64_t n)
{
	struct channel *p = NULL;
	struct channel_err err;
	uint8_t *buf = malloc(CHANNEL_MAX_RECORD);
	int rc = -ECONNREFUSED;

	for (int i = 0; i < CONNECT_TRIES && rc == -ECONNREFUSED; i++) {
		rc = channel_connect(cfg, addr, &p, &err);
		if (rc == -ECONNREFUSED)
			nanosleep(&(struct timespec){ 0, CONNECT_RETRY_MS * 1000000L }, NULL);
	}
	if (rc < 0) {
		fprintf(stderr, "lc_peer: connect: %s\n", err.msg);
		return rc == -EPERM || rc == -ESTALE || rc == -EPROTONOSUPPORT ? EXIT_REFUSED
										 : EXIT_CHANNEL;
	}
	for (uint64_t lsn = 1; lsn <= n; lsn++) {
		size_t len = record_len(lsn);
		record_fill(lsn, buf, len);
		rc = channel_send_wait(p, lsn, buf, len, WAIT_MS);
		if (rc < 0) {
			fprintf(stderr, "lc_peer: send: %s (%s)\n", strerror(-rc), channel_error(p));
			return EXIT_CHANNEL;
		}
	}
	rc = channel_wait_acked(p, n, WAIT_MS);
	if (rc < 0) {
		fprintf(stderr, "lc_peer: waiting for the last ack: %s (%s)\n", strerror(-rc),
			channel_error(p));
		return EXIT_CHANNEL;
	}
	printf("lc_peer send: %llu records acked, backup icount %llu\n", (unsigned long long)n,
	       (unsigned long long)channel_peer_icount(p));
	channel_close(p);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	struct channel_config cfg;
	struct channel_key key;
	struct channel_err err = { 0 };
	const char *key_path = getenv("LC_PEER_KEY");

	if (argc == 3 && strcmp(argv[1], "keygen") == 0)
		return channel_key_generate(argv[2], &err) < 0 ? EXIT_CHANNEL : 0;
	if (argc != 6 || (strcmp(argv[1], "recv") != 0 && strcmp(argv[1], "send") != 0)) {
		fprintf(stderr, "usage: lc_peer recv|send HOST:PORT VM_ID EPOCH N | keygen FILE\n");
		return EXIT_USAGE;
	}
	if (!key_path || channel_key_load(key_path, &key, &err) < 0) {
		fprintf(stderr, "lc_peer: $LC_PEER_KEY: %s\n", key_path ? err.msg : "not set");
		return EXIT_USAGE;
	}
	channel_config_init(&cfg);
	cfg.key = &key;
	cfg.timeout_ms = PEER_TIMEOUT_MS;
	cfg.vm_id = argv[3];
	cfg.epoch = strtoull(argv[4], NULL, 10);
	uint64_t n = strtoull(argv[5], NULL, 10);
	if (strcmp(argv[1], "recv") == 0)
		return do_recv(&cfg, argv[2], n);
	return do_send(&cfg, argv[2], n);
}
