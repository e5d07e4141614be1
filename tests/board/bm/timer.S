/* Prints a line, sleeps 1 ms of guest time in WFI until the CLINT timer interrupt, prints 'T' and
 * powers off with status 0. Exercises UART output, mtime/mtimecmp, WFI and the finisher. */
#include "board.h"
	.section .text.init
	.globl _start
_start:
	la a0, msg
	call puts
	la t0, trap
	csrw mtvec, t0
	li t0, CLINT_MTIME
	ld t1, 0(t0)
	li t2, 10000            /* 1 ms at 10 MHz */
	add t1, t1, t2
	li t0, CLINT_MTIMECMP
	sd t1, 0(t0)
	li t0, MIE_MTIE
	csrs mie, t0
	csrsi mstatus, MSTATUS_MIE
1:	wfi
	j 1b
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
