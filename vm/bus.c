/*
 * bus.c — the board's physical address space: RAM plus a short table of MMIO regions.
 * A linear search is fine: the table has a dozen entries and the CPU caches RAM translations.
 */
#include "vm/bus.h"

#include <errno.h>
#include <string.h>

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int bus_add_region(struct vm_bus *bus, const struct bus_region *region)
{
	if (bus->nregions >= BUS_MAX_REGIONS)
		return -ENOSPC;
	if (region->size == 0 || region->base + region->size < region->base)
		return -EINVAL;
	if (ranges_overlap(region->base, region->size, bus->ram_base, bus->ram_size))
		return -EEXIST;
	for (unsigned i = 0; i < bus->nregions; i++)
		if (ranges_overlap(region->base, region->size, bus->regions[i].base, bus->regions[i].size))
			return -EEXIST;
	bus->regions[bus->nregions++] = *region;
	return 0;
}

const struct bus_region *bus_find_region(const struct vm_bus *bus, uint64_t addr, unsigned size)
{
	for (unsigned i = 0; i < bus->nregions; i++) {
		const struct bus_region *r = &bus->regions[i];
		if (addr >= r->base && addr - r->base <= r->size - size)
			return r;
	}
	return NULL;
}

static void ram_copy_in(uint8_t *dst, uint64_t value, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		dst[i] = (uint8_t)(value >> (8 * i));
}

static uint64_t ram_copy_out(const uint8_t *src, unsigned size)
{
	uint64_t value = 0;
	for (unsigned i = 0; i < size; i++)
		value |= (uint64_t)src[i] << (8 * i);
	return value;
}

int bus_read(struct vm_bus *bus, uint64_t addr, unsigned size, uint64_t *value)
{
	uint8_t *p = bus_ram_range(bus, addr, size);
	if (p) {
		*value = ram_copy_out(p, size);
		return 0;
	}
	const struct bus_region *r = bus_find_region(bus, addr, size);
	if (!r || !r->read)
		return -1;
	return r->read(r->opaque, addr - r->base, size, value);
}

int bus_write(struct vm_bus *bus, uint64_t addr, unsigned size, uint64_t value)
{
	uint8_t *p = bus_ram_range(bus, addr, size);
	if (p) {
		ram_copy_in(p, value, size);
		bus_mark_dirty(bus, addr, size);
		return 0;
	}
	const struct bus_region *r = bus_find_region(bus, addr, size);
	if (!r || !r->write)
		return -1;
	return r->write(r->opaque, addr - r->base, size, value);
}
