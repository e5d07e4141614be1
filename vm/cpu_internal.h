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
/* mstatus fields shared by the CSR file and address translation. */
#define MSTATUS_MPP_SHIFT 11
#define MSTATUS_MPP (3ull << MSTATUS_MPP_SHIFT)
#define MSTATUS_MPRV (1ull << 17)
#define MSTATUS_SUM (1ull << 18)
#define MSTATUS_MXR (1ull << 19)
#define SATP_MODE_SHIFT 60

/* fcsr fields. */
#define FFLAG_NX 0x01u /* inexact */
#define FFLAG_UF 0x02u /* underflow */
#define FFLAG_OF 0x04u /* overflow */
#define FFLAG_DZ 0x08u /* divide by zero */
#define FFLAG_NV 0x10u /* invalid */

/* Software TLB geometry and the access kinds it separates. */
#define CPU_PAGE_SHIFT 12
#define CPU_PAGE_SIZE (1ull << CPU_PAGE_SHIFT)
#define CPU_PAGE_MASK (~(CPU_PAGE_SIZE - 1))
#define CPU_TLB_BITS 8
#define CPU_TLB_SIZE (1u << CPU_TLB_BITS)
/* The widest access the TLB fast path serves (ld/sd/fld/fsd). */
#define CPU_TLB_MAX_ACCESS 8u
/* The vpage of an empty entry. A lookup compares vpage with vaddr & (CPU_PAGE_MASK | (size - 1)),
 * whose bits from log2(CPU_TLB_MAX_ACCESS) up to CPU_PAGE_SHIFT - 1 are always zero, and a filled
 * entry's vpage is page-aligned: a sentinel with any of those bits set matches no access at all. */
#define CPU_TLB_INVALID (~0ull)
_Static_assert((CPU_TLB_INVALID & ~CPU_PAGE_MASK & ~(uint64_t)(CPU_TLB_MAX_ACCESS - 1)) != 0,
	       "an empty TLB entry must not match any masked access address");
/* An armed store entry (cpu_dirty_arm): the page it maps with this bit added, which no masked
 * access address has set either, so the fast path misses it; the slow path re-enables it and
 * marks the page dirty without walking the page table again (see cpu_mmu.c). */
#define CPU_TLB_ARMED (1ull << (CPU_PAGE_SHIFT - 1))
_Static_assert((CPU_TLB_ARMED & ~CPU_PAGE_MASK & ~(uint64_t)(CPU_TLB_MAX_ACCESS - 1)) != 0,
	       "an armed TLB entry must not match any masked access address");
#define CPU_DCACHE_SLOTS 512
#define CPU_TLB_REGIMES 3 /* U, S, M */
struct cpu_tlb_entry {
	uint64_t vpage;      /* CPU_TLB_INVALID when empty */
	uintptr_t addend;    /* 0 when empty: an empty entry keeps no pointer into RAM */
};
struct cpu_decoded;
struct cpu_decoded_page;
struct jit;
/* An execution engine plugged into the hart: run() replaces the interpreter in cpu_run() with
 * the same contract as cpu_interpret(); destroy() frees its state when the hart goes; warm()
 * backs the memory its state will fill (cpu_warm()). */
struct cpu_engine {
	void (*run)(struct cpu *cpu, icount_t limit);
	void (*destroy)(struct cpu *cpu);
	void (*warm)(struct cpu *cpu);
};
enum cpu_access { CPU_ACCESS_FETCH, CPU_ACCESS_LOAD, CPU_ACCESS_STORE, CPU_ACCESS_KINDS };

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

	/* Software TLB: for each translation regime (the privilege an access is translated for: U, S
	 * or M) one direct-mapped table per access kind (enum cpu_access). An entry maps the 4 KiB
	 * virtual page vpage to RAM: host address = vaddr + addend. tlb[kind] points at the table of
	 * the regime in force, so a privilege change only re-points it; satp writes and sfence.vma
	 * flush everything, clearing SUM or MXR flushes the U and S tables. Store entries exist only
	 * for pages whose PTE is dirty. */
	struct cpu_tlb_entry tlb_sets[CPU_TLB_REGIMES][CPU_ACCESS_KINDS][CPU_TLB_SIZE];
	struct cpu_tlb_entry *tlb[CPU_ACCESS_KINDS];
	/* The code page the hart executes from: pc - fetch_vpage < CPU_PAGE_SIZE means the bytes are at
	 * fetch_host + (pc - fetch_vpage). Refilled on a page crossing, jump out or TLB flush. */
	uint64_t fetch_vpage;
	const uint8_t *fetch_host;
	bool irq_ready;              /* an interrupt is pending, enabled and would be taken now */
	uint64_t reservation_value;  /* the value LR read; SC succeeds only if memory still holds it */
	uint64_t mcountinhibit;
	uint64_t mcycle_offset;      /* mcycle = icount + mcycle_offset (M-mode may write mcycle) */
	uint64_t minstret_offset;
	/* Decoded instructions of the fetch page (cpu_decode.h), one per 16-bit slot, and the
	 * direct-mapped cache of decoded pages they live in (CPU_DCACHE_SLOTS pages). */
	struct cpu_decoded *fetch_decoded;
	struct cpu_decoded_page *dcache;
	/* The slots of dcache that ever held a page: a restore forgets those alone, so that it never
	 * touches (and faults in, ~40 us a page) the cache's untouched memory: 20 ms in a migration's
	 * pause on a destination whose hart never ran. */
	uint64_t dcache_filled[CPU_DCACHE_SLOTS / 64 + 1];
	/* An engine run in the interpreter's place (vm/jit.h), or NULL; jit is its state. */
	const struct cpu_engine *engine;
	struct jit *jit;
	icount_t engine_limit;       /* the limit of the engine's current run (translated loops check it) */
};

/* Anything the run loop wants to return for. */
static inline bool cpu_needs_attention(const struct cpu *cpu)
{
	return cpu->irq_ready | cpu->stop_requested | cpu->waiting;
}
/* The interpreter: executes until icount reaches limit or cpu_needs_attention() (cpu.c). */
void cpu_interpret(struct cpu *cpu, icount_t limit);

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

/* Integer-core services shared between cpu.c, cpu_csr.c and cpu_mmu.c. */

/* TLB-hit fast paths: a single compare (page and natural alignment) and an add. size is 1, 2, 4
 * or 8 (at most CPU_TLB_MAX_ACCESS), so an empty entry never hits (see CPU_TLB_INVALID). */
static inline uint8_t *cpu_tlb_lookup(struct cpu *cpu, enum cpu_access kind, uint64_t vaddr, unsigned size)
{
	const struct cpu_tlb_entry *e = &cpu->tlb[kind][(vaddr >> CPU_PAGE_SHIFT) & (CPU_TLB_SIZE - 1)];
	if (__builtin_expect(e->vpage == (vaddr & (CPU_PAGE_MASK | (size - 1))), 1))
		return (uint8_t *)(uintptr_t)(vaddr + e->addend);
	return 0;
}
/* The slow paths behind cpu_load()/cpu_store(): misaligned, TLB miss, MMIO. */
bool cpu_load_slow(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t *value);
bool cpu_store_slow(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t value);
/* Translates for an AMO/LR/SC (checks alignment, write permission for AMO/SC) and returns a host
 * pointer into RAM, or NULL with *paddr set for MMIO; false after raising the fault. */
bool cpu_translate_atomic(struct cpu *cpu, uint64_t vaddr, unsigned size, bool is_load_only, uint8_t **host,
			  uint64_t *paddr);

/* What an AMO/LR/SC touched, for the JIT to decide whether its block may go on after it (a
 * write into code it learns from bus->code_writes). */
struct cpu_amo_access {
	bool bus;               /* it reached a device through the bus */
};
/* Executes one A-extension instruction at cpu->pc (pc is not advanced) and fills *acc.
 * Returns false after raising an exception (illegal encoding or a fault). */
bool cpu_exec_amo(struct cpu *cpu, uint32_t insn, struct cpu_amo_access *acc);
/* Fetches the instruction at cpu->pc when the fetch page is not cached (refills it when it is RAM).
 * Returns false after raising the fault. */
bool cpu_fetch_slow(struct cpu *cpu, uint32_t *insn);
/* Fills the fetch TLB entry for cpu->pc when pc translates to RAM: the page-table walk (and its
 * A-bit update) the interpreter's fetch of this instruction would make, without executing it
 * (the JIT's run loop then finds the block at pc). False, with nothing raised, when the fetch
 * faults or is not from RAM: the interpreter's own fetch then takes that path. */
bool cpu_fetch_fill(struct cpu *cpu);
/* Makes the RAM page at host address `page` (virtual page vpage) the fetch page. */
void cpu_set_code_page(struct cpu *cpu, uint64_t vpage, const uint8_t *page);
/* Arms every store TLB entry that maps the RAM page at host address host_page (all regimes), as
 * cpu_dirty_arm() does: the next store through one takes the slow path, which reports the write
 * (bus_mark_dirty_host) and re-enables the entry as it was filled, with no page-table walk. */
void cpu_tlb_arm_store_page(struct cpu *cpu, const uint8_t *host_page);
/* Re-points cpu->tlb after a change of priv or of mstatus MPRV/MPP (and drops the code page). */
void cpu_tlb_select(struct cpu *cpu);
/* After an mstatus write: flushes or re-points what the change of SUM, MXR, MPRV or MPP needs. */
void cpu_tlb_mstatus_changed(struct cpu *cpu, uint64_t old_mstatus);
/* The decoded entries for the code page at host address host_page (claims a dcache slot). */
struct cpu_decoded *cpu_dcache_page(struct cpu *cpu, const uint8_t *host_page);

/* Takes the pending exception (cpu->exception_*) as a trap: pc, priv and CSRs as the spec says. */
void cpu_take_exception(struct cpu *cpu);
/* Takes the highest-priority ready interrupt (requires cpu->irq_ready). */
void cpu_take_interrupt(struct cpu *cpu);
/* Recomputes cpu->irq_ready after any change of mip, mie, mideleg, mstatus, priv or irq lines. */
void cpu_update_irq(struct cpu *cpu);
/* An enabled (mie) interrupt is pending, whatever the global enables: wakes WFI. */
bool cpu_wfi_wakeup(const struct cpu *cpu);
/* Zicsr: op is the funct3 of the instruction (1..3 register, 5..7 immediate form); write is false
 * for CSRRS/CSRRC with rs1 = x0 (or uimm = 0). Returns false, raising nothing, for an illegal
 * access: the caller raises it with the instruction bits. */
bool cpu_csr_op(struct cpu *cpu, unsigned csr, bool write, unsigned op, uint64_t src, uint64_t *old);
/* The privileged instructions of SYSTEM with funct3 = 0 (ecall, ebreak, xret, wfi, sfence.vma).
 * Sets cpu->pc to the next pc itself; returns false after raising an exception. */
bool cpu_exec_system(struct cpu *cpu, uint32_t insn);
void cpu_csr_reset(struct cpu *cpu);

#endif
