/*
 * chan_harness.h — what the logging-channel tests share: a base configuration (its transport
 * chosen once per test program; TLS with a test key, or plaintext for hand-made peers), records whose contents are a pure function of their LSN, opening
 * a connected primary/backup pair on the loopback, and a consumer thread that checks every byte.
 */
#ifndef FTVM_TESTS_CHAN_HARNESS_H
#define FTVM_TESTS_CHAN_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logchannel/channel.h"

#define VM_ID "6f1c3a52-9d2e-4b7a-8c11-0e5d2f9a7b31"
#define EPOCH 3
#define HB_MS 20
#define TIMEOUT_MS 400
#define MiB (1024u * 1024u)

/* The transport base_config() sets (TCP unless a test program chooses RDMA). */
extern enum channel_transport harness_transport;

uint64_t now_ms(void);
void sleep_ms(unsigned ms);
/* TLS with the pairing key harness_key; plain_config(): no TLS, for hand-made frame bytes. */
extern const struct channel_key harness_key;
void base_config(struct channel_config *c);
void plain_config(struct channel_config *c);
uint64_t mix(uint64_t x);
size_t record_len(uint64_t lsn);
void record_fill(uint64_t lsn, uint8_t *buf, size_t len);

struct acceptor {
	struct channel_listener *l;
	struct channel *ch;
	struct channel_err err;
	int rc;
	pthread_t t;
};

void acceptor_start(struct acceptor *a, struct channel_listener *l);
void acceptor_join(struct acceptor *a);
struct channel_listener *listen_local(const struct channel_config *c, char *addr, size_t n);
void open_pair(const struct channel_config *pc, const struct channel_config *bc, struct channel **p,
	       struct channel **b);
/* open_pair() with base configurations and the smallest buffers, for the backpressure tests. */
void open_bounded_pair(struct channel **p, struct channel **b);
/* Wait until the channel leaves CHANNEL_UP, through its event fd. Returns ms waited or -1. */
long wait_down(struct channel *ch, int timeout_ms);

struct consumer {
	struct channel *ch;
	uint64_t first, count;
	uint64_t received, bad, acked_samples_nonmonotonic;
	int final_rc;
	bool report_icount;
	pthread_t t;
};

void *consume_body(void *arg);
void consumer_start(struct consumer *c, struct channel *ch, uint64_t first, uint64_t count);
void send_range(struct channel *p, uint64_t first, uint64_t count, uint8_t *buf);

/* What stall_producer() saw. */
struct stall {
	uint64_t queued;    /* records queued before the producer stalled */
	unsigned eagain;    /* channel_send() calls refused with -EAGAIN */
	long rss_at_stall;  /* KiB, shortly after the stall began */
	long rss_end;
};

long rss_kib(void);
/*
 * Whether the stall's RSS growth stayed under @bound_kib. Under a sanitizer RSS counts its shadow
 * memory and its allocator's quarantine too (growth of 1.5 MiB over a stall that queued nothing
 * was seen under ThreadSanitizer), so there the check is left to the plain build, which runs the
 * same test, and true is returned with a note.
 */
bool stall_rss_bounded(const struct stall *st, long bound_kib);
/*
 * With nobody consuming at the backup, send @rec-byte records (byte 0 = the LSN's low byte) until
 * no progress for three timeouts.
 */
void stall_producer(struct channel *p, size_t rec, uint8_t *buf, struct stall *st);
/* Take the records stall_producer() queued, checking order and length, acking each; then stream
 * 1000 more through a consumer thread and wait for their acks. */
void drain_stalled(struct channel *p, struct channel *b, uint64_t queued, size_t rec, uint8_t *buf);
/* Both sides idle for twice the timeout: heartbeats keep them up, in both directions. */
void check_idle_heartbeats(struct channel *p, struct channel *b);
/* channel_close(p): the backup learns it from BYE, distinct from a failure; then close @b too. */
void close_with_bye(struct channel *p, struct channel *b);

#endif
