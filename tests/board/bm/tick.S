/* Runs until powered off from outside, idle: sleeps in WFI and wakes on the CLINT timer every
 * 100 ms of guest time (1,000,000 ticks at 10 MHz) to print '.', so a long-running VM costs the
 * host almost nothing and its console shows that it runs. Used by the host daemon's tests. */
#include "board.h"
#define TICK 1000000
	.section .text.init
	.globl _start
_start:
	la t0, trap
	csrw mtvec, t0
	call arm
	li t0, MIE_MTIE
	csrs mie, t0
	csrsi mstatus, MSTATUS_MIE
1:	wfi
	j 1b
	.align 2                /* mtvec needs a 4-byte aligned handler */
trap:
	li t0, UART_BASE
	li t1, '.'
	sb t1, 0(t0)
	call arm
	mret
arm:                            /* mtimecmp = mtime + TICK: also clears the pending interrupt */
	li t0, CLINT_MTIME
	ld t1, 0(t0)
	li t2, TICK
	add t1, t1, t2
	li t0, CLINT_MTIMECMP
	sd t1, 0(t0)
	ret
