/*
 * jit_x86.h — a small x86-64 instruction emitter for the JIT (vm/jit*.c only).
 *
 * It knows exactly the instructions the translator needs: 64- and 32-bit moves between the eight
 * legacy registers and memory at [base + disp], ALU operations with a register or an imm32,
 * shifts by an immediate or by cl, setcc/movzx, movsxd, multiplies, calls through a register,
 * conditional and unconditional jumps with a rel32 that is patched once the target is known,
 * push/pop/ret. Encodings follow the Intel SDM (volume 2): REX.W for 64-bit operand size, one
 * ModRM byte, an 8- or 32-bit displacement. rsp and rbp are never used as a base (they would need
 * a SIB byte or a forced displacement), and r8..r15 are never used, so no REX.R/X/B bits.
 *
 * Emission never writes past the buffer: once full, jx->overflow is set and later bytes are
 * dropped, so the caller checks one flag at the end instead of every call.
 */
#ifndef FTVM_VM_JIT_X86_H
#define FTVM_VM_JIT_X86_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jx_reg { JX_RAX = 0, JX_RCX = 1, JX_RDX = 2, JX_RBX = 3, JX_RSI = 6, JX_RDI = 7 };

/* The /digit of the group-1 ALU instructions (81 /d imm32; (d << 3) | 1 for r/m, reg). */
enum jx_alu { JX_ADD = 0, JX_OR = 1, JX_AND = 4, JX_SUB = 5, JX_XOR = 6, JX_CMP = 7 };
/* The /digit of the group-2 shifts. */
enum jx_shift { JX_SHL = 4, JX_SHR = 5, JX_SAR = 7 };
/* Condition codes (the low nibble of Jcc / SETcc). */
enum jx_cc { JX_CC_B = 0x2, JX_CC_AE = 0x3, JX_CC_E = 0x4, JX_CC_NE = 0x5, JX_CC_L = 0xc, JX_CC_GE = 0xd };

struct jx {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool overflow;
};

void jx_init(struct jx *jx, uint8_t *buf, size_t cap);

/* reg = [base + disp] (64 bits, or 32 zero-extended when !w64). */
void jx_load(struct jx *jx, enum jx_reg reg, enum jx_reg base, int32_t disp, bool w64);
/* [base + disp] = reg (64 bits). */
void jx_store(struct jx *jx, enum jx_reg base, int32_t disp, enum jx_reg reg);
/* dst = dst op [base + disp] (64 bits; JX_CMP compares dst with memory). */
void jx_alu_mem(struct jx *jx, enum jx_alu op, enum jx_reg dst, enum jx_reg base, int32_t disp);
/* dst = the size-byte value at [base], sign- or zero-extended to 64 bits. */
void jx_load_ext(struct jx *jx, enum jx_reg dst, enum jx_reg base, unsigned size, bool is_signed);
/* The low size bytes of reg to [base]. */
void jx_store_sized(struct jx *jx, enum jx_reg base, enum jx_reg reg, unsigned size);
/* [base + disp] = sign-extended imm32 (64 bits). */
void jx_store_imm(struct jx *jx, enum jx_reg base, int32_t disp, int32_t imm);
/* qword [base + disp] += imm32 (sign-extended). */
void jx_add_mem_imm(struct jx *jx, enum jx_reg base, int32_t disp, int32_t imm);
/* reg = imm, in the shortest of mov r32, imm32 / mov r64, simm32 / mov r64, imm64. */
void jx_mov_imm(struct jx *jx, enum jx_reg reg, uint64_t imm);
void jx_mov(struct jx *jx, enum jx_reg dst, enum jx_reg src);
void jx_alu(struct jx *jx, enum jx_alu op, enum jx_reg dst, enum jx_reg src, bool w64);
void jx_alu_imm(struct jx *jx, enum jx_alu op, enum jx_reg dst, int32_t imm, bool w64);
/* dst += imm for any 64-bit imm (through scratch when it does not fit an imm32). */
void jx_add_imm64(struct jx *jx, enum jx_reg dst, int64_t imm, enum jx_reg scratch);
void jx_shift_imm(struct jx *jx, enum jx_shift op, enum jx_reg dst, uint8_t count, bool w64);
/* dst <<= cl etc.; the hardware masks the count to 5 or 6 bits, as RISC-V does. */
void jx_shift_cl(struct jx *jx, enum jx_shift op, enum jx_reg dst, bool w64);
/* dst = condition ? 1 : 0 (64 bits). */
void jx_setcc(struct jx *jx, enum jx_cc cc, enum jx_reg dst);
/* dst = sign-extended low 32 bits of src. */
void jx_movsxd(struct jx *jx, enum jx_reg dst, enum jx_reg src);
/* dst *= src (low 64 or 32 bits). */
void jx_imul(struct jx *jx, enum jx_reg dst, enum jx_reg src, bool w64);
/* rdx:rax = rax * src, signed (imul) or unsigned (mul). */
void jx_mul_wide(struct jx *jx, enum jx_reg src, bool is_signed);
/* Calls fn through rax. */
void jx_call(struct jx *jx, const void *fn);
/* Jumps to the address held at [base + disp]. */
void jx_jmp_mem(struct jx *jx, enum jx_reg base, int32_t disp);
/* Jumps with a rel32 to be patched: return the position of the rel32 field. */
size_t jx_jcc(struct jx *jx, enum jx_cc cc);
size_t jx_jmp(struct jx *jx);
/* Points the rel32 at `at` to the current end of the code (or to target). */
void jx_patch_here(struct jx *jx, size_t at);
void jx_patch(struct jx *jx, size_t at, size_t target);
void jx_push(struct jx *jx, enum jx_reg reg);
void jx_pop(struct jx *jx, enum jx_reg reg);
void jx_ret(struct jx *jx);

#endif
