/*
 * loop.S — the CPU-bound bare-metal loop of the benchmark: 4 instructions (mul, add, addi, bnez)
 * per iteration, LOOP_ITERATIONS times, then the test finisher's pass code. Built with
 * -DLOOP_ITERATIONS=N.
 */
	.section .text.start
	.globl _start
_start:
	li t0, LOOP_ITERATIONS
	li t1, 3
	li t2, 0
1:	mul t3, t1, t0
	add t2, t2, t3
	addi t0, t0, -1
	bnez t0, 1b
	li t0, 0x100000
	li t1, 0x5555
	sw t1, 0(t0)
2:	j 2b
