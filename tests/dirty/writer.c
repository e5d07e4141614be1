/*
 * writer.c — a bare-metal guest that writes pseudo-random guest pages every way the hart and the
 * devices can, forever, for the dirty-page tests (test_dirty.c, test_pause.c).
 *
 * Each step picks a page of AREA and a kind of write: sb/sh/sw/sd, compressed c.sw/c.sd, AMOs,
 * LR/SC, fsw/fsd and compressed c.fsd, a store crossing into the next page, a burst of stores in
 * S-mode through Sv39 4 KiB mappings whose PTEs start with A and D clear (so the hart writes the
 * page table too), the same through M-mode with MPRV (MPP = S), and a virtio-blk write of fresh
 * bytes followed by a read of them into the chosen page (the device writes guest RAM, its used
 * ring and the status byte). And a stale translation: an S-mode store to a page, some work, the
 * page's D bit cleared without sfence.vma, a second S-mode store and a look at D. The hart may use
 * its cached translation (ftvm does: D stays clear) and the program counts what it saw in STALE:
 * a tracker that dropped translations at a collection in between, so that the second store walked
 * the table again and set D, would change what the guest sees. COUNTS holds how often each kind
 * ran, for the host to check coverage.
 * The host stops the program at icounts of its choosing; it never exits.
 */
#include "hostile.h"

#define PAGE 4096ul
#define AREA 0x80800000ul          /* the pages written: AREA_PAGES of them */
#define AREA_PAGES 512ul
#define TABLES 0x80700000ul        /* Sv39 root, L1, L0: VA_WIN maps AREA page by page */
#define VA_WIN 0x40000000ul
#define RING 0x80710000ul          /* virtqueue: descriptors, avail, used, header, status */
#define RING_AVAIL (RING + 0x1000)
#define RING_USED (RING + 0x2000)
#define RING_HDR (RING + 0x3000)
#define RING_STATUS (RING + 0x3100)
#define SRC 0x80720000ul           /* the bytes a disk write takes */
#define COUNTS 0x80730000ul        /* uint64_t per kind */
#define STALE (COUNTS + 0x100)     /* D found set after the second store */
#define QSIZE 8u
#define SATP_SV39 (8ul << 60)
#define MSTATUS_MPRV (1ul << 17)
#define MSTATUS_MPP_S (1ul << 11)

enum kind {
	K_STORE, K_NARROW, K_RVC, K_AMO, K_LRSC, K_FP, K_RVC_FP, K_CROSS, K_SMODE, K_MPRV, K_DISK,
	K_STALE, K_KINDS
};

static uint64_t *root = (uint64_t *)TABLES, *l1 = (uint64_t *)(TABLES + PAGE), *l0 = (uint64_t *)(TABLES + 2 * PAGE);
static uint64_t rng = 0x243f6a8885a308d3ul;
static uint64_t disk_slot;
static uint16_t avail_idx, used_seen;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t pte_for(uint64_t pa, uint64_t flags)
{
	return (pa >> 12) << 10 | flags;
}

static void build_tables(void)
{
	for (unsigned i = 0; i < 512; i++)
		root[i] = l1[i] = l0[i] = 0;
	/* Identity gigapage for code, data and stack (A and D set: the runtime lives there). */
	root[2] = pte_for(0x80000000ul, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D);
	root[0] = pte_for(0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
	root[1] = pte_for((uint64_t)l1, PTE_V);
	l1[0] = pte_for((uint64_t)l0, PTE_V);
	for (unsigned i = 0; i < AREA_PAGES; i++)
		l0[i] = pte_for(AREA + i * PAGE, PTE_V | PTE_R | PTE_W); /* A and D clear */
	CSR_WRITE(satp, SATP_SV39 | (TABLES >> 12));
	__asm__ volatile("sfence.vma" ::: "memory");
}

static void count(enum kind k)
{
	((volatile uint64_t *)COUNTS)[k]++;
}

static void store_rvc(uint64_t addr, uint64_t v, bool word)
{
	register uint64_t a __asm__("a1") = addr;
	register uint64_t d __asm__("a0") = v;
	if (word)
		__asm__ volatile(".option push\n.option rvc\nc.sw a0, 0(a1)\n.option pop" ::"r"(a), "r"(d) : "memory");
	else
		__asm__ volatile(".option push\n.option rvc\nc.sd a0, 0(a1)\n.option pop" ::"r"(a), "r"(d) : "memory");
}

static void store_amo(uint64_t addr, uint64_t v, unsigned which)
{
	uint64_t old;
	switch (which % 3) {
	case 0: __asm__ volatile("amoadd.d %0, %1, (%2)" : "=r"(old) : "r"(v), "r"(addr) : "memory"); break;
	case 1: __asm__ volatile("amoswap.w %0, %1, (%2)" : "=r"(old) : "r"(v), "r"(addr) : "memory"); break;
	default: __asm__ volatile("amoxor.d %0, %1, (%2)" : "=r"(old) : "r"(v), "r"(addr) : "memory"); break;
	}
	(void)old;
}

static void store_lrsc(uint64_t addr, uint64_t v)
{
	uint64_t old, fail;
	__asm__ volatile("1: lr.d %0, (%2)\n\tadd t0, %0, %3\n\tsc.d %1, t0, (%2)\n\tbnez %1, 1b"
			 : "=&r"(old), "=&r"(fail) : "r"(addr), "r"(v) : "t0", "memory");
}

static void store_fp(uint64_t addr, uint64_t v, unsigned which)
{
	switch (which % 3) {
	case 0: __asm__ volatile("fmv.d.x ft0, %0\n\tfsd ft0, 0(%1)" ::"r"(v), "r"(addr) : "ft0", "memory"); break;
	case 1: __asm__ volatile("fmv.w.x ft0, %0\n\tfsw ft0, 0(%1)" ::"r"(v), "r"(addr) : "ft0", "memory"); break;
	default: {
		register uint64_t a __asm__("a1") = addr;
		__asm__ volatile("fmv.d.x fa0, %0\n\t.option push\n\t.option rvc\n\tc.fsd fa0, 0(a1)\n\t.option pop"
				 ::"r"(v), "r"(a) : "fa0", "memory");
		break;
	}
	}
}

/* Parameters of the S-mode burst (globals: rt_run_in takes no argument). */
static volatile uint64_t burst_seed;

static void s_burst(void)
{
	uint64_t s = burst_seed;
	for (unsigned i = 0; i < 16; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		uint64_t va = VA_WIN + (s >> 8) % AREA_PAGES * PAGE + (s >> 24) % (PAGE / 8) * 8;
		*(volatile uint64_t *)va = s;
		if (i % 4 == 0)
			*(volatile uint8_t *)(va + 3) = (uint8_t)(s >> 40);
	}
}

static volatile uint64_t touch_page;

static void s_touch(void)
{
	*(volatile uint64_t *)(VA_WIN + touch_page * PAGE + 8) += 1;
}

/* Fills the S store translation of `page`, works a while (the host's collections land here too),
 * clears D behind the hart's back and stores again. */
static void stale_translation(uint64_t page)
{
	touch_page = page;
	rt_run_in(PRIV_S, s_touch);
	uint64_t spin = 3000;
	__asm__ volatile("1: addi %0, %0, -1\n\tbnez %0, 1b" : "+r"(spin));
	l0[page] &= ~PTE_D;
	rt_run_in(PRIV_S, s_touch);
	if (l0[page] & PTE_D)
		(*(volatile uint64_t *)STALE)++;
	__asm__ volatile("sfence.vma" ::: "memory");
}

static void mprv_store(uint64_t page, uint64_t off, uint64_t v)
{
	CSR_SET(mstatus, MSTATUS_MPRV | MSTATUS_MPP_S);
	*(volatile uint64_t *)(VA_WIN + page * PAGE + off) = v;
	*(volatile uint16_t *)(VA_WIN + page * PAGE + (off ^ 0x40)) = (uint16_t)v;
	CSR_CLEAR(mstatus, MSTATUS_MPRV | (3ul << 11));
}

/* One request of type (0 read, 1 write) for `len` bytes at `buf`, sector `sector`; waits for it. */
static void disk_request(unsigned type, uint64_t sector, uint64_t buf, uint32_t len)
{
	volatile uint8_t *hdr = (volatile uint8_t *)RING_HDR;
	for (unsigned i = 0; i < 16; i++)
		hdr[i] = 0;
	hdr[0] = (uint8_t)type;
	*(volatile uint64_t *)(hdr + 8) = sector;
	*(volatile uint8_t *)RING_STATUS = 0xff;
	h_set_desc(RING, 0, RING_HDR, 16, DESC_NEXT, 1);
	h_set_desc(RING, 1, buf, len, (type == 0 ? DESC_WRITE : 0) | DESC_NEXT, 2);
	h_set_desc(RING, 2, RING_STATUS, 1, DESC_WRITE, 0);
	volatile uint16_t *avail = (volatile uint16_t *)RING_AVAIL;
	avail[2 + avail_idx % QSIZE] = 0;
	__asm__ volatile("fence" ::: "memory");
	avail[1] = ++avail_idx;
	__asm__ volatile("fence" ::: "memory");
	vm_wr(disk_slot, VM_QUEUE_NOTIFY, 0);
	used_seen++;
	while (*(volatile uint16_t *)(RING_USED + 2) != used_seen)
		;
	vm_wr(disk_slot, VM_INT_ACK, vm_rd(disk_slot, VM_INT_STATUS));
}

static void disk_round_trip(uint64_t page, uint64_t x)
{
	uint64_t sector = (x >> 12) % 1024 * (PAGE / 512);
	for (unsigned i = 0; i < PAGE / 8; i++)
		((volatile uint64_t *)SRC)[i] = x ^ (i * 0x9e3779b97f4a7c15ul);
	disk_request(1, sector, SRC, PAGE);
	disk_request(0, sector, AREA + page * PAGE, PAGE);
}

int main(void)
{
	disk_slot = h_find_virtio(ID_BLK);
	if (!disk_slot) {
		rt_puts("no virtio-blk\n");
		return 2;
	}
	for (unsigned i = 0; i < 0x3000 / 8; i++)
		((volatile uint64_t *)RING)[i] = 0;
	h_virtio_setup(disk_slot, 0, QSIZE, RING, RING_AVAIL, RING_USED);
	build_tables();
	rt_puts("writer: ready\n");
	for (;;) {
		uint64_t x = next();
		uint64_t page = (x >> 8) % AREA_PAGES, off = (x >> 20) % (PAGE / 8) * 8;
		uint64_t addr = AREA + page * PAGE + off, v = x * 0x2545f4914f6cdd1dul;
		enum kind k = (enum kind)((x >> 40) % K_KINDS);
		switch (k) {
		case K_STORE:
			*(volatile uint64_t *)addr = v;
			break;
		case K_NARROW:
			*(volatile uint8_t *)addr = (uint8_t)v;
			*(volatile uint16_t *)(addr ^ 0x100) = (uint16_t)v;
			*(volatile uint32_t *)(addr ^ 0x200) = (uint32_t)v;
			break;
		case K_RVC:
			store_rvc(addr, v, x & 1);
			break;
		case K_AMO:
			store_amo(addr, v, (unsigned)(x >> 1));
			break;
		case K_LRSC:
			store_lrsc(addr, v);
			break;
		case K_FP:
		case K_RVC_FP:
			store_fp(addr, v, k == K_RVC_FP ? 2 : (unsigned)(x >> 1));
			break;
		case K_CROSS:
			if (page + 1 == AREA_PAGES)
				continue;
			*(volatile uint64_t *)(AREA + page * PAGE + PAGE - 3) = v;
			break;
		case K_SMODE:
			burst_seed = x | 1;
			rt_run_in(PRIV_S, s_burst);
			break;
		case K_MPRV:
			mprv_store(page, off, v);
			break;
		case K_DISK:
			if (x & 7)
				continue;  /* slow: one step in eight of this kind */
			disk_round_trip(page, x);
			break;
		case K_STALE:
			stale_translation(page);
			break;
		case K_KINDS:
			break;
		}
		count(k);
	}
}
