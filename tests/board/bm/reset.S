/* Prints 'R' and asks the test finisher for a reset: ftvm run reboots it (another 'R'), or with
 * --no-reboot exits 0. */
#include "board.h"
	.section .text.init
	.globl _start
_start:
	li t0, UART_BASE
	li t1, 'R'
	sb t1, 0(t0)
	li t0, FINISHER
	li t1, FINISHER_RESET
	sw t1, 0(t0)
1:	j 1b
