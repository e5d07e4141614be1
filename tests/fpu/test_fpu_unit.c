/*
 * test_fpu_unit.c — unit tests of vm/cpu_fpu.c, driving fpu_execute() on a bare struct cpu.
 *
 * The file stands in for the integer core: it defines cpu_load/cpu_store over a small test
 * memory and records cpu_raise_exception calls. Three kinds of tests:
 *  - tables of edge cases with hand-derived results and fflags (signed zeros, subnormals,
 *    infinities, sNaN/qNaN, NaN boxing, RMM ties, saturating conversions);
 *  - decode checks (reserved rounding modes, FS off, reserved encodings, loads and stores);
 *  - a seeded random cross-check against the host's IEEE arithmetic (x86 SSE also detects
 *    tininess after rounding) in RNE/RTZ/RDN/RUP, where the host has those modes; RMM and NaN
 *    payload rules are checked by the tables here and by the QEMU differential test.
 */
#include <fenv.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "util/insn.h"
#include "vm/cpu_internal.h"

/* GCC ignores FENV_ACCESS; -frounding-math (set in CMakeLists.txt) and volatile do its job. */

/* ---- stand-ins for the integer core ---- */

#define TEST_MEM_BASE 0x1000u
#define TEST_MEM_SIZE 64u

static uint8_t test_mem[TEST_MEM_SIZE];
static int exceptions_raised;
static uint64_t last_cause, last_tval;

void cpu_raise_exception(struct cpu *cpu, enum cpu_exception cause, uint64_t tval)
{
	exceptions_raised++;
	last_cause = cause;
	last_tval = tval;
	cpu->exception_pending = true;
	cpu->exception_cause = cause;
	cpu->exception_tval = tval;
}

bool cpu_load(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t *value)
{
	uint64_t v = 0;

	if (vaddr < TEST_MEM_BASE || vaddr - TEST_MEM_BASE > TEST_MEM_SIZE - size) {
		cpu_raise_exception(cpu, EXC_LOAD_ACCESS, vaddr);
		return false;
	}
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)test_mem[vaddr - TEST_MEM_BASE + i] << (8 * i);
	*value = v;
	return true;
}

bool cpu_store(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t value)
{
	if (vaddr < TEST_MEM_BASE || vaddr - TEST_MEM_BASE > TEST_MEM_SIZE - size) {
		cpu_raise_exception(cpu, EXC_STORE_ACCESS, vaddr);
		return false;
	}
	for (unsigned i = 0; i < size; i++)
		test_mem[vaddr - TEST_MEM_BASE + i] = (uint8_t)(value >> (8 * i));
	return true;
}

/* ---- instruction encoding ---- */

enum { S = 0, D = 1 };
enum { RNE = 0, RTZ = 1, RDN = 2, RUP = 3, RMM = 4, DYN = 7 };
enum { NX = FFLAG_NX, UF = FFLAG_UF, OF = FFLAG_OF, DZ = FFLAG_DZ, NV = FFLAG_NV };
/* funct5 values of OP-FP */
enum { F_ADD = 0x00, F_SUB = 0x01, F_MUL = 0x02, F_DIV = 0x03, F_SGNJ = 0x04, F_MINMAX = 0x05, F_CVT_FF = 0x08,
       F_SQRT = 0x0b, F_CMP = 0x14, F_CVT_IF = 0x18, F_CVT_FI = 0x1a, F_MV_XF = 0x1c, F_MV_FX = 0x1e };
/* register numbers used by the tables: operands in f1..f3 / x1, result in f4 / x4 */
enum { RA = 1, RB = 2, RC = 3, RD = 4 };

static uint32_t op_fp(unsigned funct5, unsigned fmt, unsigned rs2, unsigned rs1, unsigned funct3, unsigned rd)
{
	return insn_enc_r(OPC_OP_FP, funct3, funct5 << 2 | fmt, rd, rs1, rs2);
}

static uint32_t fused(unsigned opcode, unsigned fmt, unsigned rm)
{
	return insn_enc_r(opcode, rm, (unsigned)RC << 2 | fmt, RD, RA, RB); /* R4: rs3 in funct7's top bits */
}

#define BOX(v) (0xffffffff00000000ull | (uint32_t)(v))
#define S_QNAN 0x7fc00000u
#define D_QNAN 0x7ff8000000000000ull

static struct cpu cpu;

static int setup(void **state)
{
	memset(&cpu, 0, sizeof(cpu));
	memset(test_mem, 0, sizeof(test_mem));
	cpu.mstatus = 1ull << MSTATUS_FS_SHIFT; /* FS = Initial */
	exceptions_raised = 0;
	return 0;
}

/* Runs one instruction from a clean fflags state, expecting no exception. */
static void run(uint32_t insn)
{
	cpu.fflags = 0;
	cpu.exception_pending = false;
	fpu_execute(&cpu, insn);
	assert_false(cpu.exception_pending);
}

static void expect_illegal(uint32_t insn)
{
	int before = exceptions_raised;

	fpu_execute(&cpu, insn);
	assert_int_equal(exceptions_raised, before + 1);
	assert_int_equal(last_cause, EXC_ILLEGAL_INSN);
	assert_int_equal(last_tval, insn);
}

/* Fails the test, naming the table row, unless the result and fflags are as expected. */
static void check_case(size_t row, uint64_t got, uint64_t want, uint32_t want_flags)
{
	if (got != want || cpu.fflags != want_flags) {
		print_error("row %zu: got %016llx flags %02x, want %016llx flags %02x\n", row, (unsigned long long)got,
			    cpu.fflags, (unsigned long long)want, want_flags);
		fail();
	}
}

/* ---- table-driven arithmetic cases ---- */

struct arith_case {
	unsigned funct5; /* OP-FP funct5, or a fused opcode (>= 0x40) */
	unsigned fmt, rm;
	uint64_t a, b, c; /* single operands are given unboxed and boxed here unless noted */
	uint64_t expect;
	uint32_t flags;
};

#define SGL(x) (uint64_t)(x)

static const struct arith_case arith_cases[] = {
	/* signed zeros */
	{ F_ADD, S, RNE, 0x00000000, 0x80000000, 0, 0x00000000, 0 },
	{ F_ADD, S, RDN, 0x00000000, 0x80000000, 0, 0x80000000, 0 },
	{ F_ADD, S, RNE, 0x80000000, 0x80000000, 0, 0x80000000, 0 },
	{ F_SUB, D, RNE, 0x3ff0000000000000, 0x3ff0000000000000, 0, 0, 0 },
	{ F_SUB, D, RDN, 0x3ff0000000000000, 0x3ff0000000000000, 0, 0x8000000000000000, 0 },
	{ F_MUL, S, RNE, 0x80000000, 0x3f800000, 0, 0x80000000, 0 },
	{ F_DIV, D, RNE, 0x8000000000000000, 0xbff0000000000000, 0, 0, 0 },
	{ F_SQRT, S, RNE, 0x80000000, 0, 0, 0x80000000, 0 },
	/* infinities and invalid operations */
	{ F_ADD, S, RNE, 0x7f800000, 0xff800000, 0, S_QNAN, NV },
	{ F_MUL, D, RNE, 0x7ff0000000000000, 0, 0, D_QNAN, NV },
	{ F_DIV, S, RNE, 0, 0, 0, S_QNAN, NV },
	{ F_DIV, S, RNE, 0x7f800000, 0xff800000, 0, S_QNAN, NV },
	{ F_DIV, S, RNE, 0xbf800000, 0x00000000, 0, 0xff800000, DZ },
	{ F_DIV, D, RNE, 0x3ff0000000000000, 0x8000000000000000, 0, 0xfff0000000000000, DZ },
	{ F_DIV, S, RNE, 0x3f800000, 0x7f800000, 0, 0, 0 },
	{ F_SQRT, D, RNE, 0xbff0000000000000, 0, 0, D_QNAN, NV },
	{ F_SQRT, S, RNE, 0xff800000, 0, 0, S_QNAN, NV },
	{ F_SQRT, S, RNE, 0x7f800000, 0, 0, 0x7f800000, 0 },
	/* NaNs: canonical results, NV only for signaling inputs */
	{ F_ADD, S, RNE, 0x7fc12345, 0x3f800000, 0, S_QNAN, 0 },
	{ F_ADD, S, RNE, 0x7f812345, 0x3f800000, 0, S_QNAN, NV },
	{ F_MUL, D, RNE, 0xfff0000000000001, 0x7ff8000000000001, 0, D_QNAN, NV },
	{ F_SQRT, D, RNE, 0xfff8000000000000, 0, 0, D_QNAN, 0 },
	{ OPC_MADD, S, RNE, 0x7f800000, 0x00000000, 0x7fc00000, S_QNAN, NV }, /* inf*0 + qNaN is invalid */
	{ OPC_MADD, S, RNE, 0x3f800000, 0x3f800000, 0x7f800001, S_QNAN, NV },
	{ OPC_MADD, D, RNE, 0x7ff0000000000000, 0x3ff0000000000000, 0xfff0000000000000, D_QNAN, NV },
	/* exact results */
	{ F_ADD, S, RNE, 0x3f800000, 0x3f800000, 0, 0x40000000, 0 },
	{ F_SQRT, D, RNE, 0x4010000000000000, 0, 0, 0x4000000000000000, 0 },
	{ F_DIV, S, RNE, 0x40400000, 0x3fc00000, 0, 0x40000000, 0 },
	/* rounding: 1 + 2^-24 is an exact tie between 1 and 1 + 2^-23 in single */
	{ F_ADD, S, RNE, 0x3f800000, 0x33800000, 0, 0x3f800000, NX },
	{ F_ADD, S, RMM, 0x3f800000, 0x33800000, 0, 0x3f800001, NX },
	{ F_ADD, S, RUP, 0x3f800000, 0x33800000, 0, 0x3f800001, NX },
	{ F_ADD, S, RDN, 0x3f800000, 0x33800000, 0, 0x3f800000, NX },
	{ F_ADD, S, RTZ, 0x3f800000, 0x33800000, 0, 0x3f800000, NX },
	{ F_SUB, S, RMM, 0xbf800000, 0x33800000, 0, 0xbf800001, NX },
	{ F_SUB, S, RUP, 0xbf800000, 0x33800000, 0, 0xbf800000, NX },
	{ F_SUB, S, RDN, 0xbf800000, 0x33800000, 0, 0xbf800001, NX },
	/* 1 + 3*2^-24: tie between ...01 and ...02; RNE and RMM both pick ...02 */
	{ F_ADD, S, RNE, 0x3f800000, 0x34400000, 0, 0x3f800002, NX },
	{ F_ADD, S, RMM, 0x3f800000, 0x34400000, 0, 0x3f800002, NX },
	/* double tie: 1 + 2^-53 */
	{ F_ADD, D, RNE, 0x3ff0000000000000, 0x3ca0000000000000, 0, 0x3ff0000000000000, NX },
	{ F_ADD, D, RMM, 0x3ff0000000000000, 0x3ca0000000000000, 0, 0x3ff0000000000001, NX },
	/* 1/3 */
	{ F_DIV, D, RNE, 0x3ff0000000000000, 0x4008000000000000, 0, 0x3fd5555555555555, NX },
	{ F_DIV, D, RUP, 0x3ff0000000000000, 0x4008000000000000, 0, 0x3fd5555555555556, NX },
	{ F_DIV, D, RMM, 0x3ff0000000000000, 0x4008000000000000, 0, 0x3fd5555555555555, NX },
	/* sqrt(2) */
	{ F_SQRT, S, RNE, 0x40000000, 0, 0, 0x3fb504f3, NX },
	{ F_SQRT, S, RUP, 0x40000000, 0, 0, 0x3fb504f4, NX },
	/* overflow per rounding mode */
	{ F_MUL, S, RNE, 0x7f7fffff, 0x40000000, 0, 0x7f800000, OF | NX },
	{ F_MUL, S, RMM, 0x7f7fffff, 0x40000000, 0, 0x7f800000, OF | NX },
	{ F_MUL, S, RTZ, 0x7f7fffff, 0x40000000, 0, 0x7f7fffff, OF | NX },
	{ F_MUL, S, RDN, 0x7f7fffff, 0x40000000, 0, 0x7f7fffff, OF | NX },
	{ F_MUL, S, RUP, 0xff7fffff, 0x40000000, 0, 0xff7fffff, OF | NX },
	{ F_MUL, S, RDN, 0xff7fffff, 0x40000000, 0, 0xff800000, OF | NX },
	/* max + half an ulp rounds to infinity in RNE (overflow after rounding), stays in RTZ */
	{ F_ADD, D, RNE, 0x7fefffffffffffff, 0x7c90000000000000, 0, 0x7ff0000000000000, OF | NX },
	{ F_ADD, D, RTZ, 0x7fefffffffffffff, 0x7c90000000000000, 0, 0x7fefffffffffffff, NX },
	/* underflow: subnormal exact results raise nothing, inexact tiny results raise UF|NX */
	{ F_MUL, S, RNE, 0x00800000, 0x3f000000, 0, 0x00400000, 0 },
	{ F_MUL, S, RNE, 0x00000001, 0x3f000000, 0, 0x00000000, UF | NX },
	{ F_MUL, S, RMM, 0x00000001, 0x3f000000, 0, 0x00000001, UF | NX },
	{ F_MUL, S, RUP, 0x00000001, 0x3f000000, 0, 0x00000001, UF | NX },
	{ F_MUL, D, RMM, 0x8000000000000001, 0x3fe0000000000000, 0, 0x8000000000000001, UF | NX },
	{ F_MUL, D, RDN, 0x8000000000000001, 0x3fe0000000000000, 0, 0x8000000000000001, UF | NX },
	{ F_MUL, D, RUP, 0x8000000000000001, 0x3fe0000000000000, 0, 0x8000000000000000, UF | NX },
	/* 2^-126 (1 - 2^-24) is exact with 24 bits (tiny), and a subnormal tie */
	{ F_MUL, S, RNE, 0x00ffffff, 0x3f000000, 0, 0x00800000, UF | NX },
	{ F_MUL, S, RTZ, 0x00ffffff, 0x3f000000, 0, 0x007fffff, UF | NX },
	/* tininess after rounding: 2^-126 - 2^-151 rounds to 2^-126 with 24 bits in RNE: not tiny */
	{ OPC_MADD, S, RNE, 0x1a000000, 0x99800000, 0x00800000, 0x00800000, NX },
	{ OPC_MADD, S, RTZ, 0x1a000000, 0x99800000, 0x00800000, 0x007fffff, UF | NX },
	{ OPC_MADD, S, RMM, 0x1a000000, 0x99800000, 0x00800000, 0x00800000, NX },
	{ OPC_MADD, D, RNE, 0x1e50000000000000, 0x9e50000000000000, 0x0010000000000000, 0x0010000000000000, NX },
	{ OPC_MADD, D, RDN, 0x1e50000000000000, 0x9e50000000000000, 0x0010000000000000, 0x000fffffffffffff,
	  UF | NX },
	/* largest subnormal + smallest subnormal: exact */
	{ F_ADD, S, RNE, 0x007fffff, 0x00000001, 0, 0x00800000, 0 },
	{ F_SUB, D, RNE, 0x0010000000000000, 0x0000000000000001, 0, 0x000fffffffffffff, 0 },
	/* fused: one rounding; (1 + 2^-23)^2 - (1 + 2^-22) = 2^-46 exactly */
	{ OPC_MADD, S, RNE, 0x3f800001, 0x3f800001, 0xbf800002, 0x28800000, 0 },
	{ OPC_MSUB, S, RNE, 0x3f800001, 0x3f800001, 0x3f800002, 0x28800000, 0 },
	{ OPC_NMSUB, S, RNE, 0x3f800001, 0x3f800001, 0x3f800002, 0xa8800000, 0 },
	{ OPC_NMADD, S, RNE, 0x3f800001, 0x3f800001, 0xbf800002, 0xa8800000, 0 },
	/* fused zero signs: -(+0 * 1) - (+0) = -0; 0*1 + -0 = +0 in RNE, -0 in RDN */
	{ OPC_NMADD, D, RNE, 0, 0x3ff0000000000000, 0, 0x8000000000000000, 0 },
	{ OPC_MADD, D, RNE, 0, 0x3ff0000000000000, 0x8000000000000000, 0, 0 },
	{ OPC_MADD, D, RDN, 0, 0x3ff0000000000000, 0x8000000000000000, 0x8000000000000000, 0 },
	{ OPC_MADD, D, RNE, 0x3ff0000000000000, 0x3ff0000000000000, 0xbff0000000000000, 0, 0 },
	{ OPC_MADD, D, RDN, 0x3ff0000000000000, 0x3ff0000000000000, 0xbff0000000000000, 0x8000000000000000, 0 },
	/* fused RMM tie: 1*1 + 2^-24 */
	{ OPC_MADD, S, RMM, 0x3f800000, 0x3f800000, 0x33800000, 0x3f800001, NX },
	{ OPC_MADD, S, RNE, 0x3f800000, 0x3f800000, 0x33800000, 0x3f800000, NX },
	/* fused with a tiny addend far below the product: sticky only */
	{ OPC_MADD, D, RUP, 0x3ff0000000000000, 0x3ff0000000000000, 0x0000000000000001, 0x3ff0000000000001, NX },
	{ OPC_MSUB, D, RTZ, 0x3ff0000000000000, 0x3ff0000000000000, 0x0000000000000001, 0x3fefffffffffffff, NX },
	/* sign injection works on raw bits; NaN payloads pass through unchanged */
	{ F_SGNJ, S, 0, 0x7fc12345, 0x80000000, 0, 0xffc12345, 0 },
	{ F_SGNJ, S, 1, 0x3f800000, 0x80000000, 0, 0x3f800000, 0 },
	{ F_SGNJ, S, 2, 0xbf800000, 0x80000000, 0, 0x3f800000, 0 },
	{ F_SGNJ, D, 0, 0x7ff0000000000001, 0x8000000000000000, 0, 0xfff0000000000001, 0 },
	/* minimumNumber / maximumNumber */
	{ F_MINMAX, S, 0, 0x00000000, 0x80000000, 0, 0x80000000, 0 },
	{ F_MINMAX, S, 1, 0x80000000, 0x00000000, 0, 0x00000000, 0 },
	{ F_MINMAX, S, 0, 0x7fc00001, 0x3f800000, 0, 0x3f800000, 0 },
	{ F_MINMAX, S, 1, 0x3f800000, 0x7f800001, 0, 0x3f800000, NV },
	{ F_MINMAX, D, 0, 0x7ff0000000000001, 0x7ff8000000000002, 0, D_QNAN, NV },
	{ F_MINMAX, D, 1, 0x7ff8000000000001, 0x7ff8000000000002, 0, D_QNAN, 0 },
	{ F_MINMAX, D, 0, 0xbff0000000000000, 0x3ff0000000000000, 0, 0xbff0000000000000, 0 },
	{ F_MINMAX, D, 1, 0xfff0000000000000, 0xc000000000000000, 0, 0xc000000000000000, 0 },
	/* FCVT.S.D / FCVT.D.S (rs2 in the b column) */
	{ F_CVT_FF, S, RNE, 0x3ff0000010000000, 1, 0, 0x3f800000, NX },  /* tie, even */
	{ F_CVT_FF, S, RMM, 0x3ff0000010000000, 1, 0, 0x3f800001, NX },  /* tie, away */
	{ F_CVT_FF, S, RNE, 0x47f0000000000000, 1, 0, 0x7f800000, OF | NX },
	{ F_CVT_FF, S, RNE, 0x3690000000000000, 1, 0, 0x00000000, UF | NX }, /* 2^-150: tie to 0 */
	{ F_CVT_FF, S, RMM, 0x3690000000000000, 1, 0, 0x00000001, UF | NX },
	{ F_CVT_FF, S, RNE, 0x7ff0000000000001, 1, 0, S_QNAN, NV },
	{ F_CVT_FF, S, RNE, 0xfff8000000000123, 1, 0, S_QNAN, 0 },
	{ F_CVT_FF, D, RNE, 0x00000001, 0, 0, 0x36a0000000000000, 0 },
	{ F_CVT_FF, D, RNE, 0xff800000, 0, 0, 0xfff0000000000000, 0 },
	{ F_CVT_FF, D, RNE, 0x7f800001, 0, 0, D_QNAN, NV },
};

static void load_operand(unsigned reg, unsigned fmt, uint64_t v)
{
	cpu.f[reg] = fmt == S ? BOX(v) : v;
}

static void test_arith_table(void **state)
{
	for (size_t i = 0; i < sizeof(arith_cases) / sizeof(arith_cases[0]); i++) {
		const struct arith_case *t = &arith_cases[i];
		uint32_t insn;

		load_operand(RA, t->fmt, t->a);
		load_operand(RB, t->fmt, t->b);
		load_operand(RC, t->fmt, t->c);
		if (t->funct5 >= OPC_MADD) {
			insn = fused(t->funct5, t->fmt, t->rm);
		} else if (t->funct5 == F_SQRT) {
			insn = op_fp(t->funct5, t->fmt, 0, RA, t->rm, RD);
		} else if (t->funct5 == F_CVT_FF) {
			/* the operand has the other format */
			cpu.f[RA] = t->fmt == S ? t->a : BOX(t->a);
			insn = op_fp(t->funct5, t->fmt, (unsigned)t->b, RA, t->rm, RD);
		} else {
			insn = op_fp(t->funct5, t->fmt, RB, RA, t->rm, RD);
		}
		run(insn);
		check_case(i, cpu.f[RD], t->fmt == S ? BOX(t->expect) : t->expect, t->flags);
		assert_int_equal(cpu.mstatus & MSTATUS_FS_MASK, MSTATUS_FS_DIRTY);
		assert_true(cpu.mstatus & MSTATUS_SD);
	}
}

/* ---- conversions to and from integers ---- */

struct int_case {
	unsigned fmt, kind, rm; /* kind: 0 W, 1 WU, 2 L, 3 LU */
	uint64_t f;
	uint64_t expect;
	uint32_t flags;
};

static const struct int_case to_int_cases[] = {
	{ S, 0, RNE, 0x7fc00000, 0x7fffffff, NV },                 /* NaN -> max */
	{ S, 1, RNE, 0xffc00000, 0xffffffffffffffff, NV },         /* WU max, sign-extended */
	{ D, 2, RNE, 0x7ff0000000000000, 0x7fffffffffffffff, NV }, /* +inf */
	{ D, 2, RNE, 0xfff0000000000000, 0x8000000000000000, NV }, /* -inf */
	{ D, 3, RNE, 0xfff0000000000000, 0, NV },
	{ D, 3, RNE, 0x7ff8000000000000, 0xffffffffffffffff, NV },
	{ S, 0, RNE, 0x4f000000, 0x7fffffff, NV },                 /* 2^31 */
	{ S, 0, RNE, 0xcf000000, 0xffffffff80000000, 0 },          /* -2^31 fits */
	{ D, 0, RNE, 0xc1e0000000080000, 0xffffffff80000000, NX }, /* -2^31 - 0.25 rounds to -2^31 */
	{ D, 0, RDN, 0xc1e0000000080000, 0xffffffff80000000, NV }, /* ... or below it */
	{ D, 0, RNE, 0x41dfffffffe00000, 0x7fffffff, NV },         /* 2^31 - 0.5: tie to even is 2^31 */
	{ D, 0, RTZ, 0x41dfffffffe00000, 0x7fffffff, NX },
	{ D, 1, RNE, 0x41efffffffe00000, 0xffffffffffffffff, 0 },  /* 2^32 - 1 exactly */
	{ D, 1, RTZ, 0x41f0000000000000, 0xffffffffffffffff, NV }, /* 2^32 */
	{ D, 1, RNE, 0xbfe0000000000000, 0, NX },                  /* -0.5 -> -0: in range */
	{ D, 1, RMM, 0xbfe0000000000000, 0, NV },                  /* -0.5 -> -1: out of range */
	{ D, 3, RTZ, 0xbfefffffffffffff, 0, NX },
	{ D, 3, RNE, 0x43f0000000000000, 0xffffffffffffffff, NV }, /* 2^64 */
	{ D, 3, RNE, 0x43efffffffffffff, 0xfffffffffffff800, 0 },
	{ D, 2, RNE, 0x43e0000000000000, 0x7fffffffffffffff, NV }, /* 2^63 */
	{ D, 2, RNE, 0xc3e0000000000000, 0x8000000000000000, 0 },  /* -2^63 */
	{ S, 2, RNE, 0x40200000, 2, NX },                          /* 2.5 */
	{ S, 2, RMM, 0x40200000, 3, NX },
	{ S, 2, RMM, 0xc0200000, 0xfffffffffffffffd, NX },
	{ S, 2, RUP, 0xc0200000, 0xfffffffffffffffe, NX },
	{ S, 2, RDN, 0xc0200000, 0xfffffffffffffffd, NX },
	{ S, 2, RTZ, 0xc0200000, 0xfffffffffffffffe, NX },
	{ S, 2, RNE, 0x3f000000, 0, NX },                          /* 0.5 */
	{ S, 2, RMM, 0x3f000000, 1, NX },
	{ S, 2, RUP, 0x00000001, 1, NX },
	{ S, 2, RNE, 0x80000000, 0, 0 },
	{ S, 0, RNE, 0x7f800000, 0x7fffffff, NV },
};

static const struct int_case from_int_cases[] = {
	{ S, 0, RNE, 0xffffffff, 0xbf800000, 0 },                  /* W takes the low 32 bits, signed */
	{ S, 1, RNE, 0x12345678ffffffff, 0x4f800000, NX },         /* WU: 2^32 - 1 */
	{ S, 2, RNE, 0x1000001, 0x4b800000, NX },                  /* 2^24 + 1: tie to even */
	{ S, 2, RMM, 0x1000001, 0x4b800001, NX },
	{ S, 2, RNE, 0x1000003, 0x4b800002, NX },
	{ D, 2, RNE, 0x8000000000000000, 0xc3e0000000000000, 0 },
	{ D, 3, RNE, 0xffffffffffffffff, 0x43f0000000000000, NX },
	{ D, 3, RTZ, 0xffffffffffffffff, 0x43efffffffffffff, NX },
	{ D, 2, RNE, 0, 0, 0 },
	{ D, 0, RNE, 0x80000000, 0xc1e0000000000000, 0 },
	{ S, 3, RDN, 0x20000001, 0x4e000000, NX },
	{ S, 3, RUP, 0x20000001, 0x4e000001, NX },
};

static void test_to_int(void **state)
{
	for (size_t i = 0; i < sizeof(to_int_cases) / sizeof(to_int_cases[0]); i++) {
		const struct int_case *t = &to_int_cases[i];

		load_operand(RA, t->fmt, t->f);
		run(op_fp(F_CVT_IF, t->fmt, t->kind, RA, t->rm, RD));
		check_case(i, cpu.x[RD], t->expect, t->flags);
	}
	/* rd = x0 stays zero */
	load_operand(RA, D, 0x4000000000000000);
	run(op_fp(F_CVT_IF, D, 2, RA, RNE, 0));
	assert_int_equal(cpu.x[0], 0);
}

static void test_from_int(void **state)
{
	for (size_t i = 0; i < sizeof(from_int_cases) / sizeof(from_int_cases[0]); i++) {
		const struct int_case *t = &from_int_cases[i];

		cpu.x[RA] = t->f;
		run(op_fp(F_CVT_FI, t->fmt, t->kind, RA, t->rm, RD));
		check_case(i, cpu.f[RD], t->fmt == S ? BOX(t->expect) : t->expect, t->flags);
	}
}

/* ---- NaN boxing, moves, classification, comparisons ---- */

static void test_nan_boxing(void **state)
{
	/* an unboxed single reads as the canonical NaN */
	cpu.f[RA] = 0x000000003f800000ull;
	cpu.f[RB] = BOX(0x3f800000);
	run(op_fp(F_ADD, S, RB, RA, RNE, RD));
	assert_int_equal(cpu.f[RD], BOX(S_QNAN));
	assert_int_equal(cpu.fflags, 0);
	/* FSGNJ: the unboxed operand is the canonical NaN, the sign comes from rs2 */
	cpu.f[RB] = BOX(0x80000000);
	run(op_fp(F_SGNJ, S, RB, RA, 0, RD));
	assert_int_equal(cpu.f[RD], BOX(0xffc00000));
	/* FCLASS of an unboxed value: quiet NaN */
	run(op_fp(F_MV_XF, S, 0, RA, 1, RD));
	assert_int_equal(cpu.x[RD], 1u << 9);
	/* FMIN with one unboxed operand returns the other */
	cpu.f[RB] = BOX(0x40000000);
	run(op_fp(F_MINMAX, S, RB, RA, 0, RD));
	assert_int_equal(cpu.f[RD], BOX(0x40000000));
	/* FEQ against an unboxed operand: quiet comparison, false, no NV */
	run(op_fp(F_CMP, S, RB, RA, 2, RD));
	assert_int_equal(cpu.x[RD], 0);
	assert_int_equal(cpu.fflags, 0);
	/* a double register read as single is unboxed unless its top half is all ones */
	cpu.f[RA] = 0x3ff0000000000000ull;
	run(op_fp(F_CVT_FF, D, 0, RA, RNE, RD));
	assert_int_equal(cpu.f[RD], D_QNAN);
	/* FMV.X.W sign-extends the raw low half, boxed or not; FMV.W.X boxes */
	cpu.f[RA] = 0x12345678c0000000ull;
	run(op_fp(F_MV_XF, S, 0, RA, 0, RD));
	assert_int_equal(cpu.x[RD], 0xffffffffc0000000ull);
	cpu.x[RA] = 0xdeadbeef40490fdbull;
	run(op_fp(F_MV_FX, S, 0, RA, 0, RD));
	assert_int_equal(cpu.f[RD], BOX(0x40490fdb));
	run(op_fp(F_MV_FX, D, 0, RA, 0, RD));
	assert_int_equal(cpu.f[RD], 0xdeadbeef40490fdbull);
	run(op_fp(F_MV_XF, D, 0, RD, 0, RD));
	assert_int_equal(cpu.x[RD], 0xdeadbeef40490fdbull);
}

static void test_fclass(void **state)
{
	static const struct {
		unsigned fmt;
		uint64_t v;
		unsigned bit;
	} cases[] = {
		{ S, 0xff800000, 0 }, { S, 0xbf800000, 1 }, { S, 0x807fffff, 2 }, { S, 0x80000000, 3 },
		{ S, 0x00000000, 4 }, { S, 0x00000001, 5 }, { S, 0x7f7fffff, 6 }, { S, 0x7f800000, 7 },
		{ S, 0x7f800001, 8 }, { S, 0xffc00000, 9 }, { D, 0xfff0000000000000, 0 },
		{ D, 0x8000000000000001, 2 }, { D, 0x0010000000000000, 6 }, { D, 0x7ff4000000000000, 8 },
		{ D, 0x7ff8000000000000, 9 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		load_operand(RA, cases[i].fmt, cases[i].v);
		run(op_fp(F_MV_XF, cases[i].fmt, 0, RA, 1, RD));
		assert_int_equal(cpu.x[RD], 1u << cases[i].bit);
		assert_int_equal(cpu.fflags, 0);
	}
}

static void test_compare(void **state)
{
	static const struct {
		unsigned fmt, op; /* 0 FLE, 1 FLT, 2 FEQ */
		uint64_t a, b, expect;
		uint32_t flags;
	} cases[] = {
		{ S, 2, 0x00000000, 0x80000000, 1, 0 },  { S, 1, 0x80000000, 0x00000000, 0, 0 },
		{ S, 0, 0x80000000, 0x00000000, 1, 0 },  { S, 2, 0x7fc00000, 0x7fc00000, 0, 0 },
		{ S, 2, 0x7f800001, 0x3f800000, 0, NV }, { S, 1, 0x7fc00000, 0x3f800000, 0, NV },
		{ S, 0, 0x3f800000, 0x7fc00000, 0, NV }, { S, 1, 0xbf800000, 0xbf000000, 1, 0 },
		{ S, 1, 0xff800000, 0x7f800000, 1, 0 },  { D, 1, 0xc000000000000000, 0xbff0000000000000, 1, 0 },
		{ D, 0, 0x0000000000000001, 0x0000000000000001, 1, 0 },
		{ D, 1, 0x0000000000000001, 0x0000000000000001, 0, 0 },
		{ D, 2, 0xfff8000000000000, 0x0000000000000000, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		load_operand(RA, cases[i].fmt, cases[i].a);
		load_operand(RB, cases[i].fmt, cases[i].b);
		run(op_fp(F_CMP, cases[i].fmt, RB, RA, cases[i].op, RD));
		assert_int_equal(cpu.x[RD], cases[i].expect);
		assert_int_equal(cpu.fflags, cases[i].flags);
	}
}

/* ---- decode, CSRs, memory ---- */

static void test_illegal(void **state)
{
	load_operand(RA, D, 0x3ff0000000000000);
	load_operand(RB, D, 0x3ff0000000000000);
	expect_illegal(op_fp(F_ADD, D, RB, RA, 5, RD)); /* reserved static rm */
	expect_illegal(op_fp(F_ADD, D, RB, RA, 6, RD));
	cpu.frm = 5; /* reserved dynamic rm */
	expect_illegal(op_fp(F_MUL, S, RB, RA, DYN, RD));
	expect_illegal(fused(OPC_MADD, D, DYN));
	cpu.frm = RUP;
	run(op_fp(F_DIV, D, RB, RA, DYN, RD)); /* frm valid again */
	/* rm-less operations ignore frm */
	cpu.frm = 7;
	run(op_fp(F_SGNJ, D, RB, RA, 0, RD));
	expect_illegal(op_fp(F_ADD, 2, RB, RA, RNE, RD));      /* half precision */
	expect_illegal(op_fp(F_SQRT, D, 1, RA, RNE, RD));      /* rs2 must be 0 */
	expect_illegal(op_fp(F_SGNJ, D, RB, RA, 3, RD));
	expect_illegal(op_fp(F_MINMAX, D, RB, RA, 2, RD));
	expect_illegal(op_fp(F_CMP, D, RB, RA, 3, RD));
	expect_illegal(op_fp(F_CVT_IF, D, 4, RA, RNE, RD));
	expect_illegal(op_fp(F_CVT_FF, D, 1, RA, RNE, RD));    /* FCVT.D.D */
	expect_illegal(op_fp(F_MV_XF, D, 0, RA, 2, RD));
	expect_illegal(op_fp(F_MV_FX, D, 0, RA, 1, RD));
	expect_illegal(op_fp(0x07, D, RB, RA, RNE, RD));        /* unused funct5 */
	expect_illegal(1u << 12 | OPC_LOAD_FP); /* FLH */
	/* FS off: everything traps, including the CSRs */
	cpu.mstatus = 0;
	cpu.frm = RNE;
	expect_illegal(op_fp(F_SGNJ, D, RB, RA, 0, RD));
	uint64_t v;
	assert_false(fpu_csr_read(&cpu, 1, &v));
	assert_false(fpu_csr_write(&cpu, 3, 0));
}

static void test_csr(void **state)
{
	uint64_t v;

	assert_true(fpu_csr_write(&cpu, 3, 0xffu));
	assert_int_equal(cpu.mstatus & MSTATUS_FS_MASK, MSTATUS_FS_DIRTY);
	assert_true(fpu_csr_read(&cpu, 1, &v));
	assert_int_equal(v, 0x1f);
	assert_true(fpu_csr_read(&cpu, 2, &v));
	assert_int_equal(v, 7);
	assert_true(fpu_csr_write(&cpu, 2, RMM));
	assert_true(fpu_csr_write(&cpu, 1, NX | DZ));
	assert_true(fpu_csr_read(&cpu, 3, &v));
	assert_int_equal(v, RMM << 5 | NX | DZ);
	/* flags accrue: a second inexact operation keeps earlier flags */
	load_operand(RA, S, 0x3f800000);
	load_operand(RB, S, 0x40400000);
	fpu_execute(&cpu, op_fp(F_DIV, S, RB, RA, DYN, RD));
	assert_int_equal(cpu.fflags, NX | DZ);
	assert_int_equal(cpu.f[RD], BOX(0x3eaaaaab)); /* 1/3 in RMM */
	/* an operation that raises no new flag leaves FS alone */
	cpu.mstatus = 2ull << MSTATUS_FS_SHIFT; /* Clean */
	run(op_fp(F_CMP, S, RB, RA, 2, RD));
	assert_int_equal(cpu.mstatus, 2ull << MSTATUS_FS_SHIFT);
	run(op_fp(F_CMP, S, RB, RA, 1, RD));
	assert_int_equal(cpu.x[RD], 1);
	cpu.fflags = NV;
	load_operand(RB, S, 0x7fc00000);
	fpu_execute(&cpu, op_fp(F_CMP, S, RB, RA, 1, RD));
	assert_int_equal(cpu.mstatus, 2ull << MSTATUS_FS_SHIFT);
	cpu.fflags = 0;
	fpu_execute(&cpu, op_fp(F_CMP, S, RB, RA, 1, RD));
	assert_int_equal(cpu.mstatus & MSTATUS_FS_MASK, MSTATUS_FS_DIRTY);
}

static void test_load_store(void **state)
{
	/* FLW boxes; FSW stores the raw low half; FLD/FSD move 64 bits; offsets are signed */
	for (unsigned i = 0; i < 8; i++)
		test_mem[i] = (uint8_t)(0x11 * (i + 1));
	cpu.x[RA] = TEST_MEM_BASE + 0x10;
	run(insn_enc_i(OPC_LOAD_FP, 2, RD, RA, -16)); /* flw f4, -16(x1) */
	assert_int_equal(cpu.f[RD], BOX(0x44332211));
	run(insn_enc_i(OPC_LOAD_FP, 3, 5, RA, -16)); /* fld f5, -16(x1) */
	assert_int_equal(cpu.f[5], 0x8877665544332211ull);
	cpu.f[6] = 0x0123456789abcdefull;
	run(insn_enc_s(OPC_STORE_FP, 2, RA, 6, 8)); /* fsw f6, 8(x1) */
	assert_int_equal(test_mem[0x18], 0xef);
	assert_int_equal(test_mem[0x1b], 0x89);
	assert_int_equal(test_mem[0x1c], 0);
	run(insn_enc_s(OPC_STORE_FP, 3, RA, 6, -8)); /* fsd f6, -8(x1) */
	assert_int_equal(test_mem[8], 0xef);
	assert_int_equal(test_mem[15], 0x01);
	/* a faulting load leaves the register alone and reports the fault (raised by cpu_load) */
	cpu.f[RD] = 42;
	cpu.x[RA] = 0x8000;
	fpu_execute(&cpu, insn_enc_i(OPC_LOAD_FP, 3, RD, RA, 0));
	assert_true(cpu.exception_pending);
	assert_int_equal(last_cause, EXC_LOAD_ACCESS);
	assert_int_equal(cpu.f[RD], 42);
}

/* ---- random cross-check against the host FPU ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Random operands biased to the interesting regions: specials, subnormals, extremes, near 1. */
static uint64_t random_operand(unsigned fmt)
{
	static const uint64_t s_special[] = { 0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001,
					      0x00000001, 0x007fffff, 0x00800000, 0x7f7fffff, 0x3f800000, 0xbf800000 };
	static const uint64_t d_special[] = { 0, 0x8000000000000000, 0x7ff0000000000000, 0xfff0000000000000,
					      0x7ff8000000000000, 0x7ff0000000000001, 0x1, 0x000fffffffffffff,
					      0x0010000000000000, 0x7fefffffffffffff, 0x3ff0000000000000,
					      0xbff0000000000000 };
	uint64_t r = rng(), choice = r % 8;
	unsigned frac_bits = fmt == S ? 23 : 52, exp_bits = fmt == S ? 8 : 11;
	uint64_t sign = (rng() & 1) << (frac_bits + exp_bits);
	uint64_t frac = rng() & ((1ull << frac_bits) - 1);
	uint64_t emax = (1ull << exp_bits) - 1, bias = emax >> 1;
	uint64_t e;

	if (choice == 0)
		return fmt == S ? s_special[rng() % 12] : d_special[rng() % 12];
	if (choice == 1) /* few significant bits: exact results and ties */
		frac &= ~((1ull << (frac_bits - 3)) - 1);
	switch (rng() % 4) {
	case 0: e = rng() % emax; break;                        /* anywhere finite */
	case 1: e = rng() % 4; break;                           /* subnormal or barely normal */
	case 2: e = emax - 1 - rng() % 4; break;                /* near overflow */
	default: e = bias - 8 + rng() % 16; break;              /* near 1 */
	}
	return sign | (e << frac_bits) | frac;
}

static uint32_t host_flags(void)
{
	int e = fetestexcept(FE_ALL_EXCEPT);

	return (e & FE_INEXACT ? NX : 0) | (e & FE_UNDERFLOW ? UF : 0) | (e & FE_OVERFLOW ? OF : 0) |
	       (e & FE_DIVBYZERO ? DZ : 0) | (e & FE_INVALID ? NV : 0);
}

static const int host_modes[] = { FE_TONEAREST, FE_TOWARDZERO, FE_DOWNWARD, FE_UPWARD }; /* rm 0..3 */

/* Host reference for op (F_ADD, F_SUB, F_MUL, F_DIV, F_SQRT, OPC_MADD) in format fmt. */
static uint64_t host_op(unsigned op, unsigned fmt, unsigned rm, uint64_t a, uint64_t b, uint64_t c,
			uint32_t *flags)
{
	volatile float fa, fb, fc, fr = 0;
	volatile double da, db, dc, dr = 0;
	uint32_t ua = (uint32_t)a, ub = (uint32_t)b, uc = (uint32_t)c, ur;
	uint64_t result;

	memcpy((void *)&fa, &ua, 4);
	memcpy((void *)&fb, &ub, 4);
	memcpy((void *)&fc, &uc, 4);
	memcpy((void *)&da, &a, 8);
	memcpy((void *)&db, &b, 8);
	memcpy((void *)&dc, &c, 8);
	fesetround(host_modes[rm]);
	feclearexcept(FE_ALL_EXCEPT);
	if (fmt == S) {
		switch (op) {
		case F_ADD: fr = fa + fb; break;
		case F_SUB: fr = fa - fb; break;
		case F_MUL: fr = fa * fb; break;
		case F_DIV: fr = fa / fb; break;
		case F_SQRT: fr = sqrtf(fa); break;
		default: fr = fmaf(fa, fb, fc); break;
		}
	} else {
		switch (op) {
		case F_ADD: dr = da + db; break;
		case F_SUB: dr = da - db; break;
		case F_MUL: dr = da * db; break;
		case F_DIV: dr = da / db; break;
		case F_SQRT: dr = sqrt(da); break;
		default: dr = fma(da, db, dc); break;
		}
	}
	*flags = host_flags();
	fesetround(FE_TONEAREST);
	if (fmt == S) {
		memcpy(&ur, (const void *)&fr, 4);
		result = ur;
	} else {
		memcpy(&result, (const void *)&dr, 8);
	}
	return result;
}

static bool is_nan_bits(unsigned fmt, uint64_t v)
{
	return fmt == S ? (v & 0x7fffffff) > 0x7f800000 : (v & 0x7fffffffffffffffull) > 0x7ff0000000000000ull;
}

static bool is_inf_times_zero(unsigned fmt, uint64_t a, uint64_t b)
{
	uint64_t mag = fmt == S ? 0x7fffffff : 0x7fffffffffffffffull, inf = fmt == S ? 0x7f800000 : 0x7ff0000000000000;

	return ((a & mag) == inf && (b & mag) == 0) || ((a & mag) == 0 && (b & mag) == inf);
}

static void test_host_crosscheck(void **state)
{
	static const unsigned ops[] = { F_ADD, F_SUB, F_MUL, F_DIV, F_SQRT, OPC_MADD };
	unsigned checked = 0;

	for (unsigned iter = 0; iter < 400000; iter++) {
		unsigned op = ops[iter % 6], fmt = (iter / 6) % 2, rm = (iter / 12) % 4;
		uint64_t a = random_operand(fmt), b = random_operand(fmt), c = random_operand(fmt);
		uint64_t want, got;
		uint32_t want_flags, insn;

		if (op == OPC_MADD && iter % 3 == 0) {
			/* c close to -(a*b): deep cancellation */
			uint32_t ignored;
			c = host_op(F_MUL, fmt, rm, a, b, 0, &ignored) ^ (fmt == S ? 0x80000000u : 1ull << 63);
			c ^= rng() & 3;
		}
		want = host_op(op, fmt, rm, a, b, c, &want_flags);
		load_operand(RA, fmt, a);
		load_operand(RB, fmt, b);
		load_operand(RC, fmt, c);
		if (op == OPC_MADD)
			insn = fused(OPC_MADD, fmt, rm);
		else
			insn = op_fp(op, fmt, op == F_SQRT ? 0 : RB, RA, rm, RD);
		run(insn);
		got = fmt == S ? (uint32_t)cpu.f[RD] : cpu.f[RD];
		if (fmt == S)
			assert_int_equal(cpu.f[RD] >> 32, 0xffffffffu);
		if (is_nan_bits(fmt, want)) {
			/* the host propagates payloads; RISC-V returns the canonical NaN */
			want = fmt == S ? S_QNAN : D_QNAN;
			/* RISC-V (unlike x86) raises NV for inf * 0 + qNaN */
			if (op == OPC_MADD && is_inf_times_zero(fmt, a, b))
				want_flags |= NV;
		}
		if (got != want || cpu.fflags != want_flags) {
			print_error("iter %u op %#x fmt %u rm %u a %016llx b %016llx c %016llx: got %016llx/%02x, "
				    "host %016llx/%02x\n",
				    iter, op, fmt, rm, (unsigned long long)a, (unsigned long long)b,
				    (unsigned long long)c, (unsigned long long)got, cpu.fflags, (unsigned long long)want,
				    want_flags);
			fail();
		}
		checked++;
	}
	assert_int_equal(checked, 400000);
}

/* Conversions against the host: f64 -> f32, i64 -> f32/f64, and in-range f -> i64. */
static void test_host_crosscheck_convert(void **state)
{
	for (unsigned iter = 0; iter < 100000; iter++) {
		unsigned rm = iter % 4;
		uint64_t d = random_operand(D), want, got;
		uint64_t i = rng();
		unsigned shift = (unsigned)(rng() % 64);
		volatile double vd;
		volatile float vf;
		volatile int64_t vi = (int64_t)(i >> shift);
		uint32_t want_flags, u;

		if (iter & 1)
			vi = -vi;
		memcpy((void *)&vd, &d, 8);
		/* f64 -> f32 */
		fesetround(host_modes[rm]);
		feclearexcept(FE_ALL_EXCEPT);
		vf = (float)vd;
		want_flags = host_flags();
		fesetround(FE_TONEAREST);
		memcpy(&u, (const void *)&vf, 4);
		want = is_nan_bits(S, u) ? S_QNAN : u;
		load_operand(RA, D, d);
		run(op_fp(F_CVT_FF, S, 1, RA, rm, RD));
		got = (uint32_t)cpu.f[RD];
		if (got != want || cpu.fflags != want_flags) {
			print_error("fcvt.s.d %016llx rm %u: got %08llx/%02x want %08llx/%02x\n", (unsigned long long)d, rm,
				    (unsigned long long)got, cpu.fflags, (unsigned long long)want, want_flags);
			fail();
		}
		/* i64 -> f64 and f32 */
		fesetround(host_modes[rm]);
		feclearexcept(FE_ALL_EXCEPT);
		vd = (double)vi;
		want_flags = host_flags();
		fesetround(FE_TONEAREST);
		memcpy(&want, (const void *)&vd, 8);
		cpu.x[RA] = (uint64_t)vi;
		run(op_fp(F_CVT_FI, D, 2, RA, rm, RD));
		assert_int_equal(cpu.f[RD], want);
		assert_int_equal(cpu.fflags, want_flags);
		fesetround(host_modes[rm]);
		feclearexcept(FE_ALL_EXCEPT);
		vf = (float)vi;
		want_flags = host_flags();
		fesetround(FE_TONEAREST);
		memcpy(&u, (const void *)&vf, 4);
		run(op_fp(F_CVT_FI, S, 2, RA, rm, RD));
		assert_int_equal(cpu.f[RD], BOX(u));
		assert_int_equal(cpu.fflags, want_flags);
		/* in-range f64 -> i64: llrint rounds in the current mode */
		memcpy((void *)&vd, &d, 8);
		if (!is_nan_bits(D, d) && fabs(vd) < 9.2e18) {
			long long r;

			fesetround(host_modes[rm]);
			feclearexcept(FE_ALL_EXCEPT);
			r = llrint(vd);
			want_flags = host_flags() & NX;
			fesetround(FE_TONEAREST);
			load_operand(RA, D, d);
			run(op_fp(F_CVT_IF, D, 2, RA, rm, RD));
			assert_int_equal(cpu.x[RD], (uint64_t)r);
			assert_int_equal(cpu.fflags, want_flags);
		}
	}
}

/* Random words with the FP major opcodes over random state: never a crash, x0 stays zero, and
 * every instruction either traps (illegal or access fault) or leaves single results boxed. */
static void test_random_words(void **state)
{
	static const uint32_t opcodes[] = { OPC_LOAD_FP, OPC_STORE_FP, OPC_MADD, OPC_MSUB, OPC_NMSUB, OPC_NMADD, OPC_OP_FP };
	unsigned trapped = 0, executed = 0;

	for (unsigned iter = 0; iter < 200000; iter++) {
		uint32_t insn = ((uint32_t)rng() & ~0x7fu) | opcodes[iter % 7];
		unsigned rd = insn_rd(insn);

		for (unsigned r = 0; r < 32; r++) {
			cpu.f[r] = (rng() & 1) ? BOX(rng()) : rng();
			cpu.x[r] = r == 0 ? 0 : ((rng() & 1) ? TEST_MEM_BASE + rng() % TEST_MEM_SIZE : rng());
		}
		cpu.frm = (uint32_t)(rng() % 8);
		cpu.fflags = 0;
		cpu.mstatus = MSTATUS_FS_DIRTY;
		cpu.exception_pending = false;
		fpu_execute(&cpu, insn);
		assert_int_equal(cpu.x[0], 0);
		assert_int_equal(cpu.fflags & ~0x1fu, 0);
		if (cpu.exception_pending) {
			trapped++;
			continue;
		}
		executed++;
		/* an OP-FP single-precision result written to an f register is NaN-boxed */
		if (insn_opcode(insn) == OPC_OP_FP && insn_fmt(insn) == S && !(insn_funct5(insn) & 0x10) &&
		    insn_funct5(insn) != F_CMP)
			assert_int_equal(cpu.f[rd] >> 32, 0xffffffffu);
	}
	/* both outcomes are common in random words */
	assert_true(trapped > 10000);
	assert_true(executed > 10000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_arith_table, setup),
		cmocka_unit_test_setup(test_to_int, setup),
		cmocka_unit_test_setup(test_from_int, setup),
		cmocka_unit_test_setup(test_nan_boxing, setup),
		cmocka_unit_test_setup(test_fclass, setup),
		cmocka_unit_test_setup(test_compare, setup),
		cmocka_unit_test_setup(test_illegal, setup),
		cmocka_unit_test_setup(test_csr, setup),
		cmocka_unit_test_setup(test_load_store, setup),
		cmocka_unit_test_setup(test_host_crosscheck, setup),
		cmocka_unit_test_setup(test_host_crosscheck_convert, setup),
		cmocka_unit_test_setup(test_random_words, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
