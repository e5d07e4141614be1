/*
 * ram_digest.c — see ram_digest.h. Runs of touched pages are hashed from RAM, runs of untouched
 * pages from a static zero buffer, through one streaming XXH3 state; without pagemap (another
 * kernel, a sandbox) every page is read.
 */
#define DIAG_MODULE "machine"
#include "util/ram_digest.h"

#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>
#include <xxhash.h>

#include "util/diag.h"

#define PAGE 4096u
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)
#define PAGEMAP_BATCH 512u /* entries read per pread */

static const uint8_t zero_page[PAGE];

static void feed(XXH3_state_t *st, const uint8_t *ram, size_t first, size_t count, bool touched)
{
	if (touched) {
		XXH3_64bits_update(st, ram + first * PAGE, count * PAGE);
		return;
	}
	for (size_t i = 0; i < count; i++)
		XXH3_64bits_update(st, zero_page, PAGE);
}

uint64_t ram_digest(const uint8_t *ram, size_t size, uint64_t seed)
{
	XXH3_state_t *st = XXH3_createState();
	size_t pages = size / PAGE;
	uint64_t entries[PAGEMAP_BATCH];
	int fd = sysconf(_SC_PAGESIZE) == PAGE ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;

	if (!st || fd < 0) {
		if (st)
			XXH3_freeState(st);
		if (fd >= 0)
			close(fd);
		return XXH3_64bits_withSeed(ram, size, seed);
	}
	XXH3_64bits_reset_withSeed(st, seed);
	size_t run_start = 0;
	bool run_touched = true;
	for (size_t base = 0; base < pages; base += PAGEMAP_BATCH) {
		size_t n = pages - base < PAGEMAP_BATCH ? pages - base : PAGEMAP_BATCH;
		off_t where = (off_t)(((uintptr_t)ram / PAGE + base) * sizeof(uint64_t));
		bool known = pread(fd, entries, n * sizeof(uint64_t), where) == (ssize_t)(n * sizeof(uint64_t));
		for (size_t i = 0; i < n; i++) {
			bool touched = !known || (entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED));
			if (touched != run_touched) {
				feed(st, ram, run_start, base + i - run_start, run_touched);
				run_start = base + i;
				run_touched = touched;
			}
		}
	}
	feed(st, ram, run_start, pages - run_start, run_touched);
	close(fd);
	uint64_t d = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return d;
}
