/*
 * tlb.c — every width and kind of data access (integer, FP, LR/SC, AMO) at every alignment at the
 * start and the end of interesting pages: page 0, the last RAM page and the first address past RAM,
 * the top of the address space (where an access wraps to 0), read-only, invalid and non-canonical
 * pages; in M-mode bare, in S and U with Sv39, and in M with MPRV lending S or U. Each address is
 * probed with the software TLB cold (after sfence.vma), warm from another page that shares its TLB
 * slot, and after a flush of that warm state. The value read (or the register left untouched), the
 * trap count, cause and tval of each probe go into one digest per (mode, state, base page), and the
 * pages stored to into one digest per mode; difftest.sh requires the same lines as QEMU prints.
 * Jumps to addresses without code (page 0, past RAM, the top of the address space, pages without
 * X) must take the right fetch fault in every mode.
 * Built with -DTLB_VERBOSE it prints every probe (kind, address, value, traps, cause, tval) too.
 */
#include <stdbool.h>
#include "rt.h"

#define PAGE 4096ul
#define RAM_END 0x90000000ul /* 256 MiB from 0x80000000: ftvm run's default, which difftest.sh gives QEMU too */
#define COLLIDE_BASE 0x80800000ul /* RAM pages whose TLB slot is their index: (va >> 12) & 255 */
#define TLB_SLOTS 256ul
#define SATP_SV39 (8ul << 60)
#define MSTATUS_MPRV (1ul << 17)
#define MSTATUS_MPP_S (1ul << 11)
#define POISON 0x5a5a5a5a5a5a5a5aul

enum kind {
	K_LB, K_LBU, K_LH, K_LHU, K_LW, K_LWU, K_LD, K_FLW, K_FLD, K_LRW, K_LRD,
	K_SB, K_SH, K_SW, K_SD, K_FSW, K_FSD, K_SCW, K_SCD, K_AMOADDW, K_AMOADDD, K_AMOSWAPD, K_KINDS
};

/* One access instruction (uncompressed, so the trap handler's skip is always 4 bytes), optionally
 * bracketed by the csrs/csrc that turn MPRV on for exactly that instruction. */
#define ACCESS(insn, ...)                                                                          \
	do {                                                                                       \
		if (mprv)                                                                          \
			__asm__ volatile(".option push\n.option norvc\ncsrs mstatus, %[m]\n" insn  \
					 "\ncsrc mstatus, %[m]\n.option pop"                      \
					 : "+&r"(v) : [a] "r"(a), [s] "r"(s), [m] "r"(mprv)        \
					 : "ft0", "memory");                                       \
		else                                                                               \
			__asm__ volatile(".option push\n.option norvc\n" insn "\n.option pop"      \
					 : "+&r"(v) : [a] "r"(a), [s] "r"(s), [m] "r"(mprv)        \
					 : "ft0", "memory");                                       \
	} while (0)

/* Performs one access; returns the destination register (POISON-preset, so a faulting load
 * shows it untouched). mprv is 0 or the mstatus bits to set around the access. */
static uint64_t access(enum kind k, uint64_t a, uint64_t s, uint64_t mprv)
{
	uint64_t v = POISON;
	switch (k) {
	case K_LB: ACCESS("lb %0, 0(%[a])"); break;
	case K_LBU: ACCESS("lbu %0, 0(%[a])"); break;
	case K_LH: ACCESS("lh %0, 0(%[a])"); break;
	case K_LHU: ACCESS("lhu %0, 0(%[a])"); break;
	case K_LW: ACCESS("lw %0, 0(%[a])"); break;
	case K_LWU: ACCESS("lwu %0, 0(%[a])"); break;
	case K_LD: ACCESS("ld %0, 0(%[a])"); break;
	case K_FLW: ACCESS("fmv.w.x ft0, %0\nflw ft0, 0(%[a])\nfmv.x.w %0, ft0"); break;
	case K_FLD: ACCESS("fmv.d.x ft0, %0\nfld ft0, 0(%[a])\nfmv.x.d %0, ft0"); break;
	case K_LRW: ACCESS("lr.w %0, (%[a])"); break;
	case K_LRD: ACCESS("lr.d %0, (%[a])"); break;
	case K_SB: ACCESS("sb %[s], 0(%[a])"); break;
	case K_SH: ACCESS("sh %[s], 0(%[a])"); break;
	case K_SW: ACCESS("sw %[s], 0(%[a])"); break;
	case K_SD: ACCESS("sd %[s], 0(%[a])"); break;
	case K_FSW: ACCESS("fmv.w.x ft0, %[s]\nfsw ft0, 0(%[a])"); break;
	case K_FSD: ACCESS("fmv.d.x ft0, %[s]\nfsd ft0, 0(%[a])"); break;
	case K_SCW: ACCESS("lr.w %0, (%[a])\nsc.w %0, %[s], (%[a])"); break;
	case K_SCD: ACCESS("lr.d %0, (%[a])\nsc.d %0, %[s], (%[a])"); break;
	case K_AMOADDW: ACCESS("amoadd.w %0, %[s], (%[a])"); break;
	case K_AMOADDD: ACCESS("amoadd.d %0, %[s], (%[a])"); break;
	case K_AMOSWAPD: ACCESS("amoswap.d %0, %[s], (%[a])"); break;
	default: break;
	}
	return v;
}

/* Access width of each kind (LR/SC/AMO: of the memory operand). */
static const uint64_t width[K_KINDS] = {
	[K_LB] = 1, [K_LBU] = 1, [K_LH] = 2, [K_LHU] = 2, [K_LW] = 4, [K_LWU] = 4, [K_LD] = 8,
	[K_FLW] = 4, [K_FLD] = 8, [K_LRW] = 4, [K_LRD] = 8, [K_SB] = 1, [K_SH] = 2, [K_SW] = 4,
	[K_SD] = 8, [K_FSW] = 4, [K_FSD] = 8, [K_SCW] = 4, [K_SCD] = 8, [K_AMOADDW] = 4,
	[K_AMOADDD] = 8, [K_AMOSWAPD] = 8,
};
#define CAUSE_LOAD_MISALIGNED 4
#define CAUSE_LOAD_ACCESS 5
#define CAUSE_STORE_ACCESS 7
#define CAUSE_LOAD_PAGE_FAULT 13
#define CAUSE_STORE_PAGE_FAULT 15

enum state { COLD, WARM, FLUSHED, STATES };
static const char *const state_name[STATES] = { "cold", "warm", "flushed" };

struct sweep {
	const uint64_t *bases;
	unsigned nbases;
	uint64_t mprv;      /* mstatus bits for M-mode with MPRV, else 0 */
	bool can_flush;     /* sfence.vma is legal where the sweep runs (not U) */
	enum state state;
	uint64_t digest[8];
	uint64_t traps[8];
};
static struct sweep sw;

static void fence(void)
{
	__asm__ volatile("sfence.vma" ::: "memory");
}

/* Fills the TLB slot of va's page with another, valid RAM page (a load and a store entry). */
static void warm_slot(uint64_t va)
{
	uint64_t c = COLLIDE_BASE + ((va / PAGE) % TLB_SLOTS) * PAGE;
	uint64_t v = access(K_LD, c, 0, sw.mprv);
	access(K_SD, c, v, sw.mprv);
}

static void probe(unsigned b, uint64_t va)
{
	for (unsigned k = 0; k < K_KINDS; k++) {
		if (sw.state == COLD && sw.can_flush)
			fence();
		if (sw.state != COLD)
			warm_slot(va);
		if (sw.state == FLUSHED) {
			access(K_LB, va, 0, sw.mprv); /* its own page too, when that is mapped */
			fence();
		}
		/* QEMU 7.2 keeps "no reservation" as address -1, so its SC at -1 goes on to fault. */
		if ((k == K_SCW || k == K_SCD) && va == ~0ul)
			continue;
		rt_clear_trap();
		uint64_t store = 0x0102030405060708ul * (k + 1) ^ va;
		uint64_t v = access((enum kind)k, va, store, sw.mprv);
		uint64_t cause = rt_last.cause, tval = rt_last.tval;
		bool atomic = k >= K_LRW && (k <= K_LRD || k >= K_SCW);
		bool misaligned = (va & (width[k] - 1)) != 0;
		/* Where the spec leaves a choice (or QEMU 7.2 strays from it), compare the class of the
		 * fault, not the detail: a misaligned access fault's tval may name any byte of the
		 * naturally aligned 8 bytes QEMU splits it into; a misaligned LR/SC/AMO may raise a
		 * misaligned or an access fault; QEMU reports an AMO on an invalid PTE as a load page
		 * fault where the spec asks for a store/AMO one. */
		if (misaligned && cause >= CAUSE_LOAD_MISALIGNED && cause <= CAUSE_STORE_ACCESS) {
			tval &= ~7ul;
			if (atomic)
				cause = CAUSE_LOAD_MISALIGNED;
		}
		if (atomic && cause == CAUSE_LOAD_PAGE_FAULT)
			cause = CAUSE_STORE_PAGE_FAULT;
		uint64_t h = sw.digest[b];
		h = rt_mix(h, k);
		h = rt_mix(h, va);
		h = rt_mix(h, v);
		h = rt_mix(h, rt_last.count);
		h = rt_mix(h, cause);
		h = rt_mix(h, tval);
		sw.digest[b] = h;
#ifdef TLB_VERBOSE
		rt_puthex(k); rt_putc(' '); rt_puthex(va); rt_putc(' '); rt_puthex(v); rt_putc(' ');
		rt_puthex(rt_last.count); rt_putc(' '); rt_puthex(cause); rt_putc(' ');
		rt_puthex(tval); rt_putc('\n');
#endif
		sw.traps[b] += rt_last.count;
	}
}

static void sweep_body(void)
{
	for (unsigned b = 0; b < sw.nbases; b++) {
		for (uint64_t off = 0; off < 16; off++)
			probe(b, sw.bases[b] + off);
		for (uint64_t off = PAGE - 16; off < PAGE; off++)
			probe(b, sw.bases[b] + off);
	}
}

/* Instruction fetch from addresses no code lives at (none of the pages probed is executable): a
 * jump there must trap with the fault the spec names, and the handler returns to the caller.
 * (Not into device registers: whether they are executable is the platform's choice, and QEMU
 * executes what they read while ftvm raises an access fault.) */
static const uint64_t fetch_bare[] = {
	0x0, 0x2, 0x7fe, RAM_END, RAM_END + 0xffe, 0xfffffffffffff000ul, 0xfffffffffffffffeul,
};
static const uint64_t fetch_sv39[] = {
	0x0, 0x2, 0xffe, 0x1ffe, 0x3000, 0x4000, 0xffffffffffffe000ul, 0xfffffffffffffffeul, 0x4000000000ul,
};
static const uint64_t *fetch_targets;
static unsigned nfetch;
static uint64_t fetch_digest;

static int fetch_hook(struct rt_frame *f, uint64_t cause)
{
	f->epc = f->x[1]; /* back to the jalr's return address */
	return 1;
}

static void fetch_body(void)
{
	for (unsigned i = 0; i < nfetch; i++) {
		rt_clear_trap();
		__asm__ volatile("jalr ra, 0(%0)" ::"r"(fetch_targets[i]) : "ra", "memory");
		fetch_digest = rt_mix(fetch_digest, fetch_targets[i]);
		fetch_digest = rt_mix(fetch_digest, rt_last.count);
		fetch_digest = rt_mix(fetch_digest, rt_last.cause);
		fetch_digest = rt_mix(fetch_digest, rt_last.tval);
#ifdef TLB_VERBOSE
		rt_puts("fetch "); rt_puthex(fetch_targets[i]); rt_putc(' '); rt_puthex(rt_last.count); rt_putc(' ');
		rt_puthex(rt_last.cause); rt_putc(' '); rt_puthex(rt_last.tval); rt_putc('\n');
#endif
	}
}

/* Scratch layout: page tables for S and for U, and three data pages. */
#define T_ROOT 0
#define T_L1LO 1
#define T_L0LO 2
#define T_L1HI 3
#define T_L0HI 4
#define T_PAGES 5
static uint64_t *tables[2][T_PAGES]; /* [0] supervisor leaves, [1] user leaves */
static uint8_t *data[3];

static uint64_t pte(uint64_t pa, uint64_t flags)
{
	return (pa >> 12) << 10 | flags;
}

/* VA 0x0 -> data[0], 0x1000 -> data[1], 0x2000 invalid, 0x3000 -> the last RAM page,
 * 0x4000 -> the first page past RAM, 0x5000 -> data[0] read-only; the top page of the address
 * space -> data[2] with the page below it invalid; 0x80000000.. identity (code, stack, colliders)
 * and the UART's 2 MiB. */
static void build_tables(void)
{
	uint8_t *s = (uint8_t *)__scratch_start;
	for (unsigned u = 0; u < 2; u++) {
		uint64_t user = u ? PTE_U : 0, rw = PTE_V | PTE_R | PTE_W | PTE_A | PTE_D | user;
		for (unsigned t = 0; t < T_PAGES; t++) {
			tables[u][t] = (uint64_t *)(s + (u * T_PAGES + t) * PAGE);
			for (unsigned i = 0; i < 512; i++)
				tables[u][t][i] = 0;
		}
		uint64_t **t = tables[u];
		t[T_ROOT][0] = pte((uint64_t)t[T_L1LO], PTE_V);
		t[T_ROOT][2] = pte(0x80000000ul, rw | PTE_X);
		t[T_ROOT][511] = pte((uint64_t)t[T_L1HI], PTE_V);
		t[T_L1LO][0] = pte((uint64_t)t[T_L0LO], PTE_V);
		t[T_L1LO][RT_UART_THR >> 21] = pte(RT_UART_THR, rw); /* for TLB_VERBOSE output */
		t[T_L1HI][511] = pte((uint64_t)t[T_L0HI], PTE_V);
		data[0] = s + 2 * T_PAGES * PAGE;
		data[1] = data[0] + 2 * PAGE;
		data[2] = data[0] + 4 * PAGE;
		t[T_L0LO][0] = pte((uint64_t)data[0], rw);
		t[T_L0LO][1] = pte((uint64_t)data[1], rw);
		t[T_L0LO][3] = pte(RAM_END - PAGE, rw);
		t[T_L0LO][4] = pte(RAM_END, rw);
		t[T_L0LO][5] = pte((uint64_t)data[0], PTE_V | PTE_R | PTE_A | user);
		t[T_L0HI][511] = pte((uint64_t)data[2], rw);
	}
}

static void fill_pages(void)
{
	for (unsigned p = 0; p < 3; p++)
		for (unsigned i = 0; i < PAGE; i++)
			data[p][i] = (uint8_t)(i * 7 + p * 0x55 + 0x81);
	for (unsigned i = 0; i < PAGE; i++)
		((uint8_t *)(RAM_END - PAGE))[i] = (uint8_t)(i * 13 + 0x3c);
}

static uint64_t pages_digest(void)
{
	uint64_t h = 0;
	for (unsigned p = 0; p < 3; p++)
		for (unsigned i = 0; i < PAGE; i += 8)
			h = rt_mix(h, *(uint64_t *)(data[p] + i));
	for (unsigned i = 0; i < PAGE; i += 8)
		h = rt_mix(h, *(uint64_t *)(RAM_END - PAGE + i));
	return h;
}

static void report(const char *mode)
{
	for (unsigned b = 0; b < sw.nbases; b++) {
		rt_puts(mode);
		rt_putc(' ');
		rt_puts(state_name[sw.state]);
		rt_puts(" base=");
		rt_puthex(sw.bases[b]);
		rt_puts(" traps=");
		rt_puthex(sw.traps[b]);
		rt_puts(" digest=");
		rt_puthex(sw.digest[b]);
		rt_putc('\n');
	}
}

static void run(const char *mode, unsigned priv, bool user_tables, uint64_t mprv)
{
	static const uint64_t m_bases[] = { 0x0, RAM_END - PAGE, 0xfffffffffffff000ul, 0 };
	static const uint64_t v_bases[] = {
		0x0, 0x1000, 0x3000, 0x4000, 0x5000, 0xffffffffffffe000ul, 0xfffffffffffff000ul, 0x4000000000ul,
	};
	static uint64_t mb[4];
	bool bare = priv == PRIV_M && !mprv;
	for (unsigned i = 0; i < 4; i++)
		mb[i] = m_bases[i];
	mb[3] = (uint64_t)data[1];
	fill_pages();
	CSR_WRITE(satp, bare ? 0 : SATP_SV39 | ((uint64_t)tables[user_tables][T_ROOT] >> 12));
	CSR_CLEAR(mstatus, 3ul << 11); /* MPP = U unless mprv lends S */
	for (unsigned st = 0; st < STATES; st++) {
		if (priv == PRIV_U && st == FLUSHED)
			continue;
		sw.bases = bare ? mb : v_bases;
		sw.nbases = bare ? 4 : 8;
		sw.mprv = mprv;
		sw.can_flush = priv != PRIV_U;
		sw.state = (enum state)st;
		for (unsigned b = 0; b < 8; b++)
			sw.digest[b] = sw.traps[b] = 0;
		fence();
		if (priv == PRIV_M)
			sweep_body();
		else
			rt_run_in(priv, sweep_body);
		report(mode);
	}
	if (!mprv) {
		fetch_targets = bare ? fetch_bare : fetch_sv39;
		nfetch = bare ? sizeof(fetch_bare) / sizeof(fetch_bare[0]) : sizeof(fetch_sv39) / sizeof(fetch_sv39[0]);
		fetch_digest = 0;
		fence();
		rt_mhook = fetch_hook;
		if (priv == PRIV_M)
			fetch_body();
		else
			rt_run_in(priv, fetch_body);
		rt_mhook = 0;
		rt_puts(mode);
		rt_print(" fetch", fetch_digest);
	}
	CSR_WRITE(satp, 0);
	fence();
	rt_print("pages", pages_digest());
}

int main(void)
{
	build_tables();
	run("m_bare", PRIV_M, false, 0);
	run("s_sv39", PRIV_S, false, 0);
	run("u_sv39", PRIV_U, true, 0);
	run("mprv_s", PRIV_M, false, MSTATUS_MPRV | MSTATUS_MPP_S);
	run("mprv_u", PRIV_M, true, MSTATUS_MPRV);
	return 0;
}
