/*
 * cpu_rvc.c — expansion of the compressed (C) instructions of RV64 into their 32-bit equivalents.
 *
 * Every 16-bit pattern is expanded once into a 64 K-entry table when the first hart is created,
 * so the run loop handles a compressed instruction with one table load and then executes the
 * 32-bit form (the FPU sees C.FLD/C.FSD/C.FLDSP/C.FSDSP as FLD/FSD). Reserved and illegal
 * encodings expand to 0, which no 32-bit instruction is.
 */
#include "vm/cpu_rvc.h"

#include <pthread.h>

#include "util/insn.h"

#define INSN_EBREAK 0x00100073u
#define REG_RA 1u
#define REG_SP 2u

uint32_t cpu_rvc_table[1u << 16];

/* Bits [hi:lo] of the 16-bit instruction. */
static uint32_t bits(uint32_t c, unsigned hi, unsigned lo)
{
	return (c >> lo) & ((1u << (hi - lo + 1)) - 1);
}

static uint32_t expand_q0(uint32_t c)
{
	unsigned rd_ = 8 + bits(c, 4, 2), rs1_ = 8 + bits(c, 9, 7);
	uint32_t uimm_d = bits(c, 12, 10) << 3 | bits(c, 6, 5) << 6;              /* C.LD/C.SD/C.FLD/C.FSD */
	uint32_t uimm_w = bits(c, 12, 10) << 3 | bits(c, 6, 6) << 2 | bits(c, 5, 5) << 6; /* C.LW/C.SW */
	switch (bits(c, 15, 13)) {
	case 0: { /* C.ADDI4SPN */
		uint32_t imm = bits(c, 12, 11) << 4 | bits(c, 10, 7) << 6 | bits(c, 6, 6) << 2 | bits(c, 5, 5) << 3;
		return imm ? insn_enc_i(OPC_OP_IMM, 0, rd_, REG_SP, (int32_t)imm) : 0;
	}
	case 1: return insn_enc_i(OPC_LOAD_FP, 3, rd_, rs1_, (int32_t)uimm_d);  /* C.FLD */
	case 2: return insn_enc_i(OPC_LOAD, 2, rd_, rs1_, (int32_t)uimm_w);     /* C.LW */
	case 3: return insn_enc_i(OPC_LOAD, 3, rd_, rs1_, (int32_t)uimm_d);     /* C.LD */
	case 5: return insn_enc_s(OPC_STORE_FP, 3, rs1_, rd_, (int32_t)uimm_d); /* C.FSD */
	case 6: return insn_enc_s(OPC_STORE, 2, rs1_, rd_, (int32_t)uimm_w);    /* C.SW */
	case 7: return insn_enc_s(OPC_STORE, 3, rs1_, rd_, (int32_t)uimm_d);    /* C.SD */
	default: return 0;
	}
}

static uint32_t expand_q1(uint32_t c)
{
	unsigned rd = bits(c, 11, 7), rs1_ = 8 + bits(c, 9, 7), rs2_ = 8 + bits(c, 4, 2);
	int32_t imm6 = insn_sext(bits(c, 12, 12) << 5 | bits(c, 6, 2), 6);
	switch (bits(c, 15, 13)) {
	case 0: return insn_enc_i(OPC_OP_IMM, 0, rd, rd, imm6);                      /* C.ADDI, C.NOP */
	case 1: return rd ? insn_enc_i(OPC_OP_IMM_32, 0, rd, rd, imm6) : 0;          /* C.ADDIW */
	case 2: return insn_enc_i(OPC_OP_IMM, 0, rd, 0, imm6);                       /* C.LI */
	case 3:
		if (rd == REG_SP) { /* C.ADDI16SP */
			int32_t imm = insn_sext(bits(c, 12, 12) << 9 | bits(c, 6, 6) << 4 | bits(c, 5, 5) << 6 |
						bits(c, 4, 3) << 7 | bits(c, 2, 2) << 5, 10);
			return imm ? insn_enc_i(OPC_OP_IMM, 0, REG_SP, REG_SP, imm) : 0;
		}
		/* C.LUI */
		return imm6 ? ((uint32_t)imm6 << 12) | rd << 7 | OPC_LUI : 0;
	case 4: {
		uint32_t shamt = bits(c, 12, 12) << 5 | bits(c, 6, 2);
		switch (bits(c, 11, 10)) {
		case 0: return insn_enc_i(OPC_OP_IMM, 5, rs1_, rs1_, (int32_t)shamt);            /* C.SRLI */
		case 1: return insn_enc_i(OPC_OP_IMM, 5, rs1_, rs1_, (int32_t)(shamt | 0x400));  /* C.SRAI */
		case 2: return insn_enc_i(OPC_OP_IMM, 7, rs1_, rs1_, imm6);                      /* C.ANDI */
		default: break;
		}
		static const uint8_t f3[4] = { 0, 4, 6, 7 }; /* SUB, XOR, OR, AND */
		unsigned sel = bits(c, 6, 5);
		if (!bits(c, 12, 12))
			return insn_enc_r(OPC_OP, f3[sel], sel == 0 ? 0x20 : 0, rs1_, rs1_, rs2_);
		if (sel == 0)
			return insn_enc_r(OPC_OP_32, 0, 0x20, rs1_, rs1_, rs2_);                 /* C.SUBW */
		if (sel == 1)
			return insn_enc_r(OPC_OP_32, 0, 0, rs1_, rs1_, rs2_);                    /* C.ADDW */
		return 0;
	}
	case 5: { /* C.J */
		int32_t imm = insn_sext(bits(c, 12, 12) << 11 | bits(c, 11, 11) << 4 | bits(c, 10, 9) << 8 |
				        bits(c, 8, 8) << 10 | bits(c, 7, 7) << 6 | bits(c, 6, 6) << 7 |
				        bits(c, 5, 3) << 1 | bits(c, 2, 2) << 5, 12);
		return insn_enc_j(0, imm);
	}
	default: { /* C.BEQZ, C.BNEZ */
		int32_t imm = insn_sext(bits(c, 12, 12) << 8 | bits(c, 11, 10) << 3 | bits(c, 6, 5) << 6 |
				        bits(c, 4, 3) << 1 | bits(c, 2, 2) << 5, 9);
		return insn_enc_b(bits(c, 15, 13) == 6 ? 0 : 1, rs1_, 0, imm);
	}
	}
}

static uint32_t expand_q2(uint32_t c)
{
	unsigned rd = bits(c, 11, 7), rs2 = bits(c, 6, 2);
	uint32_t ldsp = bits(c, 12, 12) << 5 | bits(c, 6, 5) << 3 | bits(c, 4, 2) << 6;
	uint32_t lwsp = bits(c, 12, 12) << 5 | bits(c, 6, 4) << 2 | bits(c, 3, 2) << 6;
	uint32_t sdsp = bits(c, 12, 10) << 3 | bits(c, 9, 7) << 6;
	uint32_t swsp = bits(c, 12, 9) << 2 | bits(c, 8, 7) << 6;
	switch (bits(c, 15, 13)) {
	case 0: return insn_enc_i(OPC_OP_IMM, 1, rd, rd, (int32_t)(bits(c, 12, 12) << 5 | rs2)); /* C.SLLI */
	case 1: return insn_enc_i(OPC_LOAD_FP, 3, rd, REG_SP, (int32_t)ldsp);                  /* C.FLDSP */
	case 2: return rd ? insn_enc_i(OPC_LOAD, 2, rd, REG_SP, (int32_t)lwsp) : 0;            /* C.LWSP */
	case 3: return rd ? insn_enc_i(OPC_LOAD, 3, rd, REG_SP, (int32_t)ldsp) : 0;            /* C.LDSP */
	case 4:
		if (!bits(c, 12, 12)) {
			if (rs2 == 0)
				return rd ? insn_enc_i(OPC_JALR, 0, 0, rd, 0) : 0;                     /* C.JR */
			return insn_enc_r(OPC_OP, 0, 0, rd, 0, rs2);                                   /* C.MV */
		}
		if (rs2 == 0)
			return rd ? insn_enc_i(OPC_JALR, 0, REG_RA, rd, 0) : INSN_EBREAK;              /* C.JALR, C.EBREAK */
		return insn_enc_r(OPC_OP, 0, 0, rd, rd, rs2);                                          /* C.ADD */
	case 5: return insn_enc_s(OPC_STORE_FP, 3, REG_SP, rs2, (int32_t)sdsp);                /* C.FSDSP */
	case 6: return insn_enc_s(OPC_STORE, 2, REG_SP, rs2, (int32_t)swsp);                   /* C.SWSP */
	default: return insn_enc_s(OPC_STORE, 3, REG_SP, rs2, (int32_t)sdsp);                  /* C.SDSP */
	}
}

static void build_table(void)
{
	for (uint32_t c = 0; c < (1u << 16); c++) {
		switch (c & 3) {
		case 0: cpu_rvc_table[c] = expand_q0(c); break;
		case 1: cpu_rvc_table[c] = expand_q1(c); break;
		case 2: cpu_rvc_table[c] = expand_q2(c); break;
		default: cpu_rvc_table[c] = 0; break;
		}
	}
}

void cpu_rvc_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, build_table);
}
