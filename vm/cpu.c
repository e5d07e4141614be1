/*
 * cpu.c — the RV64IMAC integer core: hart lifecycle, the run loop and the instruction set.
 *
 * The run loop keeps pc and icount in locals and fetches through a cached host pointer to the
 * current code page (cpu->fetch_host). Each 16-bit slot of a code page has a predecoded entry
 * (cpu_decode.h: compressed forms already expanded, immediates extracted) that is trusted only
 * while the raw bits in memory still equal the ones it was decoded from, so guest code writes
 * need no tracking; dispatch is threaded (computed goto). Loads and stores hit the software TLB
 * inline (one compare, one add); everything unusual — TLB misses, MMIO, CSRs, SYSTEM, atomics,
 * floating point — leaves the fast path with the state synced to struct cpu, and afterwards the
 * loop checks the few flags that can make it return (irq_ready, stop_requested, waiting). Nothing
 * else is checked per instruction, so interrupts are noticed because every event that can make
 * one ready (CSR writes, traps, xRET, MMIO to a device, irq line changes between runs) happens
 * off the fast path and recomputes cpu->irq_ready.
 *
 * Counting (icount.h): every executed instruction, also one that traps, adds one after it ends;
 * taking an interrupt adds nothing. cpu_run() returns exactly at the limit, before taking an
 * interrupt that is pending there.
 */
#include "vm/cpu_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "util/insn.h"
#include "util/ram_pages.h"
#include "vm/cpu_decode.h"
#include "vm/cpu_muldiv.h"
#include "vm/cpu_rvc.h"

/* AMO funct5 values. */
enum {
	AMO_ADD = 0x00, AMO_SWAP = 0x01, AMO_LR = 0x02, AMO_SC = 0x03, AMO_XOR = 0x04, AMO_OR = 0x08,
	AMO_AND = 0x0c, AMO_MIN = 0x10, AMO_MAX = 0x14, AMO_MINU = 0x18, AMO_MAXU = 0x1c,
};
#define SC_FAILED 1

static uint64_t amo_compute(unsigned funct5, uint64_t old, uint64_t src, bool word)
{
	int64_t so = word ? (int32_t)old : (int64_t)old, ss = word ? (int32_t)src : (int64_t)src;
	uint64_t uo = word ? (uint32_t)old : old, us = word ? (uint32_t)src : src;
	switch (funct5) {
	case AMO_ADD: return old + src;
	case AMO_SWAP: return src;
	case AMO_XOR: return old ^ src;
	case AMO_OR: return old | src;
	case AMO_AND: return old & src;
	case AMO_MIN: return so < ss ? old : src;
	case AMO_MAX: return so > ss ? old : src;
	case AMO_MINU: return uo < us ? old : src;
	default: return uo > us ? old : src;
	}
}

static bool amo_read(struct cpu *cpu, const uint8_t *host, uint64_t paddr, uint64_t vaddr, unsigned size,
		     uint64_t *value)
{
	if (host) {
		if (size == 4) {
			uint32_t v;
			memcpy(&v, host, 4);
			*value = v;
		} else {
			memcpy(value, host, 8);
		}
		return true;
	}
	if (bus_read(cpu->bus, paddr, size, value) != 0) {
		/* The read half of the AMO faults first, a load access fault (as on QEMU 7.2). */
		cpu_raise_exception(cpu, EXC_LOAD_ACCESS, vaddr);
		return false;
	}
	return true;
}

static bool amo_write(struct cpu *cpu, uint8_t *host, uint64_t paddr, uint64_t vaddr, unsigned size, uint64_t value)
{
	if (host) {
		if (size == 4) {
			uint32_t v = (uint32_t)value;
			memcpy(host, &v, 4);
		} else {
			memcpy(host, &value, 8);
		}
		return true;
	}
	if (bus_write(cpu->bus, paddr, size, value) != 0) {
		cpu_raise_exception(cpu, EXC_STORE_ACCESS, vaddr);
		return false;
	}
	return true;
}

/* The A extension (see cpu_internal.h). */
bool cpu_exec_amo(struct cpu *cpu, uint32_t insn, struct cpu_amo_access *acc)
{
	unsigned f3 = insn_funct3(insn), funct5 = insn_funct5(insn), rd = insn_rd(insn);
	if (f3 != 2 && f3 != 3)
		goto illegal;
	unsigned size = f3 == 2 ? 4 : 8;
	bool word = size == 4;
	uint64_t vaddr = cpu->x[insn_rs1(insn)], src = cpu->x[insn_rs2(insn)], old, paddr = 0, result;
	uint8_t *host;
	switch (funct5) {
	case AMO_LR:
		if (insn_rs2(insn) != 0)
			goto illegal;
		if (!cpu_translate_atomic(cpu, vaddr, size, true, &host, &paddr))
			return false;
		acc->bus |= host == NULL;
		if (host) {
			old = 0;
			memcpy(&old, host, size);
		} else if (bus_read(cpu->bus, paddr, size, &old) != 0) {
			cpu_raise_exception(cpu, EXC_LOAD_ACCESS, vaddr);
			return false;
		}
		result = word ? SEXT32(old) : old;
		cpu->reservation_valid = true;
		cpu->reservation_addr = vaddr;
		cpu->reservation_value = result;
		break;
	case AMO_SC:
		/* Like QEMU: the address must match the reservation, then the store happens only if
		 * memory still holds the value LR read (a compare-and-swap). */
		result = SC_FAILED;
		if (cpu->reservation_valid && cpu->reservation_addr == vaddr) {
			if (!cpu_translate_atomic(cpu, vaddr, size, false, &host, &paddr))
				return false;
			acc->bus |= host == NULL;
			if (!amo_read(cpu, host, paddr, vaddr, size, &old))
				return false;
			if ((word ? SEXT32(old) : old) == cpu->reservation_value) {
				if (!amo_write(cpu, host, paddr, vaddr, size, src))
					return false;
				result = 0;
			}
		}
		cpu->reservation_valid = false;
		break;
	case AMO_ADD: case AMO_SWAP: case AMO_XOR: case AMO_OR: case AMO_AND:
	case AMO_MIN: case AMO_MAX: case AMO_MINU: case AMO_MAXU:
		if (!cpu_translate_atomic(cpu, vaddr, size, false, &host, &paddr))
			return false;
		acc->bus |= host == NULL;
		if (!amo_read(cpu, host, paddr, vaddr, size, &old) ||
		    !amo_write(cpu, host, paddr, vaddr, size, amo_compute(funct5, old, src, word)))
			return false;
		result = word ? SEXT32(old) : old;
		break;
	default:
		goto illegal;
	}
	if (rd)
		cpu->x[rd] = result;
	return true;
illegal:
	cpu_raise_exception(cpu, EXC_ILLEGAL_INSN, insn);
	return false;
}

/* SYSTEM: Zicsr and the privileged instructions. Sets cpu->pc to the next pc. */
static bool exec_system(struct cpu *cpu, uint32_t insn)
{
	unsigned f3 = insn_funct3(insn), rd = insn_rd(insn), rs1 = insn_rs1(insn);
	if (f3 == 0)
		return cpu_exec_system(cpu, insn);
	if (f3 == 4)
		goto illegal;
	uint64_t src = (f3 & 4) ? rs1 : cpu->x[rs1], old;
	bool write = (f3 & 3) == 1 || rs1 != 0;
	if (!cpu_csr_op(cpu, insn_csr(insn), write, f3, src, &old))
		goto illegal;
	if (rd)
		cpu->x[rd] = old;
	cpu->pc += 4;
	return true;
illegal:
	cpu_raise_exception(cpu, EXC_ILLEGAL_INSN, insn);
	return false;
}


/*
 * The interpreter proper: executes until icount reaches limit or needs_attention(). pc and icount
 * live in locals on the fast path and are written back (SYNC) before anything that looks at
 * struct cpu. Dispatch is threaded: every handler ends in NEXT, which retires the instruction,
 * fetches the next one through the code-page pointer, checks its predecoded entry against the
 * raw bits and jumps to the entry's handler.
 */
static void execute(struct cpu *cpu, icount_t limit)
{
	static const void *const handlers[CPU_OP_COUNT] = {
		[CPU_OP_DECODE] = &&op_decode, [CPU_OP_ILLEGAL] = &&op_illegal,
		[CPU_OP_LUI] = &&op_lui, [CPU_OP_AUIPC] = &&op_auipc, [CPU_OP_JAL] = &&op_jal,
		[CPU_OP_JALR] = &&op_jalr, [CPU_OP_BEQ] = &&op_beq, [CPU_OP_BNE] = &&op_bne,
		[CPU_OP_BLT] = &&op_blt, [CPU_OP_BGE] = &&op_bge, [CPU_OP_BLTU] = &&op_bltu,
		[CPU_OP_BGEU] = &&op_bgeu, [CPU_OP_LB] = &&op_lb, [CPU_OP_LH] = &&op_lh, [CPU_OP_LW] = &&op_lw,
		[CPU_OP_LD] = &&op_ld, [CPU_OP_LBU] = &&op_lbu, [CPU_OP_LHU] = &&op_lhu, [CPU_OP_LWU] = &&op_lwu,
		[CPU_OP_SB] = &&op_sb, [CPU_OP_SH] = &&op_sh, [CPU_OP_SW] = &&op_sw, [CPU_OP_SD] = &&op_sd,
		[CPU_OP_ADDI] = &&op_addi, [CPU_OP_SLTI] = &&op_slti, [CPU_OP_SLTIU] = &&op_sltiu,
		[CPU_OP_XORI] = &&op_xori, [CPU_OP_ORI] = &&op_ori, [CPU_OP_ANDI] = &&op_andi,
		[CPU_OP_SLLI] = &&op_slli, [CPU_OP_SRLI] = &&op_srli, [CPU_OP_SRAI] = &&op_srai,
		[CPU_OP_ADD] = &&op_add, [CPU_OP_SUB] = &&op_sub, [CPU_OP_SLL] = &&op_sll, [CPU_OP_SLT] = &&op_slt,
		[CPU_OP_SLTU] = &&op_sltu, [CPU_OP_XOR] = &&op_xor, [CPU_OP_SRL] = &&op_srl, [CPU_OP_SRA] = &&op_sra,
		[CPU_OP_OR] = &&op_or, [CPU_OP_AND] = &&op_and, [CPU_OP_MUL] = &&op_mul, [CPU_OP_MULH] = &&op_mulh,
		[CPU_OP_MULHSU] = &&op_mulhsu, [CPU_OP_MULHU] = &&op_mulhu, [CPU_OP_DIV] = &&op_div,
		[CPU_OP_DIVU] = &&op_divu, [CPU_OP_REM] = &&op_rem, [CPU_OP_REMU] = &&op_remu,
		[CPU_OP_ADDIW] = &&op_addiw, [CPU_OP_SLLIW] = &&op_slliw, [CPU_OP_SRLIW] = &&op_srliw,
		[CPU_OP_SRAIW] = &&op_sraiw, [CPU_OP_ADDW] = &&op_addw, [CPU_OP_SUBW] = &&op_subw,
		[CPU_OP_SLLW] = &&op_sllw, [CPU_OP_SRLW] = &&op_srlw, [CPU_OP_SRAW] = &&op_sraw,
		[CPU_OP_MULW] = &&op_mulw, [CPU_OP_DIVW] = &&op_divw, [CPU_OP_DIVUW] = &&op_divuw,
		[CPU_OP_REMW] = &&op_remw, [CPU_OP_REMUW] = &&op_remuw, [CPU_OP_FENCE] = &&op_fence,
		[CPU_OP_NOP] = &&op_fence, [CPU_OP_J] = &&op_j, [CPU_OP_JR] = &&op_jr,
		[CPU_OP_AMO] = &&op_amo, [CPU_OP_FPU] = &&op_fpu, [CPU_OP_SYSTEM] = &&op_system,
	};
	uint64_t *const x = cpu->x;
	uint64_t pc = cpu->pc;
	icount_t ic = cpu->icount;
	const struct cpu_decoded *e;
	/* The fetch page, cached in locals: stores through x[] could alias struct cpu, so the
	 * compiler would reload the fields every instruction. Refreshed after every slow path. */
	uint64_t fetch_vpage = cpu->fetch_vpage;
	const uint8_t *fetch_host = cpu->fetch_host;
	struct cpu_decoded *fetch_decoded = cpu->fetch_decoded;
	struct cpu_decoded slow_entry; /* an instruction fetched off the fast path, decoded uncached */
	uint32_t raw, slow_raw; /* slow_raw keeps raw's address untaken, so raw stays in a register */

#define SYNC() do { cpu->pc = pc; cpu->icount = ic; } while (0)
#define RELOAD_FETCH()                                                                               \
	do {                                                                                         \
		fetch_vpage = cpu->fetch_vpage;                                                      \
		fetch_host = cpu->fetch_host;                                                        \
		fetch_decoded = cpu->fetch_decoded;                                                  \
	} while (0)
#define RS1 x[e->rs1]
#define RS2 x[e->rs2]
#define IMM ((uint64_t)(int64_t)e->imm)
#define DISPATCH()                                                                                   \
	do {                                                                                         \
		uint64_t off_ = pc - fetch_vpage;                                                    \
		if (unlikely(off_ > CPU_PAGE_SIZE - 4))                                              \
			goto fetch_slow;                                                             \
		memcpy(&raw, fetch_host + off_, 4);                                                  \
		struct cpu_decoded *d_ = &fetch_decoded[off_ >> 1];                                  \
		if (unlikely(d_->raw != raw))                                                        \
			cpu_decode(d_, raw);                                                         \
		e = d_;                                                                              \
		goto *handlers[e->op];                                                               \
	} while (0)
/* Retire the instruction and go on at new_pc. */
#define NEXT_AT(new_pc)                                                                              \
	do {                                                                                         \
		pc = (new_pc);                                                                       \
		if (unlikely(++ic >= limit))                                                         \
			goto out;                                                                    \
		DISPATCH();                                                                          \
	} while (0)
#define NEXT() NEXT_AT(pc + e->len)
/* After a slow path: the world may have changed (an interrupt, a stop request). */
#define NEXT_SLOW_AT(new_pc)                                                                         \
	do {                                                                                         \
		pc = (new_pc);                                                                       \
		x[0] = 0;                                                                            \
		if (++ic >= limit || cpu_needs_attention(cpu))                                           \
			goto out;                                                                    \
		RELOAD_FETCH();                                                                      \
		DISPATCH();                                                                          \
	} while (0)
#define LOAD(type)                                                                                   \
	do {                                                                                         \
		uint64_t a_ = RS1 + IMM;                                                             \
		const uint8_t *h_ = cpu_tlb_lookup(cpu, CPU_ACCESS_LOAD, a_, sizeof(type));          \
		if (likely(h_ != NULL)) {                                                            \
			type v_;                                                                     \
			memcpy(&v_, h_, sizeof(type));                                               \
			x[e->rd] = (uint64_t)v_;                                                     \
			x[0] = 0; /* a load to x0 still loads */                                     \
			NEXT();                                                                      \
		}                                                                                    \
		uint64_t w_;                                                                         \
		SYNC();                                                                              \
		if (!cpu_load_slow(cpu, a_, sizeof(type), &w_))                                     \
			goto exception;                                                              \
		x[e->rd] = (uint64_t)(type)w_;                                                       \
		NEXT_SLOW_AT(pc + e->len);                                                           \
	} while (0)
#define STORE(type)                                                                                  \
	do {                                                                                         \
		uint64_t a_ = RS1 + IMM;                                                             \
		type v_ = (type)RS2;                                                                 \
		uint8_t *h_ = cpu_tlb_lookup(cpu, CPU_ACCESS_STORE, a_, sizeof(type));               \
		if (likely(h_ != NULL)) {                                                            \
			memcpy(h_, &v_, sizeof(type));                                               \
			NEXT();                                                                      \
		}                                                                                    \
		SYNC();                                                                              \
		if (!cpu_store_slow(cpu, a_, sizeof(type), (uint64_t)v_))                            \
			goto exception;                                                              \
		NEXT_SLOW_AT(pc + e->len);                                                           \
	} while (0)
#define BRANCH(cond) NEXT_AT((cond) ? pc + IMM : pc + e->len)

	if (ic >= limit)
		goto out;
	DISPATCH();

fetch_slow:
	/* Off the code page (a jump, a page crossing, MMIO code, an empty fetch cache). A jump to
	 * a RAM page the fetch TLB knows, with a whole instruction's room left on it, only switches
	 * the fetch page. */
	if (likely((pc & ~CPU_PAGE_MASK) <= CPU_PAGE_SIZE - 4)) {
		const uint8_t *h_ = cpu_tlb_lookup(cpu, CPU_ACCESS_FETCH, pc, 2);
		if (h_) {
			cpu_set_code_page(cpu, pc & CPU_PAGE_MASK, h_ - (pc & ~CPU_PAGE_MASK));
			RELOAD_FETCH();
			DISPATCH();
		}
	}
	SYNC();
	if (!cpu_fetch_slow(cpu, &slow_raw))
		goto exception;
	raw = slow_raw;
	RELOAD_FETCH();
	if (likely(pc - fetch_vpage <= CPU_PAGE_SIZE - 4))
		DISPATCH(); /* the new page is cached now */
	goto decode_uncached;

op_decode:
	/* A fresh entry whose raw bits happened to match memory: decode it now. */
	cpu_decode((struct cpu_decoded *)e, raw);
	goto *handlers[e->op];

op_illegal:
	if (e != &slow_entry) {
		/* Possibly the empty fetch cache's no-code page: fetch for real before trusting it. */
		SYNC();
		if (!cpu_fetch_slow(cpu, &slow_raw))
			goto exception;
		raw = slow_raw;
		RELOAD_FETCH();
		goto decode_uncached;
	}
	SYNC();
	cpu_raise_exception(cpu, EXC_ILLEGAL_INSN, (uint32_t)e->imm);
	goto exception;

decode_uncached:
	cpu_decode(&slow_entry, raw);
	e = &slow_entry;
	goto *handlers[e->op];

op_lui: x[e->rd] = IMM; NEXT();
op_auipc: x[e->rd] = pc + IMM; NEXT();
op_jal: x[e->rd] = pc + e->len; NEXT_AT(pc + IMM);
op_jalr: {
	uint64_t target = (RS1 + IMM) & ~1ull;
	x[e->rd] = pc + e->len;
	NEXT_AT(target);
}
op_j: NEXT_AT(pc + IMM);
op_jr: NEXT_AT((RS1 + IMM) & ~1ull);
op_beq: BRANCH(RS1 == RS2);
op_bne: BRANCH(RS1 != RS2);
op_blt: BRANCH((int64_t)RS1 < (int64_t)RS2);
op_bge: BRANCH((int64_t)RS1 >= (int64_t)RS2);
op_bltu: BRANCH(RS1 < RS2);
op_bgeu: BRANCH(RS1 >= RS2);
op_lb: LOAD(int8_t);
op_lh: LOAD(int16_t);
op_lw: LOAD(int32_t);
op_ld: LOAD(uint64_t);
op_lbu: LOAD(uint8_t);
op_lhu: LOAD(uint16_t);
op_lwu: LOAD(uint32_t);
op_sb: STORE(uint8_t);
op_sh: STORE(uint16_t);
op_sw: STORE(uint32_t);
op_sd: STORE(uint64_t);
op_addi: x[e->rd] = RS1 + IMM; NEXT();
op_slti: x[e->rd] = (int64_t)RS1 < (int64_t)IMM; NEXT();
op_sltiu: x[e->rd] = RS1 < IMM; NEXT();
op_xori: x[e->rd] = RS1 ^ IMM; NEXT();
op_ori: x[e->rd] = RS1 | IMM; NEXT();
op_andi: x[e->rd] = RS1 & IMM; NEXT();
op_slli: x[e->rd] = RS1 << e->imm; NEXT();
op_srli: x[e->rd] = RS1 >> e->imm; NEXT();
op_srai: x[e->rd] = (uint64_t)((int64_t)RS1 >> e->imm); NEXT();
op_add: x[e->rd] = RS1 + RS2; NEXT();
op_sub: x[e->rd] = RS1 - RS2; NEXT();
op_sll: x[e->rd] = RS1 << (RS2 & 63); NEXT();
op_slt: x[e->rd] = (int64_t)RS1 < (int64_t)RS2; NEXT();
op_sltu: x[e->rd] = RS1 < RS2; NEXT();
op_xor: x[e->rd] = RS1 ^ RS2; NEXT();
op_srl: x[e->rd] = RS1 >> (RS2 & 63); NEXT();
op_sra: x[e->rd] = (uint64_t)((int64_t)RS1 >> (RS2 & 63)); NEXT();
op_or: x[e->rd] = RS1 | RS2; NEXT();
op_and: x[e->rd] = RS1 & RS2; NEXT();
op_mul: x[e->rd] = RS1 * RS2; NEXT();
op_mulh: x[e->rd] = mulh_s((int64_t)RS1, (int64_t)RS2); NEXT();
op_mulhsu: x[e->rd] = mulh_su((int64_t)RS1, RS2); NEXT();
op_mulhu: x[e->rd] = mulh_u(RS1, RS2); NEXT();
op_div: x[e->rd] = div_s((int64_t)RS1, (int64_t)RS2); NEXT();
op_divu: x[e->rd] = RS2 ? RS1 / RS2 : UINT64_MAX; NEXT();
op_rem: x[e->rd] = rem_s((int64_t)RS1, (int64_t)RS2); NEXT();
op_remu: x[e->rd] = RS2 ? RS1 % RS2 : RS1; NEXT();
op_addiw: x[e->rd] = SEXT32(RS1 + IMM); NEXT();
op_slliw: x[e->rd] = SEXT32((uint32_t)RS1 << e->imm); NEXT();
op_srliw: x[e->rd] = SEXT32((uint32_t)RS1 >> e->imm); NEXT();
op_sraiw: x[e->rd] = SEXT32((int32_t)RS1 >> e->imm); NEXT();
op_addw: x[e->rd] = SEXT32(RS1 + RS2); NEXT();
op_subw: x[e->rd] = SEXT32(RS1 - RS2); NEXT();
op_sllw: x[e->rd] = SEXT32((uint32_t)RS1 << (RS2 & 31)); NEXT();
op_srlw: x[e->rd] = SEXT32((uint32_t)RS1 >> (RS2 & 31)); NEXT();
op_sraw: x[e->rd] = SEXT32((int32_t)RS1 >> (RS2 & 31)); NEXT();
op_mulw: x[e->rd] = SEXT32(RS1 * RS2); NEXT();
op_divw: x[e->rd] = exec_muldiv_w(4, RS1, RS2); NEXT();
op_divuw: x[e->rd] = exec_muldiv_w(5, RS1, RS2); NEXT();
op_remw: x[e->rd] = exec_muldiv_w(6, RS1, RS2); NEXT();
op_remuw: x[e->rd] = exec_muldiv_w(7, RS1, RS2); NEXT();
op_fence:
	/* FENCE.I too: code is fetched straight from guest RAM and every predecoded entry is checked
	 * against the bytes it came from, so stores are visible to fetch at once. */
	NEXT();
op_amo:
	SYNC();
	if (!cpu_exec_amo(cpu, (uint32_t)e->imm, &(struct cpu_amo_access){ 0 }))
		goto exception;
	NEXT_SLOW_AT(pc + e->len);
op_fpu:
	SYNC();
	fpu_execute(cpu, (uint32_t)e->imm);
	if (cpu->exception_pending) {
		/* For a compressed FP access, mtval of an illegal instruction is its 16 bits. */
		if (cpu->exception_cause == EXC_ILLEGAL_INSN && e->len == 2)
			cpu->exception_tval = e->raw & 0xffff;
		goto exception;
	}
	NEXT_SLOW_AT(pc + e->len);
op_system:
	SYNC();
	if (!exec_system(cpu, (uint32_t)e->imm)) {
		if (cpu->exception_cause == EXC_ILLEGAL_INSN && e->len == 2)
			cpu->exception_tval = e->raw & 0xffff;
		goto exception;
	}
	NEXT_SLOW_AT(cpu->pc);

exception:
	x[0] = 0;
	cpu_take_exception(cpu);
	pc = cpu->pc;
	if (++ic >= limit || cpu_needs_attention(cpu))
		goto out;
	RELOAD_FETCH();
	DISPATCH();
out:
	SYNC();
#undef SYNC
#undef RELOAD_FETCH
#undef RS1
#undef RS2
#undef IMM
#undef DISPATCH
#undef NEXT_AT
#undef NEXT
#undef NEXT_SLOW_AT
#undef LOAD
#undef STORE
#undef BRANCH
}

void cpu_interpret(struct cpu *cpu, icount_t limit)
{
	execute(cpu, limit);
}

enum cpu_stop_reason cpu_run(struct cpu *cpu, icount_t limit)
{
	enum cpu_stop_reason why;
	for (;;) {
		if (cpu->icount >= limit) {
			why = CPU_STOP_LIMIT;
			break;
		}
		if (cpu->stop_requested) {
			why = CPU_STOP_REQUESTED;
			break;
		}
		if (cpu->waiting) {
			if (!cpu_wfi_wakeup(cpu)) {
				why = CPU_STOP_WFI;
				break;
			}
			cpu->waiting = false;
		}
		if (cpu->irq_ready)
			cpu_take_interrupt(cpu);
		if (cpu->engine)
			cpu->engine->run(cpu, limit);
		else
			execute(cpu, limit);
	}
	/* A request made during the run is answered by this return, whatever its reason: it must not
	 * cut the next run short. */
	cpu->stop_requested = false;
	return why;
}

void cpu_request_stop(struct cpu *cpu)
{
	cpu->stop_requested = true;
}

int cpu_create(struct vm_bus *bus, const struct vm_clock *clock, struct cpu **out)
{
	struct cpu *cpu = calloc(1, sizeof(*cpu));
	if (!cpu)
		return -ENOMEM;
	cpu_rvc_init();
	cpu->dcache = calloc(CPU_DCACHE_SLOTS + 1, sizeof(*cpu->dcache));
	if (!cpu->dcache) {
		free(cpu);
		return -ENOMEM;
	}
	cpu->bus = bus;
	cpu->clock = clock;
	cpu_reset(cpu, 0);
	*out = cpu;
	return 0;
}

void cpu_destroy(struct cpu *cpu)
{
	if (!cpu)
		return;
	if (cpu->engine)
		cpu->engine->destroy(cpu);
	free(cpu->dcache);
	free(cpu);
}

void cpu_warm(struct cpu *cpu)
{
	ram_pages_warm(cpu->dcache, (CPU_DCACHE_SLOTS + 1) * sizeof(*cpu->dcache));
	if (cpu->engine && cpu->engine->warm)
		cpu->engine->warm(cpu);
}

void cpu_reset(struct cpu *cpu, uint64_t reset_pc)
{
	struct vm_bus *bus = cpu->bus;
	const struct vm_clock *clock = cpu->clock;
	struct cpu_decoded_page *dcache = cpu->dcache;
	const struct cpu_engine *engine = cpu->engine;
	struct jit *jit = cpu->jit;
	uint64_t filled[sizeof(cpu->dcache_filled) / sizeof(cpu->dcache_filled[0])];
	memcpy(filled, cpu->dcache_filled, sizeof(filled));
	memset(cpu, 0, sizeof(*cpu));
	cpu->bus = bus;
	cpu->clock = clock;
	cpu->dcache = dcache; /* kept, with the record of its filled slots */
	memcpy(cpu->dcache_filled, filled, sizeof(filled));
	cpu->engine = engine;
	cpu->jit = jit; /* its blocks are checked against guest memory on entry: nothing to drop */
	cpu->priv = PRIV_M;
	cpu->pc = reset_pc;
	cpu_csr_reset(cpu);
	cpu_tlb_flush(cpu);
}

icount_t cpu_icount(const struct cpu *cpu)
{
	return cpu->icount;
}

bool cpu_is_waiting(const struct cpu *cpu)
{
	return cpu->waiting;
}

void cpu_set_irq_line(struct cpu *cpu, enum cpu_irq irq, bool level)
{
	uint64_t bit = 1ull << irq;
	cpu->irq_lines = level ? cpu->irq_lines | bit : cpu->irq_lines & ~bit;
	cpu_update_irq(cpu);
}

uint64_t cpu_get_pc(const struct cpu *cpu)
{
	return cpu->pc;
}

void cpu_set_pc(struct cpu *cpu, uint64_t pc)
{
	cpu->pc = pc;
}

uint64_t cpu_get_xreg(const struct cpu *cpu, unsigned reg)
{
	return reg < 32 ? cpu->x[reg] : 0;
}

void cpu_set_xreg(struct cpu *cpu, unsigned reg, uint64_t value)
{
	if (reg > 0 && reg < 32)
		cpu->x[reg] = value;
}

enum cpu_priv cpu_get_priv(const struct cpu *cpu)
{
	return cpu->priv;
}

void cpu_get_stats(const struct cpu *cpu, struct cpu_stats *stats)
{
	*stats = cpu->stats;
}
