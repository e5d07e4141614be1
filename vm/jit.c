/*
 * jit.c — the JIT as a hart engine: its code cache, its run loop and the helpers its code calls
 * (see jit.h, jit_internal.h and docs/jit.md).
 *
 * Blocks are found by the host address of their first instruction, which for guest RAM is its
 * physical address: the run loop translates pc with the hart's fetch TLB (so the current
 * privilege and translation regime decide, exactly as for the interpreter), then looks that
 * address up in a set-associative table. A hit is used only while guest memory still holds the
 * bytes the block was translated from. Writes are caught per page: a page the JIT runs code
 * from is flagged on the bus (bus->code), and every write into a flagged page — a hart store
 * (whose store TLB entries for the page are armed, so it takes the slow path), a device's DMA,
 * a page-table A/D update, a restore of RAM — clears the flag and advances the page's
 * generation. A block whose page is still at the generation it was checked at is current; one
 * whose page moved on has its bytes (kept in jit->src) compared once, and is trusted again when
 * they still match (a write of data beside code) or translated again when they do not.
 *
 * A block is translated once it is hot (JIT_HOT entries; until then the interpreter runs exactly
 * its instructions), and hot blocks are installed in batches. Code lives in one fixed mmap'ed
 * area that is never writable and executable at once: it is mapped read+exec, and the pages a
 * batch goes to are made writable only while it is copied in. When the area is full everything
 * is dropped at once (flush-all eviction). This is memory
 * management of our own process, not host I/O: no descriptor, no clock.
 */
#include "vm/jit.h"
#include "vm/jit_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "util/diag.h"
#include "util/insn.h"
#include "util/ram_pages.h"
#include "vm/bus.h"
#include "vm/cpu_internal.h"

#define JIT_CODE_BYTES (32u << 20)
/* The block table: sets of JIT_WAYS slots, found by a hash of the host address. Direct-mapped
 * (one way) with 32768 slots, a kvd load refilled 2.5 M slots in a 6 s run, mostly blocks that two
 * entry points kept taking from each other before either became hot; 4 ways of 16384 sets still
 * refilled about 200,000, 32768 sets about 47,000. */
#define JIT_SET_BITS 15
#define JIT_WAYS 4
#define JIT_TABLE_SIZE ((1u << JIT_SET_BITS) * JIT_WAYS)
#define JIT_BLOCK_CODE_MAX 8192 /* far above what JIT_MAX_INSNS instructions need */
#define JIT_CODE_ALIGN 16
/* A block runs in the interpreter until entered this often: most code of a boot runs a few
 * times only, and a translation (with its share of an install) costs as much as interpreting
 * a short block some hundred times. With 4, the boot to ready took more CPU than under the
 * interpreter; 64 makes it take less, and a loop is hot within microseconds either way. */
#define JIT_HOT 64
/* Hot blocks are installed this many at a time, behind one pair of mprotect calls (the calls,
 * and the TLB shootdowns behind them, cost more than translating). */
#define JIT_BATCH 256
/* ... or as soon as one waiting block has been entered this many times its hot count: a hot
 * loop does not wait for the batch to fill. */
#define JIT_HOT_WAITING 16
#define JIT_PENDING_BYTES (JIT_BATCH * 2048)
/* Links of chained exits (jit_internal.h), JIT_LINKS_PER_BLOCK per translated block until the
 * next flush; a block translated when they run out ends without chaining. */
#define JIT_MAX_LINKS (1u << 17)

/* A slot of the block table: what the run loop reads on every entry, kept small so that the table
 * stays in the host's caches (the bytes a block was translated from are apart, in jit->src). */
struct jit_block {
	const uint8_t *host;               /* first instruction; NULL for an empty slot */
	uint64_t gen;                      /* its page's code generation when its bytes last matched */
	int (*code)(struct cpu *cpu);      /* NULL: not installed (cold, pending, or the interpreter's) */
	const void *chain_code;            /* where a chained exit enters code */
	uint16_t src_bytes;                /* guest code bytes covered (checked on entry) */
	uint16_t ninsns;                   /* 0: the first instruction is the interpreter's */
	uint16_t heat;                     /* entries while cold */
	bool pending;                      /* translated, waiting in the batch to be installed */
	uint32_t pending_seq;              /* which batch entry is this slot's */
};

/* A translated block waiting for the next install. */
struct jit_pending {
	uint32_t slot;
	uint32_t seq;
	uint32_t off;   /* in jit->pending_code */
	uint32_t len;
	uint32_t chain_entry;
};

struct jit {
	uint8_t *code;          /* JIT_CODE_BYTES, read+exec */
	size_t used;
	size_t page;            /* host page size, for mprotect */
	struct jit_link *links; /* JIT_MAX_LINKS */
	unsigned nlinks;        /* handed out since the last flush */
	struct jit_link *last_link; /* the unlinked exit the last block left through, or NULL */
	struct jit_link jcache[1u << JIT_JCACHE_BITS]; /* jit_internal.h */
	bool broken;            /* mprotect failed once: everything goes to the interpreter */
	uint16_t hot;           /* entries that make a block hot (JIT_HOT unless jit_set_hot()) */
	uint32_t seq;
	unsigned npending;
	size_t pending_used;
	struct jit_pending pending[JIT_BATCH];
	uint8_t pending_code[JIT_PENDING_BYTES];
	struct jit_block table[JIT_TABLE_SIZE];
	/* table[i].host again, a set's in one half cache line: a lookup reads one line, not four */
	const uint8_t *tags[JIT_TABLE_SIZE] __attribute__((aligned(JIT_WAYS * sizeof(void *))));
	uint8_t src[JIT_TABLE_SIZE][JIT_MAX_SRC_BYTES]; /* each slot's guest code bytes */
	/* Where the time of a cold start goes (printed at FTVM_DIAG=info when the engine ends). */
	struct {
		uint64_t fills;       /* slots (re)filled: its block's extent found (jit_extent()) */
		uint64_t stale;       /* ... of them because a write changed the block's bytes */
		uint64_t rechecked;   /* blocks whose page was written but whose bytes were unchanged */
		uint64_t cold_runs;   /* blocks run by the interpreter while cold or pending */
		uint64_t steps;       /* single instructions the interpreter ran (not translatable, not RAM) */
		uint64_t fetch_fills; /* fetch TLB misses at a block's start, filled without running it */
		uint64_t installs;    /* batches installed (one mprotect pair each) */
		uint64_t mismatches;  /* translations whose extent was not jit_extent()'s (0) */
	} count;
};

/* A link no budget holds: its exit returns to the run loop. */
static void unlink_exit(struct jit_link *l)
{
	static const uint64_t no_page_gen;
	l->code = NULL;
	l->ninsns = UINT64_MAX;
	l->page_gen = &no_page_gen;
	l->gen = 1;
	l->want = NULL;
	l->other_page = false;
}

static void forget_jcache(struct jit *j)
{
	for (unsigned i = 0; i < 1u << JIT_JCACHE_BITS; i++)
		unlink_exit(&j->jcache[i]);
}

static int jit_create(struct vm_bus *bus, struct jit **out)
{
#if !defined(__x86_64__)
	(void)bus;
	*out = NULL;
	return -ENOTSUP;
#else
	struct jit *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	size_t pages = bus->ram_size >> CPU_PAGE_SHIFT;
	uint8_t *code = calloc(pages ? pages : 1, 1);
	uint64_t *gen = calloc(pages ? pages : 1, sizeof(*gen));
	j->links = calloc(JIT_MAX_LINKS, sizeof(*j->links));
	if (!code || !gen || !j->links) {
		free(code);
		free(gen);
		free(j->links);
		free(j);
		return -ENOMEM;
	}
	long page = sysconf(_SC_PAGESIZE);
	j->page = page > 0 ? (size_t)page : 4096;
	void *p = mmap(NULL, JIT_CODE_BYTES, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		int err = errno;
		free(code);
		free(gen);
		free(j->links);
		free(j);
		diag_error("jit: cannot map %u MiB for translated code: %s", JIT_CODE_BYTES >> 20, strerror(err));
		return -err;
	}
	j->code = p;
	j->hot = JIT_HOT;
	forget_jcache(j);
	bus->code = code;
	bus->code_gen = gen;
	*out = j;
	return 0;
#endif
}

static void jit_destroy(struct vm_bus *bus, struct jit *jit)
{
	if (!jit)
		return;
	free(bus->code);
	free(bus->code_gen);
	bus->code = NULL;
	bus->code_gen = NULL;
	munmap(jit->code, JIT_CODE_BYTES);
	free(jit->links);
	free(jit);
}

static void flush_all(struct cpu *cpu, struct jit *j)
{
	cpu->stats.jit_flushes++;
	for (unsigned i = 0; i < JIT_TABLE_SIZE; i++) {
		j->table[i].host = NULL;
		j->tags[i] = NULL;
		j->table[i].code = NULL;
		j->table[i].pending = false;
	}
	j->used = 0;
	j->npending = 0;
	j->pending_used = 0;
	j->nlinks = 0;
	j->last_link = NULL;
	forget_jcache(j);
	diag_debug("jit: code area full, all blocks dropped");
}

static int protect(struct jit *j, size_t from, size_t len, int prot)
{
	size_t lo = from & ~(j->page - 1), hi = (from + len + j->page - 1) & ~(j->page - 1);
	if (mprotect(j->code + lo, hi - lo, prot) != 0) {
		diag_error("jit: mprotect of the code area at +%zu: %s; running the interpreter from now on", lo,
			   strerror(errno));
		j->broken = true;
		return -1;
	}
	return 0;
}

static size_t align_code(size_t n)
{
	return (n + JIT_CODE_ALIGN - 1) & ~(size_t)(JIT_CODE_ALIGN - 1);
}

/* Copies the batch into the code area (one writable window) and makes its blocks runnable. */
static void install_pending(struct cpu *cpu, struct jit *j)
{
	size_t total = 0;
	for (unsigned i = 0; i < j->npending; i++)
		total += align_code(j->pending[i].len);
	if (j->npending == 0)
		return;
	if (j->used + total > JIT_CODE_BYTES) {
		flush_all(cpu, j); /* drops the batch too: its blocks heat up again */
		return;
	}
	size_t base = j->used;
	j->count.installs++;
	if (protect(j, base, total, PROT_READ | PROT_WRITE) != 0)
		return;
	size_t at = base;
	for (unsigned i = 0; i < j->npending; i++) {
		memcpy(j->code + at, j->pending_code + j->pending[i].off, j->pending[i].len);
		at += align_code(j->pending[i].len);
	}
	if (protect(j, base, total, PROT_READ | PROT_EXEC) != 0)
		return;
	at = base;
	for (unsigned i = 0; i < j->npending; i++) {
		const struct jit_pending *p = &j->pending[i];
		struct jit_block *b = &j->table[p->slot];
		if (b->pending && b->pending_seq == p->seq) {
			/* Still the block that was translated (a refill clears pending). */
			void *entry = j->code + at;
			memcpy(&b->code, &entry, sizeof(entry)); /* object to function pointer, as dlsym's users do */
			b->chain_code = j->code + at + p->chain_entry;
			b->pending = false;
		}
		at += align_code(p->len);
	}
	j->used = at;
	j->npending = 0;
	j->pending_used = 0;
}

/* Translates the hot block b (whose bytes were just checked against guest memory) into the batch. */
static void queue(struct cpu *cpu, struct jit *j, struct jit_block *b, uint32_t slot, unsigned off)
{
	if (j->npending == JIT_BATCH || JIT_PENDING_BYTES - j->pending_used < JIT_BLOCK_CODE_MAX)
		install_pending(cpu, j);
	unsigned ninsns = 0, src_bytes = 0, chain_entry = 0;
	struct jit_chain chain = { .links = NULL, .last = &j->last_link, .jcache = j->jcache };
	if (j->nlinks + JIT_LINKS_PER_BLOCK <= JIT_MAX_LINKS) {
		chain.links = &j->links[j->nlinks];
		j->nlinks += JIT_LINKS_PER_BLOCK;
		for (unsigned i = 0; i < JIT_LINKS_PER_BLOCK; i++)
			unlink_exit(&chain.links[i]);
	}
	size_t len = jit_translate(b->host - off, off, chain.links ? &chain : NULL, j->pending_code + j->pending_used,
				   JIT_BLOCK_CODE_MAX, &ninsns, &src_bytes, &chain_entry);
	if (len == 0 || ninsns != b->ninsns || src_bytes != b->src_bytes) {
		/* Cannot happen for the same bytes (jit_extent() follows the translator's rules);
		 * the interpreter is always right. */
		b->ninsns = 0;
		j->count.mismatches++;
		return;
	}
	struct jit_pending *p = &j->pending[j->npending++];
	p->slot = slot;
	p->seq = ++j->seq;
	p->off = (uint32_t)j->pending_used;
	p->len = (uint32_t)len;
	p->chain_entry = chain_entry;
	j->pending_used += len;
	b->pending = true;
	b->pending_seq = p->seq;
	cpu->stats.jit_translations++;
	if (j->npending == JIT_BATCH)
		install_pending(cpu, j);
}

/* Flags RAM page `page` as holding code the JIT trusts: from now on the first write into it
 * advances its generation (the hart's store entries for it are armed to take the slow path). */
static void watch_page(struct cpu *cpu, uint64_t page)
{
	struct vm_bus *bus = cpu->bus;
	if (bus->code[page])
		return;
	bus->code[page] = 1;
	cpu_tlb_arm_store_page(cpu, bus->ram + (page << CPU_PAGE_SHIFT));
}

/* Whether slot b, which holds the block at its host address on RAM page `page`, is what guest
 * memory holds: yes while the page stays at the generation the block was checked at; after a
 * write into the page, its bytes decide (a write of data beside code leaves them unchanged). */
static bool block_current(struct cpu *cpu, struct jit *j, uint32_t slot, uint64_t page)
{
	const struct vm_bus *bus = cpu->bus;
	struct jit_block *b = &j->table[slot];
	if (likely(b->gen == bus->code_gen[page]))
		return true;
	if (memcmp(j->src[slot], b->host, b->src_bytes) != 0) {
		j->count.stale++;
		return false;
	}
	j->count.rechecked++;
	watch_page(cpu, page);
	b->gen = bus->code_gen[page];
	return true;
}

/* Fills slot b with the block at host (page offset off, RAM page `page`): its extent, not yet
 * its code. */
static void fill(struct cpu *cpu, struct jit *j, uint32_t slot, const uint8_t *host, unsigned off, uint64_t page)
{
	struct jit_block *b = &j->table[slot];
	j->count.fills++;
	watch_page(cpu, page);
	b->gen = cpu->bus->code_gen[page];
	unsigned ninsns = 0, src_bytes = 0;
	bool translated = jit_extent(host - off, off, &ninsns, &src_bytes);
	b->host = host;
	j->tags[slot] = host;
	b->code = NULL;
	b->pending = false;
	b->heat = 0;
	if (!translated) {
		/* The interpreter runs this one, for as long as its bytes stay. */
		b->ninsns = 0;
		b->src_bytes = (uint16_t)(CPU_PAGE_SIZE - off < 4 ? CPU_PAGE_SIZE - off : 4);
	} else {
		b->ninsns = (uint16_t)ninsns;
		b->src_bytes = (uint16_t)src_bytes;
	}
	memcpy(j->src[slot], host, b->src_bytes);
}

/* The first slot of the set that may hold the block at host. */
static uint32_t set_of(const uint8_t *host)
{
	uintptr_t h = (uintptr_t)host;
	uint32_t set = (uint32_t)((h >> 1) ^ (h >> (JIT_SET_BITS + 1)) ^ (h >> (2 * JIT_SET_BITS + 1))) &
		       ((1u << JIT_SET_BITS) - 1);
	return set * JIT_WAYS;
}

/* What a slot is worth keeping: installed or waiting code above any cold block, a cold block by
 * its heat (so a block about to become hot is not pushed out by one entered once). */
static uint32_t worth(const struct jit_block *b)
{
	if (!b->host)
		return 0;
	return b->code || b->pending ? UINT32_MAX : 1u + b->heat;
}

/* The slot holding the block at host, or, when its set has none, the one to fill with it: an
 * empty one, else the least worth keeping. */
static uint32_t slot_of(const struct jit *j, const uint8_t *host)
{
	uint32_t first = set_of(host), victim = first;
	for (uint32_t s = first; s < first + JIT_WAYS; s++)
		if (j->tags[s] == host)
			return s;
	for (uint32_t s = first + 1; s < first + JIT_WAYS; s++)
		if (worth(&j->table[s]) < worth(&j->table[victim]))
			victim = s;
	return victim;
}

/* Makes l enter installed block b (on RAM page `page`) from now on, while b's page is unwritten. */
static void link_to(struct jit_link *l, const struct cpu *cpu, const struct jit_block *b, uint64_t page)
{
	l->want = b->host;
	l->code = b->chain_code;
	l->ninsns = b->ninsns;
	l->page_gen = &cpu->bus->code_gen[page];
	l->gen = b->gen;
}

/* Runs cpu until its icount reaches limit or cpu_needs_attention(), like cpu_interpret(). */
static void jit_execute(struct cpu *cpu, icount_t limit)
{
	struct jit *j = cpu->jit;
	cpu->engine_limit = limit;
	j->last_link = NULL;
	while (cpu->icount < limit && !cpu_needs_attention(cpu)) {
		struct jit_link *from = j->last_link; /* the exit that led here, if the last step was a block */
		j->last_link = NULL;
		const uint8_t *host = j->broken ? NULL : cpu_tlb_lookup(cpu, CPU_ACCESS_FETCH, cpu->pc, 2);
		if (!host && !j->broken && cpu_fetch_fill(cpu)) {
			/* The walk the interpreter's fetch of this instruction would make: the block at pc
			 * runs as it does after a TLB hit, rather than a block starting after it. */
			j->count.fetch_fills++;
			host = cpu_tlb_lookup(cpu, CPU_ACCESS_FETCH, cpu->pc, 2);
		}
		if (!host) {
			/* Not RAM (a fault, code in a device): one instruction, the interpreter's fetch. */
			j->count.steps++;
			cpu_interpret(cpu, cpu->icount + 1);
			continue;
		}
		uint32_t slot = slot_of(j, host);
		unsigned off = (unsigned)(cpu->pc & ~CPU_PAGE_MASK);
		uint64_t page = (uint64_t)(host - cpu->bus->ram) >> CPU_PAGE_SHIFT;
		struct jit_block *b = &j->table[slot];
		if (b->host != host || !block_current(cpu, j, slot, page))
			fill(cpu, j, slot, host, off, page);
		if (b->ninsns == 0) {
			j->count.steps++;
			cpu_interpret(cpu, cpu->icount + 1);
			continue;
		}
		if (b->ninsns > limit - cpu->icount) {
			/* The limit falls inside the block: the interpreter goes exactly up to it. */
			cpu_interpret(cpu, limit);
			continue;
		}
		if (!b->code) {
			/* Cold or pending: the interpreter runs exactly the block's instructions. */
			if (b->heat < UINT16_MAX)
				b->heat++;
			if (!b->pending && b->heat >= j->hot)
				queue(cpu, j, b, slot, off);
			else if (b->pending && b->heat >= JIT_HOT_WAITING * j->hot)
				install_pending(cpu, j);
			j->count.cold_runs++;
			cpu_interpret(cpu, cpu->icount + b->ninsns);
			continue;
		}
		if (from && (from->want == host || from->other_page)) /* that exit leads here */
			link_to(from, cpu, b, page);
		link_to(&j->jcache[JIT_JCACHE_INDEX(host)], cpu, b, page);
		cpu->stats.jit_blocks++;
		cpu->stats.jit_insns += b->ninsns; /* an early exit retires fewer; the count is a gauge */
		if (b->code(cpu) == JIT_EXIT_EXCEPTION) {
			/* As the interpreter's exception path: x0 stays zero, the trap, then the count. */
			cpu->x[0] = 0;
			cpu_take_exception(cpu);
			cpu->icount++;
		}
	}
}

/* Moves pc and icount from the block's start to the instruction of `site`. */
static void sync_to(struct cpu *cpu, uint32_t site)
{
	cpu->pc += JIT_SITE_OFF(site);
	cpu->icount += JIT_SITE_IDX(site);
}

/* Undoes sync_to() after the instruction of `site` ran without moving pc: the block goes on. */
static int back_to_block_start(struct cpu *cpu, uint32_t site)
{
	cpu->pc -= JIT_SITE_OFF(site);
	cpu->icount -= JIT_SITE_IDX(site);
	return JIT_EXIT_END;
}

/* After the instruction of `site` (already synced to it): the block ends here. */
static int leave_after(struct cpu *cpu, uint32_t site)
{
	cpu->pc += JIT_SITE_LEN(site);
	cpu->icount++;
	return JIT_EXIT_EARLY;
}

int jit_helper_fpu(struct cpu *cpu, uint32_t insn, uint32_t site, uint32_t raw16)
{
	sync_to(cpu, site); /* an FP load may reach a device, which may read the clock */
	fpu_execute(cpu, insn);
	cpu->x[0] = 0; /* as after any slow path of the interpreter (the FPU already spares x0) */
	if (unlikely(cpu->exception_pending)) {
		if (cpu->exception_cause == EXC_ILLEGAL_INSN && JIT_SITE_LEN(site) == 2)
			cpu->exception_tval = raw16;
		return JIT_EXIT_EXCEPTION;
	}
	if (unlikely(cpu_needs_attention(cpu)))
		return leave_after(cpu, site);
	return back_to_block_start(cpu, site);
}

int jit_helper_fp_store(struct cpu *cpu, uint32_t insn, uint32_t site, uint32_t raw16)
{
	uint64_t vaddr = cpu->x[insn_rs1(insn)] + (uint64_t)(int64_t)insn_imm_s(insn);
	unsigned size = insn_funct3(insn) == 2 ? 4 : 8;
	uint64_t code_writes = cpu->bus->code_writes;
	sync_to(cpu, site); /* a device written through the bus may read the clock */
	fpu_execute(cpu, insn);
	if (unlikely(cpu->exception_pending)) {
		if (cpu->exception_cause == EXC_ILLEGAL_INSN && JIT_SITE_LEN(site) == 2)
			cpu->exception_tval = raw16; /* c.fsd, c.fsdsp with the FPU off */
		return JIT_EXIT_EXCEPTION;
	}
	/* Stored to RAM the JIT runs no code from (the TLB now maps it): go on. A store through
	 * the bus (a device may have raised an interrupt or written RAM) or into a page of code
	 * (maybe this block's own bytes) ends the block after it. */
	const uint8_t *h = cpu_tlb_lookup(cpu, CPU_ACCESS_STORE, vaddr, size);
	if (unlikely(!h || cpu->bus->code_writes != code_writes || cpu_needs_attention(cpu)))
		return leave_after(cpu, site);
	return back_to_block_start(cpu, site);
}

int jit_helper_amo(struct cpu *cpu, uint32_t insn, uint32_t site)
{
	struct cpu_amo_access acc = { 0 };
	uint64_t code_writes = cpu->bus->code_writes;
	sync_to(cpu, site); /* a fault's epc; a device reached through the bus may read the clock */
	if (!cpu_exec_amo(cpu, insn, &acc))
		return JIT_EXIT_EXCEPTION;
	/* A device may have raised an interrupt, asked for a stop or written RAM; a write into a
	 * page of code (maybe this block's own bytes) may have made the rest of it stale: look
	 * again in either case. */
	if (unlikely(acc.bus || cpu->bus->code_writes != code_writes || cpu_needs_attention(cpu)))
		return leave_after(cpu, site);
	return back_to_block_start(cpu, site);
}

int jit_helper_csr(struct cpu *cpu, uint32_t insn, uint32_t site)
{
	unsigned f3 = insn_funct3(insn), rs1 = insn_rs1(insn);
	uint64_t src = (f3 & 4) ? rs1 : cpu->x[rs1], old;
	bool write = (f3 & 3) == 1 || rs1 != 0; /* as the interpreter's exec_system() decides */
	/* The privilege check and the counters (cycle, instret, time) see this instruction. */
	sync_to(cpu, site);
	const uint8_t *code = cpu_tlb_lookup(cpu, CPU_ACCESS_FETCH, cpu->pc, 2);
	if (!cpu_csr_op(cpu, insn_csr(insn), write, f3, src, &old)) {
		cpu_raise_exception(cpu, EXC_ILLEGAL_INSN, insn);
		return JIT_EXIT_EXCEPTION;
	}
	if (insn_rd(insn))
		cpu->x[insn_rd(insn)] = old;
	/* The interpreter goes on after a write unless the hart needs attention, fetching the next
	 * instruction through the TLB: the rest of this block is what it would fetch while the
	 * entry for this page still maps the same code (a satp write flushes it). */
	if (write && (!code || cpu_needs_attention(cpu) || cpu_tlb_lookup(cpu, CPU_ACCESS_FETCH, cpu->pc, 2) != code))
		return leave_after(cpu, site);
	return back_to_block_start(cpu, site);
}

static const uint8_t load_size[7] = { 1, 2, 4, 8, 1, 2, 4 };

/* The loaded bytes (little-endian, in the low bits of raw) widened as the load kind says. */
static uint64_t widen(unsigned kind, uint64_t raw)
{
	switch (kind) {
	case 0: return (uint64_t)(int64_t)(int8_t)raw;
	case 1: return (uint64_t)(int64_t)(int16_t)raw;
	case 2: return (uint64_t)(int64_t)(int32_t)raw;
	case 3: return raw;
	case 4: return (uint8_t)raw;
	case 5: return (uint16_t)raw;
	default: return (uint32_t)raw;
	}
}

int jit_helper_load(struct cpu *cpu, uint64_t vaddr, uint32_t site)
{
	unsigned kind = JIT_SITE_KIND(site), size = load_size[kind], rd = JIT_SITE_RD(site);
	uint64_t v = 0;
	const uint8_t *h = cpu_tlb_lookup(cpu, CPU_ACCESS_LOAD, vaddr, size);
	if (likely(h != NULL)) {
		memcpy(&v, h, size);
		cpu->x[rd] = widen(kind, v);
		cpu->x[0] = 0; /* a load to x0 still loads */
		return JIT_EXIT_END;
	}
	/* TLB miss, MMIO or misaligned: the interpreter's slow path, with pc and icount exact. */
	sync_to(cpu, site);
	if (!cpu_load_slow(cpu, vaddr, size, &v))
		return JIT_EXIT_EXCEPTION;
	cpu->x[rd] = widen(kind, v);
	cpu->x[0] = 0;
	return leave_after(cpu, site);
}

int jit_helper_store(struct cpu *cpu, uint64_t vaddr, uint64_t value, uint32_t site)
{
	unsigned size = 1u << JIT_SITE_KIND(site);
	uint8_t *h = cpu_tlb_lookup(cpu, CPU_ACCESS_STORE, vaddr, size);
	if (likely(h != NULL)) {
		/* The store TLB maps no page the JIT runs code from (watch_page() arms those entries),
		 * so this is not the running block's bytes: the block goes on. */
		memcpy(h, &value, size); /* the low bytes: the host is little-endian like the guest */
		return JIT_EXIT_END;
	}
	sync_to(cpu, site);
	if (!cpu_store_slow(cpu, vaddr, size, value))
		return JIT_EXIT_EXCEPTION;
	/* A device may have raised an interrupt, asked for a stop or written RAM: look again. */
	return leave_after(cpu, site);
}

static void jit_engine_destroy(struct cpu *cpu)
{
	diag_info("jit: %llu blocks entered (%llu chained; about %llu instructions), %llu translated, %llu flushes",
		  (unsigned long long)cpu->stats.jit_blocks, (unsigned long long)cpu->stats.jit_chained,
		  (unsigned long long)cpu->stats.jit_insns,
		  (unsigned long long)cpu->stats.jit_translations, (unsigned long long)cpu->stats.jit_flushes);
	const struct jit *j = cpu->jit;
	diag_info("jit: %llu slots filled (%llu for changed bytes, %llu rechecked unchanged), %llu cold block runs, "
		  "%llu single steps, %llu fetch TLB fills, %llu installs, %llu writes into code pages, %llu extent mismatches",
		  (unsigned long long)j->count.fills, (unsigned long long)j->count.stale,
		  (unsigned long long)j->count.rechecked, (unsigned long long)j->count.cold_runs,
		  (unsigned long long)j->count.steps, (unsigned long long)j->count.fetch_fills,
		  (unsigned long long)j->count.installs,
		  (unsigned long long)cpu->bus->code_writes, (unsigned long long)j->count.mismatches);
	jit_destroy(cpu->bus, cpu->jit);
	cpu->jit = NULL;
	cpu->engine = NULL;
}

/* The block table, the blocks' bytes and links, the pages' generations: filled at random places
 * as blocks are first met, each first touch of a page a fault (cpu_warm()). The code area is left
 * to the installs, a few pages each. */
static void jit_engine_warm(struct cpu *cpu)
{
	struct jit *j = cpu->jit;
	size_t pages = cpu->bus->ram_size >> CPU_PAGE_SHIFT;
	ram_pages_warm(j, sizeof(*j));
	ram_pages_warm(j->links, JIT_MAX_LINKS * sizeof(*j->links));
	ram_pages_warm(cpu->bus->code, pages);
	ram_pages_warm(cpu->bus->code_gen, pages * sizeof(*cpu->bus->code_gen));
}

static const struct cpu_engine jit_engine = {
	.run = jit_execute,
	.destroy = jit_engine_destroy,
	.warm = jit_engine_warm,
};

int jit_attach(struct cpu *cpu)
{
	if (cpu->engine == &jit_engine)
		return 0;
	if (cpu->engine)
		cpu->engine->destroy(cpu);
	int ret = jit_create(cpu->bus, &cpu->jit);
	if (ret)
		return ret;
	cpu->engine = &jit_engine;
	return 0;
}

void jit_set_hot(struct cpu *cpu, unsigned entries)
{
	if (cpu->engine == &jit_engine)
		cpu->jit->hot = (uint16_t)(entries < 1 ? 1 : entries > JIT_HOT ? JIT_HOT : entries);
}

void jit_detach(struct cpu *cpu)
{
	if (cpu->engine == &jit_engine)
		jit_engine_destroy(cpu);
}
