/*
 * atomics.c — LR/SC (success, failure without or with a broken reservation, the value check
 * QEMU makes) and every AMO in 32 and 64 bits on edge values, printing rd and memory.
 */
#include "rt.h"

static const uint64_t vals[] = {
	0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x7fffffffffffffff, 0x8000000000000000,
	0xffffffffffffffff, 0x123456789abcdef0, 0xfffffffe00000001,
};
#define NV (sizeof(vals) / sizeof(vals[0]))
static volatile uint64_t mem[4];

#define AMO(name, op)                                                                   \
	static uint64_t amo_##name(void)                                                  \
	{                                                                               \
		uint64_t h = 0;                                                         \
		for (unsigned i = 0; i < NV; i++)                                       \
			for (unsigned j = 0; j < NV; j++) {                             \
				uint64_t r;                                             \
				mem[0] = vals[i];                                       \
				mem[1] = ~vals[i];                                      \
				__asm__ volatile(#op " %0, %1, (%2)" : "=r"(r) : "r"(vals[j]), "r"(&mem[0]) : "memory"); \
				h = rt_mix(rt_mix(rt_mix(h, r), mem[0]), mem[1]);       \
				__asm__ volatile(#op " %0, %1, (%2)" : "=r"(r) : "r"(vals[j]), "r"(&mem[1]) : "memory"); \
				h = rt_mix(rt_mix(rt_mix(h, r), mem[0]), mem[1]);       \
			}                                                               \
		return h;                                                               \
	}

AMO(amoswap_w, amoswap.w) AMO(amoadd_w, amoadd.w) AMO(amoxor_w, amoxor.w) AMO(amoand_w, amoand.w) AMO(amoor_w, amoor.w)
AMO(amomin_w, amomin.w) AMO(amomax_w, amomax.w) AMO(amominu_w, amominu.w) AMO(amomaxu_w, amomaxu.w)
AMO(amoswap_d, amoswap.d) AMO(amoadd_d, amoadd.d) AMO(amoxor_d, amoxor.d) AMO(amoand_d, amoand.d) AMO(amoor_d, amoor.d)
AMO(amomin_d, amomin.d) AMO(amomax_d, amomax.d) AMO(amominu_d, amominu.d) AMO(amomaxu_d, amomaxu.d)

static uint64_t sc(volatile uint64_t *p, uint64_t v)
{
	uint64_t r;
	__asm__ volatile("sc.d %0, %1, (%2)" : "=r"(r) : "r"(v), "r"(p) : "memory");
	return r;
}

static uint64_t lr(volatile uint64_t *p)
{
	uint64_t r;
	__asm__ volatile("lr.d %0, (%1)" : "=r"(r) : "r"(p) : "memory");
	return r;
}

int main(void)
{
#define P(name) rt_print(#name, amo_##name())
	P(amoswap_w); P(amoadd_w); P(amoxor_w); P(amoand_w); P(amoor_w);
	P(amomin_w); P(amomax_w); P(amominu_w); P(amomaxu_w);
	P(amoswap_d); P(amoadd_d); P(amoxor_d); P(amoand_d); P(amoor_d);
	P(amomin_d); P(amomax_d); P(amominu_d); P(amomaxu_d);

	mem[0] = 5;
	rt_print("sc_without_lr", sc(&mem[0], 6));
	rt_print("sc_without_lr_mem", mem[0]);
	rt_print("lr", lr(&mem[0]));
	rt_print("sc_ok", sc(&mem[0], 7));
	rt_print("sc_ok_mem", mem[0]);
	rt_print("sc_again_fails", sc(&mem[0], 8));
	rt_print("sc_again_mem", mem[0]);
	lr(&mem[0]);
	rt_print("sc_other_addr", sc(&mem[1], 9));
	rt_print("sc_other_mem", mem[1]);
	rt_print("sc_after_other", sc(&mem[0], 9));
	lr(&mem[0]);
	mem[0] = 7; /* same value written back: the reservation's value check still passes */
	rt_print("sc_same_value", sc(&mem[0], 10));
	rt_print("sc_same_value_mem", mem[0]);
	uint32_t w;
	mem[2] = 0xffffffff80000000ul;
	__asm__ volatile("lr.w %0, (%1)" : "=r"(w) : "r"(&mem[2]) : "memory");
	uint64_t lw;
	__asm__ volatile("lr.w %0, (%1)\n\tsc.w %0, %2, (%1)" : "=&r"(lw) : "r"(&mem[2]), "r"(0x12345678u) : "memory");
	rt_print("lr_w_sc_w", lw);
	rt_print("lr_w_sc_w_mem", mem[2]);
	__asm__ volatile("lr.w %0, (%1)" : "=r"(lw) : "r"(&mem[2]) : "memory");
	rt_print("lr_w_sext", lw);
	__asm__ volatile("amoadd.d zero, %0, (%1)" ::"r"(3ul), "r"(&mem[3]) : "memory");
	rt_print("amo_rd_zero_mem", mem[3]);
	__asm__ volatile("lr.d.aqrl %0, (%1)\n\tsc.d.rl %0, %2, (%1)" : "=&r"(lw) : "r"(&mem[3]), "r"(42ul) : "memory");
	rt_print("aqrl", lw);
	rt_print("aqrl_mem", mem[3]);
	rt_print_trap("no_traps", 0);
	return 0;
}
