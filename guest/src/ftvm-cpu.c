/*
 * ftvm-cpu.c — the `cpu` workload: a CPU-bound benchmark that prints its score and exits.
 *
 * One round is a fixed mix of work: a Mandelbrot tile (floating point), sorting 1024
 * pseudo-random numbers (integer, branches, calls) and a CRC-32C over 4 KiB (table lookups). The
 * run lasts FTVM_CPU_SECONDS (default 5; kernel command line ftvm.cpu.seconds=N) or exactly
 * FTVM_CPU_ROUNDS rounds when that is set (ftvm.cpu.rounds=N) — a fixed amount of work whose time
 * can be compared between machines. Output: "cpu: score <rounds per second> (<rounds> rounds in
 * <ms> ms, checksum <hex>)". The checksum depends only on the number of rounds, so two runs of the
 * same rounds (e.g. a record and its replay) print the same checksum.
 */
#include "applets.h"
#include "guestlib.h"

#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_SECONDS 5
#define TILE_W 32
#define TILE_H 16
#define MANDEL_ITER 64
#define SORT_COUNT 1024
#define CRC_BYTES (4 * 1024)

static unsigned mandelbrot_tile(unsigned round)
{
	unsigned total = 0;
	double shift = (double)(round % 16) / 64.0;

	for (int y = 0; y < TILE_H; y++) {
		for (int x = 0; x < TILE_W; x++) {
			double cr = -2.0 + shift + 2.5 * x / TILE_W, ci = -1.0 + 2.0 * y / TILE_H;
			double zr = 0, zi = 0;
			unsigned i = 0;
			while (i < MANDEL_ITER && zr * zr + zi * zi < 4.0) {
				double t = zr * zr - zi * zi + cr;
				zi = 2 * zr * zi + ci;
				zr = t;
				i++;
			}
			total += i;
		}
	}
	return total;
}

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static uint32_t sort_numbers(uint64_t *state)
{
	static uint32_t v[SORT_COUNT];

	for (size_t i = 0; i < SORT_COUNT; i++)
		v[i] = (uint32_t)guest_prng_next(state);
	qsort(v, SORT_COUNT, sizeof(v[0]), compare_u32);
	return v[0] ^ v[SORT_COUNT / 2] ^ v[SORT_COUNT - 1];
}

static uint32_t crc_block(uint64_t *state)
{
	static unsigned char buf[CRC_BYTES];

	for (size_t i = 0; i < CRC_BYTES; i += sizeof(uint64_t)) {
		uint64_t r = guest_prng_next(state);
		for (size_t k = 0; k < sizeof(uint64_t); k++)
			buf[i + k] = (unsigned char)(r >> (8 * k));
	}
	return guest_crc32c(0, buf, CRC_BYTES);
}

int cpu_main(int argc, char **argv)
{
	uint64_t seconds, rounds_wanted, rounds = 0, state = 1, checksum = 0, t0, elapsed;

	if (guest_env_u64("FTVM_CPU_SECONDS", DEFAULT_SECONDS, &seconds) < 0 ||
	    guest_env_u64("FTVM_CPU_ROUNDS", 0, &rounds_wanted) < 0) {
		guest_log("ftvm.cpu.seconds and ftvm.cpu.rounds take a positive number");
		return 2;
	}
	if (rounds_wanted)
		printf("cpu: running %llu rounds\n", (unsigned long long)rounds_wanted);
	else
		printf("cpu: running for %llu s\n", (unsigned long long)seconds);
	fflush(stdout);
	t0 = guest_now_ns();
	for (;;) {
		elapsed = guest_now_ns() - t0;
		if (rounds_wanted ? rounds >= rounds_wanted : elapsed >= seconds * NSEC_PER_SEC)
			break;
		checksum = checksum * 31 + mandelbrot_tile((unsigned)rounds);
		checksum = checksum * 31 + sort_numbers(&state);
		checksum = checksum * 31 + crc_block(&state);
		rounds++;
	}
	uint64_t ms = elapsed / NSEC_PER_MSEC ? elapsed / NSEC_PER_MSEC : 1;
	printf("cpu: score %llu (%llu rounds in %llu ms, checksum %016llx)\n",
	       (unsigned long long)(rounds * 1000 / ms), (unsigned long long)rounds,
	       (unsigned long long)ms, (unsigned long long)checksum);
	return 0;
}
