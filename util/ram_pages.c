/*
 * ram_pages.c — see ram_pages.h. Reads pagemap in batches and reports runs, so a walk over a
 * mostly untouched RAM costs one pread per 512 pages and a handful of callbacks.
 */
#include "util/ram_pages.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)
#define PAGEMAP_BATCH 512u /* entries read per pread */

static int open_pagemap(void)
{
	if (sysconf(_SC_PAGESIZE) != RAM_PAGE_SIZE)
		return -1;
	return open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

int ram_pages_walk(const uint8_t *ram, size_t size, ram_pages_fn fn, void *ctx)
{
	size_t pages = size / RAM_PAGE_SIZE;
	uint64_t entries[PAGEMAP_BATCH];
	int fd = open_pagemap();

	if (fd < 0)
		return pages ? fn(ctx, 0, pages, true) : 0;
	size_t run_start = 0;
	bool run_touched = true;
	int ret = 0;
	for (size_t base = 0; base < pages && !ret; base += PAGEMAP_BATCH) {
		size_t n = pages - base < PAGEMAP_BATCH ? pages - base : PAGEMAP_BATCH;
		off_t where = (off_t)(((uintptr_t)ram / RAM_PAGE_SIZE + base) * sizeof(uint64_t));
		bool known = pread(fd, entries, n * sizeof(uint64_t), where) == (ssize_t)(n * sizeof(uint64_t));
		for (size_t i = 0; i < n && !ret; i++) {
			bool touched = !known || (entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED));
			if (touched == run_touched)
				continue;
			if (base + i > run_start)
				ret = fn(ctx, run_start, base + i - run_start, run_touched);
			run_start = base + i;
			run_touched = touched;
		}
	}
	if (!ret && pages > run_start)
		ret = fn(ctx, run_start, pages - run_start, run_touched);
	close(fd);
	return ret;
}

bool ram_page_touched(const uint8_t *page)
{
	uint64_t entry;
	int fd = open_pagemap();
	if (fd < 0)
		return true;
	off_t where = (off_t)((uintptr_t)page / RAM_PAGE_SIZE * sizeof(uint64_t));
	bool known = pread(fd, &entry, sizeof(entry), where) == (ssize_t)sizeof(entry);
	close(fd);
	return !known || (entry & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED));
}

RACY_READS void ram_copy_racy(uint8_t *dst, const uint8_t *src, size_t len)
{
#if defined(__SANITIZE_THREAD__)
	const volatile uint64_t *s = (const volatile uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;
	for (size_t i = 0; i < len / sizeof(uint64_t); i++)
		d[i] = s[i];
#else
	memcpy(dst, src, len);
#endif
}

RACY_READS bool ram_page_zero_racy(const uint8_t *page)
{
	const uint64_t *w = (const uint64_t *)page;
	uint64_t any = 0;
	for (size_t i = 0; i < RAM_PAGE_SIZE / sizeof(*w); i++)
		any |= w[i];
	return !any;
}

void ram_pages_warm(void *p, size_t len)
{
	volatile uint8_t *b = p;
	for (size_t off = 0; off < len; off += RAM_PAGE_SIZE)
		b[off] = b[off];
	if (len)
		b[len - 1] = b[len - 1];
}
