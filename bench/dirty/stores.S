/*
 * stores.S — the store-heavy bare-metal loop of bench_dirty: per iteration one 8-byte store to a
 * pseudo-random place in a 16 MiB region (4096 pages, far more than the TLB holds) and four to
 * consecutive places of a pointer that sweeps the region (the common case: a page stored to again
 * and again). ITERATIONS times (built with -DITERATIONS=N), then the test finisher's pass code.
 */
#define REGION 0x80200000
#define REGION_BYTES (16 << 20)

	.section .text.start
	.globl _start
_start:
	li s0, REGION
	li s1, REGION_BYTES - 64
	li s2, ITERATIONS
	li s3, 0x2545f4914f6cdd1d
	li s4, 1
	li s5, 0             /* sweep offset */
1:	mul s4, s4, s3
	addi s4, s4, 1
	srli t0, s4, 24
	and t0, t0, s1
	andi t0, t0, -8
	add t0, t0, s0
	sd s4, 0(t0)
	add t1, s0, s5
	sd s4, 0(t1)
	sd s4, 8(t1)
	sd s4, 16(t1)
	sd s4, 24(t1)
	addi s5, s5, 32
	bltu s5, s1, 2f
	li s5, 0
2:	addi s2, s2, -1
	bnez s2, 1b
	li t0, 0x100000
	li t1, 0x5555
	sw t1, 0(t0)
3:	j 3b
