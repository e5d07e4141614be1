/*
 * dirty_check.h — what the dirty-page tests share: a pair of machines (one under test, one
 * untouched reference) in copies of one deterministic world, and the check of each collected
 * bitmap against the pages whose bytes really changed since the previous collection.
 */
#ifndef FTVM_TESTS_DIRTY_CHECK_H
#define FTVM_TESTS_DIRTY_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include "script_world.h"
#include "vm/machine.h"

#define DC_PAGE 4096u
#define DC_MEM_MIB 32u
#define DC_DISK_BYTES (4ull << 20)
/* Where writer.c counts how often each kind of write ran, and how many kinds there are. */
#define DC_COUNTS_OFFSET 0x730000u
#define DC_KINDS 12u

/* a, the machine under test, and b, the untouched reference, each with its copy of one world. */
struct dc_pair {
	struct machine *a, *b;
	struct script_world *wa, *wb;
};
/* Both built from `mc` (one disk at most); the world gives frames to NIC 0 every rx_every
 * instructions when mc has a NIC. 0, or -errno with the reason on stderr. */
int dc_pair_create(struct dc_pair *p, const struct machine_config *mc, uint64_t world_seed, icount_t rx_every);
/* The writer guest (`elf`, DC_MEM_MIB of RAM, one disk of DC_DISK_BYTES). */
int dc_pair_create_writer(struct dc_pair *p, const char *elf, uint64_t world_seed);
void dc_pair_destroy(struct dc_pair *p);

/* The bitmap and the copy of RAM at the previous collection, for machine m. */
struct dc_tracker {
	struct machine *m;
	const uint8_t *ram;
	size_t ram_size, words;
	uint64_t *bitmap;
	uint8_t *before;
	size_t changed, marked; /* totals over the rounds */
};
/* Starts tracking on m and takes the first copy of RAM; 0 or -errno. */
int dc_tracker_start(struct dc_tracker *t, struct machine *m);
/* Collects (vCPU thread, or with m held) and compares with the copy: true when every changed
 * page is marked; otherwise false with the first unmarked one described in why. */
bool dc_tracker_round(struct dc_tracker *t, char *why, size_t whylen);
void dc_tracker_free(struct dc_tracker *t);

/* The writer ELF from the command line: 0, or the exit code (2: usage, 77: skipped, not built). */
int dc_writer_arg(int argc, char **argv, const char **elf);

#endif
