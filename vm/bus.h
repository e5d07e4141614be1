/*
 * bus.h — the physical address space of the board: RAM plus MMIO regions.
 *
 * RAM is one host buffer mapped at ram_base; the CPU reaches it through its TLB without calling
 * the bus. Every other address goes to the region that covers it (the board table in board.c
 * registers them). An access that hits no region, or a size a device does not take, is an access
 * fault for the CPU — never a crash. Devices copy to and from guest RAM only on the vCPU thread,
 * through bus_ram_range().
 *
 * Dirty-page tracking (machine_dirty_*): while `dirty` is set, every write into RAM that does not
 * go through the hart's store TLB marks its 4 KiB pages with bus_mark_dirty() — device DMA
 * (virtio used rings and buffers), page-table A/D updates, bus_write() — and the hart marks a page
 * when it fills or re-arms a store TLB entry for it. Off, the cost is one NULL test per such write.
 *
 * Code-page tracking (vm/jit.c) rides on the same calls: while `code` is set, a write into a page
 * flagged there clears the flag and advances the page's generation, which the JIT compares before
 * it trusts a block translated from that page. The hart's store TLB keeps no usable entry for a
 * flagged page (the JIT arms them, cpu_tlb_arm_store_page()), so hart stores reach the same calls.
 */
#ifndef FTVM_VM_BUS_H
#define FTVM_VM_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"

#define BUS_MAX_REGIONS 32

enum bus_region_flags {
	BUS_REGION_EXEC = 1u << 0, /* instructions may be fetched from it (the reset ROM) */
};

struct bus_region {
	const char *name;
	uint64_t base;
	uint64_t size;
	unsigned flags;
	void *opaque;
	/* size is 1, 2, 4 or 8, offset is relative to base; return 0, or -1 for an access fault. */
	int (*read)(void *opaque, uint64_t offset, unsigned size, uint64_t *value);
	int (*write)(void *opaque, uint64_t offset, unsigned size, uint64_t value);
};

struct vm_bus {
	uint8_t *ram;
	uint64_t ram_base;
	uint64_t ram_size;
	struct bus_region regions[BUS_MAX_REGIONS];
	unsigned nregions;
	/* One bit per RAM page (bit p % 64 of word p / 64) written since the last collection, or NULL
	 * when not tracking. Written only on the vCPU thread. */
	uint64_t *dirty;
	/* One byte per RAM page, non-zero while the JIT trusts blocks translated from it, and one
	 * generation per page that every write into a flagged page advances; NULL without a JIT.
	 * Written only on the vCPU thread. */
	uint8_t *code;
	uint64_t *code_gen;
	uint64_t code_writes; /* writes that found a page flagged (the JIT's helpers compare it) */
};

#define BUS_PAGE_SHIFT 12

/* Registers a region; -ENOSPC when the table is full, -EEXIST when it overlaps RAM or a region. */
int bus_add_region(struct vm_bus *bus, const struct bus_region *region) FTVM_MUST_CHECK;
/* The region covering [addr, addr + size), or NULL. */
const struct bus_region *bus_find_region(const struct vm_bus *bus, uint64_t addr, unsigned size);
/* Physical access anywhere (RAM or MMIO), little-endian; 0 or -1 (access fault). */
int bus_read(struct vm_bus *bus, uint64_t addr, unsigned size, uint64_t *value) FTVM_MUST_CHECK;
int bus_write(struct vm_bus *bus, uint64_t addr, unsigned size, uint64_t value) FTVM_MUST_CHECK;

/* Host pointer to guest RAM [addr, addr + len), or NULL when any part lies outside RAM. */
static inline uint8_t *bus_ram_range(const struct vm_bus *bus, uint64_t addr, uint64_t len)
{
	if (addr < bus->ram_base || len > bus->ram_size || addr - bus->ram_base > bus->ram_size - len)
		return NULL;
	return bus->ram + (addr - bus->ram_base);
}

/* Page p of RAM was written: dirty tracking and code tracking hear of it (either may be off). */
static inline void bus_page_written(struct vm_bus *bus, uint64_t p)
{
	if (bus->dirty)
		bus->dirty[p / 64] |= 1ull << (p % 64);
	if (bus->code && bus->code[p]) {
		bus->code[p] = 0;
		bus->code_gen[p]++;
		bus->code_writes++;
	}
}

/* All of RAM is being replaced (a restore): no page's code is trusted any longer. */
static inline void bus_code_forget_all(struct vm_bus *bus)
{
	if (!bus->code)
		return;
	for (uint64_t p = 0; p < bus->ram_size >> BUS_PAGE_SHIFT; p++)
		if (bus->code[p]) {
			bus->code[p] = 0;
			bus->code_gen[p]++;
			bus->code_writes++;
		}
}

/* Marks the pages of RAM [addr, addr + len) written (len > 0; the range must lie in RAM, as
 * bus_ram_range() checked). Nothing when neither tracking is on. */
static inline void bus_mark_dirty(struct vm_bus *bus, uint64_t addr, uint64_t len)
{
	if (__builtin_expect(bus->dirty == NULL && bus->code == NULL, 1))
		return;
	uint64_t first = (addr - bus->ram_base) >> BUS_PAGE_SHIFT;
	uint64_t last = (addr - bus->ram_base + len - 1) >> BUS_PAGE_SHIFT;
	for (uint64_t p = first; p <= last; p++)
		bus_page_written(bus, p);
}

/* The page of RAM holding host address `host` (the hart's TLB hands out host addresses). */
static inline void bus_mark_dirty_host(struct vm_bus *bus, const uint8_t *host)
{
	if (__builtin_expect(bus->dirty == NULL && bus->code == NULL, 1))
		return;
	bus_page_written(bus, (uint64_t)(host - bus->ram) >> BUS_PAGE_SHIFT);
}

#endif
