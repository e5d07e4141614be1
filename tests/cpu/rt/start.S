/*
 * start.S — entry, trap vectors and privilege switching for the bare-metal CPU tests.
 *
 * _start clears .bss, opens PMP entry 0 to the whole address space (QEMU denies S/U accesses
 * when no PMP entry matches), enables the FPU and calls main(); its return value goes to the test
 * finisher. Both trap vectors save all registers in a struct rt_frame on the current stack and
 * call rt_mtrap()/rt_strap() in C, which may edit the frame (epc, registers) before it is restored.
 * rt_run_in(priv, fn) runs fn in S or U mode on the same stack until fn returns (or ecalls with
 * a7 = RT_ECALL_EXIT), then comes back in M-mode.
 */
#define RT_ECALL_EXIT 0x5254
#define FRAME_SIZE (33 * 8)

	.section .text.start
	.globl _start
_start:
	.option push
	.option norelax
	la gp, __global_pointer$
	.option pop
	la sp, __stack_top
	la t0, __bss_start
	la t1, __bss_end
1:	bgeu t0, t1, 2f
	sd zero, 0(t0)
	addi t0, t0, 8
	j 1b
2:	la t0, rt_mvector
	csrw mtvec, t0
	li t0, -1
	srli t0, t0, 10
	csrw pmpaddr0, t0
	li t0, 0x1f
	csrw pmpcfg0, t0
	li t0, (1 << 13)
	csrs mstatus, t0
	call main
	call rt_exit

	.text
.macro SAVE_ALL
	addi sp, sp, -FRAME_SIZE
	.irp r, 1,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	sd x\r, (\r * 8)(sp)
	.endr
	addi t0, sp, FRAME_SIZE
	sd t0, (2 * 8)(sp)
.endm
.macro RESTORE_ALL
	.irp r, 1,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ld x\r, (\r * 8)(sp)
	.endr
	ld sp, (2 * 8)(sp)
.endm

/* A trap vector: frame on the stack, epc in it, the C handler, then xRET. */
.macro VECTOR name, epc, handler, xret
	.balign 4
	.globl \name
\name:
	SAVE_ALL
	csrr t0, \epc
	sd t0, (32 * 8)(sp)
	mv a0, sp
	call \handler
	ld t0, (32 * 8)(sp)
	csrw \epc, t0
	RESTORE_ALL
	\xret
.endm

	VECTOR rt_mvector, mepc, rt_mtrap, mret
	VECTOR rt_svector, sepc, rt_strap, sret

/* void rt_run_in(unsigned priv, void (*fn)(void)) */
	.globl rt_run_in
rt_run_in:
	addi sp, sp, -112
	sd ra, 0(sp)
	sd s0, 8(sp)
	sd s1, 16(sp)
	.irp r, 18,19,20,21,22,23,24,25,26,27
	sd x\r, ((\r - 15) * 8)(sp)
	.endr
	la t0, rt_saved_sp
	sd sp, 0(t0)
	li t0, (3 << 11)
	csrc mstatus, t0
	slli a0, a0, 11
	csrs mstatus, a0
	csrw mepc, a1
	la ra, rt_lower_exit
	mret
rt_lower_exit:
	li a7, RT_ECALL_EXIT
	ecall
	.globl rt_back_in_m
rt_back_in_m:
	la t0, rt_saved_sp
	ld sp, 0(t0)
	ld ra, 0(sp)
	ld s0, 8(sp)
	ld s1, 16(sp)
	.irp r, 18,19,20,21,22,23,24,25,26,27
	ld x\r, ((\r - 15) * 8)(sp)
	.endr
	addi sp, sp, 112
	ret

	.data
	.balign 8
rt_saved_sp:
	.dword 0
