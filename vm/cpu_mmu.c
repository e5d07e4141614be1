/*
 * cpu_mmu.c — address translation (Bare and Sv39), the software TLB and the slow paths of
 * instruction fetch, loads, stores and atomics.
 *
 * The fast paths live in the run loop: a load or store looks up one direct-mapped TLB entry per
 * access kind and, on a hit, adds the entry's addend to the virtual address to get a host pointer
 * into guest RAM. Everything else lands here: a TLB miss walks the page table (setting A and D in
 * the PTE in memory, as QEMU's hardware A/D update does), checks permissions (U, SUM, MXR) and
 * refills the entry when the page is RAM; MMIO goes to the bus on every access; misaligned
 * accesses are performed (QEMU 7.2 `virt` does them in hardware too), split byte by byte when
 * they cross a page, after both pages have been translated, so a fault leaves memory untouched.
 *
 * Dirty-page tracking rides on the store TLB: a page is marked dirty when a store entry for it is
 * filled, and cpu_dirty_arm() (at each collection) sets CPU_TLB_ARMED in every store entry, so
 * the first store through it afterwards misses the fast path; rearmed_store() then marks the
 * page and clears the bit. Page-table A/D updates mark the page of the PTE. The JIT arms the
 * entries of a page it translates code from the same way (cpu_tlb_arm_store_page), so the first
 * store into that page afterwards reaches bus_mark_dirty_host() too, which drops its code.
 */
#include "vm/cpu_internal.h"

#include <string.h>
#include "vm/cpu_decode.h"

/* Sv39 (privileged spec, "Sv39: Page-Based 39-bit Virtual-Memory System"). */
#define PTE_V (1ull << 0)
#define PTE_R (1ull << 1)
#define PTE_W (1ull << 2)
#define PTE_X (1ull << 3)
#define PTE_U (1ull << 4)
#define PTE_A (1ull << 6)
#define PTE_D (1ull << 7)
#define PTE_PPN_SHIFT 10
#define PTE_PPN_MASK ((1ull << 44) - 1)
#define PTE_RESERVED_MASK (~0ull << 54) /* PBMT, N and reserved bits: must be zero without Svpbmt/Svnapot */
#define PTE_SIZE 8
#define SV39_LEVELS 3
#define SV39_VPN_BITS 9
#define SV39_VA_BITS 39
#define SATP_PPN_MASK ((1ull << 44) - 1)

/* Returned by translate() for success; otherwise it returns the exception cause. */
#define XLATE_OK (-1)

static const enum cpu_exception page_fault_cause[CPU_ACCESS_KINDS] = {
	[CPU_ACCESS_FETCH] = EXC_INSN_PAGE_FAULT,
	[CPU_ACCESS_LOAD] = EXC_LOAD_PAGE_FAULT,
	[CPU_ACCESS_STORE] = EXC_STORE_PAGE_FAULT,
};
static const enum cpu_exception access_fault_cause[CPU_ACCESS_KINDS] = {
	[CPU_ACCESS_FETCH] = EXC_INSN_ACCESS,
	[CPU_ACCESS_LOAD] = EXC_LOAD_ACCESS,
	[CPU_ACCESS_STORE] = EXC_STORE_ACCESS,
};

/* Read by the fast fetch path while no code page is cached: all zeros, an illegal instruction,
 * whose handler re-fetches through cpu_fetch_slow() before it believes it. */
static const uint8_t no_code_page[CPU_PAGE_SIZE];

void cpu_set_code_page(struct cpu *cpu, uint64_t vpage, const uint8_t *page)
{
	cpu->fetch_vpage = vpage;
	cpu->fetch_host = page;
	cpu->fetch_decoded = cpu_dcache_page(cpu, page);
}

static void forget_code_page(struct cpu *cpu)
{
	cpu->fetch_vpage = 0;
	cpu->fetch_host = no_code_page;
	cpu->fetch_decoded = cpu_dcache_page(cpu, no_code_page);
}

static void flush_kind(struct cpu *cpu, unsigned regime, enum cpu_access kind)
{
	for (unsigned i = 0; i < CPU_TLB_SIZE; i++)
		cpu->tlb_sets[regime][kind][i] = (struct cpu_tlb_entry){ .vpage = CPU_TLB_INVALID, .addend = 0 };
}

static void flush_set(struct cpu *cpu, unsigned regime)
{
	for (unsigned k = 0; k < CPU_ACCESS_KINDS; k++)
		flush_kind(cpu, regime, (enum cpu_access)k);
}

static unsigned regime_of(enum cpu_priv priv)
{
	return priv == PRIV_M ? 2 : (unsigned)priv;
}

/* The privilege loads and stores are translated for (mstatus.MPRV lends M-mode MPP's). */
static enum cpu_priv data_priv(const struct cpu *cpu)
{
	if (cpu->priv == PRIV_M && (cpu->mstatus & MSTATUS_MPRV))
		return (enum cpu_priv)((cpu->mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT);
	return cpu->priv;
}

void cpu_tlb_select(struct cpu *cpu)
{
	unsigned fetch = regime_of(cpu->priv), data = regime_of(data_priv(cpu));
	if (cpu->tlb[CPU_ACCESS_FETCH] != cpu->tlb_sets[fetch][CPU_ACCESS_FETCH])
		forget_code_page(cpu);
	cpu->tlb[CPU_ACCESS_FETCH] = cpu->tlb_sets[fetch][CPU_ACCESS_FETCH];
	cpu->tlb[CPU_ACCESS_LOAD] = cpu->tlb_sets[data][CPU_ACCESS_LOAD];
	cpu->tlb[CPU_ACCESS_STORE] = cpu->tlb_sets[data][CPU_ACCESS_STORE];
}

void cpu_dirty_arm(struct cpu *cpu)
{
	for (unsigned r = 0; r < CPU_TLB_REGIMES; r++)
		for (unsigned i = 0; i < CPU_TLB_SIZE; i++) {
			struct cpu_tlb_entry *e = &cpu->tlb_sets[r][CPU_ACCESS_STORE][i];
			if (e->vpage != CPU_TLB_INVALID)
				e->vpage |= CPU_TLB_ARMED;
		}
}

void cpu_tlb_arm_store_page(struct cpu *cpu, const uint8_t *host_page)
{
	for (unsigned r = 0; r < CPU_TLB_REGIMES; r++)
		for (unsigned i = 0; i < CPU_TLB_SIZE; i++) {
			struct cpu_tlb_entry *e = &cpu->tlb_sets[r][CPU_ACCESS_STORE][i];
			if (e->vpage != CPU_TLB_INVALID &&
			    (uintptr_t)(e->vpage & CPU_PAGE_MASK) + e->addend == (uintptr_t)host_page)
				e->vpage |= CPU_TLB_ARMED;
		}
}

/* A store TLB miss on an armed entry for vaddr's page: re-enables the entry as it was filled (no
 * page-table walk, so exactly what an unarmed hit would have done) and marks the page dirty.
 * Returns the host address of vaddr, or NULL when the entry is not an armed one for this page. */
static uint8_t *rearmed_store(struct cpu *cpu, uint64_t vaddr)
{
	struct cpu_tlb_entry *e = &cpu->tlb[CPU_ACCESS_STORE][(vaddr >> CPU_PAGE_SHIFT) & (CPU_TLB_SIZE - 1)];
	if (e->vpage != ((vaddr & CPU_PAGE_MASK) | CPU_TLB_ARMED))
		return NULL;
	e->vpage &= ~CPU_TLB_ARMED;
	uint8_t *page = (uint8_t *)(uintptr_t)((vaddr & CPU_PAGE_MASK) + e->addend);
	bus_mark_dirty_host(cpu->bus, page);
	return page + (vaddr & ~CPU_PAGE_MASK);
}

void cpu_tlb_flush(struct cpu *cpu)
{
	for (unsigned r = 0; r < CPU_TLB_REGIMES; r++)
		flush_set(cpu, r);
	forget_code_page(cpu);
	cpu_tlb_select(cpu);
}

void cpu_tlb_mstatus_changed(struct cpu *cpu, uint64_t old_mstatus)
{
	/* Entries only ever grant what the regime allowed when they were filled, so turning SUM or
	 * MXR on needs nothing; turning one off withdraws rights, from data accesses only (no fetch
	 * depends on either): SUM lets S-mode loads and stores reach U pages, MXR lets loads of
	 * either mode read execute-only pages. Linux clears SUM after every copy to or from user
	 * memory, so the fetch tables and U-mode's stores outlive it. */
	uint64_t cleared = old_mstatus & ~cpu->mstatus;
	if (cleared & MSTATUS_SUM) {
		flush_kind(cpu, regime_of(PRIV_S), CPU_ACCESS_LOAD);
		flush_kind(cpu, regime_of(PRIV_S), CPU_ACCESS_STORE);
	}
	if (cleared & MSTATUS_MXR) {
		flush_kind(cpu, regime_of(PRIV_U), CPU_ACCESS_LOAD);
		flush_kind(cpu, regime_of(PRIV_S), CPU_ACCESS_LOAD);
	}
	if ((old_mstatus ^ cpu->mstatus) & (MSTATUS_MPRV | MSTATUS_MPP))
		cpu_tlb_select(cpu);
}

struct cpu_decoded *cpu_dcache_page(struct cpu *cpu, const uint8_t *host_page)
{
	/* The no-code page has its own slot past the cache so that flushes never evict real code. */
	size_t slot = host_page == no_code_page ? CPU_DCACHE_SLOTS
						: ((uintptr_t)host_page >> CPU_PAGE_SHIFT) % CPU_DCACHE_SLOTS;
	struct cpu_decoded_page *p = &cpu->dcache[slot];
	/* The entries of the page the slot held before stay: each is checked against the raw bits at
	 * its offset before use, and decoding is a function of those bits alone, so an entry that
	 * matches is right for any page. Clearing the slot's 24 KiB at every claim cost more than
	 * the decoding: a hart whose code moved on (a migration's destination) claims hundreds. */
	if (p->host_page != host_page) {
		p->host_page = host_page;
		cpu->dcache_filled[slot / 64] |= 1ull << (slot % 64);
	}
	return p->e;
}

static bool leaf_allows(const struct cpu *cpu, uint64_t pte, enum cpu_access kind, enum cpu_priv priv)
{
	switch (kind) {
	case CPU_ACCESS_FETCH:
		if (!(pte & PTE_X))
			return false;
		break;
	case CPU_ACCESS_LOAD:
		if (!(pte & PTE_R) && !((cpu->mstatus & MSTATUS_MXR) && (pte & PTE_X)))
			return false;
		break;
	default:
		if (!(pte & PTE_W))
			return false;
		break;
	}
	if (priv == PRIV_U)
		return (pte & PTE_U) != 0;
	if (pte & PTE_U)
		return kind != CPU_ACCESS_FETCH && (cpu->mstatus & MSTATUS_SUM);
	return true;
}

/* Translates vaddr for an access of the given kind; XLATE_OK or the exception cause. */
static int translate(struct cpu *cpu, uint64_t vaddr, enum cpu_access kind, uint64_t *paddr)
{
	enum cpu_priv priv = kind == CPU_ACCESS_FETCH ? cpu->priv : data_priv(cpu);
	if (priv == PRIV_M || (cpu->satp >> SATP_MODE_SHIFT) == 0) {
		*paddr = vaddr;
		return XLATE_OK;
	}
	if ((uint64_t)((int64_t)(vaddr << (64 - SV39_VA_BITS)) >> (64 - SV39_VA_BITS)) != vaddr)
		return page_fault_cause[kind];
	uint64_t table = (cpu->satp & SATP_PPN_MASK) << CPU_PAGE_SHIFT;
	for (int level = SV39_LEVELS - 1; level >= 0; level--) {
		unsigned shift = CPU_PAGE_SHIFT + SV39_VPN_BITS * (unsigned)level;
		uint64_t pte_addr = table + ((vaddr >> shift) & ((1u << SV39_VPN_BITS) - 1)) * PTE_SIZE;
		uint64_t pte;
		uint8_t *pte_host = bus_ram_range(cpu->bus, pte_addr, PTE_SIZE);
		if (pte_host)
			memcpy(&pte, pte_host, PTE_SIZE);
		else if (bus_read(cpu->bus, pte_addr, PTE_SIZE, &pte) != 0)
			return access_fault_cause[kind];
		if (!(pte & PTE_V) || (!(pte & PTE_R) && (pte & PTE_W)) || (pte & PTE_RESERVED_MASK))
			return page_fault_cause[kind];
		uint64_t ppn = (pte >> PTE_PPN_SHIFT) & PTE_PPN_MASK;
		if (!(pte & (PTE_R | PTE_X))) {
			table = ppn << CPU_PAGE_SHIFT;
			continue;
		}
		uint64_t offset_mask = (1ull << shift) - 1;
		if (!leaf_allows(cpu, pte, kind, priv) || ((ppn << CPU_PAGE_SHIFT) & offset_mask))
			return page_fault_cause[kind];
		uint64_t updated = pte | PTE_A | (kind == CPU_ACCESS_STORE ? PTE_D : 0);
		if (updated != pte) {
			if (pte_host) {
				memcpy(pte_host, &updated, PTE_SIZE);
				bus_mark_dirty(cpu->bus, pte_addr, PTE_SIZE);
			} else if (bus_write(cpu->bus, pte_addr, PTE_SIZE, updated) != 0)
				return access_fault_cause[kind];
		}
		*paddr = (ppn << CPU_PAGE_SHIFT & ~offset_mask) | (vaddr & offset_mask);
		return XLATE_OK;
	}
	return page_fault_cause[kind];
}

/* After a translation of vaddr to paddr: the host address of vaddr with its TLB entry filled when
 * paddr is RAM, NULL for MMIO. */
static uint8_t *fill_entry(struct cpu *cpu, uint64_t vaddr, enum cpu_access kind, uint64_t paddr)
{
	uint8_t *page = bus_ram_range(cpu->bus, paddr & CPU_PAGE_MASK, CPU_PAGE_SIZE);
	if (!page)
		return NULL;
	if (kind == CPU_ACCESS_STORE)
		bus_mark_dirty_host(cpu->bus, page);
	uint64_t vpage = vaddr & CPU_PAGE_MASK;
	struct cpu_tlb_entry *e = &cpu->tlb[kind][(vaddr >> CPU_PAGE_SHIFT) & (CPU_TLB_SIZE - 1)];
	e->vpage = vpage;
	e->addend = (uintptr_t)page - (uintptr_t)vpage;
	if (kind == CPU_ACCESS_FETCH)
		cpu_set_code_page(cpu, vpage, page);
	return page + (vaddr & ~CPU_PAGE_MASK);
}

/* Translates and, when the page is RAM, refills the TLB; *host is NULL for MMIO. Every call is a
 * TLB miss (MMIO accesses, which are never cached, count too); stats.tlb_hits counts only the hits
 * of the slow paths, the run loop's inline hits stay uncounted to keep the fast path lean. */
static bool translate_fill(struct cpu *cpu, uint64_t vaddr, enum cpu_access kind, uint64_t *paddr, uint8_t **host)
{
	int cause = translate(cpu, vaddr, kind, paddr);
	cpu->stats.tlb_misses++;
	if (cause != XLATE_OK) {
		cpu_raise_exception(cpu, (enum cpu_exception)cause, vaddr);
		return false;
	}
	*host = fill_entry(cpu, vaddr, kind, *paddr);
	return true;
}

bool cpu_fetch_fill(struct cpu *cpu)
{
	uint64_t paddr;
	if (translate(cpu, cpu->pc, CPU_ACCESS_FETCH, &paddr) != XLATE_OK)
		return false; /* the interpreter's fetch walks again and raises the fault */
	cpu->stats.tlb_misses++;
	return fill_entry(cpu, cpu->pc, CPU_ACCESS_FETCH, paddr) != NULL;
}

static uint64_t host_read(const uint8_t *p, unsigned size)
{
	switch (size) {
	case 1: return *p;
	case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
	case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
	default: { uint64_t v; memcpy(&v, p, 8); return v; }
	}
}

static void host_write(uint8_t *p, unsigned size, uint64_t value)
{
	switch (size) {
	case 1: *p = (uint8_t)value; break;
	case 2: { uint16_t v = (uint16_t)value; memcpy(p, &v, 2); break; }
	case 4: { uint32_t v = (uint32_t)value; memcpy(p, &v, 4); break; }
	default: memcpy(p, &value, 8); break;
	}
}

/* One access that does not cross a page. */
static bool load_within_page(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t *value)
{
	uint8_t *host = cpu_tlb_lookup(cpu, CPU_ACCESS_LOAD, vaddr, 1);
	uint64_t paddr;
	if (host) {
		cpu->stats.tlb_hits++;
		*value = host_read(host, size);
		return true;
	}
	if (!translate_fill(cpu, vaddr, CPU_ACCESS_LOAD, &paddr, &host))
		return false;
	if (host) {
		*value = host_read(host, size);
		return true;
	}
	if (bus_read(cpu->bus, paddr, size, value) != 0) {
		cpu_raise_exception(cpu, EXC_LOAD_ACCESS, vaddr);
		return false;
	}
	return true;
}

static bool store_within_page(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t value)
{
	uint8_t *host = cpu_tlb_lookup(cpu, CPU_ACCESS_STORE, vaddr, 1);
	uint64_t paddr;
	if (host || (host = rearmed_store(cpu, vaddr))) {
		cpu->stats.tlb_hits++;
		host_write(host, size, value);
		return true;
	}
	if (!translate_fill(cpu, vaddr, CPU_ACCESS_STORE, &paddr, &host))
		return false;
	if (host) {
		host_write(host, size, value);
		return true;
	}
	if (bus_write(cpu->bus, paddr, size, value) != 0) {
		cpu_raise_exception(cpu, EXC_STORE_ACCESS, vaddr);
		return false;
	}
	return true;
}

static bool crosses_page(uint64_t vaddr, unsigned size)
{
	return (vaddr & ~CPU_PAGE_MASK) + size > CPU_PAGE_SIZE;
}

bool cpu_load_slow(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t *value)
{
	if (!crosses_page(vaddr, size))
		return load_within_page(cpu, vaddr, size, value);
	uint64_t v = 0;
	for (unsigned i = 0; i < size; i++) {
		uint64_t byte;
		if (!load_within_page(cpu, vaddr + i, 1, &byte))
			return false;
		v |= byte << (8 * i);
	}
	*value = v;
	return true;
}

bool cpu_store_slow(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t value)
{
	if (!crosses_page(vaddr, size))
		return store_within_page(cpu, vaddr, size, value);
	/* Translate both pages first so that a fault on the second leaves memory unchanged. */
	uint64_t paddr, second = (vaddr + size - 1) & CPU_PAGE_MASK;
	uint8_t *host;
	if (!translate_fill(cpu, vaddr, CPU_ACCESS_STORE, &paddr, &host) ||
	    !translate_fill(cpu, second, CPU_ACCESS_STORE, &paddr, &host))
		return false;
	for (unsigned i = 0; i < size; i++)
		if (!store_within_page(cpu, vaddr + i, 1, (value >> (8 * i)) & 0xff))
			return false;
	return true;
}

bool cpu_load(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t *value)
{
	uint8_t *host = cpu_tlb_lookup(cpu, CPU_ACCESS_LOAD, vaddr, size);
	if (host) {
		*value = host_read(host, size);
		return true;
	}
	return cpu_load_slow(cpu, vaddr, size, value);
}

bool cpu_store(struct cpu *cpu, uint64_t vaddr, unsigned size, uint64_t value)
{
	uint8_t *host = cpu_tlb_lookup(cpu, CPU_ACCESS_STORE, vaddr, size);
	if (host) {
		host_write(host, size, value);
		return true;
	}
	return cpu_store_slow(cpu, vaddr, size, value);
}

bool cpu_translate_atomic(struct cpu *cpu, uint64_t vaddr, unsigned size, bool is_load_only, uint8_t **host,
			  uint64_t *paddr)
{
	enum cpu_access kind = is_load_only ? CPU_ACCESS_LOAD : CPU_ACCESS_STORE;
	if (vaddr & (size - 1)) {
		/* The spec allows a misaligned-address or an access fault here; QEMU 7.2 `virt` raises
		 * a load access fault for LR, SC and AMOs alike, and so do we. */
		cpu_raise_exception(cpu, EXC_LOAD_ACCESS, vaddr);
		return false;
	}
	*host = cpu_tlb_lookup(cpu, kind, vaddr, size);
	if (!*host && kind == CPU_ACCESS_STORE)
		*host = rearmed_store(cpu, vaddr);
	if (*host)
		return true;
	return translate_fill(cpu, vaddr, kind, paddr, host);
}

/* Reads 16 bits of code at vaddr: from RAM (refilling the fetch page) or an executable region. */
static bool fetch_half(struct cpu *cpu, uint64_t vaddr, uint32_t *half)
{
	uint64_t paddr, value;
	uint8_t *host = cpu_tlb_lookup(cpu, CPU_ACCESS_FETCH, vaddr, 2);
	if (host) {
		cpu_set_code_page(cpu, vaddr & CPU_PAGE_MASK, host - (vaddr & ~CPU_PAGE_MASK));
		*half = (uint32_t)host_read(host, 2);
		return true;
	}
	if (!translate_fill(cpu, vaddr, CPU_ACCESS_FETCH, &paddr, &host))
		return false;
	if (host) {
		*half = (uint32_t)host_read(host, 2);
		return true;
	}
	const struct bus_region *r = bus_find_region(cpu->bus, paddr, 2);
	if (!r || !(r->flags & BUS_REGION_EXEC) || bus_read(cpu->bus, paddr, 2, &value) != 0) {
		cpu_raise_exception(cpu, EXC_INSN_ACCESS, vaddr);
		return false;
	}
	*half = (uint32_t)value;
	return true;
}

bool cpu_fetch_slow(struct cpu *cpu, uint32_t *insn)
{
	uint32_t lo, hi;
	if (!fetch_half(cpu, cpu->pc, &lo))
		return false;
	if ((lo & 3) != 3) {
		*insn = lo;
		return true;
	}
	if (!fetch_half(cpu, cpu->pc + 2, &hi))
		return false;
	*insn = lo | hi << 16;
	/* Leave the cache on the page holding pc, so the next fetch of the same page is fast. */
	if ((cpu->pc & CPU_PAGE_MASK) != ((cpu->pc + 2) & CPU_PAGE_MASK))
		forget_code_page(cpu);
	return true;
}
