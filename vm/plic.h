/*
 * plic.h — the platform-level interrupt controller (`sifive,plic-1.0.0`) with QEMU virt's layout:
 * 96 sources (0 means "none"), 7 priority levels, two contexts: hart 0 M-mode (MEIP) and hart 0
 * S-mode (SEIP).
 *
 * Sources are level-triggered: a device sets its line with plic_set_irq(). A source is pending
 * while its line is high and it is not claimed; claiming takes it out until the guest completes
 * it, after which a line still high makes it pending again. Each context's output is "some
 * enabled pending source has priority above the threshold"; when an output changes the PLIC sets
 * the hart's line and asks the hart to stop after this instruction.
 */
#ifndef FTVM_VM_PLIC_H
#define FTVM_VM_PLIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/board.h"
#include "vm/bus.h"
#include "vm/cpu.h"

#define PLIC_WORDS ((BOARD_PLIC_SOURCES + 31) / 32)

struct plic {
	uint32_t priority[BOARD_PLIC_SOURCES];
	uint32_t level[PLIC_WORDS];                     /* source lines as devices drive them */
	uint32_t claimed[PLIC_WORDS];                   /* claimed and not yet completed */
	uint32_t enable[BOARD_PLIC_CONTEXTS][PLIC_WORDS];
	uint32_t threshold[BOARD_PLIC_CONTEXTS];
	bool output[BOARD_PLIC_CONTEXTS];               /* what the hart's MEIP/SEIP line is set to */
	struct cpu *cpu;
};

void plic_init(struct plic *p, struct cpu *cpu);
struct bus_region plic_region(struct plic *p, uint64_t base, uint64_t size);
/* Drives source `irq` (1..95); other numbers are ignored. */
void plic_set_irq(struct plic *p, unsigned irq, bool level);

struct plic_state {
	uint32_t priority[BOARD_PLIC_SOURCES];
	uint32_t level[PLIC_WORDS];
	uint32_t claimed[PLIC_WORDS];
	uint32_t enable[BOARD_PLIC_CONTEXTS][PLIC_WORDS];
	uint32_t threshold[BOARD_PLIC_CONTEXTS];
	bool output[BOARD_PLIC_CONTEXTS];
};
struct state_io;
void plic_save(const struct plic *p, struct plic_state *s);
/* Refuses priorities and thresholds above the 7 levels and bits of sources that do not exist;
 * sets the hart's MEIP/SEIP to the restored outputs. */
int plic_restore(struct plic *p, const struct plic_state *s, char *err, size_t errlen) FTVM_MUST_CHECK;
void plic_state_io(struct state_io *io, void *state);
uint64_t plic_digest(const struct plic *p, uint64_t seed);

#endif
