/* Prints a line, sleeps DELAY_TICKS of guest time (default 1 ms) in WFI until the CLINT timer
 * interrupt, prints 'T' and powers off with status 0. Exercises UART output, mtime/mtimecmp, WFI
 * and the finisher; built a second time as sleep300.elf to check that wall-clock runs take the
 * guest's sleeps in real time and virtual-clock runs skip them. */
#include "board.h"
#ifndef DELAY_TICKS
#define DELAY_TICKS 10000       /* 1 ms at 10 MHz */
#endif
	.section .text.init
	.globl _start
_start:
	la a0, msg
	call puts
	la t0, trap
	csrw mtvec, t0
	li t0, CLINT_MTIME
	ld t1, 0(t0)
	li t2, DELAY_TICKS
	add t1, t1, t2
	li t0, CLINT_MTIMECMP
	sd t1, 0(t0)
	li t0, MIE_MTIE
	csrs mie, t0
	csrsi mstatus, MSTATUS_MIE
1:	wfi
	j 1b
	.align 2                /* mtvec needs a 4-byte aligned handler */
trap:
	la a0, tmsg
	call puts
	li t0, FINISHER
	li t1, FINISHER_PASS
	sw t1, 0(t0)
2:	j 2b
puts:
	li t0, UART_BASE
3:	lbu t1, 0(a0)
	beqz t1, 4f
	sb t1, 0(t0)
	addi a0, a0, 1
	j 3b
4:	ret
	.section .rodata
msg:	.asciz "board test: timer\n"
tmsg:	.asciz "T\n"
