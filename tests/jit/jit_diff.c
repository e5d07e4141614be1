/*
 * jit_diff.c — the JIT against the interpreter on random RV64IMC programs (tests/jit).
 *
 * For each seed, two harts on two identical buses (RAM with the program of rv_gen.c, and an
 * MMIO register whose reads return the reading hart's icount, whose writes lower the timer line,
 * ask for a stop or make the device write RAM by DMA (GEN_MMIO_DMA)) run the same program, one with the JIT attached. They run in chunks of
 * random length — every chunk end is an exact icount the JIT must stop at, wherever it falls
 * in a block — and between chunks the timer line is raised now and then, so interrupts land in
 * the middle of translated blocks. After every cpu_run() both harts must have the same icount,
 * the same stop reason, the same architectural state (cpu_state_digest) and the same RAM.
 *
 * Usage: jit_diff [--seeds N] [--first S] [--insns N]   (exit 0: all agree; 1: a divergence,
 * reported with the seed, icount and registers; 2: setup error).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rv_gen.h"
#include "vm/cpu.h"
#include "vm/jit.h"

struct side {
	const char *name;
	struct vm_bus bus;
	struct vm_clock clock;
	struct cpu *cpu;
	uint64_t mmio_reads, mmio_writes;
};

static int mmio_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	struct side *s = opaque;
	s->mmio_reads++;
	*value = cpu_icount(s->cpu) * 3 + offset; /* exact icount at the access, or the engines differ */
	return 0;
}

static int mmio_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct side *s = opaque;
	s->mmio_writes++;
	if (offset == 0)
		cpu_set_irq_line(s->cpu, IRQ_M_TIMER, false);
	else if (offset == 8)
		cpu_request_stop(s->cpu);
	else if (offset == GEN_MMIO_DMA && size == 8) {
		uint8_t *dst = bus_ram_range(&s->bus, (uint32_t)value, 4);
		if (dst) {
			uint32_t data = (uint32_t)(value >> 32);
			memcpy(dst, &data, 4);
			bus_mark_dirty(&s->bus, (uint32_t)value, 4);
		}
	}
	return 0;
}

static int side_init(struct side *s, const char *name, bool jit, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->bus.ram = calloc(1, GEN_RAM_SIZE);
	s->bus.ram_base = GEN_RAM_BASE;
	s->bus.ram_size = GEN_RAM_SIZE;
	clock_init(&s->clock);
	struct bus_region mmio = { "icount", GEN_MMIO_BASE, GEN_MMIO_SIZE, 0, s, mmio_read, mmio_write };
	if (!s->bus.ram || bus_add_region(&s->bus, &mmio) != 0 || cpu_create(&s->bus, &s->clock, &s->cpu) != 0)
		return -1;
	if (jit && jit_attach(s->cpu) != 0)
		return -1;
	if (jit)
		jit_set_hot(s->cpu, 4); /* short programs: translate early, so most of them runs translated */
	rv_gen_program(s->bus.ram, seed);
	cpu_reset(s->cpu, GEN_RAM_BASE);
	return 0;
}

static void side_free(struct side *s)
{
	cpu_destroy(s->cpu);
	free(s->bus.ram);
}

static void dump(const struct side *s)
{
	struct cpu_state st;
	cpu_save(s->cpu, &st);
	fprintf(stderr, "  %s: icount %llu pc 0x%llx priv %u mcause 0x%llx mepc 0x%llx mip 0x%llx\n", s->name,
		(unsigned long long)st.icount, (unsigned long long)st.pc, st.priv, (unsigned long long)st.mcause,
		(unsigned long long)st.mepc, (unsigned long long)st.mip);
	for (unsigned r = 1; r < 32; r++)
		fprintf(stderr, "    x%-2u %016llx%s", r, (unsigned long long)st.x[r], r % 4 == 3 ? "\n" : "");
	fprintf(stderr, "\n");
}

/* 0 when both sides agree, else reports and returns -1. */
static int compare(struct side *a, struct side *b, uint64_t seed, const char *when)
{
	const char *what = NULL;
	if (cpu_icount(a->cpu) != cpu_icount(b->cpu))
		what = "icount";
	else if (cpu_state_digest(a->cpu) != cpu_state_digest(b->cpu))
		what = "hart state";
	else if (memcmp(a->bus.ram, b->bus.ram, GEN_RAM_SIZE) != 0)
		what = "memory";
	else if (a->mmio_reads != b->mmio_reads || a->mmio_writes != b->mmio_writes)
		what = "device accesses";
	if (!what)
		return 0;
	fprintf(stderr, "jit_diff: seed %llu: %s differs %s\n", (unsigned long long)seed, what, when);
	if (what[0] == 'm') {
		for (size_t i = 0; i < GEN_RAM_SIZE; i++)
			if (a->bus.ram[i] != b->bus.ram[i]) {
				fprintf(stderr, "  first differing byte at 0x%llx: %02x vs %02x\n",
					(unsigned long long)(GEN_RAM_BASE + i), a->bus.ram[i], b->bus.ram[i]);
				break;
			}
	}
	dump(a);
	dump(b);
	return -1;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Runs one seed; 0 when the engines agreed all the way. */
static int run_seed(uint64_t seed, uint64_t insns, uint64_t *retired, struct cpu_stats *sum)
{
	struct side interp, jit;
	int ret = -1;
	if (side_init(&interp, "interp", false, seed) || side_init(&jit, "jit", true, seed)) {
		fprintf(stderr, "jit_diff: cannot build the harts\n");
		exit(2);
	}
	uint64_t r = seed * 2654435761u + 7;
	unsigned stuck = 0;
	while (cpu_icount(interp.cpu) < insns) {
		/* Chunks of 1..64 instructions mostly (block-sized), sometimes long ones. */
		uint64_t n = rng_next(&r) % 8 == 0 ? 1 + rng_next(&r) % 2000 : 1 + rng_next(&r) % 64;
		icount_t limit = cpu_icount(interp.cpu) + n;
		if (rng_next(&r) % 16 == 0) {
			cpu_set_irq_line(interp.cpu, IRQ_M_TIMER, true);
			cpu_set_irq_line(jit.cpu, IRQ_M_TIMER, true);
		}
		enum cpu_stop_reason wa = cpu_run(interp.cpu, limit);
		enum cpu_stop_reason wb = cpu_run(jit.cpu, limit);
		char when[96];
		snprintf(when, sizeof(when), "after a run to icount %llu", (unsigned long long)limit);
		if (wa != wb) {
			fprintf(stderr, "jit_diff: seed %llu: stop reason %d vs %d %s\n", (unsigned long long)seed, wa,
				wb, when);
			dump(&interp);
			dump(&jit);
			goto out;
		}
		if (compare(&interp, &jit, seed, when))
			goto out;
		if (wa == CPU_STOP_WFI) {
			/* Waiting for an interrupt: raise the timer, or give up on a hart that cannot wake. */
			cpu_set_irq_line(interp.cpu, IRQ_M_TIMER, true);
			cpu_set_irq_line(jit.cpu, IRQ_M_TIMER, true);
			if (++stuck > 100)
				break;
		}
	}
	ret = 0;
out:
	*retired += cpu_icount(interp.cpu);
	struct cpu_stats st;
	cpu_get_stats(jit.cpu, &st);
	sum->jit_blocks += st.jit_blocks;
	sum->jit_chained += st.jit_chained;
	sum->jit_insns += st.jit_insns;
	sum->jit_translations += st.jit_translations;
	sum->exceptions += st.exceptions;
	sum->interrupts += st.interrupts;
	side_free(&interp);
	side_free(&jit);
	return ret;
}

int main(int argc, char **argv)
{
	uint64_t seeds = 200, first = 1, insns = 20000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--seeds"))
			seeds = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--first"))
			first = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--insns"))
			insns = strtoull(argv[i + 1], NULL, 0);
		else {
			fprintf(stderr, "usage: jit_diff [--seeds N] [--first S] [--insns N]\n");
			return 2;
		}
	}
	uint64_t retired = 0, failed = 0;
	struct cpu_stats sum = { 0 };
	for (uint64_t s = first; s < first + seeds; s++)
		if (run_seed(s, insns, &retired, &sum) != 0 && ++failed >= 3)
			break;
	/* A test that translated nothing would prove nothing. */
	printf("jit_diff: the JIT side entered %llu blocks (%llu chained; about %llu instructions), translated %llu; "
	       "%llu exceptions, %llu interrupts\n", (unsigned long long)sum.jit_blocks,
	       (unsigned long long)sum.jit_chained, (unsigned long long)sum.jit_insns, (unsigned long long)sum.jit_translations,
	       (unsigned long long)sum.exceptions, (unsigned long long)sum.interrupts);
	if (sum.jit_insns < retired / 4) {
		printf("jit_diff: too little ran translated to mean anything\n");
		failed++;
	}
	if (sum.jit_chained < sum.jit_blocks / 20) {
		printf("jit_diff: too few blocks were entered through a chained exit to test chaining\n");
		failed++;
	}
	printf("jit_diff: %llu seeds from %llu, %llu instructions compared, %llu diverged\n",
	       (unsigned long long)seeds, (unsigned long long)first, (unsigned long long)retired,
	       (unsigned long long)failed);
	return failed ? 1 : 0;
}
