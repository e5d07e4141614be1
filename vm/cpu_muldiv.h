/*
 * cpu_muldiv.h — the M extension's arithmetic with RISC-V's results for the corner cases
 * (division by zero gives all ones or the dividend, overflow gives the dividend or zero; no trap).
 * Shared by the interpreter (cpu.c) and the JIT's helpers (jit.c). vm/cpu*.c and vm/jit*.c only.
 */
#ifndef FTVM_VM_CPU_MULDIV_H
#define FTVM_VM_CPU_MULDIV_H

#include <stdint.h>

#define SEXT32(v) ((uint64_t)(int64_t)(int32_t)(uint32_t)(v))

static inline uint64_t mulh_s(int64_t a, int64_t b)
{
	return (uint64_t)(((__int128)a * b) >> 64);
}

static inline uint64_t mulh_su(int64_t a, uint64_t b)
{
	return (uint64_t)(((__int128)a * (unsigned __int128)b) >> 64);
}

static inline uint64_t mulh_u(uint64_t a, uint64_t b)
{
	return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

static inline uint64_t div_s(int64_t a, int64_t b)
{
	if (b == 0)
		return UINT64_MAX;
	if (a == INT64_MIN && b == -1)
		return (uint64_t)a;
	return (uint64_t)(a / b);
}

static inline uint64_t rem_s(int64_t a, int64_t b)
{
	if (b == 0)
		return (uint64_t)a;
	if (a == INT64_MIN && b == -1)
		return 0;
	return (uint64_t)(a % b);
}

/* OP-32 with funct7 = 1 (f3 1..3 are reserved and rejected by the caller). */
static inline uint64_t exec_muldiv_w(unsigned f3, uint64_t a64, uint64_t b64)
{
	int32_t a = (int32_t)a64, b = (int32_t)b64;
	uint32_t ua = (uint32_t)a64, ub = (uint32_t)b64;
	switch (f3) {
	case 0: return SEXT32(ua * ub);
	case 4:
		if (b == 0)
			return UINT64_MAX;
		if (a == INT32_MIN && b == -1)
			return SEXT32(a);
		return SEXT32(a / b);
	case 5: return ub ? SEXT32(ua / ub) : UINT64_MAX;
	case 6:
		if (b == 0)
			return SEXT32(a);
		if (a == INT32_MIN && b == -1)
			return 0;
		return SEXT32(a % b);
	default: return ub ? SEXT32(ua % ub) : SEXT32(ua);
	}
}

#endif
