/*
 * cpu_decode.c — turns the raw bits at pc into a struct cpu_decoded (see cpu_decode.h).
 *
 * Compressed instructions are first replaced by their 32-bit form (cpu_rvc_table); then the
 * major opcode, funct3 and funct7 select one enum cpu_op, and the immediate is extracted and
 * sign-extended once. Reserved encodings become CPU_OP_ILLEGAL with the bits mtval reports.
 */
#include "vm/cpu_decode.h"

#include "vm/cpu_rvc.h"

enum {
	OPC_LOAD = 0x03, OPC_LOAD_FP = 0x07, OPC_MISC_MEM = 0x0f, OPC_OP_IMM = 0x13, OPC_AUIPC = 0x17,
	OPC_OP_IMM_32 = 0x1b, OPC_STORE = 0x23, OPC_STORE_FP = 0x27, OPC_AMO = 0x2f, OPC_OP = 0x33,
	OPC_LUI = 0x37, OPC_OP_32 = 0x3b, OPC_MADD = 0x43, OPC_MSUB = 0x47, OPC_NMSUB = 0x4b,
	OPC_NMADD = 0x4f, OPC_OP_FP = 0x53, OPC_BRANCH = 0x63, OPC_JALR = 0x67, OPC_JAL = 0x6f,
	OPC_SYSTEM = 0x73,
};
#define F7_BASE 0x00
#define F7_MULDIV 0x01
#define F7_ALT 0x20
#define MISC_MEM_FENCE 0
#define MISC_MEM_FENCE_I 1

/* Immediates are assembled in uint32_t and sign-extended by one arithmetic right shift, so no
 * negative value is ever shifted left (undefined in C). */
static int32_t imm_i(uint32_t i)
{
	return (int32_t)i >> 20;
}

static int32_t imm_s(uint32_t i)
{
	return (int32_t)((i & 0xfe000000u) | ((i >> 7) & 31) << 20) >> 20;
}

static int32_t imm_b(uint32_t i)
{
	uint32_t v = ((i >> 7) & 0x1e) | ((i >> 20) & 0x7e0) | ((i << 4) & 0x800) | ((i >> 31) << 12);
	return (int32_t)(v << 19) >> 19;
}

static int32_t imm_j(uint32_t i)
{
	uint32_t v = ((i >> 20) & 0x7fe) | ((i >> 9) & 0x800) | (i & 0xff000) | ((i >> 31) << 20);
	return (int32_t)(v << 11) >> 11;
}

static enum cpu_op decode_op(uint32_t i, int32_t *imm)
{
	unsigned f3 = (i >> 12) & 7, f7 = i >> 25;
	static const uint8_t branch[8] = {
		CPU_OP_BEQ, CPU_OP_BNE, CPU_OP_ILLEGAL, CPU_OP_ILLEGAL,
		CPU_OP_BLT, CPU_OP_BGE, CPU_OP_BLTU, CPU_OP_BGEU,
	};
	static const uint8_t load[8] = {
		CPU_OP_LB, CPU_OP_LH, CPU_OP_LW, CPU_OP_LD, CPU_OP_LBU, CPU_OP_LHU, CPU_OP_LWU, CPU_OP_ILLEGAL,
	};
	static const uint8_t store[8] = {
		CPU_OP_SB, CPU_OP_SH, CPU_OP_SW, CPU_OP_SD,
		CPU_OP_ILLEGAL, CPU_OP_ILLEGAL, CPU_OP_ILLEGAL, CPU_OP_ILLEGAL,
	};
	static const uint8_t op_imm[8] = {
		CPU_OP_ADDI, CPU_OP_SLLI, CPU_OP_SLTI, CPU_OP_SLTIU, CPU_OP_XORI, CPU_OP_SRLI, CPU_OP_ORI, CPU_OP_ANDI,
	};
	static const uint8_t op_base[8] = {
		CPU_OP_ADD, CPU_OP_SLL, CPU_OP_SLT, CPU_OP_SLTU, CPU_OP_XOR, CPU_OP_SRL, CPU_OP_OR, CPU_OP_AND,
	};
	static const uint8_t op_muldiv[8] = {
		CPU_OP_MUL, CPU_OP_MULH, CPU_OP_MULHSU, CPU_OP_MULHU, CPU_OP_DIV, CPU_OP_DIVU, CPU_OP_REM, CPU_OP_REMU,
	};
	static const uint8_t op32_muldiv[8] = {
		CPU_OP_MULW, CPU_OP_ILLEGAL, CPU_OP_ILLEGAL, CPU_OP_ILLEGAL,
		CPU_OP_DIVW, CPU_OP_DIVUW, CPU_OP_REMW, CPU_OP_REMUW,
	};

	*imm = imm_i(i);
	switch (i & 0x7f) {
	case OPC_LUI: *imm = (int32_t)(i & 0xfffff000u); return CPU_OP_LUI;
	case OPC_AUIPC: *imm = (int32_t)(i & 0xfffff000u); return CPU_OP_AUIPC;
	case OPC_JAL: *imm = imm_j(i); return CPU_OP_JAL;
	case OPC_JALR: return f3 == 0 ? CPU_OP_JALR : CPU_OP_ILLEGAL;
	case OPC_BRANCH: *imm = imm_b(i); return branch[f3];
	case OPC_LOAD: return load[f3];
	case OPC_STORE: *imm = imm_s(i); return store[f3];
	case OPC_OP_IMM:
		if (f3 == 1 || f3 == 5) {
			unsigned top = i >> 26, shamt = (i >> 20) & 63;
			*imm = (int32_t)shamt;
			if (top == 0)
				return f3 == 1 ? CPU_OP_SLLI : CPU_OP_SRLI;
			if (f3 == 5 && top == (F7_ALT >> 1))
				return CPU_OP_SRAI;
			return CPU_OP_ILLEGAL;
		}
		return op_imm[f3];
	case OPC_OP:
		if (f7 == F7_BASE)
			return op_base[f3];
		if (f7 == F7_MULDIV)
			return op_muldiv[f3];
		if (f7 == F7_ALT && f3 == 0)
			return CPU_OP_SUB;
		if (f7 == F7_ALT && f3 == 5)
			return CPU_OP_SRA;
		return CPU_OP_ILLEGAL;
	case OPC_OP_IMM_32:
		if (f3 == 0)
			return CPU_OP_ADDIW;
		*imm = (int32_t)((i >> 20) & 31);
		if (f3 == 1 && f7 == F7_BASE)
			return CPU_OP_SLLIW;
		if (f3 == 5 && f7 == F7_BASE)
			return CPU_OP_SRLIW;
		if (f3 == 5 && f7 == F7_ALT)
			return CPU_OP_SRAIW;
		return CPU_OP_ILLEGAL;
	case OPC_OP_32:
		if (f7 == F7_MULDIV)
			return op32_muldiv[f3];
		if (f7 == F7_BASE)
			return f3 == 0 ? CPU_OP_ADDW : f3 == 1 ? CPU_OP_SLLW : f3 == 5 ? CPU_OP_SRLW : CPU_OP_ILLEGAL;
		if (f7 == F7_ALT)
			return f3 == 0 ? CPU_OP_SUBW : f3 == 5 ? CPU_OP_SRAW : CPU_OP_ILLEGAL;
		return CPU_OP_ILLEGAL;
	case OPC_MISC_MEM:
		return f3 == MISC_MEM_FENCE || f3 == MISC_MEM_FENCE_I ? CPU_OP_FENCE : CPU_OP_ILLEGAL;
	case OPC_AMO:
		*imm = (int32_t)i;
		return CPU_OP_AMO;
	case OPC_LOAD_FP: case OPC_STORE_FP: case OPC_MADD: case OPC_MSUB: case OPC_NMSUB: case OPC_NMADD:
	case OPC_OP_FP:
		*imm = (int32_t)i;
		return CPU_OP_FPU;
	case OPC_SYSTEM:
		*imm = (int32_t)i;
		return CPU_OP_SYSTEM;
	default:
		return CPU_OP_ILLEGAL;
	}
}

/* The form of op that does not write rd when rd is x0. */
static enum cpu_op without_x0_write(enum cpu_op op, unsigned rd)
{
	if (rd != 0)
		return op;
	if (op == CPU_OP_JAL)
		return CPU_OP_J;
	if (op == CPU_OP_JALR)
		return CPU_OP_JR;
	if (op == CPU_OP_LUI || op == CPU_OP_AUIPC || (op >= CPU_OP_ADDI && op <= CPU_OP_REMUW))
		return CPU_OP_NOP;
	return op;
}

void cpu_decode(struct cpu_decoded *e, uint32_t raw)
{
	uint32_t insn = raw;
	e->raw = raw;
	e->len = 4;
	if ((raw & 3) != 3) {
		insn = cpu_rvc_table[raw & 0xffff];
		e->len = 2;
		if (!insn) {
			e->op = CPU_OP_ILLEGAL;
			e->imm = (int32_t)(raw & 0xffff);
			e->rd = e->rs1 = e->rs2 = 0;
			return;
		}
	}
	e->rd = (insn >> 7) & 31;
	e->rs1 = (insn >> 15) & 31;
	e->rs2 = (insn >> 20) & 31;
	e->op = (uint8_t)without_x0_write(decode_op(insn, &e->imm), e->rd);
	if (e->op == CPU_OP_ILLEGAL)
		e->imm = (int32_t)(e->len == 2 ? (raw & 0xffff) : insn);
}
