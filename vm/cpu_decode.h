/*
 * cpu_decode.h — predecoded instructions for the run loop (vm/cpu*.c only).
 *
 * Each 16-bit slot of a code page has one struct cpu_decoded in a small direct-mapped cache of
 * decoded pages keyed by the page's host address. An entry remembers the 32 raw bits it was
 * decoded from; the run loop fetches those bits anyway and re-decodes when they differ, so code
 * written by the guest (with or without fence.i) is always executed as it is in memory. A fresh
 * entry is all zero, whose op is CPU_OP_DECODE. Instructions that could only write x0 decode to
 * forms that write nothing, so the fast path never has to re-zero x0 (loads still load).
 */
#ifndef FTVM_VM_CPU_DECODE_H
#define FTVM_VM_CPU_DECODE_H

#include <stdint.h>

/* One operation per instruction (or family handled off the fast path). */
enum cpu_op {
	CPU_OP_DECODE = 0, CPU_OP_ILLEGAL,
	CPU_OP_LUI, CPU_OP_AUIPC, CPU_OP_JAL, CPU_OP_JALR,
	CPU_OP_BEQ, CPU_OP_BNE, CPU_OP_BLT, CPU_OP_BGE, CPU_OP_BLTU, CPU_OP_BGEU,
	CPU_OP_LB, CPU_OP_LH, CPU_OP_LW, CPU_OP_LD, CPU_OP_LBU, CPU_OP_LHU, CPU_OP_LWU,
	CPU_OP_SB, CPU_OP_SH, CPU_OP_SW, CPU_OP_SD,
	CPU_OP_ADDI, CPU_OP_SLTI, CPU_OP_SLTIU, CPU_OP_XORI, CPU_OP_ORI, CPU_OP_ANDI,
	CPU_OP_SLLI, CPU_OP_SRLI, CPU_OP_SRAI,
	CPU_OP_ADD, CPU_OP_SUB, CPU_OP_SLL, CPU_OP_SLT, CPU_OP_SLTU, CPU_OP_XOR, CPU_OP_SRL, CPU_OP_SRA,
	CPU_OP_OR, CPU_OP_AND,
	CPU_OP_MUL, CPU_OP_MULH, CPU_OP_MULHSU, CPU_OP_MULHU, CPU_OP_DIV, CPU_OP_DIVU, CPU_OP_REM, CPU_OP_REMU,
	CPU_OP_ADDIW, CPU_OP_SLLIW, CPU_OP_SRLIW, CPU_OP_SRAIW,
	CPU_OP_ADDW, CPU_OP_SUBW, CPU_OP_SLLW, CPU_OP_SRLW, CPU_OP_SRAW,
	CPU_OP_MULW, CPU_OP_DIVW, CPU_OP_DIVUW, CPU_OP_REMW, CPU_OP_REMUW,
	CPU_OP_FENCE,   /* FENCE and FENCE.I: nothing to do (see cpu.c) */
	CPU_OP_NOP,     /* a register-only instruction with rd = x0 (HINTs included) */
	CPU_OP_J,       /* JAL with rd = x0 */
	CPU_OP_JR,      /* JALR with rd = x0 */
	CPU_OP_AMO,     /* imm holds the 32-bit instruction */
	CPU_OP_FPU,     /* imm holds the 32-bit (expanded) instruction */
	CPU_OP_SYSTEM,  /* ECALL, EBREAK, xRET, WFI, SFENCE.VMA and CSR instructions; imm = instruction */
	CPU_OP_COUNT
};

struct cpu_decoded {
	uint32_t raw;   /* the 32 bits at pc when decoded (for a compressed one, also the next 16) */
	int32_t imm;    /* sign-extended immediate, shift amount, or the instruction (see enum cpu_op) */
	uint8_t op;     /* enum cpu_op */
	uint8_t rd, rs1, rs2;
	uint8_t len;    /* 2 or 4 */
};

struct cpu_decoded_page {
	const uint8_t *host_page;
	struct cpu_decoded e[4096 / 2];
};

/* For CPU_OP_ILLEGAL, imm holds the value for mtval: the 16 or 32 instruction bits. */
void cpu_decode(struct cpu_decoded *e, uint32_t raw);

#endif
