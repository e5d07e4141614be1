/*
 * cpu.h — the RV64IMAFDC hart (Zicsr, Zifencei; M/S/U; Sv39).
 *
 * The hart executes one instruction per step and counts every step in icount (see icount.h for
 * exactly what counts). cpu_run() executes until icount reaches a limit, the hart waits in WFI, or
 * device code asks it to stop; it never stops anywhere else, so the run loop can stop at exactly any
 * icount. Interrupt lines (MEIP/SEIP from the PLIC, MTIP/MSIP from the CLINT) are levels set by the
 * board on the vCPU thread; the hart takes a pending, enabled interrupt before its next step.
 *
 * The interpreter is the hart's own; a faster engine (the JIT, vm/jit.h) may be attached to a
 * hart and runs in its place, with the same guest state at every icount.
 *
 * Everything the hart reads comes from its own state, guest memory, devices on the bus and the
 * icount-driven clock — nothing else — which is what makes replay possible.
 */
#ifndef FTVM_VM_CPU_H
#define FTVM_VM_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/bus.h"
#include "vm/clock.h"
#include "vm/icount.h"

enum cpu_priv { PRIV_U = 0, PRIV_S = 1, PRIV_M = 3 };

/* mip/mie bit numbers (privileged spec, table "Machine interrupt-pending register"). */
enum cpu_irq {
	IRQ_S_SOFT = 1,
	IRQ_M_SOFT = 3,
	IRQ_S_TIMER = 5,
	IRQ_M_TIMER = 7,
	IRQ_S_EXT = 9,
	IRQ_M_EXT = 11,
};

/* Why cpu_run() returned. */
enum cpu_stop_reason {
	CPU_STOP_LIMIT,     /* icount reached the limit */
	CPU_STOP_WFI,       /* the hart executed WFI and no enabled interrupt is pending */
	CPU_STOP_REQUESTED, /* cpu_request_stop() was called (e.g. a device changed a deadline) */
};

struct cpu;

/* Allocates a hart attached to the bus, reading time from the clock (owned by the machine). */
int cpu_create(struct vm_bus *bus, const struct vm_clock *clock, struct cpu **out) FTVM_MUST_CHECK;
void cpu_destroy(struct cpu *cpu);
/* Power-on reset: M-mode, pc = reset_pc, all state defined (zeroed) — nothing random. */
void cpu_reset(struct cpu *cpu, uint64_t reset_pc);

enum cpu_stop_reason cpu_run(struct cpu *cpu, icount_t limit);
/* Dirty-page tracking: makes the next store to each page the store TLB maps take the slow path
 * once, which marks the page in bus->dirty and re-enables the entry. Unlike a flush it walks no
 * page table, so nothing the guest can see changes (a walk would set A/D bits the guest may have
 * cleared, or see a PTE changed without sfence.vma). vCPU thread, between runs of cpu_run(). */
void cpu_dirty_arm(struct cpu *cpu);
/* Empties the software TLB (every regime) and forgets the fetch page, as a restore does. Later
 * accesses walk the page tables again, setting A/D bits: guest-visible, so two harts that must
 * run alike (an FT pair) flush at the same instruction. vCPU thread, between runs of cpu_run(). */
void cpu_tlb_flush(struct cpu *cpu);
/* Backs the host memory the hart's caches fill as it runs (the decode cache, its engine's tables)
 * now, ahead of its first run: a hart that takes over a running guest (a migration's destination)
 * would otherwise fault it in page by page in the guest's first milliseconds there. Contents and
 * guest state unchanged. Not during cpu_run(). */
void cpu_warm(struct cpu *cpu);
/* Makes a running cpu_run() return after the current step (called from device code on the vCPU thread). */
void cpu_request_stop(struct cpu *cpu);

icount_t cpu_icount(const struct cpu *cpu);
/* True while the hart waits in WFI (cleared when an enabled interrupt becomes pending). */
bool cpu_is_waiting(const struct cpu *cpu);
/* Sets or clears a hardware interrupt line (one of enum cpu_irq). */
void cpu_set_irq_line(struct cpu *cpu, enum cpu_irq irq, bool level);

/* Register access for loaders, tests and digests. */
uint64_t cpu_get_pc(const struct cpu *cpu);
void cpu_set_pc(struct cpu *cpu, uint64_t pc);
uint64_t cpu_get_xreg(const struct cpu *cpu, unsigned reg);
void cpu_set_xreg(struct cpu *cpu, unsigned reg, uint64_t value);
enum cpu_priv cpu_get_priv(const struct cpu *cpu);

/* All architectural state of the hart as plain data: registers, CSRs, privilege, icount, the LR/SC
 * reservation, WFI, the interrupt lines and a requested stop. Nothing of the software TLB or the decode cache, which
 * are rebuilt from it. */
struct cpu_state {
	uint64_t x[32];
	uint64_t f[32];
	uint64_t pc;
	uint32_t fflags, frm;
	uint32_t priv;                 /* enum cpu_priv */
	icount_t icount;
	uint64_t mstatus, misa, medeleg, mideleg, mie, mip, irq_lines;
	uint64_t mtvec, mscratch, mepc, mcause, mtval, mcounteren, menvcfg;
	uint64_t stvec, sscratch, sepc, scause, stval, satp, scounteren, senvcfg;
	uint64_t pmpcfg[16], pmpaddr[64];
	uint64_t reservation_addr, reservation_value;
	bool reservation_valid;
	bool waiting;
	/* No stop request (cpu_request_stop): it asks the run loop for a slice boundary and ends
	 * with the next cpu_run(), which may execute nothing, so it is not guest state. A primary
	 * that applied events at icount N, ran zero instructions and took a CHECK at a second
	 * boundary at N had no request left; its backup, applying those events and the CHECK in one
	 * boundary, still had one: the digests differed with the guests equal. */
	uint64_t mcountinhibit, mcycle_offset, minstret_offset;
};

struct state_io;
/* Copies the hart's state out (at a slice boundary: no step in progress). */
void cpu_save(const struct cpu *cpu, struct cpu_state *s);
/* Loads a saved state after checking it is one the hart could be in (privilege, misa, satp mode,
 * x0, fcsr fields); on refusal returns -EINVAL with the reason in err and leaves the hart as it was.
 * The TLB and decode cache are flushed. */
int cpu_restore(struct cpu *cpu, const struct cpu_state *s, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Moves a cpu_state to or from bytes (state_io.h). */
void cpu_state_io(struct state_io *io, void *state);
/* XXH3-64 digest of the saved state, for CHECK records: equal digests at equal icounts mean the
 * harts agree. */
uint64_t cpu_state_digest(const struct cpu *cpu);

/* Number of translation-cache flushes, instructions, etc., for metrics (JSON by the caller). */
struct cpu_stats {
	uint64_t tlb_hits;
	uint64_t tlb_misses;
	uint64_t exceptions;
	uint64_t interrupts;
	/* The JIT (zero under the interpreter): blocks entered (jit_chained of them straight from
	 * another block's code), guest instructions they retired, blocks translated and
	 * whole-cache flushes. */
	uint64_t jit_blocks;
	uint64_t jit_chained;
	uint64_t jit_insns;
	uint64_t jit_translations;
	uint64_t jit_flushes;
};
void cpu_get_stats(const struct cpu *cpu, struct cpu_stats *stats);

#endif
