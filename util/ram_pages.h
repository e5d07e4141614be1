/*
 * ram_pages.h — which pages of guest RAM the host has ever backed.
 *
 * Guest RAM is anonymous memory mapped on demand: a page nobody ever touched is all zeros and has
 * no backing yet. /proc/self/pagemap tells such pages apart (neither present nor swapped), so the
 * RAM digest can feed zeros for them and the state encoder can skip them, both without faulting
 * them in (about 40 µs a page). Without pagemap (another kernel, a sandbox) every page counts as
 * touched: slower, never wrong.
 */
#ifndef FTVM_UTIL_RAM_PAGES_H
#define FTVM_UTIL_RAM_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAM_PAGE_SIZE 4096u

/* Called once per maximal run of pages [first, first + count) that are all touched or all
 * untouched, in ascending order; a nonzero return stops the walk and is returned. */
typedef int (*ram_pages_fn)(void *ctx, size_t first, size_t count, bool touched);

/* Walks ram[0..size), size a multiple of RAM_PAGE_SIZE. 0, or the callback's nonzero return. */
int ram_pages_walk(const uint8_t *ram, size_t size, ram_pages_fn fn, void *ctx);

/* Whether one page is backed (true when pagemap cannot tell). */
bool ram_page_touched(const uint8_t *page);

/* Touches every page of [p, p + len) for writing now, its contents unchanged, so that no first
 * access faults later (~20 µs a page on these hosts, whose hypervisor maps a page on its first
 * access even after MADV_POPULATE_WRITE backed it). No other thread may write the range
 * meanwhile. */
void ram_pages_warm(void *p, size_t len);

/*
 * Reading guest RAM while the vCPU may be writing it (a live snapshot's rounds, a migration's
 * pre-copy) races by design: a page written during its read is marked dirty and read again in a
 * later round, the last of which holds the vCPU, so the copy ends exactly as RAM was at the cut.
 * Under ThreadSanitizer these reads are plain word loads it does not instrument, so only real
 * races are reported; elsewhere they are memcpy and an ordinary scan. Only for those reads.
 */
#if defined(__SANITIZE_THREAD__)
#define RACY_READS __attribute__((no_sanitize_thread)) /* a function that reads racily by design */
#else
#define RACY_READS
#endif
/* Copies len bytes (a multiple of 8) of guest RAM at src to dst. */
void ram_copy_racy(uint8_t *dst, const uint8_t *src, size_t len);
/* Whether the page at src is all zeros. */
bool ram_page_zero_racy(const uint8_t *page);

#endif
