/*
 * digest_core.c — the FPU digest: every F/D computational instruction over tables of operands
 * (special values plus seeded pseudo-random bit patterns shaped to hit subnormals, overflow,
 * ties and cancellation), in every static rounding mode and in the dynamic mode under each valid
 * frm. Each result's raw bits and the fflags it raised are folded into a hash; one line per
 * instruction and mode is printed, then the total. Single results are read back raw, so their NaN
 * boxing is hashed too, and two single operands are deliberately not boxed.
 *
 * Freestanding C (no libc): it is compiled into the bare-metal program and into the host twin.
 */
#include "digest.h"

#define FRM_COUNT 5   /* valid rounding modes RNE..RMM */
#define RM_DYN 7u
/* Table sizes and seed; a one-off deeper comparison can override them with -D. */
#ifndef N_OPS
#define N_OPS 32      /* operands per format table */
#endif
#ifndef N_FMA_AB
#define N_FMA_AB 20   /* a and b operands of the fused ops */
#endif
#ifndef N_FMA_C
#define N_FMA_C 10    /* addends per (a, b) of the fused ops */
#endif
#ifndef N_INTS
#define N_INTS 32
#endif
#ifndef DIGEST_SEED
#define DIGEST_SEED 0x2545f4914f6cdd1dull
#endif

#define OPC_OP_FP 0x53u
#define OPC_MADD 0x43u
#define OPC_MSUB 0x47u
#define OPC_NMSUB 0x4bu
#define OPC_NMADD 0x4fu

#define BOX(v) (0xffffffff00000000ull | (uint32_t)(v))

/* ---- output and hashing ---- */

void digest_puts(const char *s)
{
	while (*s)
		digest_putc(*s++);
}

void digest_puthex(uint64_t v, int digits)
{
	for (int i = digits - 1; i >= 0; i--)
		digest_putc("0123456789abcdef"[(v >> (4 * i)) & 15]);
}

static uint64_t group_hash, total_hash, total_ops;

static void mix(uint64_t v)
{
	group_hash ^= v;
	group_hash *= 0x100000001b3ull;
	group_hash ^= group_hash >> 29;
}

static void group_end(const char *name, const char *mode)
{
	digest_puts(name);
	digest_putc(' ');
	digest_puts(mode);
	digest_putc(' ');
	digest_puthex(group_hash, 16);
	digest_putc('\n');
	total_hash = (total_hash ^ group_hash) * 0x9e3779b97f4a7c15ull;
	group_hash = 0;
}

/* ---- operands ---- */

static uint64_t rng_state = DIGEST_SEED;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static const uint64_t s_special[] = {
	BOX(0x00000000), BOX(0x80000000), BOX(0x7f800000), BOX(0xff800000), BOX(0x7fc00000), BOX(0xffc00001),
	BOX(0x7f800001), BOX(0xffa00000), BOX(0x00000001), BOX(0x807fffff), BOX(0x00800000), BOX(0x7f7fffff),
	BOX(0x3f800000), BOX(0xbf800000), BOX(0x33800000), BOX(0x40400000), BOX(0x3f800001), BOX(0x00ffffff),
	BOX(0x4f000000), BOX(0xdf000000),
	0x000000003f800000ull, /* not boxed: reads as the canonical NaN */
	0x7fffffff40000000ull, /* not boxed */
};

static const uint64_t d_special[] = {
	0x0000000000000000, 0x8000000000000000, 0x7ff0000000000000, 0xfff0000000000000, 0x7ff8000000000000,
	0xfff8000000000001, 0x7ff0000000000001, 0xfff4000000000000, 0x0000000000000001, 0x800fffffffffffff,
	0x0010000000000000, 0x7fefffffffffffff, 0x3ff0000000000000, 0xbff0000000000000, 0x3ca0000000000000,
	0x4008000000000000, 0x3ff0000000000001, 0x41dfffffffe00000, 0x43e0000000000000, 0xc3e0000000000000,
	0x41efffffffe00000, 0xbfe0000000000000,
};

static const uint64_t int_special[] = {
	0, 1, 0xffffffffffffffff, 0x80000000, 0x7fffffff, 0xffffffff80000000, 0xffffffff, 0x1000001,
	0x20000000000001, 0x8000000000000000, 0x7fffffffffffffff, 0x8000000000000401, 0x100000001, 0x3,
};

static uint64_t s_ops[N_OPS], d_ops[N_OPS], int_ops[N_INTS];

/* A pseudo-random value with an exponent chosen to hit the interesting ranges. */
static uint64_t shaped(unsigned frac_bits, unsigned exp_bits)
{
	uint64_t emax = (1ull << exp_bits) - 1, bias = emax >> 1, e;
	uint64_t frac = rng() & ((1ull << frac_bits) - 1);

	switch (rng() % 5) {
	case 0: /* subnormal or barely normal */
		e = rng() % 3;
		break;
	case 1: /* near overflow */
		e = emax - 1 - rng() % 3;
		break;
	case 2: /* near one */
		e = bias - 4 + rng() % 8;
		break;
	case 3: /* few significant bits: exact results and ties */
		e = bias - 40 + rng() % 80;
		frac &= ~((1ull << (frac_bits - 6)) - 1);
		break;
	default:
		e = rng() % emax;
		break;
	}
	return (rng() & 1) << (frac_bits + exp_bits) | e << frac_bits | frac;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void init_operands(void)
{
	unsigned i;

	for (i = 0; i < N_OPS; i++) {
		s_ops[i] = i < COUNT(s_special) ? s_special[i] : BOX(shaped(23, 8));
		d_ops[i] = i < COUNT(d_special) ? d_special[i] : shaped(52, 11);
	}
	/* interleave specials and random values so the fused-op subsets get both */
	for (i = 1; i < N_OPS / 2; i += 2) {
		uint64_t t = s_ops[i];

		s_ops[i] = s_ops[N_OPS - i];
		s_ops[N_OPS - i] = t;
		t = d_ops[i];
		d_ops[i] = d_ops[N_OPS - i];
		d_ops[N_OPS - i] = t;
	}
	for (i = 0; i < N_INTS; i++) {
		uint64_t bits = rng(); /* separate statements: the order of two calls in one expression is unspecified */

		int_ops[i] = i < COUNT(int_special) ? int_special[i] : bits >> (rng() % 64);
	}
}

/* ---- the instructions ---- */

enum shape { BINARY, UNARY, TERNARY, FROM_INT };
enum operand_set { SINGLES, DOUBLES, INTS };

struct op {
	const char *name;
	enum shape shape;
	enum operand_set set;
	uint32_t word;   /* without rd, rs1 and (for rounded ops) rm */
	int rounded;     /* funct3 is a rounding mode */
	int int_result;  /* rd is x10 */
};

/* OP-FP word from funct7, the rs2 field and funct3. */
#define OPFP(funct7, rs2, funct3) ((uint32_t)(funct7) << 25 | (uint32_t)(rs2) << 20 | (uint32_t)(funct3) << 12 | OPC_OP_FP)
#define BIN_OP(funct7) OPFP(funct7, DIGEST_FRS2, 0)
#define FUSED(opc, fmt) (DIGEST_FRS3 << 27 | (uint32_t)(fmt) << 25 | DIGEST_FRS2 << 20 | (opc))

static const struct op ops[] = {
	{ "fadd.s", BINARY, SINGLES, BIN_OP(0x00), 1, 0 },
	{ "fsub.s", BINARY, SINGLES, BIN_OP(0x04), 1, 0 },
	{ "fmul.s", BINARY, SINGLES, BIN_OP(0x08), 1, 0 },
	{ "fdiv.s", BINARY, SINGLES, BIN_OP(0x0c), 1, 0 },
	{ "fadd.d", BINARY, DOUBLES, BIN_OP(0x01), 1, 0 },
	{ "fsub.d", BINARY, DOUBLES, BIN_OP(0x05), 1, 0 },
	{ "fmul.d", BINARY, DOUBLES, BIN_OP(0x09), 1, 0 },
	{ "fdiv.d", BINARY, DOUBLES, BIN_OP(0x0d), 1, 0 },
	{ "fsqrt.s", UNARY, SINGLES, OPFP(0x2c, 0, 0), 1, 0 },
	{ "fsqrt.d", UNARY, DOUBLES, OPFP(0x2d, 0, 0), 1, 0 },
	{ "fcvt.s.d", UNARY, DOUBLES, OPFP(0x20, 1, 0), 1, 0 },
	{ "fcvt.d.s", UNARY, SINGLES, OPFP(0x21, 0, 0), 1, 0 },
	{ "fmadd.s", TERNARY, SINGLES, FUSED(OPC_MADD, 0), 1, 0 },
	{ "fmsub.s", TERNARY, SINGLES, FUSED(OPC_MSUB, 0), 1, 0 },
	{ "fnmsub.s", TERNARY, SINGLES, FUSED(OPC_NMSUB, 0), 1, 0 },
	{ "fnmadd.s", TERNARY, SINGLES, FUSED(OPC_NMADD, 0), 1, 0 },
	{ "fmadd.d", TERNARY, DOUBLES, FUSED(OPC_MADD, 1), 1, 0 },
	{ "fmsub.d", TERNARY, DOUBLES, FUSED(OPC_MSUB, 1), 1, 0 },
	{ "fnmsub.d", TERNARY, DOUBLES, FUSED(OPC_NMSUB, 1), 1, 0 },
	{ "fnmadd.d", TERNARY, DOUBLES, FUSED(OPC_NMADD, 1), 1, 0 },
	{ "fcvt.w.s", UNARY, SINGLES, OPFP(0x60, 0, 0), 1, 1 },
	{ "fcvt.wu.s", UNARY, SINGLES, OPFP(0x60, 1, 0), 1, 1 },
	{ "fcvt.l.s", UNARY, SINGLES, OPFP(0x60, 2, 0), 1, 1 },
	{ "fcvt.lu.s", UNARY, SINGLES, OPFP(0x60, 3, 0), 1, 1 },
	{ "fcvt.w.d", UNARY, DOUBLES, OPFP(0x61, 0, 0), 1, 1 },
	{ "fcvt.wu.d", UNARY, DOUBLES, OPFP(0x61, 1, 0), 1, 1 },
	{ "fcvt.l.d", UNARY, DOUBLES, OPFP(0x61, 2, 0), 1, 1 },
	{ "fcvt.lu.d", UNARY, DOUBLES, OPFP(0x61, 3, 0), 1, 1 },
	{ "fcvt.s.w", FROM_INT, INTS, OPFP(0x68, 0, 0), 1, 0 },
	{ "fcvt.s.wu", FROM_INT, INTS, OPFP(0x68, 1, 0), 1, 0 },
	{ "fcvt.s.l", FROM_INT, INTS, OPFP(0x68, 2, 0), 1, 0 },
	{ "fcvt.s.lu", FROM_INT, INTS, OPFP(0x68, 3, 0), 1, 0 },
	{ "fcvt.d.w", FROM_INT, INTS, OPFP(0x69, 0, 0), 1, 0 },
	{ "fcvt.d.wu", FROM_INT, INTS, OPFP(0x69, 1, 0), 1, 0 },
	{ "fcvt.d.l", FROM_INT, INTS, OPFP(0x69, 2, 0), 1, 0 },
	{ "fcvt.d.lu", FROM_INT, INTS, OPFP(0x69, 3, 0), 1, 0 },
	{ "fsgnj.s", BINARY, SINGLES, OPFP(0x10, DIGEST_FRS2, 0), 0, 0 },
	{ "fsgnjn.s", BINARY, SINGLES, OPFP(0x10, DIGEST_FRS2, 1), 0, 0 },
	{ "fsgnjx.s", BINARY, SINGLES, OPFP(0x10, DIGEST_FRS2, 2), 0, 0 },
	{ "fsgnj.d", BINARY, DOUBLES, OPFP(0x11, DIGEST_FRS2, 0), 0, 0 },
	{ "fsgnjn.d", BINARY, DOUBLES, OPFP(0x11, DIGEST_FRS2, 1), 0, 0 },
	{ "fsgnjx.d", BINARY, DOUBLES, OPFP(0x11, DIGEST_FRS2, 2), 0, 0 },
	{ "fmin.s", BINARY, SINGLES, OPFP(0x14, DIGEST_FRS2, 0), 0, 0 },
	{ "fmax.s", BINARY, SINGLES, OPFP(0x14, DIGEST_FRS2, 1), 0, 0 },
	{ "fmin.d", BINARY, DOUBLES, OPFP(0x15, DIGEST_FRS2, 0), 0, 0 },
	{ "fmax.d", BINARY, DOUBLES, OPFP(0x15, DIGEST_FRS2, 1), 0, 0 },
	{ "fle.s", BINARY, SINGLES, OPFP(0x50, DIGEST_FRS2, 0), 0, 1 },
	{ "flt.s", BINARY, SINGLES, OPFP(0x50, DIGEST_FRS2, 1), 0, 1 },
	{ "feq.s", BINARY, SINGLES, OPFP(0x50, DIGEST_FRS2, 2), 0, 1 },
	{ "fle.d", BINARY, DOUBLES, OPFP(0x51, DIGEST_FRS2, 0), 0, 1 },
	{ "flt.d", BINARY, DOUBLES, OPFP(0x51, DIGEST_FRS2, 1), 0, 1 },
	{ "feq.d", BINARY, DOUBLES, OPFP(0x51, DIGEST_FRS2, 2), 0, 1 },
	{ "fmv.x.w", UNARY, SINGLES, OPFP(0x70, 0, 0), 0, 1 },
	{ "fclass.s", UNARY, SINGLES, OPFP(0x70, 0, 1), 0, 1 },
	{ "fmv.x.d", UNARY, DOUBLES, OPFP(0x71, 0, 0), 0, 1 },
	{ "fclass.d", UNARY, DOUBLES, OPFP(0x71, 0, 1), 0, 1 },
	{ "fmv.w.x", FROM_INT, INTS, OPFP(0x78, 0, 0), 0, 0 },
	{ "fmv.d.x", FROM_INT, INTS, OPFP(0x79, 0, 0), 0, 0 },
};

static const uint64_t *operand_table(enum operand_set set)
{
	return set == SINGLES ? s_ops : set == DOUBLES ? d_ops : int_ops;
}

/* Runs the instruction word over the operands of op's shape. */
static void run_group(const struct op *op, uint32_t word)
{
	const uint64_t *v = operand_table(op->set);
	uint64_t flags, r;

	switch (op->shape) {
	case BINARY:
		for (unsigned i = 0; i < N_OPS; i++)
			for (unsigned j = 0; j < N_OPS; j++) {
				r = digest_exec(word, op->int_result, v[i], v[j], 0, &flags);
				mix(r);
				mix(flags);
				total_ops++;
			}
		break;
	case TERNARY:
		for (unsigned i = 0; i < N_FMA_AB; i++)
			for (unsigned j = 0; j < N_FMA_AB; j++)
				for (unsigned k = 0; k < N_FMA_C; k++) {
					r = digest_exec(word, 0, v[i], v[j], v[(k * 3 + i + j) % N_OPS], &flags);
					mix(r);
					mix(flags);
					total_ops++;
				}
		break;
	default: /* UNARY, FROM_INT */
		for (unsigned i = 0; i < (op->shape == FROM_INT ? N_INTS : N_OPS); i++) {
			r = digest_exec(word, op->int_result, v[i], 0, 0, &flags);
			mix(r);
			mix(flags);
			total_ops++;
		}
		break;
	}
}

static const char *const mode_names[FRM_COUNT] = { "rne", "rtz", "rdn", "rup", "rmm" };
static const char *const dyn_names[FRM_COUNT] = { "dyn-rne", "dyn-rtz", "dyn-rdn", "dyn-rup", "dyn-rmm" };

void digest_run(void)
{
	init_operands();
	for (unsigned o = 0; o < COUNT(ops); o++) {
		const struct op *op = &ops[o];
		uint32_t rd = op->int_result ? DIGEST_XREG : DIGEST_FRD;
		uint32_t rs1 = op->shape == FROM_INT ? DIGEST_XREG : DIGEST_FRS1;
		uint32_t word = op->word | rd << 7 | rs1 << 15;

		if (!op->rounded) {
			digest_set_frm(RM_DYN); /* ignored by instructions without a rounding mode */
			run_group(op, word);
			group_end(op->name, "-");
			continue;
		}
		for (unsigned rm = 0; rm < FRM_COUNT; rm++) {
			digest_set_frm(FRM_COUNT - 1 - rm); /* a static mode ignores frm */
			run_group(op, word | rm << 12);
			group_end(op->name, mode_names[rm]);
		}
		for (unsigned rm = 0; rm < FRM_COUNT; rm++) {
			digest_set_frm(rm);
			run_group(op, word | RM_DYN << 12);
			group_end(op->name, dyn_names[rm]);
		}
	}
	digest_set_frm(0);
	digest_puts("ops ");
	digest_puthex(total_ops, 8);
	digest_puts(" digest ");
	digest_puthex(total_hash, 16);
	digest_putc('\n');
}
