/*
 * machine_dirty.c — dirty-page tracking of guest RAM for pre-copy (see machine.h).
 *
 * The bitmap hangs off the bus (bus->dirty), where every writer of RAM outside the hart's store
 * TLB marks it (bus.h); the hart marks a page when it fills a store TLB entry and, after each
 * collection, when it first stores through an entry again (cpu_dirty_arm). A collection is thus a
 * copy, a clear and one pass over the store TLB — nothing proportional to the guest's writes.
 */
#include "vm/machine_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "util/ram_pages.h"

size_t machine_dirty_words(const struct machine *m)
{
	size_t pages = m->ram_size >> BUS_PAGE_SHIFT;
	return (pages + 63) / 64;
}

int machine_dirty_start(struct machine *m)
{
	if (m->bus.dirty)
		return -EALREADY;
	m->bus.dirty = calloc(machine_dirty_words(m), sizeof(uint64_t));
	if (!m->bus.dirty)
		return -ENOMEM;
	/* Store entries filled before the start would let stores through unseen. */
	cpu_dirty_arm(m->cpu);
	return 0;
}

long machine_dirty_collect(struct machine *m, uint64_t *bitmap, size_t words)
{
	size_t n = machine_dirty_words(m);
	if (!m->bus.dirty || words != n)
		return -EINVAL;
	long marked = 0;
	for (size_t i = 0; i < n; i++) {
		bitmap[i] = m->bus.dirty[i];
		marked += __builtin_popcountll(bitmap[i]);
	}
	memset(m->bus.dirty, 0, n * sizeof(uint64_t));
	cpu_dirty_arm(m->cpu);
	return marked;
}

RACY_READS bool machine_dirty_marked_racy(const struct machine *m, size_t p)
{
	const volatile uint64_t *dirty = m->bus.dirty;
	if (!dirty || p >= m->ram_size >> BUS_PAGE_SHIFT)
		return false;
	return dirty[p / 64] >> (p % 64) & 1;
}

void machine_dirty_stop(struct machine *m)
{
	free(m->bus.dirty);
	m->bus.dirty = NULL;
}
