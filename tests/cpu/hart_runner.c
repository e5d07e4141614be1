/*
 * hart_runner.c — runs one bare-metal test ELF on the hart alone (test-only).
 *
 * The bus has RAM at 0x80000000, a 16550 THR/LSR stub at 0x10000000 that copies bytes to stdout,
 * the sifive test finisher at 0x100000 and a minimal CLINT (msip, mtimecmp, mtime from the
 * icount clock) so the hart can be tested without the board. The exit status is the finisher's:
 * 0 for pass, the code for fail, 125 for a runner error, 124 when the icount budget runs out.
 * With --mips the runner prints the hart's speed on stderr; --cpu jit runs it with the JIT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vm/cpu.h"
#include "vm/elf.h"
#include "vm/jit.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (256ull << 20)
#define UART_BASE 0x10000000ull
#define UART_SIZE 0x100
#define UART_THR 0
#define UART_LSR 5
#define UART_LSR_IDLE 0x60 /* THR empty, transmitter empty */
#define FINISHER_BASE 0x100000ull
#define FINISHER_SIZE 0x1000
#define FINISHER_FAIL 0x3333
#define FINISHER_PASS 0x5555
#define CLINT_BASE 0x2000000ull
#define CLINT_SIZE 0x10000
#define CLINT_MSIP 0x0
#define CLINT_MTIMECMP 0x4000
#define CLINT_MTIME 0xbff8
#define DEFAULT_BUDGET 4000000000ull

struct runner {
	struct cpu *cpu;
	struct vm_clock clock;
	bool finished;
	int status;
	uint64_t mtimecmp;
	uint32_t msip;
};

static int uart_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	*value = offset == UART_LSR ? UART_LSR_IDLE : 0;
	return 0;
}

static int uart_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	if (offset == UART_THR)
		putchar((int)(value & 0xff));
	return 0;
}

static int finisher_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	*value = 0;
	return 0;
}

static int finisher_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct runner *r = opaque;
	if (offset != 0)
		return 0;
	if ((value & 0xffff) == FINISHER_PASS) {
		r->finished = true;
		r->status = 0;
	} else if ((value & 0xffff) == FINISHER_FAIL) {
		r->finished = true;
		r->status = (int)((value >> 16) & 0xffff);
	}
	if (r->finished)
		cpu_request_stop(r->cpu);
	return 0;
}

static void clint_update(struct runner *r)
{
	uint64_t now = clock_time_at(&r->clock, cpu_icount(r->cpu));
	cpu_set_irq_line(r->cpu, IRQ_M_TIMER, now >= r->mtimecmp);
	cpu_set_irq_line(r->cpu, IRQ_M_SOFT, r->msip & 1);
}

static int clint_read(void *opaque, uint64_t offset, unsigned size, uint64_t *value)
{
	struct runner *r = opaque;
	if (offset == CLINT_MSIP && size == 4)
		*value = r->msip;
	else if (offset == CLINT_MTIMECMP && size == 8)
		*value = r->mtimecmp;
	else if (offset == CLINT_MTIME && size == 8)
		*value = clock_time_at(&r->clock, cpu_icount(r->cpu));
	else
		*value = 0;
	return 0;
}

static int clint_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct runner *r = opaque;
	if (offset == CLINT_MSIP && size == 4)
		r->msip = (uint32_t)value & 1;
	else if (offset == CLINT_MTIMECMP && size == 8)
		r->mtimecmp = value;
	clint_update(r);
	cpu_request_stop(r->cpu); /* the timer deadline may have moved */
	return 0;
}

int main(int argc, char **argv)
{
	bool mips = false;
	bool jit = false;
	const char *path = NULL;
	uint64_t budget = DEFAULT_BUDGET;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mips"))
			mips = true;
		else if (!strcmp(argv[i], "--cpu") && i + 1 < argc)
			jit = !strcmp(argv[++i], "jit");
		else if (!strcmp(argv[i], "--budget") && i + 1 < argc)
			budget = strtoull(argv[++i], NULL, 0);
		else
			path = argv[i];
	}
	if (!path) {
		fprintf(stderr, "usage: hart_runner [--mips] [--cpu interp|jit] [--budget N] prog.elf\n");
		return 125;
	}
	/* Line-buffered, so a run killed by a timeout still shows what the guest printed. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	static struct vm_bus bus;
	static struct runner r;
	bus.ram = calloc(1, RAM_SIZE);
	bus.ram_base = RAM_BASE;
	bus.ram_size = RAM_SIZE;
	r.mtimecmp = 0; /* QEMU's CLINT resets mtimecmp to 0, so MTIP is pending from power-on */
	clock_init(&r.clock);
	struct bus_region regions[] = {
		{ "uart", UART_BASE, UART_SIZE, 0, &r, uart_read, uart_write },
		{ "finisher", FINISHER_BASE, FINISHER_SIZE, 0, &r, finisher_read, finisher_write },
		{ "clint", CLINT_BASE, CLINT_SIZE, 0, &r, clint_read, clint_write },
	};
	for (unsigned i = 0; i < sizeof(regions) / sizeof(regions[0]); i++)
		if (!bus.ram || bus_add_region(&bus, &regions[i]) != 0) {
			fprintf(stderr, "hart_runner: cannot build the bus\n");
			return 125;
		}
	char err[256];
	uint64_t entry;
	if (elf_load(&bus, path, &entry, err, sizeof(err)) != 0) {
		fprintf(stderr, "hart_runner: %s\n", err);
		return 125;
	}
	if (cpu_create(&bus, &r.clock, &r.cpu) != 0) {
		fprintf(stderr, "hart_runner: cannot create the hart\n");
		return 125;
	}
	if (jit && jit_attach(r.cpu) != 0) {
		fprintf(stderr, "hart_runner: cannot start the JIT\n");
		return 125;
	}
	cpu_reset(r.cpu, entry);
	clint_update(&r);
	struct timespec t0, t1, c0, c1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	while (!r.finished && cpu_icount(r.cpu) < budget) {
		icount_t now = cpu_icount(r.cpu);
		icount_t deadline = clock_icount_for_time(&r.clock, r.mtimecmp, now);
		icount_t limit = deadline > now && deadline < budget ? deadline : budget;
		enum cpu_stop_reason why = cpu_run(r.cpu, limit);
		if (why == CPU_STOP_WFI) {
			if (!(r.msip & 1) && clock_icount_for_time(&r.clock, r.mtimecmp, cpu_icount(r.cpu)) == ICOUNT_MAX) {
				fprintf(stderr, "hart_runner: WFI with no wakeup possible at pc 0x%llx\n",
					(unsigned long long)cpu_get_pc(r.cpu));
				break;
			}
			/* Idle: let guest time jump to the timer deadline. */
			clock_anchor(&r.clock, cpu_icount(r.cpu), r.mtimecmp, r.clock.ticks_per_insn);
		}
		clint_update(&r);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	fflush(stdout);
	if (mips) {
		double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		double cpu_secs = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
		double insns = (double)cpu_icount(r.cpu);
		fprintf(stderr, "hart_runner: %.0f instructions in %.3f s (%.3f s CPU) = %.1f MIPS (%.1f per CPU second)\n",
			insns, secs, cpu_secs, insns / secs / 1e6, insns / cpu_secs / 1e6);
		struct cpu_stats st;
		cpu_get_stats(r.cpu, &st);
		if (jit)
			fprintf(stderr, "hart_runner: jit: %llu blocks entered (about %llu instructions), %llu translated, %llu flushes\n",
				(unsigned long long)st.jit_blocks, (unsigned long long)st.jit_insns,
				(unsigned long long)st.jit_translations, (unsigned long long)st.jit_flushes);
	}
	if (!r.finished)
		fprintf(stderr, "hart_runner: no finisher write after %llu instructions (pc 0x%llx, priv %d)\n",
			(unsigned long long)cpu_icount(r.cpu), (unsigned long long)cpu_get_pc(r.cpu),
			(int)cpu_get_priv(r.cpu));
	int status = r.finished ? r.status : 124;
	cpu_destroy(r.cpu);
	free(bus.ram);
	return status;
}
