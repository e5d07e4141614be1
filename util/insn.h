/*
 * insn.h — the fields of a 32-bit RISC-V instruction, taken apart and put together in one place.
 *
 * insn_rd() ... insn_imm_j() read the fields of the base formats (R, R4, I, S, B, U, J) for the
 * decoder and the executors (atomics, CSR, FPU); insn_enc_*() assemble the same formats for the
 * compressed-instruction expander and for tests that build instructions. Positions follow the
 * RISC-V Unprivileged ISA, "Base Instruction Formats" and "Immediate Encoding Variants".
 * Immediates are assembled in uint32_t and sign-extended by one arithmetic right shift of the
 * signed value, so no negative value is ever shifted left (undefined in C).
 */
#ifndef FTVM_UTIL_INSN_H
#define FTVM_UTIL_INSN_H

#include <stdint.h>

/* Major opcodes (bits 6:0). */
enum insn_major {
	OPC_LOAD = 0x03, OPC_LOAD_FP = 0x07, OPC_MISC_MEM = 0x0f, OPC_OP_IMM = 0x13, OPC_AUIPC = 0x17,
	OPC_OP_IMM_32 = 0x1b, OPC_STORE = 0x23, OPC_STORE_FP = 0x27, OPC_AMO = 0x2f, OPC_OP = 0x33,
	OPC_LUI = 0x37, OPC_OP_32 = 0x3b, OPC_MADD = 0x43, OPC_MSUB = 0x47, OPC_NMSUB = 0x4b,
	OPC_NMADD = 0x4f, OPC_OP_FP = 0x53, OPC_BRANCH = 0x63, OPC_JALR = 0x67, OPC_JAL = 0x6f,
	OPC_SYSTEM = 0x73,
};

static inline unsigned insn_opcode(uint32_t i)
{
	return i & 0x7f;
}

static inline unsigned insn_rd(uint32_t i)
{
	return (i >> 7) & 31;
}

static inline unsigned insn_funct3(uint32_t i)
{
	return (i >> 12) & 7;
}

static inline unsigned insn_rs1(uint32_t i)
{
	return (i >> 15) & 31;
}

static inline unsigned insn_rs2(uint32_t i)
{
	return (i >> 20) & 31;
}

static inline unsigned insn_funct7(uint32_t i)
{
	return i >> 25;
}

/* The AMO operation (bits 31:27). */
static inline unsigned insn_funct5(uint32_t i)
{
	return i >> 27;
}

/* The third source register of the fused multiply-adds (R4 format, bits 31:27). */
static inline unsigned insn_rs3(uint32_t i)
{
	return i >> 27;
}

/* The floating-point format of OP-FP and the fused ops (bits 26:25). */
static inline unsigned insn_fmt(uint32_t i)
{
	return (i >> 25) & 3;
}

/* The CSR number of a SYSTEM instruction (bits 31:20, unsigned). */
static inline unsigned insn_csr(uint32_t i)
{
	return i >> 20;
}

/* The low `width` bits of v, sign-extended (1 <= width <= 32). */
static inline int32_t insn_sext(uint32_t v, unsigned width)
{
	return (int32_t)(v << (32 - width)) >> (32 - width);
}

/* I-type: bits 31:20. */
static inline int32_t insn_imm_i(uint32_t i)
{
	return (int32_t)i >> 20;
}

/* S-type: bits 31:25 and 11:7. */
static inline int32_t insn_imm_s(uint32_t i)
{
	return (int32_t)((i & 0xfe000000u) | ((i >> 7) & 31) << 20) >> 20;
}

/* B-type: imm[12|10:5] in bits 31:25, imm[4:1|11] in bits 11:7. */
static inline int32_t insn_imm_b(uint32_t i)
{
	uint32_t v = ((i >> 7) & 0x1e) | ((i >> 20) & 0x7e0) | ((i << 4) & 0x800) | ((i >> 31) << 12);
	return insn_sext(v, 13);
}

/* U-type: bits 31:12, already in place. */
static inline int32_t insn_imm_u(uint32_t i)
{
	return (int32_t)(i & 0xfffff000u);
}

/* J-type: imm[20|10:1|11|19:12] in bits 31:12. */
static inline int32_t insn_imm_j(uint32_t i)
{
	uint32_t v = ((i >> 20) & 0x7fe) | ((i >> 9) & 0x800) | (i & 0xff000) | ((i >> 31) << 20);
	return insn_sext(v, 21);
}

static inline uint32_t insn_enc_r(unsigned op, unsigned f3, unsigned f7, unsigned rd, unsigned rs1, unsigned rs2)
{
	return (uint32_t)f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static inline uint32_t insn_enc_i(unsigned op, unsigned f3, unsigned rd, unsigned rs1, int32_t imm)
{
	return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static inline uint32_t insn_enc_s(unsigned op, unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	return ((u >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 0x1f) << 7 | op;
}

static inline uint32_t insn_enc_b(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	return ((u >> 12) & 1) << 31 | ((u >> 5) & 0x3f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 |
	       ((u >> 1) & 0xf) << 8 | ((u >> 11) & 1) << 7 | OPC_BRANCH;
}

static inline uint32_t insn_enc_j(unsigned rd, int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	return ((u >> 20) & 1) << 31 | ((u >> 1) & 0x3ff) << 21 | ((u >> 11) & 1) << 20 |
	       ((u >> 12) & 0xff) << 12 | rd << 7 | OPC_JAL;
}

#endif
