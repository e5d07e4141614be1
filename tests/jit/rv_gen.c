/*
 * rv_gen.c — the random program generator (see rv_gen.h).
 *
 * Registers: x27 = the counter of the small counted loops (whose blocks jump to their own
 * start, which the JIT runs as a loop inside the translated code), x8 = scratch base (also the compressed loads' base), x24 = a valid instruction word
 * for the self-modifying stores, x25 = body start, x26 = loop counter, x28 = MMIO base, x29..x31
 * the trap handler's. The random instructions write only x1..x7 and x9..x23 (compressed CA/CL
 * forms x9..x15), so the reserved ones survive unless the program rewrites itself into
 * something else — which is allowed: both engines must then agree on that too.
 *
 * The body is generated as slots first (so forward branch targets are slot indices), laid out,
 * then encoded with the byte offsets known.
 */
#include "rv_gen.h"

#include <stdlib.h>
#include <string.h>

enum { OPC_LOAD = 0x03, OPC_MISC_MEM = 0x0f, OPC_OP_IMM = 0x13, OPC_AUIPC = 0x17, OPC_OP_IMM_32 = 0x1b,
       OPC_STORE = 0x23, OPC_OP = 0x33, OPC_LUI = 0x37, OPC_OP_32 = 0x3b, OPC_BRANCH = 0x63,
       OPC_JALR = 0x67, OPC_JAL = 0x6f, OPC_SYSTEM = 0x73, OPC_AMO = 0x2f, OPC_STORE_FP = 0x27 };
enum { CSR_MSTATUS = 0x300, CSR_MIE = 0x304, CSR_MTVEC = 0x305, CSR_MSCRATCH = 0x340, CSR_MEPC = 0x341,
       CSR_MCAUSE = 0x342, CSR_MIP = 0x344, CSR_MCYCLE = 0xb00, CSR_MINSTRET = 0xb02, CSR_CYCLE = 0xc00,
       CSR_TIME = 0xc01, CSR_INSTRET = 0xc02 };
#define MSTATUS_MIE_UIMM 8 /* mstatus.MIE as the 5-bit immediate of CSRRSI/CSRRCI */
#define INSN_MRET 0x30200073u
#define INSN_ECALL 0x00000073u
#define INSN_EBREAK 0x00100073u
#define INSN_FENCE 0x0ff0000fu
#define INSN_FENCE_I 0x0000100fu
#define MAX_SLOTS 1024

enum slot_kind { S_WORD, S_HALF, S_BRANCH, S_JAL, S_CJ, S_CBZ, S_JALR_PAIR, S_LOOP, S_SMC_AHEAD };
#define SMC_AHEAD_WORDS 8
#define LOOP_BODY_MAX 4

struct slot {
	enum slot_kind kind;
	uint32_t word;    /* S_WORD / S_HALF: the encoding */
	unsigned len;
	unsigned rd, rs1, rs2, f3;
	unsigned target;  /* slot index, for the control transfers */
	unsigned off;     /* byte offset in the body, filled by layout */
	uint32_t loop[LOOP_BODY_MAX]; /* S_LOOP: the body of a counted loop on x27 */
	unsigned nloop, count;
};

struct gen {
	uint64_t s;
	struct slot slot[MAX_SLOTS + 1];
	unsigned n;
};

static uint64_t rnd(struct gen *g)
{
	/* xorshift64* */
	g->s ^= g->s >> 12;
	g->s ^= g->s << 25;
	g->s ^= g->s >> 27;
	return g->s * 0x2545f4914f6cdd1dull;
}

static unsigned below(struct gen *g, unsigned n)
{
	return (unsigned)(rnd(g) % n);
}

static uint32_t r_type(unsigned f7, unsigned rs2, unsigned rs1, unsigned f3, unsigned rd, unsigned opc)
{
	return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opc;
}

static uint32_t i_type(int32_t imm, unsigned rs1, unsigned f3, unsigned rd, unsigned opc)
{
	return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opc;
}

static uint32_t s_type(int32_t imm, unsigned rs2, unsigned rs1, unsigned f3)
{
	uint32_t u = (uint32_t)imm;
	return ((u >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 0x1f) << 7 | OPC_STORE;
}

/* fsw (f3 2) / fsd (f3 3) of f[rs2] at imm(x[rs1]). */
static uint32_t s_fp(int32_t imm, unsigned rs2, unsigned rs1, unsigned f3)
{
	return (s_type(imm, rs2, rs1, f3) & ~0x7fu) | OPC_STORE_FP;
}

static uint32_t b_type(int32_t imm, unsigned rs2, unsigned rs1, unsigned f3)
{
	uint32_t u = (uint32_t)imm;
	return ((u >> 12) & 1) << 31 | ((u >> 5) & 0x3f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 |
	       ((u >> 1) & 0xf) << 8 | ((u >> 11) & 1) << 7 | OPC_BRANCH;
}

static uint32_t j_type(int32_t imm, unsigned rd)
{
	uint32_t u = (uint32_t)imm;
	return ((u >> 20) & 1) << 31 | ((u >> 1) & 0x3ff) << 21 | ((u >> 11) & 1) << 20 | ((u >> 12) & 0xff) << 12 |
	       rd << 7 | OPC_JAL;
}

static uint32_t u_type(uint32_t imm20, unsigned rd, unsigned opc)
{
	return (imm20 & 0xfffff) << 12 | rd << 7 | opc;
}

static uint32_t csr(unsigned f3, unsigned csr_no, unsigned rs1, unsigned rd)
{
	return csr_no << 20 | rs1 << 15 | f3 << 12 | rd << 7 | OPC_SYSTEM;
}

static uint16_t c_j(int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	return (uint16_t)(0x5u << 13 | ((u >> 11) & 1) << 12 | ((u >> 4) & 1) << 11 | ((u >> 8) & 3) << 9 |
			  ((u >> 10) & 1) << 8 | ((u >> 6) & 1) << 7 | ((u >> 7) & 1) << 6 | ((u >> 1) & 7) << 3 |
			  ((u >> 5) & 1) << 2 | 1);
}

static uint16_t c_bz(unsigned f3, int32_t imm, unsigned rs1p)
{
	uint32_t u = (uint32_t)imm;
	return (uint16_t)(f3 << 13 | ((u >> 8) & 1) << 12 | ((u >> 3) & 3) << 10 | rs1p << 7 | ((u >> 6) & 3) << 5 |
			  ((u >> 1) & 3) << 3 | ((u >> 5) & 1) << 2 | 1);
}

/* A destination the body may write (not a reserved register). */
static unsigned rd_any(struct gen *g)
{
	static const uint8_t regs[] = { 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23 };
	return regs[below(g, sizeof(regs))];
}

static unsigned rs_any(struct gen *g)
{
	return below(g, 32);
}

/* x9..x15 as a 3-bit compressed register number (x8 is the scratch base). */
static unsigned rdp(struct gen *g)
{
	return 1 + below(g, 7);
}

static int32_t simm(struct gen *g, unsigned bits)
{
	return (int32_t)(rnd(g) & ((1u << bits) - 1)) - (int32_t)(1u << (bits - 1));
}

static void word(struct slot *s, uint32_t w)
{
	s->kind = S_WORD;
	s->word = w;
	s->len = 4;
}

static void half(struct slot *s, uint16_t h)
{
	s->kind = S_HALF;
	s->word = h;
	s->len = 2;
}

/* A CSR to read: machine state, the pending interrupts, the counters (which read this
 * instruction's icount), or one that does not exist (an illegal instruction). */
static unsigned csr_read_any(struct gen *g)
{
	static const uint16_t csrs[] = { CSR_MSTATUS, CSR_MSCRATCH, CSR_MIE, CSR_MIP, CSR_CYCLE,
					 CSR_TIME, CSR_INSTRET, CSR_MCYCLE, CSR_MINSTRET, 0x7ff };
	return csrs[below(g, sizeof(csrs) / sizeof(csrs[0]))];
}

static void gen_alu(struct gen *g, struct slot *s)
{
	static const uint8_t op_f3[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	unsigned rd = rd_any(g), rs1 = rs_any(g), rs2 = rs_any(g);
	switch (below(g, 6)) {
	case 0: { /* OP-IMM */
		unsigned f3 = op_f3[below(g, 8)];
		if (f3 == 1)
			word(s, i_type((int32_t)below(g, 64), rs1, 1, rd, OPC_OP_IMM));
		else if (f3 == 5)
			word(s, i_type((int32_t)(below(g, 64) | (below(g, 2) ? 0x400 : 0)), rs1, 5, rd, OPC_OP_IMM));
		else
			word(s, i_type(simm(g, 12), rs1, f3, rd, OPC_OP_IMM));
		return;
	}
	case 1: { /* OP: base, SUB/SRA and M */
		unsigned f3 = below(g, 8), kind = below(g, 3);
		unsigned f7 = kind == 2 ? 1 : (kind == 1 && (f3 == 0 || f3 == 5)) ? 0x20 : 0;
		word(s, r_type(f7, rs2, rs1, f3, rd, OPC_OP));
		return;
	}
	case 2: { /* OP-IMM-32 */
		static const uint8_t f3s[] = { 0, 1, 5 };
		unsigned f3 = f3s[below(g, 3)];
		if (f3 == 0)
			word(s, i_type(simm(g, 12), rs1, 0, rd, OPC_OP_IMM_32));
		else
			word(s, i_type((int32_t)(below(g, 32) | (f3 == 5 && below(g, 2) ? 0x400 : 0)), rs1, f3, rd,
				       OPC_OP_IMM_32));
		return;
	}
	case 3: { /* OP-32 */
		static const uint8_t base_f3[] = { 0, 1, 5 };
		static const uint8_t m_f3[] = { 0, 4, 5, 6, 7 };
		unsigned k = below(g, 3);
		if (k == 0)
			word(s, r_type(0, rs2, rs1, base_f3[below(g, 3)], rd, OPC_OP_32));
		else if (k == 1)
			word(s, r_type(0x20, rs2, rs1, below(g, 2) ? 0 : 5, rd, OPC_OP_32));
		else
			word(s, r_type(1, rs2, rs1, m_f3[below(g, 5)], rd, OPC_OP_32));
		return;
	}
	case 4:
		word(s, u_type((uint32_t)rnd(g), rd, below(g, 2) ? OPC_LUI : OPC_AUIPC));
		return;
	default: /* small constants, so that divisions by zero and -1 and equal operands come up */
		word(s, i_type((int32_t)below(g, 5) - 2, 0, 0, rd, OPC_OP_IMM));
		return;
	}
}

/* Double-precision arithmetic, conversions, moves and compares with any rounding mode (5 and 6
 * are reserved: illegal), and some fused multiply-adds: both engines run the same FPU code, what
 * is tested is how the JIT calls it (x0 kept zero, exceptions at the right pc and icount). */
static void gen_fp(struct gen *g, struct slot *s)
{
	static const uint8_t funct7[] = { 0x01, 0x05, 0x09, 0x0d, 0x2d, 0x15, 0x69, 0x61, 0x71, 0x79, 0x51, 0x11 };
	unsigned rd = below(g, 2) ? rd_any(g) : below(g, 32), rs1 = below(g, 32), rs2 = below(g, 32);
	unsigned rm = below(g, 8);
	switch (below(g, 10)) {
	case 0: /* fld/flw from the scratch area, the MMIO register (an icount) or anywhere */
		if (below(g, 3))
			word(s, i_type((int32_t)below(g, 2100) - 64, 8, 2 + below(g, 2), rd & 31, 0x07));
		else
			word(s, i_type(0, below(g, 2) ? 28 : rs1, 3, rd & 31, 0x07));
		return;
	case 1: { /* c.fld / c.fsd off(x8) */
		unsigned o = below(g, 32) * 8;
		half(s, (uint16_t)((below(g, 2) ? 1u : 5u) << 13 | ((o >> 3) & 7) << 10 | 0u << 7 |
				   ((o >> 6) & 3) << 5 | rdp(g) << 2));
		return;
	}
	case 2: /* fsw/fsd to the scratch area, the MMIO register, over the body or anywhere */
		switch (below(g, 6)) {
		case 0: case 1: case 2:
			word(s, s_fp((int32_t)below(g, 2100) - 64, rs2, 8, 2 + below(g, 2)));
			return;
		case 3:
			word(s, s_fp(below(g, 2) ? 0 : 8, rs2, 28, 2 + below(g, 2)));
			return;
		case 4:
			word(s, s_fp((int32_t)(below(g, 2040 / 4) * 4), rs2, 25, 2));
			return;
		default:
			word(s, s_fp(simm(g, 6), rs2, rs1, 2 + below(g, 2)));
			return;
		}
	default:
		break;
	}
	if (below(g, 5) == 0) {
		unsigned rs3 = below(g, 32);
		word(s, rs3 << 27 | 1u << 25 | rs2 << 20 | rs1 << 15 | rm << 12 | rd << 7 | (0x43u + 4 * below(g, 4)));
		return;
	}
	unsigned f7 = funct7[below(g, sizeof(funct7))];
	if (f7 == 0x69 || f7 == 0x61)
		rs2 = below(g, 4); /* fcvt.d.w/wu/l/lu and back */
	if (f7 == 0x2d || f7 == 0x71 || f7 == 0x79)
		rs2 = 0;
	if (f7 == 0x71 || f7 == 0x79)
		rm = below(g, 2);
	word(s, r_type(f7, rs2, rs1, rm, rd, 0x53));
}

static void gen_compressed(struct gen *g, struct slot *s)
{
	unsigned rd = rd_any(g), rs2 = 1 + below(g, 31);
	int32_t imm6 = simm(g, 6);
	uint32_t i6 = (uint32_t)imm6 & 0x3f;
	switch (below(g, 12)) {
	case 0: half(s, (uint16_t)(0u << 13 | (i6 >> 5) << 12 | rd << 7 | (i6 & 31) << 2 | 1)); return; /* c.addi */
	case 1: half(s, (uint16_t)(1u << 13 | (i6 >> 5) << 12 | rd << 7 | (i6 & 31) << 2 | 1)); return; /* c.addiw */
	case 2: half(s, (uint16_t)(2u << 13 | (i6 >> 5) << 12 | rd << 7 | (i6 & 31) << 2 | 1)); return; /* c.li */
	case 3: { /* c.srli / c.srai / c.andi */
		unsigned sub = below(g, 3);
		half(s, (uint16_t)(4u << 13 | (i6 >> 5) << 12 | sub << 10 | rdp(g) << 7 | (i6 & 31) << 2 | 1));
		return;
	}
	case 4: { /* c.sub/xor/or/and, c.subw/addw */
		unsigned w = below(g, 2), op = w ? below(g, 2) : below(g, 4);
		half(s, (uint16_t)(4u << 13 | w << 12 | 3u << 10 | rdp(g) << 7 | op << 5 | rdp(g) << 2 | 1));
		return;
	}
	case 5: half(s, (uint16_t)(0u << 13 | (i6 >> 5) << 12 | rd << 7 | (i6 & 31) << 2 | 2)); return; /* c.slli */
	case 6: half(s, (uint16_t)(4u << 13 | below(g, 2) << 12 | rd << 7 | rs2 << 2 | 2)); return; /* c.mv/c.add */
	case 7: { /* c.lw / c.ld off(x8) */
		unsigned d = below(g, 2), off = below(g, 32) * (d ? 8 : 4);
		uint32_t mid = d ? ((off >> 6) & 3) << 5 : (((off >> 2) & 1) << 6 | ((off >> 6) & 1) << 5);
		half(s, (uint16_t)((2u + d) << 13 | ((off >> 3) & 7) << 10 | 0u << 7 | mid | rdp(g) << 2));
		return;
	}
	case 8: { /* c.sw / c.sd off(x8) */
		unsigned d = below(g, 2), off = below(g, 32) * (d ? 8 : 4);
		uint32_t mid = d ? ((off >> 6) & 3) << 5 : (((off >> 2) & 1) << 6 | ((off >> 6) & 1) << 5);
		half(s, (uint16_t)((6u + d) << 13 | ((off >> 3) & 7) << 10 | 0u << 7 | mid | rdp(g) << 2));
		return;
	}
	case 9: half(s, 0x0001); return; /* c.nop */
	default: /* c.lui with a non-zero immediate */
		half(s, (uint16_t)(3u << 13 | (i6 >> 5) << 12 | (rd == 2 ? 3 : rd) << 7 | ((i6 & 31) | 1) << 2 | 1));
		return;
	}
}

/*
 * An A-extension instruction (AMO, LR or SC, word or doubleword, random aq/rl): mostly at the
 * scratch base (so an LR and a later SC meet the same reservation), sometimes over the body
 * (self-modifying code), at the MMIO register, or through any register (misaligned or faulting).
 */
static void gen_amo(struct gen *g, struct slot *s)
{
	static const uint8_t funct5[] = { 0x00, 0x01, 0x02, 0x02, 0x03, 0x03, 0x04, 0x08, 0x0c,
					  0x10, 0x14, 0x18, 0x1c };
	static const uint8_t base[] = { 8, 8, 8, 8, 8, 25, 28, 0 };
	unsigned f5 = funct5[below(g, sizeof(funct5))], rs1 = base[below(g, sizeof(base))];
	unsigned rs2 = f5 == 0x02 ? 0 : rs_any(g);
	if (rs1 == 0)
		rs1 = rs_any(g);
	word(s, f5 << 27 | below(g, 4) << 25 | rs2 << 20 | rs1 << 15 | (2 + below(g, 2)) << 12 |
			rd_any(g) << 7 | OPC_AMO);
}

static void gen_memory(struct gen *g, struct slot *s)
{
	unsigned rd = rd_any(g), f3;
	switch (below(g, 10)) {
	case 9:
		gen_amo(g, s);
		return;
	case 0: case 1: case 2: /* load from the scratch area, misaligned sometimes */
		f3 = below(g, 7);
		word(s, i_type((int32_t)below(g, 2100) - 64, 8, f3, rd, OPC_LOAD));
		return;
	case 3: case 4: /* store to the scratch area */
		word(s, s_type((int32_t)below(g, 2100) - 64, rs_any(g), 8, below(g, 4)));
		return;
	case 5: /* the MMIO register: this instruction's icount */
		word(s, i_type(0, 28, below(g, 2) ? 3 : 2, rd, OPC_LOAD));
		return;
	case 6: /* through an arbitrary register: mostly an access fault */
		if (below(g, 2))
			word(s, i_type(simm(g, 6), rs_any(g), below(g, 7), rd, OPC_LOAD));
		else
			word(s, s_type(simm(g, 6), rs_any(g), rs_any(g), below(g, 4)));
		return;
	case 7: /* over the body: self-modifying code, a valid word or garbage */
		word(s, s_type((int32_t)(below(g, 2040 / 4) * 4), below(g, 3) ? 24 : rs_any(g), 25, 2));
		return;
	default: /* MMIO writes: ack the timer (offset 0) or ask for a stop (offset 8) */
		word(s, s_type(below(g, 2) ? 0 : 8, 0, 28, 2));
		return;
	}
}

static void gen_slot(struct gen *g, unsigned i, unsigned nslots)
{
	struct slot *s = &g->slot[i];
	unsigned t = i + 1 + below(g, 8);
	s->target = t > nslots ? nslots : t;
	unsigned pick = below(g, 100);
	if (pick < 30) {
		gen_alu(g, s);
	} else if (pick < 50) {
		gen_compressed(g, s);
	} else if (pick < 70) {
		gen_memory(g, s);
	} else if (pick < 78) {
		static const uint8_t bf3[] = { 0, 1, 4, 5, 6, 7 };
		s->kind = S_BRANCH;
		s->len = 4;
		s->f3 = bf3[below(g, 6)];
		s->rs1 = rs_any(g);
		s->rs2 = below(g, 3) ? rs_any(g) : s->rs1;
	} else if (pick < 81) {
		s->kind = S_JAL;
		s->len = 4;
		s->rd = below(g, 2) ? 0 : rd_any(g);
	} else if (pick < 84) {
		s->kind = S_CJ;
		s->len = 2;
	} else if (pick < 88) {
		s->kind = S_CBZ;
		s->len = 2;
		s->f3 = 6 + below(g, 2);
		s->rs1 = below(g, 8);
	} else if (pick < 90) {
		s->kind = S_JALR_PAIR;
		s->len = 8;
		s->rd = rd_any(g);
		s->rs2 = below(g, 2) ? 0 : rd_any(g); /* the link register of the jalr */
	} else if (pick < 91) {
		s->kind = S_LOOP;
		s->count = 1 + below(g, 40);
		s->nloop = 1 + below(g, LOOP_BODY_MAX);
		for (unsigned k = 0; k < s->nloop; k++) {
			struct slot tmp;
			memset(&tmp, 0, sizeof(tmp));
			if (below(g, 3))
				gen_alu(g, &tmp);
			else
				gen_memory(g, &tmp);
			s->loop[k] = tmp.word;
		}
		s->len = 4 * (s->nloop + 3);
	} else if (pick < 92) {
		s->kind = S_SMC_AHEAD;
		s->f3 = below(g, 4); /* 0: by a store, 1: by an AMO, 2: by an FP store, 3: by DMA */
		s->len = 4 * (SMC_AHEAD_WORDS + (s->f3 == 3 ? 2 : 0));
	} else if (pick < 93) {
		static const uint32_t sys[] = { INSN_ECALL, INSN_EBREAK, 0, 0xffffffffu, INSN_FENCE, INSN_FENCE_I };
		word(s, sys[below(g, 6)]);
		if (s->word == 0 || s->word == 0xffffffffu) {
			/* an illegal 16-bit zero, or an illegal 32-bit word */
			if (s->word == 0)
				half(s, 0);
		}
	} else if (pick < 95) {
		gen_fp(g, s);
	} else if (pick < 97) {
		/* CSR traffic: read or write mscratch, read mstatus, switch interrupts off or on
		 * (mstatus.MIE; on, a pending timer interrupt is taken right after the write) */
		unsigned kind = below(g, 3);
		if (kind == 0)
			word(s, csr(below(g, 2) ? 1 : 2, CSR_MSCRATCH, rs_any(g), rd_any(g)));
		else if (kind == 1)
			word(s, csr(below(g, 2) ? 2 : 7, csr_read_any(g), 0, rd_any(g)));
		else
			word(s, csr(below(g, 2) ? 6 : 7, CSR_MSTATUS, MSTATUS_MIE_UIMM, rd_any(g)));
	} else {
		word(s, i_type(0, 0, 0, 0, OPC_OP_IMM)); /* nop */
	}
}

static void put32(uint8_t *p, uint32_t w)
{
	memcpy(p, &w, 4);
}

static void put16(uint8_t *p, uint16_t h)
{
	memcpy(p, &h, 2);
}

/* Writes a sequence of 32-bit words at ram + *at. */
static void emit(uint8_t *ram, unsigned *at, uint32_t w)
{
	put32(ram + *at, w);
	*at += 4;
}

void rv_gen_program(uint8_t *ram, uint64_t seed)
{
	static struct gen g;
	memset(&g, 0, sizeof(g));
	g.s = seed * 0x9e3779b97f4a7c15ull + 1;
	memset(ram, 0, GEN_RAM_SIZE);
	for (unsigned i = GEN_SCRATCH_OFF - 0x100; i < GEN_SCRATCH_OFF + 0x1000; i++)
		ram[i] = (uint8_t)rnd(&g);

	/* Prologue at the base. */
	unsigned at = 0;
	emit(ram, &at, u_type(GEN_SCRATCH_OFF >> 12, 8, OPC_AUIPC));            /* x8 = scratch */
	emit(ram, &at, u_type(0, 25, OPC_AUIPC));                               /* x25 = body */
	emit(ram, &at, i_type((int32_t)GEN_BODY_OFF - 4, 25, 0, 25, OPC_OP_IMM));
	emit(ram, &at, u_type(GEN_MMIO_BASE >> 12, 28, OPC_LUI));               /* x28 = MMIO */
	emit(ram, &at, u_type(0xf4, 26, OPC_LUI));                              /* x26 = ~1e6 */
	emit(ram, &at, u_type(0x00128, 24, OPC_LUI));                           /* x24 = addi x5,x5,1 */
	emit(ram, &at, i_type(0x293, 24, 0, 24, OPC_OP_IMM));
	unsigned here = at;
	emit(ram, &at, u_type(GEN_HANDLER_OFF >> 12, 31, OPC_AUIPC));           /* mtvec = handler */
	emit(ram, &at, i_type(-(int32_t)here, 31, 0, 31, OPC_OP_IMM));
	emit(ram, &at, csr(1, CSR_MTVEC, 31, 0));
	emit(ram, &at, i_type(0x80, 0, 0, 31, OPC_OP_IMM));                     /* mie = MTIE */
	emit(ram, &at, csr(1, CSR_MIE, 31, 0));
	emit(ram, &at, csr(6, CSR_MSTATUS, 8, 0));                              /* mstatus.MIE */
	emit(ram, &at, u_type(2, 31, OPC_LUI));                                 /* mstatus.FS = initial */
	emit(ram, &at, csr(2, CSR_MSTATUS, 31, 0));
	for (unsigned r = 1; r < 24; r++) {
		if (r == 8)
			continue;
		emit(ram, &at, u_type((uint32_t)rnd(&g), r, OPC_LUI));
		emit(ram, &at, i_type(simm(&g, 12), r, 0, r, OPC_OP_IMM));
	}
	emit(ram, &at, j_type((int32_t)(GEN_BODY_OFF - at), 0));
	if (at > GEN_BODY_OFF)
		abort(); /* the prologue outgrew its room: a bug of this file */

	/* The body: slots, layout, encoding. */
	unsigned nslots = 0, size = 0;
	while (nslots < MAX_SLOTS && size + 8 <= GEN_BODY_MAX - 8) {
		gen_slot(&g, nslots, MAX_SLOTS);
		size += g.slot[nslots].len;
		nslots++;
	}
	for (unsigned i = 0, off = 0; i <= nslots; i++) {
		g.slot[i].off = off;
		if (i < nslots)
			off += g.slot[i].len;
	}
	for (unsigned i = 0; i < nslots; i++) {
		struct slot *s = &g.slot[i];
		unsigned tgt = s->target > nslots ? nslots : s->target;
		int32_t rel = (int32_t)g.slot[tgt].off - (int32_t)s->off;
		uint8_t *p = ram + GEN_BODY_OFF + s->off;
		switch (s->kind) {
		case S_WORD: put32(p, s->word); break;
		case S_HALF: put16(p, (uint16_t)s->word); break;
		case S_BRANCH: put32(p, b_type(rel, s->rs2, s->rs1, s->f3)); break;
		case S_JAL: put32(p, j_type(rel, s->rd)); break;
		case S_CJ: put16(p, c_j(rel)); break;
		case S_CBZ: put16(p, c_bz(s->f3, rel, s->rs1)); break;
		case S_JALR_PAIR:
			put32(p, u_type(0, s->rd, OPC_AUIPC));
			put32(p + 4, i_type(rel, s->rd, 0, s->rs2, OPC_JALR));
			break;
		case S_SMC_AHEAD:
			/* A store into an instruction two ahead in the same block, which changes it on
			 * every eighth pass of the body (x26 % 8 == 0: addi x5 becomes addi x4), after
			 * the block has run often enough to be translated. */
			put32(p, i_type(7, 26, 7, 23, OPC_OP_IMM));           /* andi x23, x26, 7 */
			put32(p + 4, i_type(1, 23, 3, 23, OPC_OP_IMM));       /* sltiu x23, x23, 1 */
			put32(p + 8, i_type(7, 23, 1, 23, OPC_OP_IMM));       /* slli x23, x23, 7 */
			put32(p + 12, r_type(0, 24, 23, 4, 23, OPC_OP));      /* xor x23, x23, x24 */
			put32(p + 16, u_type(0, 22, OPC_AUIPC));              /* auipc x22, 0 */
			if (s->f3 == 3) {
				/* The same change made by the test device's DMA (rv_gen.h), to the first
				 * instruction of the subroutine at GEN_DMA_SUB_OFF, which is then called: no
				 * store of the hart ever writes its page, so only the DMA can tell the JIT
				 * (sub is its distance from the auipc, which is 20 bytes before the jal). */
				int32_t sub = (int32_t)GEN_DMA_SUB_OFF - (int32_t)(GEN_BODY_OFF + s->off + 16);
				put32(p + 16, u_type((uint32_t)(sub + 0x800) >> 12, 22, OPC_AUIPC)); /* auipc x22 */
				put32(p + 20, i_type(sub - ((sub + 0x800) & ~0xfff), 22, 0, 22, OPC_OP_IMM));
				put32(p + 24, i_type(32, 23, 1, 23, OPC_OP_IMM)); /* slli x23, x23, 32 */
				put32(p + 28, r_type(0, 22, 23, 6, 23, OPC_OP));  /* or x23, x23, x22 */
				put32(p + 32, s_type(GEN_MMIO_DMA, 23, 28, 3));   /* sd x23, DMA(x28) */
				/* jal x1, sub: a direct jump to another page, which chains */
				put32(p + 36, j_type(sub - 20, 1));
				break;
			}
			if (s->f3 == 0) {
				put32(p + 20, s_type(12, 23, 22, 2));         /* sw x23, 12(x22) */
				put32(p + 24, i_type(3, 7, 0, 7, OPC_OP_IMM)); /* addi x7, x7, 3 */
			} else if (s->f3 == 2) { /* the same change made by an FP store */
				put32(p + 20, 0x78u << 25 | 23u << 15 | 7u << 7 | 0x53u); /* fmv.w.x f7, x23 */
				put32(p + 24, s_fp(12, 7, 22, 2));              /* fsw f7, 12(x22) */
			} else { /* the same change made by an AMO, into the next instruction */
				put32(p + 20, i_type(12, 22, 0, 22, OPC_OP_IMM)); /* addi x22, x22, 12 */
				put32(p + 24, 1u << 27 | 23u << 20 | 22u << 15 | 2u << 12 | OPC_AMO);
				/* amoswap.w x0, x23, (x22) */
			}
			put32(p + 28, 0x00128293u);                           /* addi x5, x5, 1 */
			break;
		case S_LOOP: /* li x27, count; 1: body; addi x27, x27, -1; bnez x27, 1b */
			put32(p, i_type((int32_t)s->count, 0, 0, 27, OPC_OP_IMM));
			for (unsigned k = 0; k < s->nloop; k++)
				put32(p + 4 + 4 * k, s->loop[k]);
			put32(p + 4 + 4 * s->nloop, i_type(-1, 27, 0, 27, OPC_OP_IMM));
			put32(p + 8 + 4 * s->nloop, b_type(-(int32_t)(4 * (s->nloop + 1)), 0, 27, 1));
			break;
		}
	}
	/* The loop: x26 -= 1, back to the body while non-zero, then spin. */
	at = GEN_BODY_OFF + g.slot[nslots].off;
	emit(ram, &at, i_type(-1, 26, 0, 26, OPC_OP_IMM));
	emit(ram, &at, b_type(-(int32_t)(at - GEN_BODY_OFF), 0, 26, 1));
	emit(ram, &at, j_type(0, 0));

	/* The subroutine the DMA rewrites: addi x5, x5, 1 (or x4); ret. */
	at = GEN_DMA_SUB_OFF;
	emit(ram, &at, 0x00128293u);
	emit(ram, &at, i_type(0, 1, 0, 0, OPC_JALR));

	/* The trap handler: skip the faulting instruction (2 or 4 bytes), or ack the timer. */
	at = GEN_HANDLER_OFF;
	emit(ram, &at, csr(2, CSR_MCAUSE, 0, 31));
	emit(ram, &at, b_type(4 * 11, 0, 31, 4));                               /* blt x31, x0, irq */
	emit(ram, &at, csr(2, CSR_MEPC, 0, 31));
	emit(ram, &at, i_type(0, 31, 5, 30, OPC_LOAD));                         /* lhu x30, 0(x31) */
	emit(ram, &at, i_type(3, 30, 7, 30, OPC_OP_IMM));                       /* andi x30, x30, 3 */
	emit(ram, &at, i_type(3, 0, 0, 29, OPC_OP_IMM));                        /* li x29, 3 */
	emit(ram, &at, b_type(12, 29, 30, 0));                                  /* beq x30, x29, +12 */
	emit(ram, &at, i_type(2, 31, 0, 31, OPC_OP_IMM));
	emit(ram, &at, j_type(8, 0));
	emit(ram, &at, i_type(4, 31, 0, 31, OPC_OP_IMM));
	emit(ram, &at, csr(1, CSR_MEPC, 31, 0));
	emit(ram, &at, INSN_MRET);
	emit(ram, &at, s_type(0, 0, 28, 2));                                    /* irq: sw x0, 0(x28) */
	emit(ram, &at, INSN_MRET);
}
