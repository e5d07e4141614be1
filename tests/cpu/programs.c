/*
 * programs.c — ordinary compiled code as a broad check of the instruction mix a compiler emits
 * (compressed forms, jump tables, recursion, 128-bit arithmetic, byte and halfword traffic):
 * CRC-32, a sieve, sorting, recursion, a jump-table interpreter and a hash over the results.
 */
#include "rt.h"

#define N_SORT 500
#define N_SIEVE 20000

static uint8_t bytes[4096];
static uint32_t words[N_SORT];
static uint8_t composite[N_SIEVE];

static uint32_t crc32(const uint8_t *p, unsigned n)
{
	uint32_t c = ~0u;
	for (unsigned i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}

static uint64_t fib(unsigned n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static void shell_sort(uint32_t *a, unsigned n)
{
	for (unsigned gap = n / 2; gap; gap /= 2)
		for (unsigned i = gap; i < n; i++) {
			uint32_t v = a[i];
			unsigned j = i;
			for (; j >= gap && a[j - gap] > v; j -= gap)
				a[j] = a[j - gap];
			a[j] = v;
		}
}

/* A tiny stack machine: the switch becomes a jump table (an indirect jalr). */
static int64_t interp(const uint8_t *code, unsigned n)
{
	int64_t st[16];
	int sp = 0;
	for (unsigned pc = 0; pc < n; pc++) {
		switch (code[pc]) {
		case 0: st[sp++] = code[++pc]; break;
		case 1: sp--; st[sp - 1] += st[sp]; break;
		case 2: sp--; st[sp - 1] *= st[sp]; break;
		case 3: sp--; st[sp - 1] -= st[sp]; break;
		case 4: st[sp] = st[sp - 1]; sp++; break;
		case 5: sp--; st[sp - 1] = st[sp - 1] / (st[sp] ? st[sp] : 1); break;
		case 6: st[sp - 1] = -st[sp - 1]; break;
		default: st[sp - 1] ^= code[pc]; break;
		}
		if (sp < 1)
			sp = 1;
		if (sp > 14)
			sp = 14;
	}
	return st[sp - 1];
}

int main(void)
{
	uint64_t seed = 0x243f6a8885a308d3ull;
	for (unsigned i = 0; i < sizeof(bytes); i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		bytes[i] = (uint8_t)(seed >> 56);
	}
	rt_print("crc32", crc32(bytes, sizeof(bytes)));

	for (unsigned i = 0; i < N_SORT; i++)
		words[i] = (uint32_t)(bytes[i * 3] << 16 | bytes[i * 3 + 1] << 8 | bytes[i * 3 + 2]);
	shell_sort(words, N_SORT);
	uint64_t h = 0;
	for (unsigned i = 0; i < N_SORT; i++)
		h = rt_mix(h, words[i]);
	rt_print("sorted", h);
	rt_print("sorted_ok", words[0] <= words[N_SORT / 2] && words[N_SORT / 2] <= words[N_SORT - 1]);

	unsigned primes = 0;
	for (unsigned i = 2; i < N_SIEVE; i++) {
		if (composite[i])
			continue;
		primes++;
		for (unsigned j = i * 2; j < N_SIEVE; j += i)
			composite[j] = 1;
	}
	rt_print("primes", primes);
	rt_print("fib24", fib(24));

	unsigned __int128 acc = 1;
	for (unsigned i = 0; i < 40; i++)
		acc = acc * (0xfffffffffffffffull - i) + (acc >> 64);
	rt_print("u128_lo", (uint64_t)acc);
	rt_print("u128_hi", (uint64_t)(acc >> 64));
	__int128 sacc = -12345;
	for (unsigned i = 0; i < 20; i++)
		sacc = sacc * -(int64_t)(i + 3) / 7 + (int64_t)bytes[i];
	rt_print("s128_lo", (uint64_t)sacc);

	rt_print("interp", (uint64_t)interp(bytes, sizeof(bytes)));

	int16_t halves[64];
	for (unsigned i = 0; i < 64; i++)
		halves[i] = (int16_t)(bytes[i] << 8 | bytes[i + 1]);
	int64_t sum = 0;
	for (unsigned i = 0; i < 64; i++)
		sum += halves[i] * (int64_t)(i & 1 ? -3 : 5);
	rt_print("halves", (uint64_t)sum);
	rt_print_trap("no_traps", 0);
	return 0;
}
