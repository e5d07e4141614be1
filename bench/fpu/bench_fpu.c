/*
 * bench_fpu.c — how much slower the deterministic soft-float FPU is than the host's FPU.
 *
 * For each operation, fpu_execute() runs the instruction over a ring of random normal operands
 * (values reloaded into f1/f2/f3 every time, as a guest would), and the baseline does the same
 * arithmetic with native doubles/floats through volatile memory in the same run. Prints ns per
 * operation for both and the ratio. Not run by ctest.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "vm/cpu_internal.h"

#define RING 1024u
#define ITERATIONS 4000000u
#define RM_RNE 0u

enum { FMT_S = 0, FMT_D = 1 };
enum bench_op { OP_ADD, OP_MUL, OP_DIV, OP_SQRT, OP_FMA, OP_CVT_L };

struct bench {
	const char *name;
	enum bench_op op;
	unsigned fmt;
	uint32_t insn;
};

/* rd = f4, rs1 = f1, rs2 = f2, rs3 = f3 */
#define OPFP(funct7, rs2) ((uint32_t)(funct7) << 25 | (uint32_t)(rs2) << 20 | 1u << 15 | RM_RNE << 12 | 4u << 7 | 0x53u)
#define FMADD(fmt) (3u << 27 | (uint32_t)(fmt) << 25 | 2u << 20 | 1u << 15 | RM_RNE << 12 | 4u << 7 | 0x43u)

static const struct bench benches[] = {
	{ "fadd.d", OP_ADD, FMT_D, OPFP(0x01, 2) },   { "fmul.d", OP_MUL, FMT_D, OPFP(0x09, 2) },
	{ "fdiv.d", OP_DIV, FMT_D, OPFP(0x0d, 2) },   { "fsqrt.d", OP_SQRT, FMT_D, OPFP(0x2d, 0) },
	{ "fmadd.d", OP_FMA, FMT_D, FMADD(FMT_D) },   { "fcvt.l.d", OP_CVT_L, FMT_D, OPFP(0x61, 2) },
	{ "fadd.s", OP_ADD, FMT_S, OPFP(0x00, 2) },   { "fmul.s", OP_MUL, FMT_S, OPFP(0x08, 2) },
	{ "fdiv.s", OP_DIV, FMT_S, OPFP(0x0c, 2) },   { "fmadd.s", OP_FMA, FMT_S, FMADD(FMT_S) },
};

static double d_ops[RING][3];
static float s_ops[RING][3];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: the host is shared */
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x853c49e6748fea9bull;

static double random_double(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return ldexp(1.0 + (double)(rng_state >> 11) * 0x1p-53, (int)(rng_state % 64) - 32);
}

static double run_soft(struct cpu *cpu, const struct bench *b)
{
	double start = now();

	for (unsigned i = 0; i < ITERATIONS; i++) {
		unsigned k = i % RING;

		for (unsigned r = 0; r < 3; r++) {
			uint64_t bits = 0;

			if (b->fmt == FMT_D) {
				memcpy(&bits, &d_ops[k][r], 8);
			} else {
				uint32_t w;

				memcpy(&w, &s_ops[k][r], 4);
				bits = 0xffffffff00000000ull | w;
			}
			cpu->f[1 + r] = bits;
		}
		fpu_execute(cpu, b->insn);
	}
	return now() - start;
}

static double run_native(const struct bench *b)
{
	volatile double dr = 0;
	volatile float sr = 0;
	volatile long long lr = 0;
	double start = now();

	for (unsigned i = 0; i < ITERATIONS; i++) {
		unsigned k = i % RING;
		volatile double da = d_ops[k][0], db = d_ops[k][1], dc = d_ops[k][2];
		volatile float sa = s_ops[k][0], sb = s_ops[k][1], sc = s_ops[k][2];

		switch (b->op) {
		case OP_ADD: if (b->fmt == FMT_D) dr = da + db; else sr = sa + sb; break;
		case OP_MUL: if (b->fmt == FMT_D) dr = da * db; else sr = sa * sb; break;
		case OP_DIV: if (b->fmt == FMT_D) dr = da / db; else sr = sa / sb; break;
		case OP_SQRT: dr = sqrt(da); break;
		case OP_FMA: if (b->fmt == FMT_D) dr = fma(da, db, dc); else sr = fmaf(sa, sb, sc); break;
		case OP_CVT_L: lr = llrint(da); break;
		}
	}
	(void)dr;
	(void)sr;
	(void)lr;
	return now() - start;
}

static void print_host(void)
{
	struct utsname u;
	char commit[64] = "unknown";
	FILE *f = popen("git -C " FTVM_SOURCE_DIR " rev-parse --short HEAD 2>/dev/null", "r");

	if (f) {
		if (fgets(commit, sizeof(commit), f))
			commit[strcspn(commit, "\n")] = '\0';
		pclose(f);
	}
	uname(&u);
	printf("host: %s %s %s, %ld CPUs; commit %s\n", u.nodename, u.sysname, u.release,
	       sysconf(_SC_NPROCESSORS_ONLN), commit);
}

int main(void)
{
	static struct cpu cpu;

	print_host();
	for (unsigned k = 0; k < RING; k++)
		for (unsigned r = 0; r < 3; r++) {
			d_ops[k][r] = random_double();
			s_ops[k][r] = (float)random_double();
		}
	cpu.mstatus = MSTATUS_FS_DIRTY;
	printf("%-10s %12s %12s %8s\n", "op", "soft ns/op", "host ns/op", "ratio");
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++) {
		double soft = run_soft(&cpu, &benches[i]), native = run_native(&benches[i]);

		printf("%-10s %12.2f %12.2f %8.2f\n", benches[i].name, soft * 1e9 / ITERATIONS, native * 1e9 / ITERATIONS,
		       soft / native);
	}
	return 0;
}
