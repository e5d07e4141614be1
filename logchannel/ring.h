/*
 * ring.h — a single-producer / single-consumer byte ring of fixed power-of-two capacity.
 *
 * This is the lock-free hand-off between an application thread and the channel thread. The
 * producer owns `head`, the consumer owns `tail`; both are free-running 64-bit byte counters
 * (they never wrap in practice), so used = head - tail and position = counter & mask. The
 * producer fills bytes, then publishes them with a release store of head; the consumer reads
 * head with acquire, consumes, then frees with a release store of tail. Items may straddle the
 * end of the buffer: copies are split in two. No locks, no allocation after init.
 */
#ifndef FTVM_LOGCHANNEL_RING_H
#define FTVM_LOGCHANNEL_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/compiler.h"

#define CHRING_CACHELINE 64

struct chring {
	uint8_t *buf;
	size_t cap;
	size_t mask;
	_Alignas(CHRING_CACHELINE) _Atomic uint64_t head; /* written by the producer */
	_Alignas(CHRING_CACHELINE) _Atomic uint64_t tail; /* written by the consumer */
	_Alignas(CHRING_CACHELINE) char pad_;
};

/* Allocate a ring of at least @min_cap bytes (rounded up to a power of two). 0 or -ENOMEM. */
int chring_init(struct chring *r, size_t min_cap) FTVM_MUST_CHECK;
void chring_destroy(struct chring *r);

static inline uint64_t chring_head(struct chring *r, memory_order mo)
{
	return atomic_load_explicit(&r->head, mo);
}

static inline uint64_t chring_tail(struct chring *r, memory_order mo)
{
	return atomic_load_explicit(&r->tail, mo);
}

/* Copy @len bytes into the ring at counter @pos (not yet published). */
static inline void chring_put(struct chring *r, uint64_t pos, const void *src, size_t len)
{
	size_t off = pos & r->mask;
	size_t first = MIN(len, r->cap - off);
	memcpy(r->buf + off, src, first);
	if (len > first)
		memcpy(r->buf, (const uint8_t *)src + first, len - first);
}

/* Copy @len bytes out of the ring from counter @pos. */
static inline void chring_get(struct chring *r, uint64_t pos, void *dst, size_t len)
{
	size_t off = pos & r->mask;
	size_t first = MIN(len, r->cap - off);
	memcpy(dst, r->buf + off, first);
	if (len > first)
		memcpy((uint8_t *)dst + first, r->buf, len - first);
}

static inline void chring_publish(struct chring *r, uint64_t new_head)
{
	atomic_store_explicit(&r->head, new_head, memory_order_release);
}

static inline void chring_release(struct chring *r, uint64_t new_tail)
{
	atomic_store_explicit(&r->tail, new_tail, memory_order_release);
}

#endif
