/*
 * cpu_internal.h — the hart's state and the services its execution units share (integer core in
 * cpu*.c, floating point in cpu_fpu.c). Not for use outside vm/cpu*.c.
 *
 * An execution unit reports a synchronous exception with cpu_raise_exception(); the step then ends
 * with the trap (pc and state as the privileged spec says). Memory accesses go through cpu_load()
 * and cpu_store(), which translate, check permissions and raise the right fault themselves.
 */
#ifndef FTVM_VM_CPU_INTERNAL_H
#define FTVM_VM_CPU_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include "vm/cpu.h"

/* Exception causes (mcause with the interrupt bit clear). */
enum cpu_exception {
	EXC_INSN_MISALIGNED = 0,
	EXC_INSN_ACCESS = 1,
	EXC_ILLEGAL_INSN = 2,
	EXC_BREAKPOINT = 3,
	EXC_LOAD_MISALIGNED = 4,
	EXC_LOAD_ACCESS = 5,
	EXC_STORE_MISALIGNED = 6,
	EXC_STORE_ACCESS = 7,
	EXC_ECALL_U = 8,
	EXC_ECALL_S = 9,
	EXC_ECALL_M = 11,
	EXC_INSN_PAGE_FAULT = 12,
	EXC_LOAD_PAGE_FAULT = 13,
	EXC_STORE_PAGE_FAULT = 15,
};

/* mstatus fields used by more than one unit. */
#define MSTATUS_FS_SHIFT 13
#define MSTATUS_FS_MASK (3ull << MSTATUS_FS_SHIFT)
#define MSTATUS_FS_OFF 0ull
#define MSTATUS_FS_DIRTY (3ull << MSTATUS_FS_SHIFT)
#define MSTATUS_SD (1ull << 63)

/* fcsr fields. */
#define FFLAG_NX 0x01u /* inexact */
#define FFLAG_UF 0x02u /* underflow */
#define FFLAG_OF 0x04u /* overflow */
#define FFLAG_DZ 0x08u /* divide by zero */
#define FFLAG_NV 0x10u /* invalid */

struct cpu {
	uint64_t x[32];      /* x[0] is kept zero */
	uint64_t pc;
	uint64_t f[32];      /* NaN-boxed: single-precision values live in the low 32 bits, upper bits all ones */
	uint32_t fflags;     /* accrued exceptions, FFLAG_* */
	uint32_t frm;        /* dynamic rounding mode, 0..7 */
	enum cpu_priv priv;
	icount_t icount;

	/* CSRs (the integer core owns their semantics). */
	uint64_t mstatus;
	uint64_t misa;
	uint64_t medeleg, mideleg;
	uint64_t mie, mip;   /* mip: software-writable bits; hardware lines are in irq_lines */
	uint64_t irq_lines;  /* levels set by cpu_set_irq_line() */
	uint64_t mtvec, mscratch, mepc, mcause, mtval;
	uint64_t mcounteren, menvcfg;
	uint64_t stvec, sscratch, sepc, scause, stval, satp, scounteren, senvcfg;
	uint64_t pmpcfg[16], pmpaddr[64];

	/* LR/SC reservation. */
	uint64_t reservation_addr;
	bool reservation_valid;

	/* Exception raised by the current step, taken when the step ends. */
	bool exception_pending;
	uint64_t exception_cause;
	uint64_t exception_tval;

	bool waiting;        /* in WFI */
	bool stop_requested;

	struct vm_bus *bus;
	const struct vm_clock *clock;
	struct cpu_stats stats;
	/* The integer core may add its translation cache and decode state below. */
};

void cpu_raise_exception(struct cpu *cpu, enum cpu_exception cause, uint64_t tval);
/* Virtual-address data access of `size` bytes (1, 2, 4, 8) for the current instruction.
 * Returns false after raising the fault (misaligned, access or page fault). */
bool cpu_load(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t *value);
bool cpu_store(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t value);

/* Floating point (cpu_fpu.c): executes a 32-bit instruction whose major opcode is LOAD-FP (0x07),
 * STORE-FP (0x27), MADD/MSUB/NMSUB/NMADD (0x43/0x47/0x4b/0x4f) or OP-FP (0x53). Raises
 * EXC_ILLEGAL_INSN when mstatus.FS is off, the rounding mode is invalid or the encoding is
 * reserved; otherwise updates f/x registers, fflags and sets mstatus.FS (and SD) to dirty.
 * Compressed FP loads/stores are expanded by the core before they get here. The core advances pc. */
void fpu_execute(struct cpu *cpu, uint32_t insn);
/* The fcsr CSRs (fflags 0x001, frm 0x002, fcsr 0x003): return false for an invalid access (FS off). */
bool fpu_csr_read(struct cpu *cpu, unsigned csr, uint64_t *value);
bool fpu_csr_write(struct cpu *cpu, unsigned csr, uint64_t value);

#endif
