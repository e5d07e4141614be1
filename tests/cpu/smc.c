/*
 * smc.c — self-modifying code: instructions rewritten in place (32-bit and compressed, growing
 * and shrinking, the second half of a 32-bit instruction alone) and executed after fence.i, and a
 * loop that patches its own body. ftvm caches decoded instructions, so this checks that a
 * rewritten instruction is never executed in its old form.
 */
#include "rt.h"

#define I_RET 0x00008067u          /* jalr x0, 0(ra) */
#define C_RET 0x8082u              /* c.jr ra */
#define C_NOP 0x0001u

static uint32_t code[64] __attribute__((aligned(64)));

static uint32_t addi_a0(int32_t imm)   /* addi a0, x0, imm */
{
	return ((uint32_t)imm & 0xfff) << 20 | 10u << 7 | 0x13u;
}

static uint16_t c_li_a0(int32_t imm)   /* c.li a0, imm (-32..31) */
{
	uint32_t u = (uint32_t)imm;
	return (uint16_t)(0x4000u | ((u >> 5) & 1) << 12 | 10u << 7 | (u & 31) << 2 | 1u);
}

static uint64_t call_code(void)
{
	__asm__ volatile(".word 0x0000100f" ::: "memory"); /* fence.i */
	return ((uint64_t(*)(void))(uintptr_t)code)();
}

static void put16(unsigned half, uint16_t v)
{
	((volatile uint16_t *)code)[half] = v;
}

static void put32(unsigned half, uint32_t v)
{
	put16(half, (uint16_t)v);
	put16(half + 1, (uint16_t)(v >> 16));
}

int main(void)
{
	uint64_t h = 0;
	for (int i = -40; i < 40; i++) {
		/* A 32-bit addi, then the same slot as c.li + c.ret, then back. */
		put32(0, addi_a0(i * 37));
		put32(2, I_RET);
		h = rt_mix(h, call_code());
		if (i >= -32 && i < 32) {
			put16(0, c_li_a0(i));
			put16(1, C_RET);
			h = rt_mix(h, call_code());
		}
		/* Only the upper half of the 32-bit addi changes (the immediate). */
		put32(0, addi_a0(5));
		put32(2, I_RET);
		call_code();
		put16(1, (uint16_t)(addi_a0(i) >> 16));
		h = rt_mix(h, call_code());
	}
	rt_print("patched_digest", h);

	/* A loop whose body rewrites the immediate of its own counting instruction. */
	static const uint32_t loop[] = {
		0x00000513u, /* li a0, 0 */
		0x00a00293u, /* li t0, 10 */
		0x00150513u, /* 1: addi a0, a0, 1   (patched below to add 2) */
		0x00000317u, /* auipc t1, 0 */
		0xffc30313u, /* addi t1, t1, -4: t1 = the addi above */
		0x00732023u, /* sw t2, 0(t1): t2 holds "addi a0, a0, 2" */
		0x0000100fu, /* fence.i */
		0xfff28293u, /* addi t0, t0, -1 */
		0xfe0294e3u, /* bnez t0, 1b (-24) */
		I_RET,
	};
	for (unsigned k = 0; k < sizeof(loop) / 4; k++)
		code[k] = loop[k];
	uint64_t result;
	register uint64_t t2 __asm__("t2") = 0x00250513u; /* addi a0, a0, 2 */
	__asm__ volatile(".word 0x0000100f\n\tjalr ra, 0(%1)\n\tmv %0, a0"
			 : "=r"(result)
			 : "r"(code), "r"(t2)
			 : "ra", "a0", "t0", "t1", "memory");
	rt_print("self_patching_loop", result);
	rt_print_trap("no_traps", 0);
	return 0;
}
