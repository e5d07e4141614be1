/*
 * dirty_check.c — see dirty_check.h.
 */
#include "dirty_check.h"

#include <string.h>

void dc_config(struct machine_config *mc, const char *elf)
{
	*mc = (struct machine_config){ .kernel = elf, .mem_mib = DC_MEM_MIB, .ndisks = 1,
				       .disk_bytes = { DC_DISK_BYTES } };
}

struct dc_round dc_compare(const uint8_t *before, const uint8_t *now, size_t ram_size, const uint64_t *bitmap)
{
	struct dc_round r = { 0 };
	for (size_t p = 0; p < ram_size / DC_PAGE; p++) {
		bool marked = bitmap[p / 64] >> (p % 64) & 1;
		bool changed = memcmp(before + p * DC_PAGE, now + p * DC_PAGE, DC_PAGE) != 0;
		r.marked += marked;
		r.changed += changed;
		if (changed && !marked && r.missed++ == 0)
			r.first_missed = p;
	}
	return r;
}
