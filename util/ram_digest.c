/*
 * ram_digest.c — see ram_digest.h. Runs of touched pages (ram_pages.h) are hashed from RAM, runs
 * of untouched pages from a static zero buffer, through one streaming XXH3 state.
 */
#include "util/ram_digest.h"

#include <stdbool.h>
#include <xxhash.h>

#include "util/ram_pages.h"

static const uint8_t zero_page[RAM_PAGE_SIZE];

struct feed_ctx {
	XXH3_state_t *st;
	const uint8_t *ram;
};

static int feed(void *ctx, size_t first, size_t count, bool touched)
{
	struct feed_ctx *f = ctx;
	if (touched) {
		XXH3_64bits_update(f->st, f->ram + first * RAM_PAGE_SIZE, count * RAM_PAGE_SIZE);
		return 0;
	}
	for (size_t i = 0; i < count; i++)
		XXH3_64bits_update(f->st, zero_page, RAM_PAGE_SIZE);
	return 0;
}

uint64_t ram_digest(const uint8_t *ram, size_t size, uint64_t seed)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return XXH3_64bits_withSeed(ram, size, seed);
	XXH3_64bits_reset_withSeed(st, seed);
	struct feed_ctx f = { .st = st, .ram = ram };
	(void)ram_pages_walk(ram, size, feed, &f);
	uint64_t d = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return d;
}
