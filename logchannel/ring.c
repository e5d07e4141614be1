/*
 * ring.c — allocation of the channel's SPSC byte rings (the fast paths are inline in ring.h).
 * The buffer is an anonymous mapping the kernel populates at once (MAP_POPULATE), so its pages
 * are resident before the first record: the producer's path never takes a page fault, memory use
 * is fixed from the start, and no loop of ours writes 16 MiB of zeros while a peer waits for the
 * handshake (under ThreadSanitizer such a memset took seconds).
 */
#include "logchannel/ring.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

int chring_init(struct chring *r, size_t min_cap)
{
	size_t cap = 1;

	while (cap < min_cap) {
		if (cap > SIZE_MAX / 2)
			return -EINVAL;
		cap <<= 1;
	}
	/* Page-aligned, which is more than the cache-line alignment the ring needs. */
	void *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED)
		return -ENOMEM;
	r->buf = buf;
	r->cap = cap;
	r->mask = cap - 1;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	return 0;
}

void chring_destroy(struct chring *r)
{
	if (r->buf)
		munmap(r->buf, r->cap);
	r->buf = NULL;
}
