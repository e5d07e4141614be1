/*
 * paging.c — Sv39: 4 KiB pages and 2 MiB/1 GiB superpages, A and D bits written back to the page
 * table, R/W/X permissions, U pages with and without SUM, MXR, MPRV, reserved and misaligned
 * leaves, non-canonical addresses, and page faults taken in M or delegated to S (cause, tval).
 */
#include "rt.h"

#define PAGE 4096ul
#define MSTATUS_MPRV (1ul << 17)
#define MSTATUS_SUM (1ul << 18)
#define MSTATUS_MXR (1ul << 19)
#define MSTATUS_MPP_S (1ul << 11)
#define SATP_SV39 (8ul << 60)

#define VA_BASE 0x40000000ul   /* 4 KiB pages, through L1 and L0 tables */
#define VA_SUPER 0x40200000ul  /* 2 MiB leaf aliasing the program at 0x80000000 */
#define VA_BADSUPER 0x40400000ul
#define VA_RESERVED 0x40600000ul
#define VA_NONCANON 0x0000008000000000ul

static uint64_t *root, *l1, *l0;
static uint8_t *page[8];

static uint64_t pte_for(const void *pa, uint64_t flags)
{
	return ((uint64_t)pa >> 12) << 10 | flags;
}

static void build_tables(void)
{
	uint8_t *s = (uint8_t *)__scratch_start;
	root = (uint64_t *)s;
	l1 = (uint64_t *)(s + PAGE);
	l0 = (uint64_t *)(s + 2 * PAGE);
	for (unsigned i = 0; i < 8; i++)
		page[i] = s + (3 + i) * PAGE;
	for (unsigned i = 0; i < 512; i++)
		root[i] = l1[i] = l0[i] = 0;
	root[2] = pte_for((void *)0x80000000ul, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D); /* identity 1 GiB */
	root[0] = pte_for((void *)0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);    /* devices (UART) */
	root[1] = pte_for(l1, PTE_V);
	l1[0] = pte_for(l0, PTE_V);
	l1[1] = pte_for((void *)0x80000000ul, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
	l1[2] = pte_for((void *)0x80001000ul, PTE_V | PTE_R | PTE_A);          /* misaligned superpage */
	l1[3] = pte_for((void *)0x80000000ul, PTE_V | PTE_R | PTE_A | (1ul << 61)); /* PBMT bits: reserved */
	l0[0] = pte_for(page[0], PTE_V | PTE_R | PTE_W);                       /* A and D clear */
	l0[1] = pte_for(page[1], PTE_V | PTE_R | PTE_A | PTE_D);               /* read-only */
	l0[2] = pte_for(page[2], PTE_V | PTE_X | PTE_A);                       /* execute-only */
	l0[3] = pte_for(page[3], PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D); /* user */
	l0[4] = pte_for(page[4], 0);                                            /* invalid */
	l0[5] = pte_for(page[5], PTE_V | PTE_W | PTE_A | PTE_D);               /* W without R: reserved */
	l0[6] = pte_for(page[6], PTE_V | PTE_R | PTE_W | PTE_A);               /* A set, D clear */
	for (unsigned i = 0; i < 8; i++)
		for (unsigned j = 0; j < PAGE; j += 8)
			*(uint64_t *)(page[i] + j) = 0x1000ul * i + j;
}

static uint64_t load(uint64_t va)
{
	uint64_t v = 0xeeee;
	__asm__ volatile("ld %0, 0(%1)" : "+r"(v) : "r"(va) : "memory");
	return v;
}

static void store(uint64_t va, uint64_t v)
{
	__asm__ volatile("sd %0, 0(%1)" ::"r"(v), "r"(va) : "memory");
}

static int fetch_hook(struct rt_frame *f, uint64_t cause)
{
	if (cause == 12) {
		f->epc = f->x[1];
		return 1;
	}
	return 0;
}

static void report(const char *name, uint64_t value)
{
	rt_print(name, value);
	rt_print_trap(name, 0);
}

static void s_body(void)
{
	report("ld_rw", load(VA_BASE + 8));
	report("pte0_after_load", l0[0] & 0xff);
	store(VA_BASE + 16, 0x1234);
	report("pte0_after_store", l0[0] & 0xff);
	report("store_seen_phys", *(uint64_t *)(page[0] + 16));
	store(VA_BASE + 0x6000, 0x77);
	report("pte6_after_store", l0[6] & 0xff);
	report("ld_ro", load(VA_BASE + 0x1000 + 24));
	store(VA_BASE + 0x1000 + 24, 1);
	report("st_ro", *(uint64_t *)(page[1] + 24));
	report("ld_xonly", load(VA_BASE + 0x2000 + 8));
	__asm__ volatile("csrs sstatus, %0" ::"r"(MSTATUS_MXR));
	report("ld_xonly_mxr", load(VA_BASE + 0x2000 + 8));
	__asm__ volatile("csrc sstatus, %0" ::"r"(MSTATUS_MXR));
	/* Clearing MXR or SUM takes back what a translation made while it was set. */
	report("ld_xonly_mxr_cleared", load(VA_BASE + 0x2000 + 8));
	report("ld_user_nosum", load(VA_BASE + 0x3000 + 8));
	__asm__ volatile("csrs sstatus, %0" ::"r"(MSTATUS_SUM));
	report("ld_user_sum", load(VA_BASE + 0x3000 + 8));
	store(VA_BASE + 0x3000 + 16, 0x99);
	__asm__ volatile("csrc sstatus, %0" ::"r"(MSTATUS_SUM));
	report("ld_user_sum_cleared", load(VA_BASE + 0x3000 + 8));
	store(VA_BASE + 0x3000 + 16, 0x98);
	report("st_user_sum_cleared", *(uint64_t *)(page[3] + 16));
	report("ld_invalid", load(VA_BASE + 0x4000));
	report("ld_w_only", load(VA_BASE + 0x5000));
	report("ld_unmapped_l0", load(VA_BASE + 0x100000));
	report("ld_unmapped_root", load(0x100000000ul));
	report("ld_noncanon", load(VA_NONCANON));
	report("ld_noncanon_hi", load(0xffffffff80000000ul));
	static uint64_t via_super_var = 0x5151;
	report("ld_super", load((uint64_t)&via_super_var - 0x80000000ul + VA_SUPER));
	store((uint64_t)&via_super_var - 0x80000000ul + VA_SUPER, 0x6262);
	report("st_super_seen", via_super_var);
	report("ld_badsuper", load(VA_BADSUPER + 8));
	report("ld_reserved_bits", load(VA_RESERVED + 8));
	/* Fetch from a page without X. */
	__asm__ volatile("jalr ra, 0(%0)" ::"r"(VA_BASE) : "ra", "memory");
	report("fetch_nox", 0);
	/* Misaligned load across two pages: second page invalid. */
	uint64_t v;
	__asm__ volatile("ld %0, 0(%1)" : "=r"(v) : "r"(VA_BASE + 0x3ffc) : "memory");
	report("ld_cross_fault", 0);
	__asm__ volatile("ld %0, 0(%1)" : "=r"(v) : "r"(VA_BASE + 0xffc) : "memory");
	report("ld_cross_ok", v);
	/* Compressed loads and stores through the TLB. */
	__asm__ volatile("c.ld %0, 8(%1)" : "=r"(v) : "r"(VA_BASE + 0x1000) : "memory");
	report("c_ld", v);
}

static void u_body(void)
{
	uint64_t v;
	__asm__ volatile("ld %0, 0(%1)" : "=r"(v) : "r"(VA_BASE + 0x3000 + 8) : "memory");
}

static int u_fetch_hook(struct rt_frame *f, uint64_t cause)
{
	extern char rt_back_in_m[];
	if (cause == 12) {
		f->epc = (uint64_t)rt_back_in_m;
		CSR_SET(mstatus, 3ul << 11);
		return 1;
	}
	return 0;
}

static int s_pf_hook(struct rt_frame *f, uint64_t cause)
{
	return fetch_hook(f, cause);
}

int main(void)
{
	build_tables();
	CSR_WRITE(satp, SATP_SV39 | ((uint64_t)root >> 12));
	__asm__ volatile("sfence.vma" ::: "memory");
	rt_mhook = fetch_hook;
	rt_run_in(PRIV_S, s_body);

	/* The same faults delegated to S. */
	extern char rt_svector[];
	CSR_WRITE(stvec, (uint64_t)rt_svector);
	CSR_WRITE(medeleg, (1ul << 12) | (1ul << 13) | (1ul << 15));
	rt_shook = s_pf_hook;
	rt_run_in(PRIV_S, s_body);
	CSR_WRITE(medeleg, 0);

	/* U-mode: code on a supervisor page cannot be fetched. */
	rt_mhook = u_fetch_hook;
	rt_run_in(PRIV_U, u_body);
	rt_last.epc = 0;
	rt_print_trap("u_fetch_supervisor_page", 0);
	rt_mhook = 0;

	/* M-mode with MPRV: loads and stores translated as S. */
	CSR_SET(mstatus, MSTATUS_MPRV | MSTATUS_MPP_S);
	uint64_t v = load(VA_BASE + 0x1000 + 32);
	CSR_CLEAR(mstatus, MSTATUS_MPRV | (3ul << 11));
	report("mprv_ld", v);
	CSR_SET(mstatus, MSTATUS_MPRV | MSTATUS_MPP_S);
	v = load(VA_BASE + 0x4000);
	CSR_CLEAR(mstatus, MSTATUS_MPRV | (3ul << 11));
	report("mprv_ld_fault", v);

	CSR_WRITE(satp, 0);
	uint64_t h = 0;
	for (unsigned i = 0; i < 8; i++)
		for (unsigned j = 0; j < PAGE; j += 8)
			h = rt_mix(h, *(uint64_t *)(page[i] + j));
	rt_print("pages_digest", h);
	h = 0;
	for (unsigned i = 0; i < 512; i++)
		h = rt_mix(rt_mix(rt_mix(h, root[i]), l1[i]), l0[i]);
	rt_print("tables_digest", h);
	return 0;
}
