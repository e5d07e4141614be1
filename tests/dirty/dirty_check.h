/*
 * dirty_check.h — what the dirty-page tests share: the writer guest's machine, and the check of a
 * collected bitmap against the pages whose bytes really changed.
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

struct dc_round {
	size_t changed;    /* pages whose bytes differ from the copy */
	size_t marked;     /* pages marked in the bitmap */
	size_t missed;     /* changed and not marked: must stay 0 */
	size_t first_missed; /* page index of the first miss */
};

/* Two machines running the writer (`elf`, DC_MEM_MIB of RAM, one disk of DC_DISK_BYTES): a, the
 * one under test, and b, the untouched reference, each with its copy of the same world. */
struct dc_pair {
	struct machine *a, *b;
	struct script_world *wa, *wb;
};
/* 0, or -errno with the reason on stderr. */
int dc_pair_create(struct dc_pair *p, const char *elf, uint64_t world_seed);
void dc_pair_destroy(struct dc_pair *p);
/* The writer ELF from the command line: 0, or the exit code (2: usage, 77: skipped, not built). */
int dc_writer_arg(int argc, char **argv, const char **elf);
/* Compares RAM with the copy `before` taken at the previous collection and the bitmap. */
struct dc_round dc_compare(const uint8_t *before, const uint8_t *now, size_t ram_size, const uint64_t *bitmap);

#endif
