/* Echoes console input in upper case until it reads 'q', then powers off: exercises UART receive
 * (polling LSR.DR) fed by CONSOLE_IN events. */
#include "board.h"
	.section .text.init
	.globl _start
_start:
	li t0, UART_BASE
1:	lbu t1, UART_LSR(t0)
	andi t1, t1, UART_LSR_DR
	beqz t1, 1b
	lbu t2, 0(t0)
	li t3, 'q'
	beq t2, t3, 3f
	li t3, 'a'
	blt t2, t3, 2f
	li t3, 'z'
	bgt t2, t3, 2f
	addi t2, t2, -32
2:	sb t2, 0(t0)
	j 1b
3:	li t0, FINISHER
	li t1, FINISHER_PASS
	sw t1, 0(t0)
4:	j 4b
