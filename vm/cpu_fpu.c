/*
 * cpu_fpu.c — the hart's F and D extensions (RV64), bit-exact with the RISC-V spec and QEMU.
 *
 * Every operation is done in integer soft-float, not on the host FPU: the result, the fflags
 * and the NaN behaviour then depend only on the guest's state, not on the host's CPU, libm or
 * compiler, which is what primary/backup determinism needs (and the host has no RMM mode). The
 * one use of host floating point, a seed for the integer square root, cannot change a result.
 *
 * How it works: an operand is unpacked into sign, exponent and a 64-bit significand normalised
 * so that bit 63 is set (value = sig * 2^(exp - 63)); the exact result is computed with at least
 * two extra bits plus a sticky bit (ORed into bit 0, "jamming"), and round_pack() rounds it to
 * the destination format in the requested mode, raising NX/UF/OF. Tininess is detected after
 * rounding, as RISC-V specifies. Any NaN result is the canonical NaN; NV is raised for signaling
 * NaN inputs and invalid operations. Single-precision values live NaN-boxed in the 64-bit f
 * registers; an operand that is not properly boxed reads as the canonical NaN.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include "util/insn.h"
#include "vm/cpu_internal.h"

/* LOAD-FP / STORE-FP width (funct3). */
#define WIDTH_W 2u
#define WIDTH_D 3u

/* Format field (bits 26:25 of OP-FP and the fused ops). */
#define FMT_S 0u
#define FMT_D 1u

/* OP-FP funct5 (bits 31:27). */
#define F5_ADD 0x00u
#define F5_SUB 0x01u
#define F5_MUL 0x02u
#define F5_DIV 0x03u
#define F5_SGNJ 0x04u
#define F5_MINMAX 0x05u
#define F5_CVT_FF 0x08u
#define F5_SQRT 0x0bu
#define F5_CMP 0x14u
#define F5_CVT_IF 0x18u /* float -> integer */
#define F5_CVT_FI 0x1au /* integer -> float */
#define F5_MV_XF 0x1cu  /* FMV.X.W/D, FCLASS */
#define F5_MV_FX 0x1eu  /* FMV.W/D.X */

/* funct3 sub-operations. */
#define SGNJ_J 0u
#define SGNJ_N 1u
#define SGNJ_X 2u
#define MINMAX_MIN 0u
#define MINMAX_MAX 1u
#define CMP_LE 0u
#define CMP_LT 1u
#define CMP_EQ 2u
#define MV_XF_MOVE 0u
#define MV_XF_CLASS 1u

/* Integer operand types of the conversions (rs2 field). */
#define CVT_W 0u
#define CVT_WU 1u
#define CVT_L 2u
#define CVT_LU 3u

/* Rounding modes (rm field and frm). */
#define RM_RNE 0u
#define RM_RTZ 1u
#define RM_RDN 2u
#define RM_RUP 3u
#define RM_RMM 4u
#define RM_DYN 7u

/* fcsr layout and CSR numbers. */
#define CSR_FFLAGS 0x001u
#define CSR_FRM 0x002u
#define CSR_FCSR 0x003u
#define FFLAGS_MASK 0x1fu
#define FRM_MASK 0x7u
#define FCSR_FRM_SHIFT 5

/* FCLASS result bits. */
#define CLASS_NEG_INF (1u << 0)
#define CLASS_NEG_NORMAL (1u << 1)
#define CLASS_NEG_SUBNORMAL (1u << 2)
#define CLASS_NEG_ZERO (1u << 3)
#define CLASS_POS_ZERO (1u << 4)
#define CLASS_POS_SUBNORMAL (1u << 5)
#define CLASS_POS_NORMAL (1u << 6)
#define CLASS_POS_INF (1u << 7)
#define CLASS_SNAN (1u << 8)
#define CLASS_QNAN (1u << 9)

#define NAN_BOX_MASK 0xffffffff00000000ull

typedef unsigned __int128 u128;

/* An IEEE binary interchange format, described by its field widths. */
struct fp_format {
	unsigned frac_bits;    /* stored fraction bits: 23 or 52 */
	unsigned sign_shift;   /* position of the sign bit: 31 or 63 */
	int32_t bias;          /* exponent bias: 127 or 1023 */
	uint32_t exp_all_ones; /* biased exponent of infinities and NaNs */
	uint64_t canonical_nan;
};

static const struct fp_format fmt_single = { 23, 31, 127, 0xff, 0x7fc00000ull };
static const struct fp_format fmt_double = { 52, 63, 1023, 0x7ff, 0x7ff8000000000000ull };

/* Kinds of operand after unpacking. */
enum fp_kind { VAL_ZERO, VAL_FINITE, VAL_INF, VAL_QNAN, VAL_SNAN };

/* An unpacked operand: for VAL_FINITE, value = (-1)^sign * sig * 2^(exp - 63) with bit 63 of sig set. */
struct fp_value {
	enum fp_kind kind;
	bool sign;
	int32_t exp;
	uint64_t sig;
};

/* ---- bit helpers ---- */

static inline uint64_t sign_bit(const struct fp_format *f)
{
	return 1ull << f->sign_shift;
}

static inline uint64_t frac_mask(const struct fp_format *f)
{
	return (1ull << f->frac_bits) - 1;
}

static inline uint32_t exp_field(const struct fp_format *f, uint64_t bits)
{
	return (uint32_t)(bits >> f->frac_bits) & f->exp_all_ones;
}

static inline bool is_nan(const struct fp_format *f, uint64_t bits)
{
	return exp_field(f, bits) == f->exp_all_ones && (bits & frac_mask(f)) != 0;
}

static inline bool is_snan(const struct fp_format *f, uint64_t bits)
{
	return is_nan(f, bits) && !(bits & (1ull << (f->frac_bits - 1)));
}

static inline uint64_t pack_inf(const struct fp_format *f, bool sign)
{
	return (sign ? sign_bit(f) : 0) | ((uint64_t)f->exp_all_ones << f->frac_bits);
}

static inline uint64_t pack_zero(const struct fp_format *f, bool sign)
{
	return sign ? sign_bit(f) : 0;
}

/* Largest finite magnitude with the given sign. */
static inline uint64_t pack_max(const struct fp_format *f, bool sign)
{
	return pack_inf(f, sign) - 1;
}

/* Shift right, ORing every bit shifted out into bit 0 so rounding still sees them. */
static inline uint64_t shr_jam64(uint64_t v, uint32_t n)
{
	if (n == 0)
		return v;
	if (n >= 64)
		return v != 0;
	return (v >> n) | ((v << (64 - n)) != 0);
}

static inline u128 shr_jam128(u128 v, uint32_t n)
{
	if (n == 0)
		return v;
	if (n >= 128)
		return v != 0;
	return (v >> n) | ((v << (128 - n)) != 0);
}

static inline unsigned clz128(u128 v)
{
	uint64_t hi = (uint64_t)(v >> 64);
	return hi ? (unsigned)__builtin_clzll(hi) : 64u + (unsigned)__builtin_clzll((uint64_t)v);
}

static struct fp_value unpack(const struct fp_format *f, uint64_t bits)
{
	struct fp_value v = { .sign = (bits & sign_bit(f)) != 0 };
	uint32_t e = exp_field(f, bits);
	uint64_t frac = bits & frac_mask(f);

	if (e == f->exp_all_ones) {
		if (frac == 0)
			v.kind = VAL_INF;
		else
			v.kind = (frac >> (f->frac_bits - 1)) ? VAL_QNAN : VAL_SNAN;
	} else if (e == 0) {
		if (frac == 0) {
			v.kind = VAL_ZERO;
		} else {
			unsigned n = (unsigned)__builtin_clzll(frac);

			v.kind = VAL_FINITE;
			v.sig = frac << n;
			/* frac * 2^(1 - bias - frac_bits) = (frac << n) * 2^(exp - 63) */
			v.exp = 1 - f->bias - (int32_t)f->frac_bits + 63 - (int32_t)n;
		}
	} else {
		v.kind = VAL_FINITE;
		v.sig = (frac | (1ull << f->frac_bits)) << (63 - f->frac_bits);
		v.exp = (int32_t)e - f->bias;
	}
	return v;
}

static inline bool is_nan_kind(const struct fp_value *v)
{
	return v->kind == VAL_QNAN || v->kind == VAL_SNAN;
}

/* Whether a value with truncated remainder `rem` (out of `half` * 2) rounds away from zero. */
static bool round_increments(unsigned rm, bool sign, uint64_t kept, uint64_t rem, uint64_t half)
{
	switch (rm) {
	case RM_RNE:
		return rem > half || (rem == half && (kept & 1));
	case RM_RDN:
		return rem != 0 && sign;
	case RM_RUP:
		return rem != 0 && !sign;
	case RM_RMM:
		return rem >= half;
	default: /* RM_RTZ */
		return false;
	}
}

/*
 * Rounds (-1)^sign * sig * 2^(exp - 63) (sig != 0, bit 63 set, sticky in bit 0) to format f in
 * mode rm and packs it, accruing NX, UF (tiny after rounding and inexact) and OF.
 */
static uint64_t round_pack(const struct fp_format *f, bool sign, int32_t exp, uint64_t sig, unsigned rm,
			   uint32_t *flags)
{
	const unsigned shift = 63 - f->frac_bits; /* bits below the kept significand */
	const uint64_t half = 1ull << (shift - 1);
	const uint64_t rem_mask = (1ull << shift) - 1;
	int32_t biased = exp + f->bias;
	uint64_t sbit = sign ? sign_bit(f) : 0;
	uint64_t kept, rem, bits;

	if (biased >= (int32_t)f->exp_all_ones)
		goto overflow;

	if (biased <= 0) {
		/* Tiny after rounding unless rounding to full precision carries up to the least normal. */
		bool tiny = true;

		if (biased == 0) {
			kept = sig >> shift;
			rem = sig & rem_mask;
			if (kept == (1ull << (f->frac_bits + 1)) - 1 && round_increments(rm, sign, kept, rem, half))
				tiny = false;
		}
		sig = shr_jam64(sig, (uint32_t)(1 - biased));
		kept = sig >> shift;
		rem = sig & rem_mask;
		if (rem) {
			*flags |= FFLAG_NX;
			if (tiny)
				*flags |= FFLAG_UF;
		}
		/* A carry into bit frac_bits turns the subnormal into the least normal number. */
		return sbit | (kept + round_increments(rm, sign, kept, rem, half));
	}

	kept = sig >> shift;
	rem = sig & rem_mask;
	/* kept includes the implicit bit, which adds one to the exponent field: store biased - 1. */
	bits = ((uint64_t)(biased - 1) << f->frac_bits) + kept + round_increments(rm, sign, kept, rem, half);
	if (exp_field(f, bits) == f->exp_all_ones)
		goto overflow;
	if (rem)
		*flags |= FFLAG_NX;
	return sbit | bits;

overflow:
	*flags |= FFLAG_OF | FFLAG_NX;
	switch (rm) {
	case RM_RTZ:
		return pack_max(f, sign);
	case RM_RDN:
		return sign ? pack_inf(f, true) : pack_max(f, false);
	case RM_RUP:
		return sign ? pack_max(f, true) : pack_inf(f, false);
	default:
		return pack_inf(f, sign);
	}
}

/* round_pack() for a significand that need not be normalised (but is not zero). */
static uint64_t normalize_round_pack(const struct fp_format *f, bool sign, int32_t exp, uint64_t sig,
				     unsigned rm, uint32_t *flags)
{
	unsigned n = (unsigned)__builtin_clzll(sig);

	return round_pack(f, sign, exp - (int32_t)n, sig << n, rm, flags);
}

/* Same for a 128-bit significand: value = sig * 2^(exp - 127). */
static uint64_t normalize_round_pack128(const struct fp_format *f, bool sign, int32_t exp, u128 sig,
					unsigned rm, uint32_t *flags)
{
	unsigned n = clz128(sig);
	uint64_t hi;

	sig <<= n;
	hi = (uint64_t)(sig >> 64) | ((uint64_t)sig != 0);
	return round_pack(f, sign, exp - (int32_t)n, hi, rm, flags);
}

/* The canonical NaN, raising NV if any of the operands is a signaling NaN. */
static uint64_t nan_result(const struct fp_format *f, const struct fp_value *a, const struct fp_value *b,
			   const struct fp_value *c, uint32_t *flags)
{
	if (a->kind == VAL_SNAN || (b && b->kind == VAL_SNAN) || (c && c->kind == VAL_SNAN))
		*flags |= FFLAG_NV;
	return f->canonical_nan;
}

static uint64_t invalid_result(const struct fp_format *f, uint32_t *flags)
{
	*flags |= FFLAG_NV;
	return f->canonical_nan;
}

/* Sign of an exact zero sum of operands with opposite signs (IEEE 754 §6.3). */
static inline bool zero_sum_sign(unsigned rm)
{
	return rm == RM_RDN;
}

/* ---- arithmetic ---- */

/* a + b for finite, non-zero operands. */
static uint64_t add_finite(const struct fp_format *f, const struct fp_value *a, const struct fp_value *b,
			   unsigned rm, uint32_t *flags)
{
	const struct fp_value *big = a, *small = b;
	uint64_t sb, ss;
	int32_t diff;

	if (b->exp > a->exp || (b->exp == a->exp && b->sig > a->sig)) {
		big = b;
		small = a;
	}
	diff = big->exp - small->exp;
	/* One bit of headroom for the carry; the low bits of sig are zero, so >> 1 is exact. */
	sb = big->sig >> 1;
	ss = shr_jam64(small->sig >> 1, (uint32_t)diff);
	if (big->sign == small->sign)
		return normalize_round_pack(f, big->sign, big->exp + 1, sb + ss, rm, flags);
	if (sb == ss)
		return pack_zero(f, zero_sum_sign(rm));
	return normalize_round_pack(f, big->sign, big->exp + 1, sb - ss, rm, flags);
}

static uint64_t fp_add(const struct fp_format *f, uint64_t abits, uint64_t bbits, bool negate_b, unsigned rm,
		       uint32_t *flags)
{
	struct fp_value a = unpack(f, abits), b = unpack(f, bbits);

	b.sign ^= negate_b;
	if (is_nan_kind(&a) || is_nan_kind(&b))
		return nan_result(f, &a, &b, NULL, flags);
	if (a.kind == VAL_INF) {
		if (b.kind == VAL_INF && a.sign != b.sign)
			return invalid_result(f, flags);
		return pack_inf(f, a.sign);
	}
	if (b.kind == VAL_INF)
		return pack_inf(f, b.sign);
	if (a.kind == VAL_ZERO && b.kind == VAL_ZERO)
		return pack_zero(f, a.sign == b.sign ? a.sign : zero_sum_sign(rm));
	if (a.kind == VAL_ZERO)
		return bbits ^ (negate_b ? sign_bit(f) : 0);
	if (b.kind == VAL_ZERO)
		return abits;
	return add_finite(f, &a, &b, rm, flags);
}

static uint64_t fp_mul(const struct fp_format *f, uint64_t abits, uint64_t bbits, unsigned rm, uint32_t *flags)
{
	struct fp_value a = unpack(f, abits), b = unpack(f, bbits);
	bool sign = a.sign ^ b.sign;
	u128 product;

	if (is_nan_kind(&a) || is_nan_kind(&b))
		return nan_result(f, &a, &b, NULL, flags);
	if (a.kind == VAL_INF || b.kind == VAL_INF) {
		if (a.kind == VAL_ZERO || b.kind == VAL_ZERO)
			return invalid_result(f, flags);
		return pack_inf(f, sign);
	}
	if (a.kind == VAL_ZERO || b.kind == VAL_ZERO)
		return pack_zero(f, sign);
	/* sig_a * sig_b * 2^(ea + eb - 126) = product * 2^((ea + eb + 1) - 127) */
	product = (u128)a.sig * b.sig;
	return normalize_round_pack128(f, sign, a.exp + b.exp + 1, product, rm, flags);
}

static uint64_t fp_div(const struct fp_format *f, uint64_t abits, uint64_t bbits, unsigned rm, uint32_t *flags)
{
	struct fp_value a = unpack(f, abits), b = unpack(f, bbits);
	bool sign = a.sign ^ b.sign;
	u128 dividend;
	uint64_t q;

	if (is_nan_kind(&a) || is_nan_kind(&b))
		return nan_result(f, &a, &b, NULL, flags);
	if (a.kind == VAL_INF) {
		if (b.kind == VAL_INF)
			return invalid_result(f, flags);
		return pack_inf(f, sign);
	}
	if (b.kind == VAL_INF)
		return pack_zero(f, sign);
	if (b.kind == VAL_ZERO) {
		if (a.kind == VAL_ZERO)
			return invalid_result(f, flags);
		*flags |= FFLAG_DZ;
		return pack_inf(f, sign);
	}
	if (a.kind == VAL_ZERO)
		return pack_zero(f, sign);
	/* (sig_a / 2) * 2^64 / sig_b lies in (2^62, 2^64): sig_a / sig_b * 2^63, 62+ quotient bits. */
	dividend = (u128)(a.sig >> 1) << 64;
	q = (uint64_t)(dividend / b.sig);
	q |= (dividend % b.sig) != 0;
	return normalize_round_pack(f, sign, a.exp - b.exp, q, rm, flags);
}

/*
 * floor(sqrt(n)) for n in [2^126, 2^128), and whether it is exact. The host's sqrt() of the top 64
 * bits only seeds the search (within about 2^12 of the root); one integer Newton step and an exact
 * integer correction follow, so the result does not depend on the seed or on the host.
 */
static uint64_t isqrt128(u128 n, bool *exact)
{
	double seed = sqrt((double)(uint64_t)(n >> 64)) * 0x1p32;
	uint64_t r = seed >= 0x1p64 ? UINT64_MAX : (uint64_t)seed;
	u128 q, sq;

	if (r < (1ull << 63))
		r = 1ull << 63;
	/* Newton: (r + n / r) / 2 lies at or just above the root, whatever side r started on. */
	q = n / r;
	q = (q + r) >> 1;
	r = q > UINT64_MAX ? UINT64_MAX : (uint64_t)q;
	sq = (u128)r * r;
	while (sq > n) {
		sq -= 2 * (u128)r - 1; /* (r - 1)^2 */
		r--;
	}
	while (r != UINT64_MAX && sq + 2 * (u128)r + 1 <= n) {
		sq += 2 * (u128)r + 1; /* (r + 1)^2 */
		r++;
	}
	*exact = sq == n;
	return r;
}

static uint64_t fp_sqrt(const struct fp_format *f, uint64_t abits, unsigned rm, uint32_t *flags)
{
	struct fp_value a = unpack(f, abits);
	int32_t e2, k;
	uint64_t root;
	bool exact;

	if (is_nan_kind(&a))
		return nan_result(f, &a, NULL, NULL, flags);
	if (a.kind == VAL_ZERO)
		return abits;
	if (a.sign)
		return invalid_result(f, flags);
	if (a.kind == VAL_INF)
		return abits;
	/* value = sig * 2^e2; scale sig by 2^k so that e2 - k is even and the root has 64 bits. */
	e2 = a.exp - 63;
	k = (e2 & 1) ? 63 : 64;
	root = isqrt128((u128)a.sig << k, &exact);
	return round_pack(f, false, (e2 - k) / 2 + 63, root | !exact, rm, flags);
}

/* (-1)^negate_product * a * b + (-1)^negate_c * c with a single rounding. */
static uint64_t fp_fma(const struct fp_format *f, uint64_t abits, uint64_t bbits, uint64_t cbits,
		       bool negate_product, bool negate_c, unsigned rm, uint32_t *flags)
{
	struct fp_value a = unpack(f, abits), b = unpack(f, bbits), c = unpack(f, cbits);
	bool psign = a.sign ^ b.sign ^ negate_product;
	bool pinf = a.kind == VAL_INF || b.kind == VAL_INF;
	bool pzero = a.kind == VAL_ZERO || b.kind == VAL_ZERO;
	u128 p, cs;
	int32_t pexp, cexp;

	c.sign ^= negate_c;
	/* inf * 0 is invalid even when the addend is a quiet NaN (RISC-V F spec). */
	if (pinf && pzero) {
		if (!is_nan_kind(&a) && !is_nan_kind(&b))
			return invalid_result(f, flags);
	}
	if (is_nan_kind(&a) || is_nan_kind(&b) || is_nan_kind(&c))
		return nan_result(f, &a, &b, &c, flags);
	if (pinf) {
		if (c.kind == VAL_INF && c.sign != psign)
			return invalid_result(f, flags);
		return pack_inf(f, psign);
	}
	if (c.kind == VAL_INF)
		return pack_inf(f, c.sign);
	if (pzero) {
		if (c.kind == VAL_ZERO)
			return pack_zero(f, psign == c.sign ? psign : zero_sum_sign(rm));
		return cbits ^ (negate_c ? sign_bit(f) : 0);
	}
	/* Product: sig_a * sig_b * 2^(ea + eb - 126), in [2^126, 2^128); keep two bits of headroom. */
	p = ((u128)a.sig * b.sig) >> 2; /* exact: both significands end in at least 11 zero bits */
	pexp = a.exp + b.exp - 124;     /* value = p * 2^pexp */
	if (c.kind == VAL_ZERO)
		return normalize_round_pack128(f, psign, pexp + 127, p, rm, flags);
	cs = (u128)c.sig << 62; /* in [2^125, 2^126) */
	cexp = c.exp - 125;
	if (pexp >= cexp) {
		cs = shr_jam128(cs, (uint32_t)MIN((int64_t)pexp - cexp, 128));
	} else {
		p = shr_jam128(p, (uint32_t)MIN((int64_t)cexp - pexp, 128));
		pexp = cexp;
	}
	if (psign == c.sign)
		return normalize_round_pack128(f, psign, pexp + 127, p + cs, rm, flags);
	if (p == cs)
		return pack_zero(f, zero_sum_sign(rm));
	if (p > cs)
		return normalize_round_pack128(f, psign, pexp + 127, p - cs, rm, flags);
	return normalize_round_pack128(f, c.sign, pexp + 127, cs - p, rm, flags);
}

/* ---- conversions ---- */

static uint64_t fp_convert(const struct fp_format *to, const struct fp_format *from, uint64_t bits, unsigned rm,
			   uint32_t *flags)
{
	struct fp_value a = unpack(from, bits);

	switch (a.kind) {
	case VAL_QNAN:
	case VAL_SNAN:
		return nan_result(to, &a, NULL, NULL, flags);
	case VAL_INF:
		return pack_inf(to, a.sign);
	case VAL_ZERO:
		return pack_zero(to, a.sign);
	default:
		return round_pack(to, a.sign, a.exp, a.sig, rm, flags);
	}
}

static uint64_t int_to_fp(const struct fp_format *f, uint64_t value, bool is_signed, unsigned rm, uint32_t *flags)
{
	bool sign = is_signed && (int64_t)value < 0;
	uint64_t mag = sign ? 0 - value : value;

	if (mag == 0)
		return pack_zero(f, false);
	return normalize_round_pack(f, sign, 63, mag, rm, flags);
}

/*
 * Float to integer of `bits` width (32 or 64), rounding in mode rm. Out-of-range values and NaNs
 * saturate (NaN and positive overflow to the maximum) and raise NV; NX only for in-range results.
 * The result is returned as a 64-bit value, 32-bit results sign-extended.
 */
static uint64_t fp_to_int(const struct fp_format *f, uint64_t fbits, unsigned bits, bool is_signed, unsigned rm,
			  uint32_t *flags)
{
	struct fp_value a = unpack(f, fbits);
	uint64_t max_pos = is_signed ? (1ull << (bits - 1)) - 1 : (bits == 64 ? UINT64_MAX : (1ull << bits) - 1);
	uint64_t max_neg = is_signed ? 1ull << (bits - 1) : 0; /* largest magnitude of a negative result */
	uint64_t mag, result;
	bool inexact = false;

	switch (a.kind) {
	case VAL_QNAN:
	case VAL_SNAN:
		result = max_pos;
		goto invalid;
	case VAL_INF:
		result = a.sign ? 0 - max_neg : max_pos;
		goto invalid;
	case VAL_ZERO:
		return 0;
	default:
		break;
	}
	if (a.exp >= 64) {
		result = a.sign ? 0 - max_neg : max_pos;
		goto invalid;
	}
	if (a.exp >= 63) {
		mag = a.sig;
	} else {
		/* Integer part in the high half, fraction (with sticky) in the low half. */
		u128 fixed = shr_jam128((u128)a.sig << 64, (uint32_t)(63 - a.exp));
		uint64_t frac = (uint64_t)fixed;

		mag = (uint64_t)(fixed >> 64); /* < 2^63, cannot overflow on increment */
		inexact = frac != 0;
		mag += round_increments(rm, a.sign, mag, frac, 1ull << 63);
	}
	if (a.sign ? mag > max_neg : mag > max_pos) {
		result = a.sign ? 0 - max_neg : max_pos;
		goto invalid;
	}
	if (inexact)
		*flags |= FFLAG_NX;
	result = a.sign ? 0 - mag : mag;
	goto out;

invalid:
	*flags |= FFLAG_NV;
out:
	return bits == 32 ? (uint64_t)(int64_t)(int32_t)result : result;
}

/* ---- comparisons, sign injection, classification ---- */

/* a < b for non-NaN operands; with zeros_ordered, -0 < +0 (for FMIN/FMAX). */
static bool fp_less(const struct fp_format *f, uint64_t a, uint64_t b, bool zeros_ordered)
{
	uint64_t sb = sign_bit(f);
	bool as = (a & sb) != 0, bs = (b & sb) != 0;
	uint64_t am = a & ~sb, bm = b & ~sb;

	if (!zeros_ordered && am == 0 && bm == 0)
		return false;
	if (as != bs)
		return as;
	return as ? am > bm : am < bm;
}

static bool fp_equal(const struct fp_format *f, uint64_t a, uint64_t b)
{
	return a == b || ((a | b) & ~sign_bit(f)) == 0;
}

static uint64_t fp_compare(const struct fp_format *f, unsigned op, uint64_t a, uint64_t b, uint32_t *flags)
{
	if (is_nan(f, a) || is_nan(f, b)) {
		if (op != CMP_EQ || is_snan(f, a) || is_snan(f, b))
			*flags |= FFLAG_NV;
		return 0;
	}
	switch (op) {
	case CMP_EQ:
		return fp_equal(f, a, b);
	case CMP_LT:
		return fp_less(f, a, b, false);
	default: /* CMP_LE */
		return fp_less(f, a, b, false) || fp_equal(f, a, b);
	}
}

/* minimumNumber/maximumNumber (RISC-V F 2.2): a lone NaN yields the other operand. */
static uint64_t fp_minmax(const struct fp_format *f, bool max, uint64_t a, uint64_t b, uint32_t *flags)
{
	bool an = is_nan(f, a), bn = is_nan(f, b);

	if (is_snan(f, a) || is_snan(f, b))
		*flags |= FFLAG_NV;
	if (an && bn)
		return f->canonical_nan;
	if (an)
		return b;
	if (bn)
		return a;
	return fp_less(f, a, b, true) != max ? a : b;
}

static uint64_t fp_class(const struct fp_format *f, uint64_t bits)
{
	struct fp_value v = unpack(f, bits);
	bool subnormal = v.kind == VAL_FINITE && exp_field(f, bits) == 0;

	switch (v.kind) {
	case VAL_SNAN:
		return CLASS_SNAN;
	case VAL_QNAN:
		return CLASS_QNAN;
	case VAL_INF:
		return v.sign ? CLASS_NEG_INF : CLASS_POS_INF;
	case VAL_ZERO:
		return v.sign ? CLASS_NEG_ZERO : CLASS_POS_ZERO;
	default:
		if (subnormal)
			return v.sign ? CLASS_NEG_SUBNORMAL : CLASS_POS_SUBNORMAL;
		return v.sign ? CLASS_NEG_NORMAL : CLASS_POS_NORMAL;
	}
}

static uint64_t fp_sign_inject(const struct fp_format *f, unsigned op, uint64_t a, uint64_t b)
{
	uint64_t sb = sign_bit(f);

	switch (op) {
	case SGNJ_J:
		return (a & ~sb) | (b & sb);
	case SGNJ_N:
		return (a & ~sb) | (~b & sb);
	default: /* SGNJ_X */
		return a ^ (b & sb);
	}
}

/* ---- register file access and instruction decode ---- */

static void mark_dirty(struct cpu *cpu)
{
	cpu->mstatus |= MSTATUS_FS_DIRTY | MSTATUS_SD;
}

/* Reads f[reg] as format f: a single that is not NaN-boxed reads as the canonical NaN. */
static uint64_t read_freg(const struct cpu *cpu, const struct fp_format *f, unsigned reg)
{
	uint64_t v = cpu->f[reg];

	if (f == &fmt_double)
		return v;
	if ((v & NAN_BOX_MASK) != NAN_BOX_MASK)
		return fmt_single.canonical_nan;
	return v & UINT32_MAX;
}

static void write_freg(struct cpu *cpu, const struct fp_format *f, unsigned reg, uint64_t value)
{
	cpu->f[reg] = f == &fmt_double ? value : (value | NAN_BOX_MASK);
	mark_dirty(cpu);
}

static void write_xreg(struct cpu *cpu, unsigned reg, uint64_t value)
{
	if (reg != 0)
		cpu->x[reg] = value;
}

static void accrue_flags(struct cpu *cpu, uint32_t flags)
{
	if (flags & ~cpu->fflags) {
		cpu->fflags |= flags;
		mark_dirty(cpu);
	}
}

/* The effective rounding mode of an instruction, or false if it is reserved. */
static bool effective_rm(const struct cpu *cpu, uint32_t insn, unsigned *rm)
{
	unsigned r = insn_funct3(insn);

	if (r == RM_DYN)
		r = cpu->frm;
	*rm = r;
	return r <= RM_RMM;
}

static void illegal(struct cpu *cpu, uint32_t insn)
{
	cpu_raise_exception(cpu, EXC_ILLEGAL_INSN, insn);
}

static void exec_load(struct cpu *cpu, uint32_t insn)
{
	unsigned width = insn_funct3(insn);
	uint64_t addr = cpu->x[insn_rs1(insn)] + (uint64_t)(int64_t)insn_imm_i(insn);
	uint64_t value;

	if (width != WIDTH_W && width != WIDTH_D) {
		illegal(cpu, insn);
		return;
	}
	if (!cpu_load(cpu, addr, width == WIDTH_W ? 4 : 8, &value))
		return;
	write_freg(cpu, width == WIDTH_W ? &fmt_single : &fmt_double, insn_rd(insn), value);
}

static void exec_store(struct cpu *cpu, uint32_t insn)
{
	unsigned width = insn_funct3(insn);
	uint64_t addr = cpu->x[insn_rs1(insn)] + (uint64_t)(int64_t)insn_imm_s(insn);
	uint64_t value = cpu->f[insn_rs2(insn)];

	if (width != WIDTH_W && width != WIDTH_D) {
		illegal(cpu, insn);
		return;
	}
	/* FSW stores the low 32 bits as they are, boxed or not. */
	(void)cpu_store(cpu, addr, width == WIDTH_W ? 4 : 8, width == WIDTH_W ? (value & UINT32_MAX) : value);
}

static const struct fp_format *insn_format(uint32_t insn)
{
	switch (insn_fmt(insn)) {
	case FMT_S:
		return &fmt_single;
	case FMT_D:
		return &fmt_double;
	default:
		return NULL; /* half and quad are not implemented */
	}
}

static void exec_fused(struct cpu *cpu, uint32_t insn)
{
	const struct fp_format *f = insn_format(insn);
	unsigned opcode = insn_opcode(insn), rm;
	uint32_t flags = 0;
	uint64_t r;

	if (!f || !effective_rm(cpu, insn, &rm)) {
		illegal(cpu, insn);
		return;
	}
	r = fp_fma(f, read_freg(cpu, f, insn_rs1(insn)), read_freg(cpu, f, insn_rs2(insn)),
		   read_freg(cpu, f, insn_rs3(insn)), opcode == OPC_NMSUB || opcode == OPC_NMADD,
		   opcode == OPC_MSUB || opcode == OPC_NMADD, rm, &flags);
	write_freg(cpu, f, insn_rd(insn), r);
	accrue_flags(cpu, flags);
}

/* Operations that use the rounding mode: arithmetic and conversions. Returns false if illegal. */
static bool exec_op_rounded(struct cpu *cpu, uint32_t insn, const struct fp_format *f, unsigned funct5)
{
	unsigned rd = insn_rd(insn), rs1 = insn_rs1(insn), rs2 = insn_rs2(insn), rm;
	uint32_t flags = 0;

	if (!effective_rm(cpu, insn, &rm))
		return false;
	switch (funct5) {
	case F5_ADD:
	case F5_SUB:
		write_freg(cpu, f, rd, fp_add(f, read_freg(cpu, f, rs1), read_freg(cpu, f, rs2), funct5 == F5_SUB, rm,
					      &flags));
		break;
	case F5_MUL:
		write_freg(cpu, f, rd, fp_mul(f, read_freg(cpu, f, rs1), read_freg(cpu, f, rs2), rm, &flags));
		break;
	case F5_DIV:
		write_freg(cpu, f, rd, fp_div(f, read_freg(cpu, f, rs1), read_freg(cpu, f, rs2), rm, &flags));
		break;
	case F5_SQRT:
		if (rs2 != 0)
			return false;
		write_freg(cpu, f, rd, fp_sqrt(f, read_freg(cpu, f, rs1), rm, &flags));
		break;
	case F5_CVT_FF: {
		/* FCVT.S.D (fmt S, rs2 = 1) and FCVT.D.S (fmt D, rs2 = 0). */
		const struct fp_format *from = f == &fmt_single ? &fmt_double : &fmt_single;

		if (rs2 != (f == &fmt_single ? FMT_D : FMT_S))
			return false;
		write_freg(cpu, f, rd, fp_convert(f, from, read_freg(cpu, from, rs1), rm, &flags));
		break;
	}
	case F5_CVT_IF:
		if (rs2 > CVT_LU)
			return false;
		write_xreg(cpu, rd,
			   fp_to_int(f, read_freg(cpu, f, rs1), rs2 <= CVT_WU ? 32 : 64, rs2 == CVT_W || rs2 == CVT_L,
				     rm, &flags));
		break;
	case F5_CVT_FI: {
		uint64_t v = cpu->x[rs1];

		if (rs2 > CVT_LU)
			return false;
		if (rs2 == CVT_W)
			v = (uint64_t)(int64_t)(int32_t)v;
		else if (rs2 == CVT_WU)
			v &= UINT32_MAX;
		write_freg(cpu, f, rd, int_to_fp(f, v, rs2 == CVT_W || rs2 == CVT_L, rm, &flags));
		break;
	}
	default:
		return false;
	}
	accrue_flags(cpu, flags);
	return true;
}

/* Operations whose funct3 selects a variant rather than a rounding mode. Returns false if illegal. */
static bool exec_op_exact(struct cpu *cpu, uint32_t insn, const struct fp_format *f, unsigned funct5)
{
	unsigned rd = insn_rd(insn), rs1 = insn_rs1(insn), rs2 = insn_rs2(insn), op = insn_funct3(insn);
	uint32_t flags = 0;

	switch (funct5) {
	case F5_SGNJ:
		if (op > SGNJ_X)
			return false;
		write_freg(cpu, f, rd, fp_sign_inject(f, op, read_freg(cpu, f, rs1), read_freg(cpu, f, rs2)));
		return true;
	case F5_MINMAX:
		if (op > MINMAX_MAX)
			return false;
		write_freg(cpu, f, rd, fp_minmax(f, op == MINMAX_MAX, read_freg(cpu, f, rs1), read_freg(cpu, f, rs2),
						 &flags));
		break;
	case F5_CMP:
		if (op > CMP_EQ)
			return false;
		write_xreg(cpu, rd, fp_compare(f, op, read_freg(cpu, f, rs1), read_freg(cpu, f, rs2), &flags));
		break;
	case F5_MV_XF:
		if (rs2 != 0 || op > MV_XF_CLASS)
			return false;
		if (op == MV_XF_CLASS)
			write_xreg(cpu, rd, fp_class(f, read_freg(cpu, f, rs1)));
		else if (f == &fmt_single)
			write_xreg(cpu, rd, (uint64_t)(int64_t)(int32_t)(uint32_t)cpu->f[rs1]);
		else
			write_xreg(cpu, rd, cpu->f[rs1]);
		return true;
	case F5_MV_FX:
		if (rs2 != 0 || op != 0)
			return false;
		write_freg(cpu, f, rd, f == &fmt_single ? (cpu->x[rs1] & UINT32_MAX) : cpu->x[rs1]);
		return true;
	default:
		return false;
	}
	accrue_flags(cpu, flags);
	return true;
}

static void exec_op_fp(struct cpu *cpu, uint32_t insn)
{
	const struct fp_format *f = insn_format(insn);
	unsigned funct5 = insn_funct5(insn);
	bool ok;

	if (!f) {
		illegal(cpu, insn);
		return;
	}
	switch (funct5) {
	case F5_SGNJ:
	case F5_MINMAX:
	case F5_CMP:
	case F5_MV_XF:
	case F5_MV_FX:
		ok = exec_op_exact(cpu, insn, f, funct5);
		break;
	default:
		ok = exec_op_rounded(cpu, insn, f, funct5);
		break;
	}
	if (!ok)
		illegal(cpu, insn);
}

void fpu_execute(struct cpu *cpu, uint32_t insn)
{
	if ((cpu->mstatus & MSTATUS_FS_MASK) == MSTATUS_FS_OFF) {
		illegal(cpu, insn);
		return;
	}
	switch (insn_opcode(insn)) {
	case OPC_LOAD_FP:
		exec_load(cpu, insn);
		break;
	case OPC_STORE_FP:
		exec_store(cpu, insn);
		break;
	case OPC_MADD:
	case OPC_MSUB:
	case OPC_NMSUB:
	case OPC_NMADD:
		exec_fused(cpu, insn);
		break;
	case OPC_OP_FP:
		exec_op_fp(cpu, insn);
		break;
	default:
		illegal(cpu, insn);
		break;
	}
}

bool fpu_csr_read(struct cpu *cpu, unsigned csr, uint64_t *value)
{
	if ((cpu->mstatus & MSTATUS_FS_MASK) == MSTATUS_FS_OFF)
		return false;
	switch (csr) {
	case CSR_FFLAGS:
		*value = cpu->fflags & FFLAGS_MASK;
		return true;
	case CSR_FRM:
		*value = cpu->frm & FRM_MASK;
		return true;
	case CSR_FCSR:
		*value = ((uint64_t)(cpu->frm & FRM_MASK) << FCSR_FRM_SHIFT) | (cpu->fflags & FFLAGS_MASK);
		return true;
	default:
		return false;
	}
}

bool fpu_csr_write(struct cpu *cpu, unsigned csr, uint64_t value)
{
	if ((cpu->mstatus & MSTATUS_FS_MASK) == MSTATUS_FS_OFF)
		return false;
	switch (csr) {
	case CSR_FFLAGS:
		cpu->fflags = (uint32_t)value & FFLAGS_MASK;
		break;
	case CSR_FRM:
		cpu->frm = (uint32_t)value & FRM_MASK;
		break;
	case CSR_FCSR:
		cpu->fflags = (uint32_t)value & FFLAGS_MASK;
		cpu->frm = (uint32_t)(value >> FCSR_FRM_SHIFT) & FRM_MASK;
		break;
	default:
		return false;
	}
	mark_dirty(cpu);
	return true;
}
