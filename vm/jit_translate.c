/*
 * jit_translate.c — RV64I + M (and their compressed forms) to x86-64, one basic block at a time.
 *
 * Instructions are decoded by the interpreter's own decoder (cpu_decode(), compressed forms
 * expanded), so both engines agree on what every bit pattern means. A block runs from its first
 * instruction to the first branch or jump (included), to the first instruction this file does
 * not translate (excluded: the interpreter runs it), to the end of the page (an instruction that
 * crosses it is excluded) or to JIT_MAX_INSNS.
 *
 * The generated code is a function int block(struct cpu *cpu). rbx holds cpu; guest registers
 * stay in cpu->x and are loaded into rax/rcx/rdx for each instruction and stored back after it.
 * Nothing in the code depends on the virtual address the block runs at: pc-relative values are
 * computed from cpu->pc, which holds the block's start until the block ends, so a block serves
 * every virtual alias of its physical code. Loads and stores probe the hart's software TLB inline
 * and call a C helper on a miss (or for a store into the block's own bytes); MULHSU, the
 * divisions and floating-point computation and loads (the interpreter's FPU) call C helpers;
 * everything else is inline. Layout:
 *
 *	push rbx; mov rbx, rdi; jmp body
 *   exit:  pop rbx; ret                  (rax = the helper's enum jit_exit)
 *   body:  one sequence per instruction; a helper's non-zero return jumps to exit
 *	    the end: cpu->pc += bytes (or the jump's target), cpu->icount += n, return 0;
 *	    a jump back to the start loops to body while the icount budget holds a whole pass;
 *	    an end at another pc of the same page may chain: jump to the body of the block there
 *	    (jit_internal.h, struct jit_link), whose frame is the same (rbx pushed once)
 */
#include "vm/jit_internal.h"

#include <stddef.h>
#include <string.h>
#include "util/insn.h"
#include "vm/cpu_decode.h"
#include "vm/cpu_internal.h"
#include "vm/cpu_muldiv.h"
#include "vm/jit_x86.h"

#define XREG(r) ((int32_t)(offsetof(struct cpu, x) + 8 * (r)))
#define PC_DISP ((int32_t)offsetof(struct cpu, pc))
#define ICOUNT_DISP ((int32_t)offsetof(struct cpu, icount))
#define LIMIT_DISP ((int32_t)offsetof(struct cpu, engine_limit))
#define STAT_DISP(field) ((int32_t)offsetof(struct cpu, stats.field))
#define LINK_DISP(field) ((int32_t)offsetof(struct jit_link, field))
#define TLB_DISP(kind) ((int32_t)(offsetof(struct cpu, tlb) + sizeof(struct cpu_tlb_entry *) * (kind)))
#define TLB_ENTRY_SHIFT 4
#define FP_OPCODE_STORE 0x27
_Static_assert(sizeof(struct cpu_tlb_entry) == 1u << TLB_ENTRY_SHIFT, "the inline TLB probe indexes 16-byte entries");
_Static_assert(offsetof(struct cpu_tlb_entry, vpage) == 0 && offsetof(struct cpu_tlb_entry, addend) == 8,
	       "the inline TLB probe reads vpage and addend at these offsets");
_Static_assert(CPU_TLB_SIZE == 256, "the inline TLB probe masks the index with 0xff");

/* The M instructions x86 has no one instruction for, with RISC-V's corner cases (cpu_muldiv.h). */
static uint64_t h_mulhsu(uint64_t a, uint64_t b) { return mulh_su((int64_t)a, b); }
static uint64_t h_div(uint64_t a, uint64_t b) { return div_s((int64_t)a, (int64_t)b); }
static uint64_t h_divu(uint64_t a, uint64_t b) { return b ? a / b : UINT64_MAX; }
static uint64_t h_rem(uint64_t a, uint64_t b) { return rem_s((int64_t)a, (int64_t)b); }
static uint64_t h_remu(uint64_t a, uint64_t b) { return b ? a % b : a; }
static uint64_t h_divw(uint64_t a, uint64_t b) { return exec_muldiv_w(4, a, b); }
static uint64_t h_divuw(uint64_t a, uint64_t b) { return exec_muldiv_w(5, a, b); }
static uint64_t h_remw(uint64_t a, uint64_t b) { return exec_muldiv_w(6, a, b); }
static uint64_t h_remuw(uint64_t a, uint64_t b) { return exec_muldiv_w(7, a, b); }

struct block {
	struct jx jx;
	size_t exit;      /* position of the shared exit (pop rbx; ret) */
	size_t body;      /* position of the first instruction's code */
	unsigned ninsns;  /* instructions translated so far */
	uintptr_t lo, hi; /* host bytes the block may cover: a store into them takes the helper */
	const uint8_t *page;             /* host address of the guest code page */
	unsigned start;                  /* the block's first byte in it */
	const struct jit_chain *chain;   /* NULL: no chained exits */
	unsigned nlinks;                 /* links used so far */
};

static void get_x(struct block *b, enum jx_reg reg, unsigned r)
{
	if (r == 0)
		jx_alu(&b->jx, JX_XOR, reg, reg, false); /* x0 reads zero */
	else
		jx_load(&b->jx, reg, JX_RBX, XREG(r), true);
}

static void set_x(struct block *b, unsigned rd, enum jx_reg reg)
{
	if (rd != 0)
		jx_store(&b->jx, JX_RBX, XREG(rd), reg);
}

/* reg = the guest pc at byte offset delta from the block's start. */
static void pc_at(struct block *b, enum jx_reg reg, int64_t delta, enum jx_reg scratch)
{
	jx_load(&b->jx, reg, JX_RBX, PC_DISP, true);
	jx_add_imm64(&b->jx, reg, delta, scratch);
}

/* Ends the block with pc = rax, having run `ninsns` instructions. */
static void end_with_rax(struct block *b, unsigned ninsns)
{
	jx_store(&b->jx, JX_RBX, PC_DISP, JX_RAX);
	jx_add_mem_imm(&b->jx, JX_RBX, ICOUNT_DISP, (int32_t)ninsns);
	jx_alu(&b->jx, JX_XOR, JX_RAX, JX_RAX, false); /* JIT_EXIT_END */
	jx_patch(&b->jx, jx_jmp(&b->jx), b->exit);
}

/*
 * rax holds the new pc: rax = its host address when the fetch TLB of the current regime maps it
 * (what cpu_tlb_lookup(cpu, CPU_ACCESS_FETCH, pc, 2) does in the run loop), else a jump to the
 * patch position stored in *miss. rdx = the TLB entry.
 */
static void fetch_host(struct block *b, size_t *miss)
{
	jx_mov(&b->jx, JX_RDX, JX_RAX);
	jx_shift_imm(&b->jx, JX_SHR, JX_RDX, CPU_PAGE_SHIFT, true);
	jx_alu_imm(&b->jx, JX_AND, JX_RDX, CPU_TLB_SIZE - 1, false);
	jx_shift_imm(&b->jx, JX_SHL, JX_RDX, TLB_ENTRY_SHIFT, false);
	jx_alu_mem(&b->jx, JX_ADD, JX_RDX, JX_RBX, TLB_DISP(CPU_ACCESS_FETCH));
	jx_mov(&b->jx, JX_RCX, JX_RAX);
	jx_alu_imm(&b->jx, JX_AND, JX_RCX, (int32_t)(CPU_PAGE_MASK | 1), true);
	jx_alu_mem(&b->jx, JX_CMP, JX_RCX, JX_RDX, 0);
	*miss = jx_jcc(&b->jx, JX_CC_NE);
	jx_alu_mem(&b->jx, JX_ADD, JX_RAX, JX_RDX, 8);
}

/*
 * rax holds a link (jit_internal.h): jumps into its code while the run's budget holds it and
 * its page is unwritten (conditions 1 and 2), counting the entry in the stats as the run loop
 * does; the failing tests' jumps go to fails[].
 */
static void enter_link(struct block *b, size_t *fails, unsigned *nfails)
{
	jx_load(&b->jx, JX_RCX, JX_RBX, LIMIT_DISP, true);
	jx_load(&b->jx, JX_RDX, JX_RBX, ICOUNT_DISP, true);
	jx_alu(&b->jx, JX_SUB, JX_RCX, JX_RDX, true);
	jx_alu_mem(&b->jx, JX_CMP, JX_RCX, JX_RAX, LINK_DISP(ninsns));
	fails[(*nfails)++] = jx_jcc(&b->jx, JX_CC_B);
	jx_load(&b->jx, JX_RCX, JX_RAX, LINK_DISP(page_gen), true);
	jx_load(&b->jx, JX_RCX, JX_RCX, 0, true);
	jx_alu_mem(&b->jx, JX_CMP, JX_RCX, JX_RAX, LINK_DISP(gen));
	fails[(*nfails)++] = jx_jcc(&b->jx, JX_CC_NE);
	jx_add_mem_imm(&b->jx, JX_RBX, STAT_DISP(jit_blocks), 1);
	jx_add_mem_imm(&b->jx, JX_RBX, STAT_DISP(jit_chained), 1);
	jx_load(&b->jx, JX_RCX, JX_RBX, STAT_DISP(jit_insns), true);
	jx_alu_mem(&b->jx, JX_ADD, JX_RCX, JX_RAX, LINK_DISP(ninsns));
	jx_store(&b->jx, JX_RBX, STAT_DISP(jit_insns), JX_RCX);
	jx_jmp_mem(&b->jx, JX_RAX, LINK_DISP(code));
}

/*
 * The end of a block (pc and icount already moved, rax = pc) through link l (jit_internal.h):
 * jump into the linked block under the link's conditions, else return to the run loop with
 * *last = l.
 */
static void chained_exit(struct block *b, struct jit_link *l)
{
	size_t fails[4];
	unsigned nfails = 0;
	if (l->other_page) {
		fetch_host(b, &fails[nfails++]);
		jx_mov_imm(&b->jx, JX_RCX, (uintptr_t)l);
		jx_alu_mem(&b->jx, JX_CMP, JX_RAX, JX_RCX, LINK_DISP(want));
		fails[nfails++] = jx_jcc(&b->jx, JX_CC_NE);
	}
	jx_mov_imm(&b->jx, JX_RAX, (uintptr_t)l);
	enter_link(b, fails, &nfails);
	for (unsigned i = 0; i < nfails; i++)
		jx_patch_here(&b->jx, fails[i]);
	jx_mov_imm(&b->jx, JX_RAX, (uintptr_t)l);
	jx_mov_imm(&b->jx, JX_RCX, (uintptr_t)b->chain->last);
	jx_store(&b->jx, JX_RCX, 0, JX_RAX);
	jx_alu(&b->jx, JX_XOR, JX_RAX, JX_RAX, false); /* JIT_EXIT_END */
	jx_patch(&b->jx, jx_jmp(&b->jx), b->exit);
}

/* The end of a block at a computed pc (JALR; rax = pc, pc and icount already moved): into the
 * block the jump cache holds for its host address, else back to the run loop. */
static void cached_exit(struct block *b)
{
	size_t fails[4];
	unsigned nfails = 0;
	_Static_assert(sizeof(struct jit_link) == 48, "the jump cache index is scaled by 48");
	fetch_host(b, &fails[nfails++]);
	jx_mov(&b->jx, JX_RCX, JX_RAX);
	jx_shift_imm(&b->jx, JX_SHR, JX_RCX, 1, true);
	jx_alu_imm(&b->jx, JX_AND, JX_RCX, (1 << JIT_JCACHE_BITS) - 1, false);
	jx_mov_imm(&b->jx, JX_RDX, sizeof(struct jit_link));
	jx_imul(&b->jx, JX_RCX, JX_RDX, true);
	jx_mov_imm(&b->jx, JX_RDX, (uintptr_t)b->chain->jcache);
	jx_alu(&b->jx, JX_ADD, JX_RCX, JX_RDX, true);
	jx_alu_mem(&b->jx, JX_CMP, JX_RAX, JX_RCX, LINK_DISP(want));
	fails[nfails++] = jx_jcc(&b->jx, JX_CC_NE);
	jx_mov(&b->jx, JX_RAX, JX_RCX);
	enter_link(b, fails, &nfails);
	for (unsigned i = 0; i < nfails; i++)
		jx_patch_here(&b->jx, fails[i]);
	jx_alu(&b->jx, JX_XOR, JX_RAX, JX_RAX, false); /* JIT_EXIT_END */
	jx_patch(&b->jx, jx_jmp(&b->jx), b->exit);
}

/*
 * Ends the block at the pc delta bytes from its start. A jump back to the block's own start
 * (a loop) goes round again inside the code while the run's budget holds another whole pass:
 * pc already holds the start, so only icount moves. Nothing else can ask for the loop to stop:
 * whatever could (a slow path) has left the block already. Any other pc on the block's page
 * leaves through a link (chained_exit) when one is left, and so does a pc on another page.
 */
static void end_at(struct block *b, int64_t delta, unsigned ninsns)
{
	if (delta == 0) {
		jx_add_mem_imm(&b->jx, JX_RBX, ICOUNT_DISP, (int32_t)ninsns);
		jx_load(&b->jx, JX_RAX, JX_RBX, LIMIT_DISP, true);
		jx_load(&b->jx, JX_RCX, JX_RBX, ICOUNT_DISP, true);
		jx_alu(&b->jx, JX_SUB, JX_RAX, JX_RCX, true);
		jx_alu_imm(&b->jx, JX_CMP, JX_RAX, (int32_t)ninsns, true);
		jx_patch(&b->jx, jx_jcc(&b->jx, JX_CC_AE), b->body);
		jx_alu(&b->jx, JX_XOR, JX_RAX, JX_RAX, false); /* JIT_EXIT_END */
		jx_patch(&b->jx, jx_jmp(&b->jx), b->exit);
		return;
	}
	int64_t target = (int64_t)b->start + delta;
	pc_at(b, JX_RAX, delta, JX_RCX);
	if (!b->chain || b->nlinks == JIT_LINKS_PER_BLOCK) {
		end_with_rax(b, ninsns);
		return;
	}
	struct jit_link *l = &b->chain->links[b->nlinks++];
	l->other_page = target < 0 || target >= (int64_t)CPU_PAGE_SIZE;
	l->want = l->other_page ? NULL : b->page + target;
	jx_store(&b->jx, JX_RBX, PC_DISP, JX_RAX);
	jx_add_mem_imm(&b->jx, JX_RBX, ICOUNT_DISP, (int32_t)ninsns);
	chained_exit(b, l);
}

static void call_checked(struct block *b, const void *fn)
{
	jx_call(&b->jx, fn);
	jx_alu(&b->jx, JX_OR, JX_RAX, JX_RAX, false);
	jx_patch(&b->jx, jx_jcc(&b->jx, JX_CC_NE), b->exit);
}

/* rax = rs1 op rs2 (64 or 32 bits), then rd = rax (sign-extended from 32 bits for the W forms). */
static void alu_rr(struct block *b, const struct cpu_decoded *e, enum jx_alu op, bool w64)
{
	get_x(b, JX_RAX, e->rs1);
	get_x(b, JX_RCX, e->rs2);
	jx_alu(&b->jx, op, JX_RAX, JX_RCX, w64);
	if (!w64)
		jx_movsxd(&b->jx, JX_RAX, JX_RAX);
	set_x(b, e->rd, JX_RAX);
}

static void alu_ri(struct block *b, const struct cpu_decoded *e, enum jx_alu op, bool w64)
{
	get_x(b, JX_RAX, e->rs1);
	if (e->imm != 0 || op == JX_AND)
		jx_alu_imm(&b->jx, op, JX_RAX, e->imm, w64);
	if (!w64)
		jx_movsxd(&b->jx, JX_RAX, JX_RAX);
	set_x(b, e->rd, JX_RAX);
}

static void shift_ri(struct block *b, const struct cpu_decoded *e, enum jx_shift op, bool w64)
{
	get_x(b, JX_RAX, e->rs1);
	jx_shift_imm(&b->jx, op, JX_RAX, (uint8_t)e->imm, w64);
	if (!w64)
		jx_movsxd(&b->jx, JX_RAX, JX_RAX);
	set_x(b, e->rd, JX_RAX);
}

static void shift_rr(struct block *b, const struct cpu_decoded *e, enum jx_shift op, bool w64)
{
	get_x(b, JX_RAX, e->rs1);
	get_x(b, JX_RCX, e->rs2);
	jx_shift_cl(&b->jx, op, JX_RAX, w64);
	if (!w64)
		jx_movsxd(&b->jx, JX_RAX, JX_RAX);
	set_x(b, e->rd, JX_RAX);
}

static void compare(struct block *b, const struct cpu_decoded *e, enum jx_cc cc, bool with_imm)
{
	get_x(b, JX_RAX, e->rs1);
	if (with_imm) {
		jx_alu_imm(&b->jx, JX_CMP, JX_RAX, e->imm, true);
	} else {
		get_x(b, JX_RCX, e->rs2);
		jx_alu(&b->jx, JX_CMP, JX_RAX, JX_RCX, true);
	}
	jx_setcc(&b->jx, cc, JX_RAX);
	set_x(b, e->rd, JX_RAX);
}

static void call_rr(struct block *b, const struct cpu_decoded *e, uint64_t (*fn)(uint64_t, uint64_t))
{
	get_x(b, JX_RDI, e->rs1);
	get_x(b, JX_RSI, e->rs2);
	jx_call(&b->jx, (const void *)fn);
	set_x(b, e->rd, JX_RAX);
}

static void mul_high(struct block *b, const struct cpu_decoded *e, bool is_signed)
{
	get_x(b, JX_RAX, e->rs1);
	get_x(b, JX_RCX, e->rs2);
	jx_mul_wide(&b->jx, JX_RCX, is_signed);
	set_x(b, e->rd, JX_RDX);
}

/* rsi = rs1 + imm, the effective address of a load or store. */
static void address(struct block *b, const struct cpu_decoded *e)
{
	get_x(b, JX_RSI, e->rs1);
	if (e->imm)
		jx_alu_imm(&b->jx, JX_ADD, JX_RSI, e->imm, true);
}

static const uint8_t load_size[7] = { 1, 2, 4, 8, 1, 2, 4 };

/*
 * The software TLB probe of cpu_tlb_lookup(), inline, for the address in rsi: rax = the entry
 * of cpu->tlb[kind] for it, and a jump (returned, to be patched) to the slow path when its vpage
 * is not the address masked to its page and natural alignment. On a hit rcx = the host address.
 * rsi (and rdx) are left as they were, for the helper.
 */
static size_t tlb_probe(struct block *b, enum cpu_access kind, unsigned size)
{
	struct jx *jx = &b->jx;
	jx_load(jx, JX_RAX, JX_RBX, TLB_DISP(kind), true);
	jx_mov(jx, JX_RCX, JX_RSI);
	jx_shift_imm(jx, JX_SHR, JX_RCX, CPU_PAGE_SHIFT, true);
	jx_alu_imm(jx, JX_AND, JX_RCX, CPU_TLB_SIZE - 1, false);
	jx_shift_imm(jx, JX_SHL, JX_RCX, TLB_ENTRY_SHIFT, false);
	jx_alu(jx, JX_ADD, JX_RAX, JX_RCX, true);
	jx_mov(jx, JX_RCX, JX_RSI);
	jx_alu_imm(jx, JX_AND, JX_RCX, (int32_t)(CPU_PAGE_MASK | (size - 1)), true);
	jx_alu_mem(jx, JX_CMP, JX_RCX, JX_RAX, 0);
	size_t miss = jx_jcc(jx, JX_CC_NE);
	jx_load(jx, JX_RCX, JX_RAX, 8, true);
	jx_alu(jx, JX_ADD, JX_RCX, JX_RSI, true);
	return miss;
}

/* A TLB hit is done inline; everything else calls the helper, which may leave the block. */
static void load(struct block *b, const struct cpu_decoded *e, unsigned off)
{
	unsigned kind = e->op - CPU_OP_LB, size = load_size[kind];
	address(b, e);
	size_t miss = tlb_probe(b, CPU_ACCESS_LOAD, size);
	jx_load_ext(&b->jx, JX_RAX, JX_RCX, size, kind < 3);
	set_x(b, e->rd, JX_RAX);
	size_t done = jx_jmp(&b->jx);
	jx_patch_here(&b->jx, miss);
	jx_mov(&b->jx, JX_RDI, JX_RBX);
	jx_mov_imm(&b->jx, JX_RDX, JIT_SITE(kind, e->rd, e->len, off, b->ninsns));
	call_checked(b, (const void *)jit_helper_load);
	jx_patch_here(&b->jx, done);
}

static void store(struct block *b, const struct cpu_decoded *e, unsigned off)
{
	unsigned size = 1u << (e->op - CPU_OP_SB);
	address(b, e);
	get_x(b, JX_RDX, e->rs2);
	size_t miss = tlb_probe(b, CPU_ACCESS_STORE, size);
	/* Into the block's own bytes (rcx + size > lo && rcx < hi): the helper stores and leaves. */
	jx_mov_imm(&b->jx, JX_RAX, b->hi);
	jx_alu(&b->jx, JX_CMP, JX_RCX, JX_RAX, true);
	size_t above = jx_jcc(&b->jx, JX_CC_AE);
	jx_mov_imm(&b->jx, JX_RAX, b->lo - size + 1);
	jx_alu(&b->jx, JX_CMP, JX_RCX, JX_RAX, true);
	size_t own = jx_jcc(&b->jx, JX_CC_AE);
	jx_patch_here(&b->jx, above);
	jx_store_sized(&b->jx, JX_RCX, JX_RDX, size);
	size_t done = jx_jmp(&b->jx);
	jx_patch_here(&b->jx, miss);
	jx_patch_here(&b->jx, own);
	jx_mov(&b->jx, JX_RDI, JX_RBX);
	jx_mov_imm(&b->jx, JX_RCX, JIT_SITE(e->op - CPU_OP_SB, 0, e->len, off, b->ninsns));
	call_checked(b, (const void *)jit_helper_store);
	jx_patch_here(&b->jx, done);
}

static void branch(struct block *b, const struct cpu_decoded *e, enum jx_cc taken, unsigned off)
{
	get_x(b, JX_RAX, e->rs1);
	get_x(b, JX_RCX, e->rs2);
	jx_alu(&b->jx, JX_CMP, JX_RAX, JX_RCX, true);
	size_t to_taken = jx_jcc(&b->jx, taken);
	end_at(b, off + e->len, b->ninsns + 1);
	jx_patch_here(&b->jx, to_taken);
	end_at(b, (int64_t)off + e->imm, b->ninsns + 1);
}

static void jump_register(struct block *b, const struct cpu_decoded *e, unsigned off)
{
	get_x(b, JX_RDX, e->rs1);
	if (e->imm)
		jx_alu_imm(&b->jx, JX_ADD, JX_RDX, e->imm, true);
	jx_alu_imm(&b->jx, JX_AND, JX_RDX, -2, true);
	if (e->op == CPU_OP_JALR && e->rd) {
		pc_at(b, JX_RAX, off + e->len, JX_RCX);
		set_x(b, e->rd, JX_RAX);
	}
	jx_mov(&b->jx, JX_RAX, JX_RDX);
	if (!b->chain) {
		end_with_rax(b, b->ninsns + 1);
		return;
	}
	jx_store(&b->jx, JX_RBX, PC_DISP, JX_RAX);
	jx_add_mem_imm(&b->jx, JX_RBX, ICOUNT_DISP, (int32_t)(b->ninsns + 1));
	cached_exit(b);
}

/*
 * Emits one instruction. Returns 1 when it ends the block (a control transfer, already ended),
 * 0 when the block goes on, -1 when it is not translated.
 */
/* What the JIT does with e: 1 translates it and ends the block, 0 translates it and goes on,
 * -1 leaves it to the interpreter (the block ends before it). emit_insn() emits exactly the
 * first two, and jit_extent() finds a block's end from this alone. */
static int insn_role(const struct cpu_decoded *e)
{
	switch ((enum cpu_op)e->op) {
	case CPU_OP_JAL: case CPU_OP_J: case CPU_OP_JALR: case CPU_OP_JR:
	case CPU_OP_BEQ: case CPU_OP_BNE: case CPU_OP_BLT: case CPU_OP_BGE: case CPU_OP_BLTU: case CPU_OP_BGEU:
		return 1;
	case CPU_OP_LUI: case CPU_OP_AUIPC:
	case CPU_OP_LB: case CPU_OP_LH: case CPU_OP_LW: case CPU_OP_LD:
	case CPU_OP_LBU: case CPU_OP_LHU: case CPU_OP_LWU:
	case CPU_OP_SB: case CPU_OP_SH: case CPU_OP_SW: case CPU_OP_SD:
	case CPU_OP_ADDI: case CPU_OP_XORI: case CPU_OP_ORI: case CPU_OP_ANDI: case CPU_OP_SLTI: case CPU_OP_SLTIU:
	case CPU_OP_SLLI: case CPU_OP_SRLI: case CPU_OP_SRAI:
	case CPU_OP_ADD: case CPU_OP_SUB: case CPU_OP_XOR: case CPU_OP_OR: case CPU_OP_AND:
	case CPU_OP_SLL: case CPU_OP_SRL: case CPU_OP_SRA: case CPU_OP_SLT: case CPU_OP_SLTU:
	case CPU_OP_ADDIW: case CPU_OP_SLLIW: case CPU_OP_SRLIW: case CPU_OP_SRAIW:
	case CPU_OP_ADDW: case CPU_OP_SUBW: case CPU_OP_SLLW: case CPU_OP_SRLW: case CPU_OP_SRAW:
	case CPU_OP_MUL: case CPU_OP_MULW: case CPU_OP_MULH: case CPU_OP_MULHU: case CPU_OP_MULHSU:
	case CPU_OP_DIV: case CPU_OP_DIVU: case CPU_OP_REM: case CPU_OP_REMU:
	case CPU_OP_DIVW: case CPU_OP_DIVUW: case CPU_OP_REMW: case CPU_OP_REMUW:
	case CPU_OP_NOP: case CPU_OP_FENCE: case CPU_OP_FPU: case CPU_OP_AMO:
		return 0;
	case CPU_OP_SYSTEM: {
		unsigned f3 = insn_funct3((uint32_t)e->imm);
		/* CSR instructions; a privileged one (ECALL, xRET, WFI, SFENCE.VMA...): the interpreter's. */
		return f3 == 0 || f3 == 4 ? -1 : 0;
	}
	default:
		/* Illegal: the interpreter's. */
		return -1;
	}
}

static int emit_insn(struct block *b, const struct cpu_decoded *e, unsigned off)
{
	if (insn_role(e) < 0)
		return -1;
	switch ((enum cpu_op)e->op) {
	case CPU_OP_LUI:
		if (e->rd)
			jx_store_imm(&b->jx, JX_RBX, XREG(e->rd), e->imm);
		return 0;
	case CPU_OP_AUIPC:
		pc_at(b, JX_RAX, (int64_t)off + e->imm, JX_RCX);
		set_x(b, e->rd, JX_RAX);
		return 0;
	case CPU_OP_JAL:
		pc_at(b, JX_RAX, off + e->len, JX_RCX);
		set_x(b, e->rd, JX_RAX);
		/* fall through */
	case CPU_OP_J:
		end_at(b, (int64_t)off + e->imm, b->ninsns + 1);
		return 1;
	case CPU_OP_JALR:
	case CPU_OP_JR:
		jump_register(b, e, off);
		return 1;
	case CPU_OP_BEQ: branch(b, e, JX_CC_E, off); return 1;
	case CPU_OP_BNE: branch(b, e, JX_CC_NE, off); return 1;
	case CPU_OP_BLT: branch(b, e, JX_CC_L, off); return 1;
	case CPU_OP_BGE: branch(b, e, JX_CC_GE, off); return 1;
	case CPU_OP_BLTU: branch(b, e, JX_CC_B, off); return 1;
	case CPU_OP_BGEU: branch(b, e, JX_CC_AE, off); return 1;
	case CPU_OP_LB: case CPU_OP_LH: case CPU_OP_LW: case CPU_OP_LD:
	case CPU_OP_LBU: case CPU_OP_LHU: case CPU_OP_LWU:
		load(b, e, off);
		return 0;
	case CPU_OP_SB: case CPU_OP_SH: case CPU_OP_SW: case CPU_OP_SD:
		store(b, e, off);
		return 0;
	case CPU_OP_ADDI: alu_ri(b, e, JX_ADD, true); return 0;
	case CPU_OP_XORI: alu_ri(b, e, JX_XOR, true); return 0;
	case CPU_OP_ORI: alu_ri(b, e, JX_OR, true); return 0;
	case CPU_OP_ANDI: alu_ri(b, e, JX_AND, true); return 0;
	case CPU_OP_SLTI: compare(b, e, JX_CC_L, true); return 0;
	case CPU_OP_SLTIU: compare(b, e, JX_CC_B, true); return 0;
	case CPU_OP_SLLI: shift_ri(b, e, JX_SHL, true); return 0;
	case CPU_OP_SRLI: shift_ri(b, e, JX_SHR, true); return 0;
	case CPU_OP_SRAI: shift_ri(b, e, JX_SAR, true); return 0;
	case CPU_OP_ADD: alu_rr(b, e, JX_ADD, true); return 0;
	case CPU_OP_SUB: alu_rr(b, e, JX_SUB, true); return 0;
	case CPU_OP_XOR: alu_rr(b, e, JX_XOR, true); return 0;
	case CPU_OP_OR: alu_rr(b, e, JX_OR, true); return 0;
	case CPU_OP_AND: alu_rr(b, e, JX_AND, true); return 0;
	case CPU_OP_SLL: shift_rr(b, e, JX_SHL, true); return 0;
	case CPU_OP_SRL: shift_rr(b, e, JX_SHR, true); return 0;
	case CPU_OP_SRA: shift_rr(b, e, JX_SAR, true); return 0;
	case CPU_OP_SLT: compare(b, e, JX_CC_L, false); return 0;
	case CPU_OP_SLTU: compare(b, e, JX_CC_B, false); return 0;
	case CPU_OP_MUL:
	case CPU_OP_MULW:
		get_x(b, JX_RAX, e->rs1);
		get_x(b, JX_RCX, e->rs2);
		jx_imul(&b->jx, JX_RAX, JX_RCX, e->op == CPU_OP_MUL);
		if (e->op == CPU_OP_MULW)
			jx_movsxd(&b->jx, JX_RAX, JX_RAX);
		set_x(b, e->rd, JX_RAX);
		return 0;
	case CPU_OP_MULH: mul_high(b, e, true); return 0;
	case CPU_OP_MULHU: mul_high(b, e, false); return 0;
	case CPU_OP_MULHSU: call_rr(b, e, h_mulhsu); return 0;
	case CPU_OP_DIV: call_rr(b, e, h_div); return 0;
	case CPU_OP_DIVU: call_rr(b, e, h_divu); return 0;
	case CPU_OP_REM: call_rr(b, e, h_rem); return 0;
	case CPU_OP_REMU: call_rr(b, e, h_remu); return 0;
	case CPU_OP_DIVW: call_rr(b, e, h_divw); return 0;
	case CPU_OP_DIVUW: call_rr(b, e, h_divuw); return 0;
	case CPU_OP_REMW: call_rr(b, e, h_remw); return 0;
	case CPU_OP_REMUW: call_rr(b, e, h_remuw); return 0;
	case CPU_OP_ADDIW: alu_ri(b, e, JX_ADD, false); return 0;
	case CPU_OP_SLLIW: shift_ri(b, e, JX_SHL, false); return 0;
	case CPU_OP_SRLIW: shift_ri(b, e, JX_SHR, false); return 0;
	case CPU_OP_SRAIW: shift_ri(b, e, JX_SAR, false); return 0;
	case CPU_OP_ADDW: alu_rr(b, e, JX_ADD, false); return 0;
	case CPU_OP_SUBW: alu_rr(b, e, JX_SUB, false); return 0;
	case CPU_OP_SLLW: shift_rr(b, e, JX_SHL, false); return 0;
	case CPU_OP_SRLW: shift_rr(b, e, JX_SHR, false); return 0;
	case CPU_OP_SRAW: shift_rr(b, e, JX_SAR, false); return 0;
	case CPU_OP_NOP:
	case CPU_OP_FENCE: /* and FENCE.I: nothing to do, as in the interpreter (a store into code has
			    * already ended the block that made it) */
		return 0;
	case CPU_OP_FPU: {
		unsigned opcode = (uint32_t)e->imm & 0x7f;
		jx_mov(&b->jx, JX_RDI, JX_RBX);
		jx_mov_imm(&b->jx, JX_RSI, (uint32_t)e->imm);
		jx_mov_imm(&b->jx, JX_RDX, JIT_SITE(0, 0, e->len, off, b->ninsns));
		jx_mov_imm(&b->jx, JX_RCX, e->raw & 0xffff);
		call_checked(b, opcode == FP_OPCODE_STORE ? (const void *)jit_helper_fp_store
							  : (const void *)jit_helper_fpu);
		return 0;
	}
	case CPU_OP_AMO:
		jx_mov(&b->jx, JX_RDI, JX_RBX);
		jx_mov_imm(&b->jx, JX_RSI, (uint32_t)e->imm);
		jx_mov_imm(&b->jx, JX_RDX, JIT_SITE(0, 0, e->len, off, b->ninsns));
		call_checked(b, (const void *)jit_helper_amo);
		return 0;
	case CPU_OP_SYSTEM: {
		uint32_t insn = (uint32_t)e->imm; /* a CSR instruction (insn_role()) */
		jx_mov(&b->jx, JX_RDI, JX_RBX);
		jx_mov_imm(&b->jx, JX_RSI, insn);
		jx_mov_imm(&b->jx, JX_RDX, JIT_SITE(0, 0, e->len, off, b->ninsns));
		call_checked(b, (const void *)jit_helper_csr);
		return 0;
	}
	default:
		/* Illegal: the interpreter's. */
		return -1;
	}
}

/* Decodes the instruction at byte off of the code page into e; false if it crosses the page
 * (the interpreter fetches both halves). */
static bool decode_at(const uint8_t *page, unsigned off, struct cpu_decoded *e)
{
	uint32_t raw = 0;
	memcpy(&raw, page + off, off + 4 <= CPU_PAGE_SIZE ? 4 : 2);
	if ((raw & 3) == 3 && off + 4 > CPU_PAGE_SIZE)
		return false;
	memset(e, 0, sizeof(*e));
	cpu_decode(e, raw);
	return true;
}

bool jit_extent(const uint8_t *page, unsigned off, unsigned *ninsns, unsigned *src_bytes)
{
	unsigned n = 0, start = off;
	while (n < JIT_MAX_INSNS && off + 2 <= CPU_PAGE_SIZE) {
		struct cpu_decoded e;
		if (!decode_at(page, off, &e))
			break;
		int role = insn_role(&e);
		if (role < 0)
			break;
		n++;
		off += e.len;
		if (role)
			break;
	}
	*ninsns = n;
	*src_bytes = off - start;
	return n > 0;
}

size_t jit_translate(const uint8_t *page, unsigned off, const struct jit_chain *chain, uint8_t *out, size_t cap,
		     unsigned *ninsns, unsigned *src_bytes, unsigned *chain_entry)
{
	struct block b = { .ninsns = 0, .page = page, .start = off, .chain = chain };
	unsigned start = off;
	b.lo = (uintptr_t)(page + off);
	b.hi = b.lo + JIT_MAX_SRC_BYTES;
	jx_init(&b.jx, out, cap);
	jx_push(&b.jx, JX_RBX);
	jx_mov(&b.jx, JX_RBX, JX_RDI);
	size_t over_exit = jx_jmp(&b.jx);
	b.exit = b.jx.len;
	jx_pop(&b.jx, JX_RBX);
	jx_ret(&b.jx);
	jx_patch_here(&b.jx, over_exit);
	b.body = b.jx.len;

	int ended = 0;
	while (b.ninsns < JIT_MAX_INSNS && off + 2 <= CPU_PAGE_SIZE) {
		struct cpu_decoded e;
		if (!decode_at(page, off, &e))
			break;
		ended = emit_insn(&b, &e, off - start);
		if (ended < 0)
			break;
		b.ninsns++;
		off += e.len;
		if (ended)
			break;
	}
	if (b.ninsns == 0)
		return 0;
	if (ended <= 0)
		end_at(&b, off - start, b.ninsns);
	if (b.jx.overflow)
		return 0;
	*ninsns = b.ninsns;
	*src_bytes = off - start;
	*chain_entry = (unsigned)b.body;
	return b.jx.len;
}
