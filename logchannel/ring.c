/*
 * ring.c — allocation of the channel's SPSC byte rings (the fast paths are inline in ring.h).
 * The buffer is touched once at init so its pages are resident before the first record: the
 * producer's path never takes a page fault, and memory use is fixed from the start.
 */
#include "logchannel/ring.h"

#include <errno.h>
#include <stdlib.h>

int chring_init(struct chring *r, size_t min_cap)
{
	size_t cap = 1;

	while (cap < min_cap) {
		if (cap > SIZE_MAX / 2)
			return -EINVAL;
		cap <<= 1;
	}
	r->buf = aligned_alloc(CHRING_CACHELINE, cap);
	if (!r->buf)
		return -ENOMEM;
	memset(r->buf, 0, cap);
	r->cap = cap;
	r->mask = cap - 1;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	return 0;
}

void chring_destroy(struct chring *r)
{
	free(r->buf);
	r->buf = NULL;
}
