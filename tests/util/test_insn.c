/*
 * test_insn.c — util/insn.h: fields and immediates of instructions assembled by GNU as
 * (riscv64-unknown-elf-as -march=rv64gc, words copied from objdump), and every encodable
 * immediate of the I, S, B and J formats through insn_enc_*() and back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/insn.h"

static void test_fields_of_assembled(void **state)
{
	(void)state;
	uint32_t addi = 0xfff58513u; /* addi a0,a1,-1 */
	assert_int_equal(insn_opcode(addi), OPC_OP_IMM);
	assert_int_equal(insn_rd(addi), 10);
	assert_int_equal(insn_rs1(addi), 11);
	assert_int_equal(insn_funct3(addi), 0);
	assert_int_equal(insn_imm_i(addi), -1);

	uint32_t sw = 0xfef42e23u; /* sw a5,-4(s0) */
	assert_int_equal(insn_opcode(sw), OPC_STORE);
	assert_int_equal(insn_rs1(sw), 8);
	assert_int_equal(insn_rs2(sw), 15);
	assert_int_equal(insn_funct3(sw), 2);
	assert_int_equal(insn_imm_s(sw), -4);

	assert_int_equal(insn_imm_b(0xfeb50ce3u), -8);     /* beq a0,a1,.-8 */
	assert_int_equal(insn_imm_b(0x7eb51fe3u), 4094);   /* bne a0,a1,.+4094 */
	assert_int_equal(insn_funct3(0x7eb51fe3u), 1);
	assert_int_equal(insn_imm_j(0x7ffff0efu), 0xffffe); /* jal ra,.+0xffffe */
	assert_int_equal(insn_rd(0x7ffff0efu), 1);
	assert_int_equal(insn_imm_j(0x8000006fu), -0x100000); /* jal zero,.-0x100000 */
	assert_int_equal(insn_imm_u(0xfffff2b7u), (int32_t)0xfffff000u); /* lui t0,0xfffff */

	uint32_t fmadd = 0x223100c3u; /* fmadd.d ft1,ft2,ft3,ft4,rne */
	assert_int_equal(insn_opcode(fmadd), OPC_MADD);
	assert_int_equal(insn_rd(fmadd), 1);
	assert_int_equal(insn_rs1(fmadd), 2);
	assert_int_equal(insn_rs2(fmadd), 3);
	assert_int_equal(insn_rs3(fmadd), 4);
	assert_int_equal(insn_fmt(fmadd), 1);

	assert_int_equal(insn_csr(0xfff59573u), 0xfff);        /* csrrw a0,0xfff,a1 */
	assert_int_equal(insn_opcode(0xfff59573u), OPC_SYSTEM);
	assert_int_equal(insn_funct5(0x0cb6252fu), 1);         /* amoswap.w.aq a0,a1,(a2) */
	assert_int_equal(insn_funct7(0x40b50533u), 0x20);      /* sub a0,a0,a1 */
}

static void test_encode_what_is_assembled(void **state)
{
	(void)state;
	assert_int_equal(insn_enc_i(OPC_OP_IMM, 0, 10, 11, -1), 0xfff58513u);
	assert_int_equal(insn_enc_s(OPC_STORE, 2, 8, 15, -4), 0xfef42e23u);
	assert_int_equal(insn_enc_b(0, 10, 11, -8), 0xfeb50ce3u);
	assert_int_equal(insn_enc_b(1, 10, 11, 4094), 0x7eb51fe3u);
	assert_int_equal(insn_enc_j(1, 0xffffe), 0x7ffff0efu);
	assert_int_equal(insn_enc_j(0, -0x100000), 0x8000006fu);
	assert_int_equal(insn_enc_r(OPC_OP, 0, 0x20, 10, 10, 11), 0x40b50533u);
}

static void test_immediate_roundtrip(void **state)
{
	(void)state;
	for (int32_t imm = -2048; imm < 2048; imm++) {
		assert_int_equal(insn_imm_i(insn_enc_i(OPC_OP_IMM, 7, 31, 31, imm)), imm);
		assert_int_equal(insn_imm_s(insn_enc_s(OPC_STORE, 7, 31, 31, imm)), imm);
	}
	for (int32_t imm = -4096; imm < 4096; imm += 2)
		assert_int_equal(insn_imm_b(insn_enc_b(7, 31, 31, imm)), imm);
	for (int32_t imm = -(1 << 20); imm < (1 << 20); imm += 2)
		assert_int_equal(insn_imm_j(insn_enc_j(31, imm)), imm);
	assert_int_equal(insn_sext(0x20, 6), -32);
	assert_int_equal(insn_sext(0x1f, 6), 31);
	assert_int_equal(insn_sext(0xffffffffu, 32), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_of_assembled),
		cmocka_unit_test(test_encode_what_is_assembled),
		cmocka_unit_test(test_immediate_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
