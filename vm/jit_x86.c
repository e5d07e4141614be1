/*
 * jit_x86.c — the x86-64 emitter (see jit_x86.h). Every encoding here is one line of the Intel
 * SDM's opcode tables: REX.W = 0x48 selects 64-bit operand size; a ModRM byte is mod (2 bits),
 * reg (3) and rm (3); mod 3 names a register, mod 0/1/2 memory at [rm] with no, an 8-bit or a
 * 32-bit displacement.
 */
#include "vm/jit_x86.h"

#include <string.h>

#define REX_W 0x48
#define REX 0x40 /* an empty REX: makes setcc/movzx reach sil/dil instead of dh/bh */
#define MOD_REG 3u

void jx_init(struct jx *jx, uint8_t *buf, size_t cap)
{
	jx->buf = buf;
	jx->len = 0;
	jx->cap = cap;
	jx->overflow = false;
}

static void byte(struct jx *jx, uint8_t b)
{
	if (jx->len >= jx->cap) {
		jx->overflow = true;
		return;
	}
	jx->buf[jx->len++] = b;
}

static void imm32(struct jx *jx, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		byte(jx, (uint8_t)(v >> (8 * i)));
}

static bool fits8(int64_t v)
{
	return v >= INT8_MIN && v <= INT8_MAX;
}

static bool fits32(int64_t v)
{
	return v >= INT32_MIN && v <= INT32_MAX;
}

static void modrm_reg(struct jx *jx, unsigned reg, unsigned rm)
{
	byte(jx, (uint8_t)((MOD_REG << 6) | ((reg & 7) << 3) | (rm & 7)));
}

/* ModRM (and displacement) for [base + disp]; base is never rsp or rbp (see jit_x86.h). */
static void modrm_mem(struct jx *jx, unsigned reg, enum jx_reg base, int32_t disp)
{
	unsigned r = (reg & 7) << 3;
	if (disp == 0) {
		byte(jx, (uint8_t)(r | base));
	} else if (fits8(disp)) {
		byte(jx, (uint8_t)(0x40 | r | base));
		byte(jx, (uint8_t)(int8_t)disp);
	} else {
		byte(jx, (uint8_t)(0x80 | r | base));
		imm32(jx, (uint32_t)disp);
	}
}

void jx_load(struct jx *jx, enum jx_reg reg, enum jx_reg base, int32_t disp, bool w64)
{
	if (w64)
		byte(jx, REX_W);
	byte(jx, 0x8b); /* MOV r, r/m */
	modrm_mem(jx, reg, base, disp);
}

void jx_store(struct jx *jx, enum jx_reg base, int32_t disp, enum jx_reg reg)
{
	byte(jx, REX_W);
	byte(jx, 0x89); /* MOV r/m, r */
	modrm_mem(jx, reg, base, disp);
}

void jx_alu_mem(struct jx *jx, enum jx_alu op, enum jx_reg dst, enum jx_reg base, int32_t disp)
{
	byte(jx, REX_W);
	byte(jx, (uint8_t)((op << 3) | 3)); /* OP r, r/m */
	modrm_mem(jx, dst, base, disp);
}

void jx_load_ext(struct jx *jx, enum jx_reg dst, enum jx_reg base, unsigned size, bool is_signed)
{
	switch (size) {
	case 1:
	case 2:
		if (is_signed)
			byte(jx, REX_W); /* MOVSX r64, r/m8 / r/m16 */
		byte(jx, 0x0f);
		byte(jx, (uint8_t)((is_signed ? 0xbe : 0xb6) + (size == 2))); /* MOVZX r32 zero-extends to 64 */
		break;
	case 4:
		if (is_signed) {
			byte(jx, REX_W);
			byte(jx, 0x63); /* MOVSXD r64, r/m32 */
		} else {
			byte(jx, 0x8b); /* MOV r32, r/m32 zero-extends */
		}
		break;
	default:
		byte(jx, REX_W);
		byte(jx, 0x8b);
		break;
	}
	modrm_mem(jx, dst, base, 0);
}

void jx_store_sized(struct jx *jx, enum jx_reg base, enum jx_reg reg, unsigned size)
{
	switch (size) {
	case 1:
		byte(jx, REX); /* the low byte of any register, never ah..bh */
		byte(jx, 0x88); /* MOV r/m8, r8 */
		break;
	case 2:
		byte(jx, 0x66); /* operand-size prefix: MOV r/m16, r16 */
		byte(jx, 0x89);
		break;
	case 4:
		byte(jx, 0x89);
		break;
	default:
		byte(jx, REX_W);
		byte(jx, 0x89);
		break;
	}
	modrm_mem(jx, reg, base, 0);
}

void jx_store_imm(struct jx *jx, enum jx_reg base, int32_t disp, int32_t imm)
{
	byte(jx, REX_W);
	byte(jx, 0xc7); /* MOV r/m64, imm32 (/0) */
	modrm_mem(jx, 0, base, disp);
	imm32(jx, (uint32_t)imm);
}

void jx_add_mem_imm(struct jx *jx, enum jx_reg base, int32_t disp, int32_t imm)
{
	byte(jx, REX_W);
	if (fits8(imm)) {
		byte(jx, 0x83); /* ADD r/m64, imm8 (/0) */
		modrm_mem(jx, JX_ADD, base, disp);
		byte(jx, (uint8_t)(int8_t)imm);
	} else {
		byte(jx, 0x81); /* ADD r/m64, imm32 (/0) */
		modrm_mem(jx, JX_ADD, base, disp);
		imm32(jx, (uint32_t)imm);
	}
}

void jx_mov_imm(struct jx *jx, enum jx_reg reg, uint64_t imm)
{
	if (imm <= UINT32_MAX) {
		byte(jx, (uint8_t)(0xb8 + reg)); /* MOV r32, imm32 zero-extends */
		imm32(jx, (uint32_t)imm);
	} else if (fits32((int64_t)imm)) {
		byte(jx, REX_W);
		byte(jx, 0xc7); /* MOV r/m64, imm32 sign-extends */
		modrm_reg(jx, 0, reg);
		imm32(jx, (uint32_t)imm);
	} else {
		byte(jx, REX_W);
		byte(jx, (uint8_t)(0xb8 + reg)); /* MOV r64, imm64 */
		imm32(jx, (uint32_t)imm);
		imm32(jx, (uint32_t)(imm >> 32));
	}
}

void jx_mov(struct jx *jx, enum jx_reg dst, enum jx_reg src)
{
	byte(jx, REX_W);
	byte(jx, 0x89);
	modrm_reg(jx, src, dst);
}

void jx_alu(struct jx *jx, enum jx_alu op, enum jx_reg dst, enum jx_reg src, bool w64)
{
	if (w64)
		byte(jx, REX_W);
	byte(jx, (uint8_t)((op << 3) | 1)); /* OP r/m, r */
	modrm_reg(jx, src, dst);
}

void jx_alu_imm(struct jx *jx, enum jx_alu op, enum jx_reg dst, int32_t imm, bool w64)
{
	if (w64)
		byte(jx, REX_W);
	if (fits8(imm)) {
		byte(jx, 0x83); /* OP r/m, imm8 sign-extended */
		modrm_reg(jx, op, dst);
		byte(jx, (uint8_t)(int8_t)imm);
	} else {
		byte(jx, 0x81); /* OP r/m, imm32 */
		modrm_reg(jx, op, dst);
		imm32(jx, (uint32_t)imm);
	}
}

void jx_add_imm64(struct jx *jx, enum jx_reg dst, int64_t imm, enum jx_reg scratch)
{
	if (imm == 0)
		return;
	if (fits32(imm)) {
		jx_alu_imm(jx, JX_ADD, dst, (int32_t)imm, true);
		return;
	}
	jx_mov_imm(jx, scratch, (uint64_t)imm);
	jx_alu(jx, JX_ADD, dst, scratch, true);
}

void jx_shift_imm(struct jx *jx, enum jx_shift op, enum jx_reg dst, uint8_t count, bool w64)
{
	if (w64)
		byte(jx, REX_W);
	byte(jx, 0xc1); /* shift r/m, imm8 */
	modrm_reg(jx, op, dst);
	byte(jx, count);
}

void jx_shift_cl(struct jx *jx, enum jx_shift op, enum jx_reg dst, bool w64)
{
	if (w64)
		byte(jx, REX_W);
	byte(jx, 0xd3); /* shift r/m, cl */
	modrm_reg(jx, op, dst);
}

void jx_setcc(struct jx *jx, enum jx_cc cc, enum jx_reg dst)
{
	byte(jx, REX);
	byte(jx, 0x0f);
	byte(jx, (uint8_t)(0x90 | cc)); /* SETcc r/m8 */
	modrm_reg(jx, 0, dst);
	byte(jx, REX);
	byte(jx, 0x0f);
	byte(jx, 0xb6); /* MOVZX r32, r/m8 (zero-extends to 64 too) */
	modrm_reg(jx, dst, dst);
}

void jx_movsxd(struct jx *jx, enum jx_reg dst, enum jx_reg src)
{
	byte(jx, REX_W);
	byte(jx, 0x63); /* MOVSXD r64, r/m32 */
	modrm_reg(jx, dst, src);
}

void jx_imul(struct jx *jx, enum jx_reg dst, enum jx_reg src, bool w64)
{
	if (w64)
		byte(jx, REX_W);
	byte(jx, 0x0f);
	byte(jx, 0xaf); /* IMUL r, r/m */
	modrm_reg(jx, dst, src);
}

void jx_mul_wide(struct jx *jx, enum jx_reg src, bool is_signed)
{
	byte(jx, REX_W);
	byte(jx, 0xf7); /* MUL r/m64 (/4), IMUL r/m64 (/5) */
	modrm_reg(jx, is_signed ? 5 : 4, src);
}

void jx_call(struct jx *jx, const void *fn)
{
	jx_mov_imm(jx, JX_RAX, (uint64_t)(uintptr_t)fn);
	byte(jx, 0xff); /* CALL r/m64 (/2) */
	modrm_reg(jx, 2, JX_RAX);
}

void jx_jmp_mem(struct jx *jx, enum jx_reg base, int32_t disp)
{
	byte(jx, 0xff); /* JMP r/m64 (/4) */
	modrm_mem(jx, 4, base, disp);
}

size_t jx_jcc(struct jx *jx, enum jx_cc cc)
{
	byte(jx, 0x0f);
	byte(jx, (uint8_t)(0x80 | cc)); /* Jcc rel32 */
	size_t at = jx->len;
	imm32(jx, 0);
	return at;
}

size_t jx_jmp(struct jx *jx)
{
	byte(jx, 0xe9); /* JMP rel32 */
	size_t at = jx->len;
	imm32(jx, 0);
	return at;
}

void jx_patch(struct jx *jx, size_t at, size_t target)
{
	if (jx->overflow || at + 4 > jx->len)
		return;
	/* rel32 counts from the end of the jump instruction, which is the end of its field. */
	uint32_t rel = (uint32_t)((int64_t)target - (int64_t)(at + 4));
	for (int i = 0; i < 4; i++)
		jx->buf[at + i] = (uint8_t)(rel >> (8 * i));
}

void jx_patch_here(struct jx *jx, size_t at)
{
	jx_patch(jx, at, jx->len);
}

void jx_push(struct jx *jx, enum jx_reg reg)
{
	byte(jx, (uint8_t)(0x50 + reg));
}

void jx_pop(struct jx *jx, enum jx_reg reg)
{
	byte(jx, (uint8_t)(0x58 + reg));
}

void jx_ret(struct jx *jx)
{
	byte(jx, 0xc3);
}
