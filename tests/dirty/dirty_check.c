/*
 * dirty_check.c — see dirty_check.h.
 */
#include "dirty_check.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int dc_pair_create(struct dc_pair *p, const char *elf, uint64_t world_seed)
{
	char err[256];
	struct machine_config mc = { .kernel = elf, .mem_mib = DC_MEM_MIB, .ndisks = 1,
				     .disk_bytes = { DC_DISK_BYTES } };
	uint64_t disk_bytes[1] = { DC_DISK_BYTES };
	*p = (struct dc_pair){ 0 };
	int ret = machine_create(&mc, &p->a, err, sizeof(err));
	if (!ret)
		ret = machine_create(&mc, &p->b, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "machine_create: %s\n", err);
		dc_pair_destroy(p);
		return ret;
	}
	p->wa = script_world_create(world_seed, 1, disk_bytes, 0, 0, 0);
	p->wb = p->wa ? script_world_clone(p->wa) : NULL;
	if (!p->wb) {
		fprintf(stderr, "script world: out of memory\n");
		dc_pair_destroy(p);
		return -ENOMEM;
	}
	return 0;
}

void dc_pair_destroy(struct dc_pair *p)
{
	if (p->wa)
		script_world_destroy(p->wa);
	if (p->wb)
		script_world_destroy(p->wb);
	machine_destroy(p->a);
	machine_destroy(p->b);
	*p = (struct dc_pair){ 0 };
}

int dc_writer_arg(int argc, char **argv, const char **elf)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s WRITER_ELF\n", argv[0]);
		return 2;
	}
	*elf = argv[1];
	if (access(*elf, R_OK)) {
		printf("%s missing (no riscv64-unknown-elf-gcc): skipped\n", *elf);
		return 77;
	}
	return 0;
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
