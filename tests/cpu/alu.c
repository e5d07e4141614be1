/*
 * alu.c — every RV64I/M register and immediate ALU instruction and every branch on a table of
 * edge values (0, ±1, extremes of 32 and 64 bits, shift amounts past the width, division by zero
 * and the INT_MIN / -1 overflow). Prints one digest per instruction.
 */
#include "rt.h"

static const uint64_t vals[] = {
	0, 1, 2, 0x1f, 0x20, 0x3f, 0x40, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000,
	0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff, 0xfffffffffffffffe,
	0x123456789abcdef0, 0xfedcba9876543210, 0xffffffff80000000, 0x00000000ffff0000, 0x5555aaaa3333cccc,
};
#define NV (sizeof(vals) / sizeof(vals[0]))

#define RR(op)                                                                          \
	static uint64_t rr_##op(void)                                                   \
	{                                                                               \
		uint64_t h = 0;                                                         \
		for (unsigned i = 0; i < NV; i++)                                       \
			for (unsigned j = 0; j < NV; j++) {                             \
				uint64_t r;                                             \
				__asm__ volatile(#op " %0, %1, %2" : "=r"(r) : "r"(vals[i]), "r"(vals[j])); \
				h = rt_mix(h, r);                                       \
			}                                                               \
		return h;                                                               \
	}
#define RI(name, op, imm)                                                               \
	static uint64_t ri_##name(void)                                                 \
	{                                                                               \
		uint64_t h = 0;                                                         \
		for (unsigned i = 0; i < NV; i++) {                                     \
			uint64_t r;                                                     \
			__asm__ volatile(#op " %0, %1, " #imm : "=r"(r) : "r"(vals[i]));  \
			h = rt_mix(h, r);                                               \
		}                                                                       \
		return h;                                                               \
	}
#define BR(op)                                                                          \
	static uint64_t br_##op(void)                                                   \
	{                                                                               \
		uint64_t h = 0;                                                         \
		for (unsigned i = 0; i < NV; i++)                                       \
			for (unsigned j = 0; j < NV; j++) {                             \
				uint64_t t;                                             \
				__asm__ volatile("li %0, 1\n\t" #op " %1, %2, 1f\n\tli %0, 0\n1:" \
						 : "=&r"(t) : "r"(vals[i]), "r"(vals[j])); \
				h = rt_mix(h, t);                                       \
			}                                                               \
		return h;                                                               \
	}

RR(add) RR(sub) RR(sll) RR(slt) RR(sltu) RR(xor) RR(srl) RR(sra) RR(or) RR(and)
RR(addw) RR(subw) RR(sllw) RR(srlw) RR(sraw)
RR(mul) RR(mulh) RR(mulhsu) RR(mulhu) RR(div) RR(divu) RR(rem) RR(remu)
RR(mulw) RR(divw) RR(divuw) RR(remw) RR(remuw)
RI(addi_p, addi, 2047) RI(addi_n, addi, -2048) RI(slti, slti, -1) RI(sltiu, sltiu, -1)
RI(sltiu1, sltiu, 1) RI(xori, xori, -1) RI(ori, ori, 0x555) RI(andi, andi, -16)
RI(slli, slli, 63) RI(slli1, slli, 1) RI(srli, srli, 63) RI(srli7, srli, 7) RI(srai, srai, 63)
RI(srai33, srai, 33) RI(addiw, addiw, -1) RI(addiw2, addiw, 2047) RI(slliw, slliw, 31)
RI(srliw, srliw, 31) RI(sraiw, sraiw, 31) RI(sraiw0, sraiw, 0)
BR(beq) BR(bne) BR(blt) BR(bge) BR(bltu) BR(bgeu)

int main(void)
{
#define P(kind, op) rt_print(#op, kind##_##op())
	P(rr, add); P(rr, sub); P(rr, sll); P(rr, slt); P(rr, sltu); P(rr, xor); P(rr, srl); P(rr, sra);
	P(rr, or); P(rr, and); P(rr, addw); P(rr, subw); P(rr, sllw); P(rr, srlw); P(rr, sraw);
	P(rr, mul); P(rr, mulh); P(rr, mulhsu); P(rr, mulhu); P(rr, div); P(rr, divu); P(rr, rem);
	P(rr, remu); P(rr, mulw); P(rr, divw); P(rr, divuw); P(rr, remw); P(rr, remuw);
	P(ri, addi_p); P(ri, addi_n); P(ri, slti); P(ri, sltiu); P(ri, sltiu1); P(ri, xori); P(ri, ori);
	P(ri, andi); P(ri, slli); P(ri, slli1); P(ri, srli); P(ri, srli7); P(ri, srai); P(ri, srai33);
	P(ri, addiw); P(ri, addiw2); P(ri, slliw); P(ri, srliw); P(ri, sraiw); P(ri, sraiw0);
	P(br, beq); P(br, bne); P(br, blt); P(br, bge); P(br, bltu); P(br, bgeu);
	/* Spot values a reader can check by hand. */
	uint64_t r;
	__asm__ volatile("div %0, %1, %2" : "=r"(r) : "r"(0x8000000000000000ull), "r"(-1ll));
	rt_print("div_overflow", r);
	__asm__ volatile("rem %0, %1, %2" : "=r"(r) : "r"(0x8000000000000000ull), "r"(-1ll));
	rt_print("rem_overflow", r);
	__asm__ volatile("divu %0, %1, %2" : "=r"(r) : "r"(1234ull), "r"(0ull));
	rt_print("divu_by_zero", r);
	__asm__ volatile("remw %0, %1, %2" : "=r"(r) : "r"(0xfffffffff0000000ull), "r"(0ull));
	rt_print("remw_by_zero", r);
	__asm__ volatile("lui %0, 0x80000" : "=r"(r));
	rt_print("lui", r);
	uint64_t a, b;
	__asm__ volatile("auipc %0, 0x7ffff\n\tauipc %1, 0" : "=r"(a), "=r"(b));
	rt_print("auipc_delta", a - b);
	__asm__ volatile("jal %0, 1f\n1:\tauipc %1, 0" : "=r"(a), "=r"(b));
	rt_print("jal_link", b - a);
	__asm__ volatile("la %1, 1f\n\tjalr %0, 1(%1)\n\tnop\n1:" : "=&r"(a), "=&r"(b));
	rt_print("jalr_lsb", a & 1);
	return 0;
}
