/*
 * cpu_decode.c — turns the raw bits at pc into a struct cpu_decoded (see cpu_decode.h).
 *
 * Compressed instructions are first replaced by their 32-bit form (cpu_rvc_table); then the
 * major opcode, funct3 and funct7 select one enum cpu_op, and the immediate is extracted and
 * sign-extended once. Reserved encodings become CPU_OP_ILLEGAL with the bits mtval reports.
 */
#include "vm/cpu_decode.h"

#include "util/insn.h"
#include "vm/cpu_rvc.h"

#define F7_BASE 0x00
#define F7_MULDIV 0x01
#define F7_ALT 0x20
#define MISC_MEM_FENCE 0
#define MISC_MEM_FENCE_I 1

static enum cpu_op decode_op(uint32_t i, int32_t *imm)
{
	unsigned f3 = insn_funct3(i), f7 = insn_funct7(i);
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

	*imm = insn_imm_i(i);
	switch (insn_opcode(i)) {
	case OPC_LUI: *imm = insn_imm_u(i); return CPU_OP_LUI;
	case OPC_AUIPC: *imm = insn_imm_u(i); return CPU_OP_AUIPC;
	case OPC_JAL: *imm = insn_imm_j(i); return CPU_OP_JAL;
	case OPC_JALR: return f3 == 0 ? CPU_OP_JALR : CPU_OP_ILLEGAL;
	case OPC_BRANCH: *imm = insn_imm_b(i); return branch[f3];
	case OPC_LOAD: return load[f3];
	case OPC_STORE: *imm = insn_imm_s(i); return store[f3];
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
		*imm = (int32_t)insn_rs2(i); /* shamt[4:0] */
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
	e->rd = (uint8_t)insn_rd(insn);
	e->rs1 = (uint8_t)insn_rs1(insn);
	e->rs2 = (uint8_t)insn_rs2(insn);
	e->op = (uint8_t)without_x0_write(decode_op(insn, &e->imm), e->rd);
	if (e->op == CPU_OP_ILLEGAL)
		e->imm = (int32_t)(e->len == 2 ? (raw & 0xffff) : insn);
}
