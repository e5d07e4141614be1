/*
 * cpu.c — the RV64IMAC integer core: hart lifecycle, the run loop and the instruction set.
 *
 * The run loop keeps pc and icount in locals and fetches through a cached host pointer to the
 * current code page (cpu->fetch_host); a compressed instruction is replaced by its 32-bit form
 * from cpu_rvc_table and then executed like any other. Loads and stores hit the software TLB
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
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>
#include "vm/cpu_rvc.h"

/* Major opcodes (unprivileged spec, "RISC-V base opcode map"). */
enum {
	OPC_LOAD = 0x03, OPC_LOAD_FP = 0x07, OPC_MISC_MEM = 0x0f, OPC_OP_IMM = 0x13, OPC_AUIPC = 0x17,
	OPC_OP_IMM_32 = 0x1b, OPC_STORE = 0x23, OPC_STORE_FP = 0x27, OPC_AMO = 0x2f, OPC_OP = 0x33,
	OPC_LUI = 0x37, OPC_OP_32 = 0x3b, OPC_MADD = 0x43, OPC_MSUB = 0x47, OPC_NMSUB = 0x4b,
	OPC_NMADD = 0x4f, OPC_OP_FP = 0x53, OPC_BRANCH = 0x63, OPC_JALR = 0x67, OPC_JAL = 0x6f,
	OPC_SYSTEM = 0x73,
};
/* funct7 values of OP/OP-32. */
#define F7_BASE 0x00
#define F7_MULDIV 0x01
#define F7_ALT 0x20
/* AMO funct5 values. */
enum {
	AMO_ADD = 0x00, AMO_SWAP = 0x01, AMO_LR = 0x02, AMO_SC = 0x03, AMO_XOR = 0x04, AMO_OR = 0x08,
	AMO_AND = 0x0c, AMO_MIN = 0x10, AMO_MAX = 0x14, AMO_MINU = 0x18, AMO_MAXU = 0x1c,
};
#define MISC_MEM_FENCE 0
#define MISC_MEM_FENCE_I 1
#define SC_FAILED 1

#define RD(i) (((i) >> 7) & 31)
#define RS1(i) (((i) >> 15) & 31)
#define RS2(i) (((i) >> 20) & 31)
#define F3(i) (((i) >> 12) & 7)
#define F7(i) ((i) >> 25)
#define IMM_I(i) ((uint64_t)((int64_t)(int32_t)(i) >> 20))
#define IMM_S(i) ((uint64_t)(((int64_t)(int32_t)(i) >> 25 << 5) | (((i) >> 7) & 31)))
#define IMM_U(i) ((uint64_t)(int64_t)(int32_t)((i) & 0xfffff000u))
#define SEXT32(v) ((uint64_t)(int64_t)(int32_t)(uint32_t)(v))

static uint64_t imm_b(uint32_t i)
{
	uint64_t v = ((i >> 7) & 0x1e) | ((i >> 20) & 0x7e0) | ((i << 4) & 0x800);
	return v | (uint64_t)((int64_t)(int32_t)i >> 31 << 12);
}

static uint64_t imm_j(uint32_t i)
{
	uint64_t v = ((i >> 20) & 0x7fe) | ((i >> 9) & 0x800) | (i & 0xff000);
	return v | (uint64_t)((int64_t)(int32_t)i >> 31 << 20);
}

static uint64_t mulh_s(int64_t a, int64_t b)
{
	return (uint64_t)(((__int128)a * b) >> 64);
}

static uint64_t mulh_su(int64_t a, uint64_t b)
{
	return (uint64_t)(((__int128)a * (unsigned __int128)b) >> 64);
}

static uint64_t mulh_u(uint64_t a, uint64_t b)
{
	return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

static uint64_t div_s(int64_t a, int64_t b)
{
	if (b == 0)
		return UINT64_MAX;
	if (a == INT64_MIN && b == -1)
		return (uint64_t)a;
	return (uint64_t)(a / b);
}

static uint64_t rem_s(int64_t a, int64_t b)
{
	if (b == 0)
		return (uint64_t)a;
	if (a == INT64_MIN && b == -1)
		return 0;
	return (uint64_t)(a % b);
}

/* OP with funct7 = 1: the M extension on 64-bit values. */
static uint64_t exec_muldiv(unsigned f3, uint64_t a, uint64_t b)
{
	switch (f3) {
	case 0: return a * b;
	case 1: return mulh_s((int64_t)a, (int64_t)b);
	case 2: return mulh_su((int64_t)a, b);
	case 3: return mulh_u(a, b);
	case 4: return div_s((int64_t)a, (int64_t)b);
	case 5: return b ? a / b : UINT64_MAX;
	case 6: return rem_s((int64_t)a, (int64_t)b);
	default: return b ? a % b : a;
	}
}

/* OP-32 with funct7 = 1 (f3 1..3 are reserved and rejected by the caller). */
static uint64_t exec_muldiv_w(unsigned f3, uint64_t a64, uint64_t b64)
{
	int32_t a = (int32_t)a64, b = (int32_t)b64;
	uint32_t ua = (uint32_t)a64, ub = (uint32_t)b64;
	switch (f3) {
	case 0: return SEXT32(ua * ub);
	case 4:
		if (b == 0)
			return UINT64_MAX;
		if (a == INT32_MIN && b == -1)
			return SEXT32(a);
		return SEXT32(a / b);
	case 5: return ub ? SEXT32(ua / ub) : UINT64_MAX;
	case 6:
		if (b == 0)
			return SEXT32(a);
		if (a == INT32_MIN && b == -1)
			return 0;
		return SEXT32(a % b);
	default: return ub ? SEXT32(ua % ub) : SEXT32(ua);
	}
}

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
		cpu_raise_exception(cpu, EXC_STORE_ACCESS, vaddr);
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

/* The A extension. Returns false after raising an exception (illegal encoding or a fault). */
static bool exec_amo(struct cpu *cpu, uint32_t insn)
{
	unsigned f3 = F3(insn), funct5 = insn >> 27, rd = RD(insn);
	if (f3 != 2 && f3 != 3)
		goto illegal;
	unsigned size = f3 == 2 ? 4 : 8;
	bool word = size == 4;
	uint64_t vaddr = cpu->x[RS1(insn)], src = cpu->x[RS2(insn)], old, paddr = 0, result;
	uint8_t *host;
	switch (funct5) {
	case AMO_LR:
		if (RS2(insn) != 0)
			goto illegal;
		if (!cpu_translate_atomic(cpu, vaddr, size, true, &host, &paddr))
			return false;
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
			if (!cpu_translate_atomic(cpu, vaddr, size, false, &host, &paddr) ||
			    !amo_read(cpu, host, paddr, vaddr, size, &old))
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
		if (!cpu_translate_atomic(cpu, vaddr, size, false, &host, &paddr) ||
		    !amo_read(cpu, host, paddr, vaddr, size, &old) ||
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
	unsigned f3 = F3(insn), rd = RD(insn), rs1 = RS1(insn);
	if (f3 == 0)
		return cpu_exec_system(cpu, insn);
	if (f3 == 4)
		goto illegal;
	uint64_t src = (f3 & 4) ? rs1 : cpu->x[rs1], old;
	bool write = (f3 & 3) == 1 || rs1 != 0;
	if (!cpu_csr_op(cpu, insn >> 20, write, f3, src, &old))
		goto illegal;
	if (rd)
		cpu->x[rd] = old;
	cpu->pc += 4;
	return true;
illegal:
	cpu_raise_exception(cpu, EXC_ILLEGAL_INSN, insn);
	return false;
}

/* Anything the loop wants to return for. */
static bool needs_attention(const struct cpu *cpu)
{
	return cpu->irq_ready | cpu->stop_requested | cpu->waiting;
}

/*
 * The interpreter proper: executes until icount reaches limit or needs_attention(). The state
 * lives in pc/ic while on the fast path and is written back (SYNC) before anything that looks at
 * struct cpu.
 */
static void execute(struct cpu *cpu, icount_t limit)
{
	uint64_t *const x = cpu->x;
	uint64_t pc = cpu->pc;
	icount_t ic = cpu->icount;

#define SYNC() do { cpu->pc = pc; cpu->icount = ic; } while (0)
#define LOAD(type, addr, dst)                                                                        \
	do {                                                                                         \
		uint64_t a_ = (addr);                                                                \
		const uint8_t *h_ = cpu_tlb_lookup(cpu, CPU_ACCESS_LOAD, a_, sizeof(type));          \
		type v_;                                                                             \
		if (likely(h_ != NULL)) {                                                            \
			memcpy(&v_, h_, sizeof(type));                                               \
		} else {                                                                             \
			uint64_t w_;                                                                 \
			SYNC();                                                                      \
			if (!cpu_load_slow(cpu, a_, sizeof(type), &w_))                             \
				goto exception;                                                      \
			v_ = (type)w_;                                                               \
			slow = true;                                                                 \
		}                                                                                    \
		dst = (uint64_t)v_;                                                                  \
	} while (0)
#define STORE(type, addr, value)                                                                     \
	do {                                                                                         \
		uint64_t a_ = (addr);                                                                \
		type v_ = (type)(value);                                                             \
		uint8_t *h_ = cpu_tlb_lookup(cpu, CPU_ACCESS_STORE, a_, sizeof(type));               \
		if (likely(h_ != NULL)) {                                                            \
			memcpy(h_, &v_, sizeof(type));                                               \
		} else {                                                                             \
			SYNC();                                                                      \
			if (!cpu_store_slow(cpu, a_, sizeof(type), (uint64_t)v_))                    \
				goto exception;                                                      \
			slow = true;                                                                 \
		}                                                                                    \
	} while (0)

	while (ic < limit) {
		uint32_t insn, raw;
		uint64_t npc;
		bool slow = false, refetched = false;
		uint64_t off = pc - cpu->fetch_vpage;
		if (likely(off <= CPU_PAGE_SIZE - 4)) {
			memcpy(&raw, cpu->fetch_host + off, 4);
		} else {
			SYNC();
			if (!cpu_fetch_slow(cpu, &raw))
				goto exception;
			refetched = true;
		}
	decode:
		insn = raw;
		if ((raw & 3) != 3) {
			insn = cpu_rvc_table[raw & 0xffff];
			npc = pc + 2;
			if (unlikely(insn == 0)) {
				/* Possibly the no-code page of an empty fetch cache: fetch for real. */
				if (!refetched) {
					SYNC();
					if (!cpu_fetch_slow(cpu, &raw))
						goto exception;
					refetched = true;
					goto decode;
				}
				SYNC();
				cpu_raise_exception(cpu, EXC_ILLEGAL_INSN, raw & 0xffff);
				goto exception;
			}
		} else {
			npc = pc + 4;
		}
		unsigned rd = RD(insn);
		switch (insn & 0x7f) {
		case OPC_LUI:
			x[rd] = IMM_U(insn);
			break;
		case OPC_AUIPC:
			x[rd] = pc + IMM_U(insn);
			break;
		case OPC_JAL:
			x[rd] = npc;
			npc = pc + imm_j(insn);
			break;
		case OPC_JALR: {
			if (F3(insn) != 0)
				goto illegal;
			uint64_t target = (x[RS1(insn)] + IMM_I(insn)) & ~1ull;
			x[rd] = npc;
			npc = target;
			break;
		}
		case OPC_BRANCH: {
			uint64_t a = x[RS1(insn)], b = x[RS2(insn)];
			bool taken;
			switch (F3(insn)) {
			case 0: taken = a == b; break;
			case 1: taken = a != b; break;
			case 4: taken = (int64_t)a < (int64_t)b; break;
			case 5: taken = (int64_t)a >= (int64_t)b; break;
			case 6: taken = a < b; break;
			case 7: taken = a >= b; break;
			default: goto illegal;
			}
			if (taken)
				npc = pc + imm_b(insn);
			break;
		}
		case OPC_LOAD: {
			uint64_t a = x[RS1(insn)] + IMM_I(insn), v;
			switch (F3(insn)) {
			case 0: LOAD(int8_t, a, v); break;
			case 1: LOAD(int16_t, a, v); break;
			case 2: LOAD(int32_t, a, v); break;
			case 3: LOAD(uint64_t, a, v); break;
			case 4: LOAD(uint8_t, a, v); break;
			case 5: LOAD(uint16_t, a, v); break;
			case 6: LOAD(uint32_t, a, v); break;
			default: goto illegal;
			}
			x[rd] = v;
			break;
		}
		case OPC_STORE: {
			uint64_t a = x[RS1(insn)] + IMM_S(insn), v = x[RS2(insn)];
			switch (F3(insn)) {
			case 0: STORE(uint8_t, a, v); break;
			case 1: STORE(uint16_t, a, v); break;
			case 2: STORE(uint32_t, a, v); break;
			case 3: STORE(uint64_t, a, v); break;
			default: goto illegal;
			}
			break;
		}
		case OPC_OP_IMM: {
			uint64_t a = x[RS1(insn)], imm = IMM_I(insn);
			unsigned shamt = (insn >> 20) & 63;
			switch (F3(insn)) {
			case 0: x[rd] = a + imm; break;
			case 1:
				if ((insn >> 26) != 0)
					goto illegal;
				x[rd] = a << shamt;
				break;
			case 2: x[rd] = (int64_t)a < (int64_t)imm; break;
			case 3: x[rd] = a < imm; break;
			case 4: x[rd] = a ^ imm; break;
			case 5:
				if ((insn >> 26) == 0)
					x[rd] = a >> shamt;
				else if ((insn >> 26) == (F7_ALT >> 1))
					x[rd] = (uint64_t)((int64_t)a >> shamt);
				else
					goto illegal;
				break;
			case 6: x[rd] = a | imm; break;
			default: x[rd] = a & imm; break;
			}
			break;
		}
		case OPC_OP: {
			uint64_t a = x[RS1(insn)], b = x[RS2(insn)];
			unsigned f3 = F3(insn);
			switch (F7(insn)) {
			case F7_BASE:
				switch (f3) {
				case 0: x[rd] = a + b; break;
				case 1: x[rd] = a << (b & 63); break;
				case 2: x[rd] = (int64_t)a < (int64_t)b; break;
				case 3: x[rd] = a < b; break;
				case 4: x[rd] = a ^ b; break;
				case 5: x[rd] = a >> (b & 63); break;
				case 6: x[rd] = a | b; break;
				default: x[rd] = a & b; break;
				}
				break;
			case F7_ALT:
				if (f3 == 0)
					x[rd] = a - b;
				else if (f3 == 5)
					x[rd] = (uint64_t)((int64_t)a >> (b & 63));
				else
					goto illegal;
				break;
			case F7_MULDIV:
				x[rd] = f3 == 0 ? a * b : exec_muldiv(f3, a, b);
				break;
			default:
				goto illegal;
			}
			break;
		}
		case OPC_OP_IMM_32: {
			uint32_t a = (uint32_t)x[RS1(insn)];
			unsigned shamt = (insn >> 20) & 31;
			switch (F3(insn)) {
			case 0: x[rd] = SEXT32(a + (uint32_t)IMM_I(insn)); break;
			case 1:
				if (F7(insn) != F7_BASE)
					goto illegal;
				x[rd] = SEXT32(a << shamt);
				break;
			case 5:
				if (F7(insn) == F7_BASE)
					x[rd] = SEXT32(a >> shamt);
				else if (F7(insn) == F7_ALT)
					x[rd] = SEXT32((int32_t)a >> shamt);
				else
					goto illegal;
				break;
			default: goto illegal;
			}
			break;
		}
		case OPC_OP_32: {
			uint64_t a = x[RS1(insn)], b = x[RS2(insn)];
			unsigned f3 = F3(insn);
			uint32_t a32 = (uint32_t)a, b32 = (uint32_t)b;
			switch (F7(insn)) {
			case F7_BASE:
				if (f3 == 0)
					x[rd] = SEXT32(a32 + b32);
				else if (f3 == 1)
					x[rd] = SEXT32(a32 << (b32 & 31));
				else if (f3 == 5)
					x[rd] = SEXT32(a32 >> (b32 & 31));
				else
					goto illegal;
				break;
			case F7_ALT:
				if (f3 == 0)
					x[rd] = SEXT32(a32 - b32);
				else if (f3 == 5)
					x[rd] = SEXT32((int32_t)a32 >> (b32 & 31));
				else
					goto illegal;
				break;
			case F7_MULDIV:
				if (f3 >= 1 && f3 <= 3)
					goto illegal;
				x[rd] = exec_muldiv_w(f3, a, b);
				break;
			default:
				goto illegal;
			}
			break;
		}
		case OPC_MISC_MEM:
			if (F3(insn) == MISC_MEM_FENCE)
				break;
			if (F3(insn) != MISC_MEM_FENCE_I)
				goto illegal;
			/* FENCE.I: code is fetched straight from guest RAM and never cached in decoded
			 * form, so stores are visible to fetch at once and there is nothing to flush. */
			break;
		case OPC_AMO:
			SYNC();
			if (!exec_amo(cpu, insn))
				goto exception;
			slow = true;
			break;
		case OPC_LOAD_FP: case OPC_STORE_FP: case OPC_MADD: case OPC_MSUB: case OPC_NMSUB:
		case OPC_NMADD: case OPC_OP_FP:
			SYNC();
			fpu_execute(cpu, insn);
			if (cpu->exception_pending) {
				/* For a compressed FP access, tval of an illegal instruction is the 16 bits. */
				if (cpu->exception_cause == EXC_ILLEGAL_INSN)
					cpu->exception_tval = (raw & 3) != 3 ? (raw & 0xffff) : insn;
				goto exception;
			}
			slow = true;
			break;
		case OPC_SYSTEM:
			SYNC();
			if (!exec_system(cpu, insn)) {
				if ((raw & 3) != 3 && cpu->exception_cause == EXC_ILLEGAL_INSN)
					cpu->exception_tval = raw & 0xffff;
				goto exception;
			}
			pc = cpu->pc;
			x[0] = 0;
			ic++;
			if (needs_attention(cpu))
				goto out;
			continue;
		default:
			goto illegal;
		}
		x[0] = 0;
		pc = npc;
		ic++;
		if (unlikely(slow) && needs_attention(cpu))
			goto out;
		continue;

	illegal:
		SYNC();
		cpu_raise_exception(cpu, EXC_ILLEGAL_INSN, (raw & 3) != 3 ? (raw & 0xffff) : insn);
	exception:
		x[0] = 0;
		cpu_take_exception(cpu);
		pc = cpu->pc;
		ic++;
		if (needs_attention(cpu))
			goto out;
	}
out:
	SYNC();
#undef SYNC
#undef LOAD
#undef STORE
}

enum cpu_stop_reason cpu_run(struct cpu *cpu, icount_t limit)
{
	for (;;) {
		if (cpu->icount >= limit)
			return CPU_STOP_LIMIT;
		if (cpu->stop_requested) {
			cpu->stop_requested = false;
			return CPU_STOP_REQUESTED;
		}
		if (cpu->waiting) {
			if (!cpu_wfi_wakeup(cpu))
				return CPU_STOP_WFI;
			cpu->waiting = false;
		}
		if (cpu->irq_ready)
			cpu_take_interrupt(cpu);
		execute(cpu, limit);
	}
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
	cpu->bus = bus;
	cpu->clock = clock;
	cpu_reset(cpu, 0);
	*out = cpu;
	return 0;
}

void cpu_destroy(struct cpu *cpu)
{
	free(cpu);
}

void cpu_reset(struct cpu *cpu, uint64_t reset_pc)
{
	struct vm_bus *bus = cpu->bus;
	const struct vm_clock *clock = cpu->clock;
	memset(cpu, 0, sizeof(*cpu));
	cpu->bus = bus;
	cpu->clock = clock;
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

uint64_t cpu_state_digest(const struct cpu *cpu)
{
	/* Architectural state only, field by field: no padding, pointers or caches. */
	uint64_t words[] = {
		cpu->pc, cpu->fflags, cpu->frm, (uint64_t)cpu->priv, cpu->icount,
		cpu->mstatus, cpu->misa, cpu->medeleg, cpu->mideleg, cpu->mie, cpu->mip, cpu->irq_lines,
		cpu->mtvec, cpu->mscratch, cpu->mepc, cpu->mcause, cpu->mtval, cpu->mcounteren, cpu->menvcfg,
		cpu->stvec, cpu->sscratch, cpu->sepc, cpu->scause, cpu->stval, cpu->satp, cpu->scounteren,
		cpu->senvcfg, cpu->reservation_addr, cpu->reservation_valid, cpu->reservation_value,
		cpu->waiting, cpu->mcountinhibit, cpu->mcycle_offset, cpu->minstret_offset,
	};
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, cpu->x, sizeof(cpu->x));
	XXH3_64bits_update(&st, cpu->f, sizeof(cpu->f));
	XXH3_64bits_update(&st, words, sizeof(words));
	XXH3_64bits_update(&st, cpu->pmpcfg, sizeof(cpu->pmpcfg));
	XXH3_64bits_update(&st, cpu->pmpaddr, sizeof(cpu->pmpaddr));
	return XXH3_64bits_digest(&st);
}

void cpu_get_stats(const struct cpu *cpu, struct cpu_stats *stats)
{
	*stats = cpu->stats;
}
