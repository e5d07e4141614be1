/*
 * rvc.S — every RV64C instruction in its own encoding (no assembler relaxation), including the
 * FP loads and stores, and the load/store widths with sign extension. Results go to a buffer
 * whose digest main() prints (see rvc_main in rvc_c.c).
 */
	.option norvc
	.text
	.globl rvc_run
/* void rvc_run(uint64_t *out, uint64_t *buf): out[0..] results, buf 64 bytes of data. */
rvc_run:
	.option rvc
	addi sp, sp, -64
	sd s0, 0(sp)
	sd s1, 8(sp)
	sd ra, 48(sp)
	mv s0, a0          /* out (x8) */
	mv s1, a1          /* buf (x9) */
	c.li a5, -7
	c.sd a5, 0(s0)
	c.lui a5, 0xfffe1
	c.sd a5, 8(s0)
	c.li a4, 31
	c.addi a4, -32
	c.sd a4, 16(s0)
	c.addiw a4, 1
	c.sd a4, 24(s0)
	c.li a3, -1
	c.srli a3, 1
	c.sd a3, 32(s0)
	c.li a3, -16
	c.srai a3, 2
	c.sd a3, 40(s0)
	c.andi a3, 0x15
	c.sd a3, 48(s0)
	li a2, 0x5a5a
	li a3, 0x0ff0
	c.sub a2, a3
	c.sd a2, 56(s0)
	c.xor a2, a3
	c.sd a2, 64(s0)
	c.or a2, a3
	c.sd a2, 72(s0)
	c.and a2, a3
	c.sd a2, 80(s0)
	li a2, 0x7fffffff
	li a3, -1
	c.subw a2, a3
	c.sd a2, 88(s0)
	c.addw a2, a3
	c.sd a2, 96(s0)
	c.slli a2, 33
	c.sd a2, 104(s0)
	c.mv a4, a2
	c.add a4, a3
	c.sd a4, 112(s0)
	c.addi4spn a5, sp, 16
	sub a5, a5, sp
	c.sd a5, 120(s0)
	mv a5, sp
	c.addi16sp sp, -64
	sub a5, a5, sp
	c.addi16sp sp, 64
	c.sd a5, 128(s0)
	/* Loads and stores. */
	c.lw a5, 4(s1)
	c.sd a5, 136(s0)
	c.ld a5, 8(s1)
	c.sd a5, 144(s0)
	li a4, 0x89abcdef
	c.sw a4, 16(s1)
	c.sdsp a4, 24(sp)
	c.ldsp a3, 24(sp)
	c.sd a3, 152(s0)
	c.swsp a4, 32(sp)
	c.lwsp a3, 32(sp)
	c.sd a3, 160(s0)
	fld fa0, 8(s1)
	c.fsd fa0, 24(s1)
	c.fld fa1, 24(s1)
	c.fsdsp fa1, 40(sp)
	c.fldsp fa2, 40(sp)
	fsd fa2, 168(s0)
	/* Control flow. */
	li a5, 0
	c.beqz a5, 1f
	li a5, 99
1:	c.bnez a5, 2f
	li a5, 1
2:	c.j 3f
	li a5, 98
3:	c.sd a5, 176(s0)
	la a4, 4f
	c.jr a4
	li a5, 97
4:	la a4, 5f
	c.jalr a4
5:	sub a4, ra, a4
	c.sd a4, 184(s0)
	c.nop
	/* Base-ISA loads of every width on the same data. */
	lb a5, 7(s1)
	sd a5, 192(s0)
	lbu a5, 7(s1)
	sd a5, 200(s0)
	lh a5, 6(s1)
	sd a5, 208(s0)
	lhu a5, 6(s1)
	sd a5, 216(s0)
	lw a5, 4(s1)
	sd a5, 224(s0)
	lwu a5, 4(s1)
	sd a5, 232(s0)
	sb a5, 33(s1)
	sh a5, 34(s1)
	sw a5, 36(s1)
	sd a5, 40(s1)
	ld a5, 32(s1)
	sd a5, 240(s0)
	ld s0, 0(sp)
	ld s1, 8(sp)
	ld ra, 48(sp)
	addi sp, sp, 64
	ret
