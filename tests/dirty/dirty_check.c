/*
 * dirty_check.c — see dirty_check.h.
 */
#include "dirty_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dc_pair_create(struct dc_pair *p, const struct machine_config *mc, uint64_t world_seed, icount_t rx_every)
{
	char err[256];
	*p = (struct dc_pair){ 0 };
	int ret = machine_create(mc, &p->a, err, sizeof(err));
	if (!ret)
		ret = machine_create(mc, &p->b, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "machine_create: %s\n", err);
		dc_pair_destroy(p);
		return ret;
	}
	p->wa = script_world_create(world_seed, mc->ndisks, mc->disk_bytes, mc->nnics, rx_every, 0);
	p->wb = p->wa ? script_world_clone(p->wa) : NULL;
	if (!p->wb) {
		fprintf(stderr, "script world: out of memory\n");
		dc_pair_destroy(p);
		return -ENOMEM;
	}
	return 0;
}

int dc_pair_create_writer(struct dc_pair *p, const char *elf, uint64_t world_seed)
{
	struct machine_config mc = { .kernel = elf, .mem_mib = DC_MEM_MIB, .ndisks = 1,
				     .disk_bytes = { DC_DISK_BYTES } };
	return dc_pair_create(p, &mc, world_seed, 0);
}

void dc_pair_destroy(struct dc_pair *p)
{
	script_world_destroy(p->wa);
	script_world_destroy(p->wb);
	machine_destroy(p->a);
	machine_destroy(p->b);
	*p = (struct dc_pair){ 0 };
}

int dc_tracker_start(struct dc_tracker *t, struct machine *m)
{
	*t = (struct dc_tracker){ .m = m, .words = machine_dirty_words(m) };
	t->ram = machine_ram_const(m, &t->ram_size);
	t->bitmap = calloc(t->words, sizeof(*t->bitmap));
	t->before = malloc(t->ram_size);
	if (!t->bitmap || !t->before) {
		dc_tracker_free(t);
		return -ENOMEM;
	}
	int ret = machine_dirty_start(m);
	if (ret) {
		dc_tracker_free(t);
		return ret;
	}
	memcpy(t->before, t->ram, t->ram_size);
	return 0;
}

bool dc_tracker_round(struct dc_tracker *t, char *why, size_t whylen)
{
	size_t pages = t->ram_size / DC_PAGE, peeked = 0;
	/* What a pre-copy reads beside the vCPU (here stopped): the marks the collection returns. */
	for (size_t p = 0; p < pages; p++)
		peeked += machine_dirty_marked_racy(t->m, p);
	long n = machine_dirty_collect(t->m, t->bitmap, t->words);
	if (n < 0) {
		snprintf(why, whylen, "collect: %s", strerror((int)-n));
		return false;
	}
	if ((size_t)n != peeked) {
		snprintf(why, whylen, "machine_dirty_marked_racy() saw %zu marked pages, the collection %ld", peeked, n);
		return false;
	}
	for (size_t p = 0; p < pages; p++) {
		if (machine_dirty_marked_racy(t->m, p)) {
			snprintf(why, whylen, "page %zu still reads as marked after the collection", p);
			return false;
		}
	}
	size_t marked = 0, changed = 0, missed = 0, first = 0;
	for (size_t p = 0; p < pages; p++) {
		bool is_marked = t->bitmap[p / 64] >> (p % 64) & 1;
		bool is_changed = memcmp(t->before + p * DC_PAGE, t->ram + p * DC_PAGE, DC_PAGE) != 0;
		marked += is_marked;
		changed += is_changed;
		if (is_changed && !is_marked && missed++ == 0)
			first = p;
	}
	memcpy(t->before, t->ram, t->ram_size);
	t->marked += marked;
	t->changed += changed;
	if ((size_t)n != marked) {
		snprintf(why, whylen, "collect counted %ld pages, the bitmap holds %zu", n, marked);
		return false;
	}
	if (missed) {
		snprintf(why, whylen, "%zu changed page(s) not marked, the first at guest address 0x%llx", missed,
			 (unsigned long long)(0x80000000ull + first * DC_PAGE));
		return false;
	}
	return true;
}

void dc_tracker_free(struct dc_tracker *t)
{
	free(t->bitmap);
	free(t->before);
	t->bitmap = NULL;
	t->before = NULL;
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
