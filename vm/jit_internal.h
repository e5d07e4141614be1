/*
 * jit_internal.h — the JIT's parts (vm/jit*.c only; docs/jit.md).
 *
 * The engine (jit.c) takes the place of the interpreter's loop: it runs guest basic blocks
 * translated to x86-64 (jit_translate.c, through the emitter of jit_x86.c) and hands every
 * instruction it does not translate, and every block that would run past the icount limit, to
 * the interpreter. A block is entered only with the whole block inside the budget, so icount
 * stops exactly where the interpreter's would; a fault or a slow-path access inside a block
 * leaves pc and icount at that instruction, exactly as the interpreter leaves them.
 */
#ifndef FTVM_VM_JIT_INTERNAL_H
#define FTVM_VM_JIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cpu;

/* At most this many guest instructions per block (their bytes are kept to check the block). */
#define JIT_MAX_INSNS 32
#define JIT_MAX_SRC_BYTES (JIT_MAX_INSNS * 4)

/* What a block's code returns. */
enum jit_exit {
	JIT_EXIT_END = 0,       /* ran to its end: pc and icount point after it */
	JIT_EXIT_EXCEPTION = 1, /* an instruction faulted: pc and icount are the faulting one's and
				 * the exception is pending (cpu_take_exception() takes it) */
	JIT_EXIT_EARLY = 2,     /* left after an instruction that took a slow path or stored into
				 * the block itself: pc and icount point after that instruction */
};

/*
 * A load or store inside a block calls a helper with a site word naming the instruction: its
 * access kind, rd, length, byte offset from the block's first instruction and index in the
 * block. The block leaves cpu->pc and cpu->icount at the block's start until it ends, so a helper
 * finds the exact pc and icount of its instruction from them when it needs to (a slow path).
 */
#define JIT_SITE(kind, rd, len, off, idx)                                                            \
	((uint32_t)(kind) | (uint32_t)(rd) << 3 | (uint32_t)((len) == 4) << 8 | (uint32_t)(off) << 9 | \
	 (uint32_t)(idx) << 21)
#define JIT_SITE_KIND(s) ((s) & 7u)
#define JIT_SITE_RD(s) (((s) >> 3) & 31u)
#define JIT_SITE_LEN(s) ((((s) >> 8) & 1u) ? 4u : 2u)
#define JIT_SITE_OFF(s) (((s) >> 9) & 0xfffu)
#define JIT_SITE_IDX(s) ((s) >> 21)
_Static_assert(JIT_MAX_INSNS < (1u << 11), "a block's instruction index must fit the site word");

/* Load kinds in the order of enum cpu_op's LB..LWU; store kinds are log2 of the size (SB..SD). */
int jit_helper_load(struct cpu *cpu, uint64_t vaddr, uint32_t site);
int jit_helper_store(struct cpu *cpu, uint64_t vaddr, uint64_t value, uint32_t site);
/* A floating-point computation or load executed by the interpreter's FPU with pc and icount
 * exact; raw16 is the instruction's 16 bits when it is compressed (mtval of an
 * illegal-instruction trap). */
int jit_helper_fpu(struct cpu *cpu, uint32_t insn, uint32_t site, uint32_t raw16);
/* An FP store the same way; the block goes on after it unless it went through the bus, wrote the
 * block's own bytes or left the hart needing attention. */
int jit_helper_fp_store(struct cpu *cpu, uint32_t insn, uint32_t site, uint32_t raw16);
/* An AMO, LR or SC at `site` through the interpreter's cpu_exec_amo(); the block goes on after it
 * unless it reached a device, wrote the block's own bytes or left the hart needing attention. */
int jit_helper_amo(struct cpu *cpu, uint32_t insn, uint32_t site);
/* A CSR instruction through the interpreter's cpu_csr_op(), pc and icount exact (an illegal one
 * traps there). A read that writes nothing has no side effect: the block goes on. After a write
 * it goes on unless the hart needs attention (an interrupt the write enabled, a stop) or the
 * fetch TLB no longer maps the block's code where it did (satp): then it ends after it. */
int jit_helper_csr(struct cpu *cpu, uint32_t insn, uint32_t site);

/*
 * A direct exit of a block to a known pc (a branch's two ways, a JAL, the fall-through). The
 * run loop links it once it has entered the block found there right after the exit; from then
 * on the exit jumps straight into that block's code while
 * 1. the run's budget holds the whole target block (limit - icount >= ninsns: icount stays
 *    exact, as at the run loop's own entry),
 * 2. the target's page is still at the code generation the target was checked at (no write
 *    into it since: the bytes are the ones it was translated from), and
 * 3. for a target on another page, the fetch TLB of the current regime maps the new pc to the
 *    host address `want` (the run loop's own lookup, inline: same privilege, translation and
 *    PMP decision as the interpreter's fetch).
 * Otherwise it returns to the run loop, naming itself in *last so the loop can link it. A page
 * is reached through one virtual page at a time, so an exit to the same page reaches the same
 * physical code whatever alias it runs at (no TLB test needed). Flush-all eviction drops links
 * with the code.
 */
struct jit_link {
	const void *code;         /* the target's code after its prologue */
	uint64_t ninsns;          /* the target's length; UINT64_MAX while unlinked (no budget holds it) */
	const uint64_t *page_gen; /* the target page's generation (bus->code_gen), ... */
	uint64_t gen;             /* ... which must still be this */
	const uint8_t *want;      /* the host address of the target's first instruction (set at
				   * translation for the same page, at linking for another) */
	bool other_page;          /* the target is on another page: condition 3 applies */
};
#define JIT_LINKS_PER_BLOCK 2

/*
 * The jump cache: the last installed block the run loop entered at each host address, as a
 * link (direct-mapped by JIT_JCACHE_INDEX). A JALR looks its target up there inline — the
 * fetch TLB maps the new pc to a host address, the entry must want exactly that address — and
 * jumps in under conditions 1 and 2 above; otherwise it returns to the run loop.
 */
#define JIT_JCACHE_BITS 12
#define JIT_JCACHE_INDEX(host) (((uintptr_t)(host) >> 1) & ((1u << JIT_JCACHE_BITS) - 1))

/* Where a block's exits may chain: its links (JIT_LINKS_PER_BLOCK, or NULL for no chaining),
 * the engine's record of the last unlinked exit taken and the jump cache. */
struct jit_chain {
	struct jit_link *links;
	struct jit_link **last;
	struct jit_link *jcache;
};

/* The translation of one block starting at byte `off` of the guest code page at host address
 * `page`: x86-64 code into out (at most cap bytes), its guest instruction count in *ninsns,
 * the bytes of guest code it covers in *src_bytes and the offset of the entry that chained
 * exits jump to in *chain_entry. Returns the code size, 0 when the first instruction is not
 * translated (the interpreter runs it) or the code does not fit. */
size_t jit_translate(const uint8_t *page, unsigned off, const struct jit_chain *chain, uint8_t *out, size_t cap,
		     unsigned *ninsns, unsigned *src_bytes, unsigned *chain_entry);
/* The *ninsns and *src_bytes jit_translate() would give, without emitting code (for cold blocks,
 * most of which are never translated); false when the first instruction is the interpreter's. */
bool jit_extent(const uint8_t *page, unsigned off, unsigned *ninsns, unsigned *src_bytes);

#endif
