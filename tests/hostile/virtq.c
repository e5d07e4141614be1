/*
 * virtq.c — a driver that breaks every rule of virtio 1.2 against every virtio device present:
 * descriptor chains that loop or point at themselves through an indirect descriptor, buffers
 * outside RAM, straddling its end or wrapping the address space, lengths of 4 GiB, queue sizes of
 * 0, 3 and 512, rings outside RAM or misaligned, available indexes that jump, heads and next
 * fields beyond the queue, device-readable buffers after writable ones. Each must end in
 * DEVICE_NEEDS_RESET (§2.1.2) without anything reaching the used ring; then a reset and a
 * well-formed request must work again. Kicks of queues that do not exist are ignored, and a used
 * index the driver scribbled on does not stop the next request. For the block device, requests
 * that are well-formed virtio but wrong for a disk (beyond capacity, not whole sectors, larger
 * than the device allows, unknown type, short header) get their IOERR/UNSUPP status or a reset.
 * The program exits through the finisher: 0 when every outcome was the expected one.
 */
#include "hostile.h"

#define QSIZE 16u
#define SCRATCH 0x80700000ul              /* RAM well past the program */
#define DESC (SCRATCH)                     /* 16 * 16 bytes */
#define AVAIL (SCRATCH + 0x400)
#define USED (SCRATCH + 0x800)
#define BUF (SCRATCH + 0x1000)             /* data buffers: 0x1000.. */
#define BLK_SECTOR 512u

static unsigned failures;
static uint16_t avail_idx;

static void check(const char *dev, const char *what, bool ok)
{
	rt_puts(ok ? "ok   " : "FAIL ");
	rt_puts(dev);
	rt_putc(' ');
	rt_puts(what);
	rt_putc('\n');
	if (!ok)
		failures++;
}

static void publish(uint16_t head)
{
	volatile uint16_t *avail = (volatile uint16_t *)AVAIL;
	avail[2 + avail_idx % QSIZE] = head;
	avail_idx++;
	__asm__ volatile("fence" ::: "memory");
	avail[1] = avail_idx;
}

static uint16_t used_idx(void)
{
	return *(volatile uint16_t *)(USED + 2);
}

/* Clears the rings, then programs queue q (see h_virtio_setup()). */
static void setup(uint64_t slot, unsigned q, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used)
{
	vm_wr(slot, VM_STATUS, 0);
	for (uint64_t a = SCRATCH; a < SCRATCH + 0x1000; a += 8)
		*(volatile uint64_t *)a = 0;
	avail_idx = 0;
	h_virtio_setup(slot, q, num, desc, avail, used);
}

static void setup_ok(uint64_t slot, unsigned q)
{
	setup(slot, q, QSIZE, DESC, AVAIL, USED);
}

static bool needs_reset(uint64_t slot)
{
	return (vm_rd(slot, VM_STATUS) & ST_NEEDS_RESET) && used_idx() == 0;
}

/* The queue of a device that takes buffers for the device to fill (rng 0, net rx 0) or to read
 * (net tx 1); blk uses queue 0 with its own request layout. */
struct target {
	const char *name;
	uint64_t slot;
	uint32_t id;
	unsigned q;
	uint16_t buf_flags;  /* DESC_WRITE when the device writes the buffers */
};

/* A chain of one descriptor with the given fields, published and kicked. */
static void one(const struct target *t, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	h_set_desc(DESC, 0, addr, len, flags, next);
	publish(0);
	vm_wr(t->slot, VM_QUEUE_NOTIFY, t->q);
}

/* Sends a request the device accepts and waits until the used index reaches want. */
static bool good_request(const struct target *t, uint16_t want)
{
	if (t->id == ID_BLK) {
		volatile uint8_t *hdr = (volatile uint8_t *)BUF;
		for (unsigned i = 0; i < 16; i++)
			hdr[i] = 0;
		hdr[0] = 8; /* GET_ID */
		*(volatile uint8_t *)(BUF + 0x100) = 0xff;
		h_set_desc(DESC, 0, BUF, 16, DESC_NEXT, 1);
		h_set_desc(DESC, 1, BUF + 0x40, 20, DESC_NEXT | DESC_WRITE, 2);
		h_set_desc(DESC, 2, BUF + 0x100, 1, DESC_WRITE, 0);
		publish(0);
		vm_wr(t->slot, VM_QUEUE_NOTIFY, t->q);
	} else {
		one(t, BUF, 64, t->buf_flags, 0);
	}
	for (unsigned spin = 0; spin < 2000000 && used_idx() != want; spin++)
		;
	return used_idx() == want && !(vm_rd(t->slot, VM_STATUS) & ST_NEEDS_RESET);
}

/* A request the device accepts, to prove a reset brought it back. */
static bool healthy(const struct target *t)
{
	setup_ok(t->slot, t->q);
	return good_request(t, 1);
}

/* The used ring is the device's: a driver that scribbles on its index cannot make the device lose
 * count (it writes its own next index over the scribble). */
static void used_scribble(const struct target *t)
{
	setup_ok(t->slot, t->q);
	*(volatile uint16_t *)(USED + 2) = 500;
	check(t->name, "used index scribbled by the driver", good_request(t, 1));
}

static void attack(const struct target *t, const char *what, void (*fn)(const struct target *t))
{
	setup_ok(t->slot, t->q);
	fn(t);
	check(t->name, what, needs_reset(t->slot));
	check(t->name, "works after reset", healthy(t));
}

static void a_loop(const struct target *t)
{
	h_set_desc(DESC, 0, BUF, 8, t->buf_flags | DESC_NEXT, 1);
	h_set_desc(DESC, 1, BUF + 8, 8, t->buf_flags | DESC_NEXT, 0);
	publish(0);
	vm_wr(t->slot, VM_QUEUE_NOTIFY, t->q);
}
static void a_self(const struct target *t) { one(t, BUF, 8, t->buf_flags | DESC_NEXT, 0); }
static void a_indirect_self(const struct target *t) { one(t, DESC, 16, DESC_INDIRECT, 0); }
static void a_below_ram(const struct target *t) { one(t, 0x1000, 64, t->buf_flags, 0); }
static void a_straddle_end(const struct target *t) { one(t, H_RAM_END - 8, 16, t->buf_flags, 0); }
static void a_past_end(const struct target *t) { one(t, H_RAM_END, 1, t->buf_flags, 0); }
static void a_huge(const struct target *t) { one(t, H_RAM_BASE, 0xffffffffu, t->buf_flags, 0); }
static void a_wrap(const struct target *t) { one(t, 0xfffffffffffffff0ul, 0x20, t->buf_flags, 0); }
static void a_next_beyond(const struct target *t) { one(t, BUF, 8, t->buf_flags | DESC_NEXT, QSIZE); }
static void a_head_beyond(const struct target *t)
{
	h_set_desc(DESC, 0, BUF, 8, t->buf_flags, 0);
	publish(QSIZE + 3);
	vm_wr(t->slot, VM_QUEUE_NOTIFY, t->q);
}
static void a_avail_jump(const struct target *t)
{
	h_set_desc(DESC, 0, BUF, 8, t->buf_flags, 0);
	*(volatile uint16_t *)(AVAIL + 2) = 1000;
	vm_wr(t->slot, VM_QUEUE_NOTIFY, t->q);
}
static void a_long_chain(const struct target *t)
{
	/* QSIZE descriptors each naming the next, the last naming the first: a loop of the
	 * longest kind. */
	for (unsigned i = 0; i < QSIZE; i++)
		h_set_desc(DESC, i, BUF + 8 * i, 8, t->buf_flags | DESC_NEXT, (uint16_t)((i + 1) % QSIZE));
	publish(0);
	vm_wr(t->slot, VM_QUEUE_NOTIFY, t->q);
}
static void a_read_after_write(const struct target *t)
{
	h_set_desc(DESC, 0, BUF, 8, DESC_WRITE | DESC_NEXT, 1);
	h_set_desc(DESC, 1, BUF + 8, 8, 0, 0);
	publish(0);
	vm_wr(t->slot, VM_QUEUE_NOTIFY, t->q);
}

/* Queue programming that must be refused at QueueReady. */
static void queue_attack(const struct target *t, const char *what, uint32_t num, uint64_t desc, uint64_t avail,
			 uint64_t used)
{
	setup(t->slot, t->q, num, desc, avail, used);
	check(t->name, what, (vm_rd(t->slot, VM_STATUS) & ST_NEEDS_RESET) != 0);
	check(t->name, "works after reset", healthy(t));
}

/* Block requests: header (type, sector), data of len bytes, status byte. */
static uint8_t blk_request(const struct target *t, uint32_t type, uint64_t sector, uint32_t len, bool write_data,
			   uint32_t hdr_len)
{
	setup_ok(t->slot, t->q);
	volatile uint8_t *hdr = (volatile uint8_t *)BUF;
	for (unsigned i = 0; i < 16; i++)
		hdr[i] = 0;
	*(volatile uint32_t *)BUF = type;
	*(volatile uint64_t *)(BUF + 8) = sector;
	volatile uint8_t *status = (volatile uint8_t *)(BUF + 0x80);
	*status = 0xff;
	unsigned n = 0;
	h_set_desc(DESC, n, BUF, hdr_len, DESC_NEXT, (uint16_t)(n + 1));
	n++;
	if (len) {
		h_set_desc(DESC, n, H_RAM_BASE + 0x1000000, len, (write_data ? 0 : DESC_WRITE) | DESC_NEXT, (uint16_t)(n + 1));
		n++;
	}
	h_set_desc(DESC, n, BUF + 0x80, 1, DESC_WRITE, 0);
	publish(0);
	vm_wr(t->slot, VM_QUEUE_NOTIFY, t->q);
	for (unsigned spin = 0; spin < 2000000 && used_idx() == 0 && !(vm_rd(t->slot, VM_STATUS) & ST_NEEDS_RESET);
	     spin++)
		;
	if (vm_rd(t->slot, VM_STATUS) & ST_NEEDS_RESET)
		return 0x40;
	return used_idx() == 1 ? *status : 0xfe;
}

static void blk_attacks(const struct target *t)
{
	uint64_t capacity = *(volatile uint64_t *)(t->slot + VM_CONFIG);
	check(t->name, "read beyond capacity: IOERR", blk_request(t, 0, capacity, BLK_SECTOR, false, 16) == 1);
	check(t->name, "write straddling capacity: IOERR",
	      blk_request(t, 1, capacity - 1, 2 * BLK_SECTOR, true, 16) == 1);
	check(t->name, "sector 2^63: IOERR", blk_request(t, 0, 1ul << 63, BLK_SECTOR, false, 16) == 1);
	check(t->name, "half a sector: IOERR", blk_request(t, 0, 0, BLK_SECTOR / 2, false, 16) == 1);
	check(t->name, "16 MiB read: IOERR", blk_request(t, 0, 0, 16u << 20, false, 16) == 1);
	check(t->name, "no data: IOERR", blk_request(t, 0, 0, 0, false, 16) == 1);
	check(t->name, "unknown type: UNSUPP", blk_request(t, 0x7fffffff, 0, BLK_SECTOR, false, 16) == 2);
	check(t->name, "short header: needs reset", blk_request(t, 0, 0, BLK_SECTOR, false, 8) == 0x40);
	check(t->name, "read of one sector: OK", blk_request(t, 0, 0, BLK_SECTOR, false, 16) == 0);
	check(t->name, "works after reset", healthy(t));
}

static const struct chain_attack {
	const char *what;
	void (*fn)(const struct target *t);
	bool readable_only;  /* only for queues of device-readable buffers */
} chain_attacks[] = {
	{ "descriptor loop", a_loop, false },
	{ "descriptor naming itself", a_self, false },
	{ "indirect descriptor naming its own table", a_indirect_self, false },
	{ "buffer below RAM", a_below_ram, false },
	{ "buffer straddling the RAM end", a_straddle_end, false },
	{ "buffer past the RAM end", a_past_end, false },
	{ "4 GiB buffer", a_huge, false },
	{ "buffer wrapping the address space", a_wrap, false },
	{ "next beyond the queue", a_next_beyond, false },
	{ "head beyond the queue", a_head_beyond, false },
	{ "available index jump", a_avail_jump, false },
	{ "loop through the whole table", a_long_chain, false },
	{ "readable after writable", a_read_after_write, true },
};

static const struct queue_attack {
	const char *what;
	uint32_t num;
	uint64_t desc, avail, used;
} queue_attacks[] = {
	{ "queue size 0", 0, DESC, AVAIL, USED },
	{ "queue size 3", 3, DESC, AVAIL, USED },
	{ "queue size 512", 512, DESC, AVAIL, USED },
	{ "queue size 2^32-1", 0xffffffffu, DESC, AVAIL, USED },
	{ "descriptors below RAM", QSIZE, 0x1000, AVAIL, USED },
	{ "descriptors past RAM", QSIZE, H_RAM_END - 0x80, AVAIL, USED },
	{ "available ring at 2^64-8", QSIZE, DESC, 0xfffffffffffffff8ul, USED },
	{ "used ring in MMIO", QSIZE, DESC, AVAIL, H_UART },
	{ "misaligned descriptors", QSIZE, DESC + 8, AVAIL, USED },
};

static void run_target(const struct target *t)
{
	for (unsigned i = 0; i < sizeof(chain_attacks) / sizeof(chain_attacks[0]); i++)
		if (!chain_attacks[i].readable_only || t->buf_flags == 0)
			attack(t, chain_attacks[i].what, chain_attacks[i].fn);
	for (unsigned i = 0; i < sizeof(queue_attacks) / sizeof(queue_attacks[0]); i++) {
		const struct queue_attack *a = &queue_attacks[i];
		queue_attack(t, a->what, a->num, a->desc, a->avail, a->used);
	}
	used_scribble(t);
	/* Kicks of queues that do not exist are ignored. */
	setup_ok(t->slot, t->q);
	vm_wr(t->slot, VM_QUEUE_NOTIFY, 7);
	vm_wr(t->slot, VM_QUEUE_NOTIFY, 0xffffffffu);
	check(t->name, "kick of a missing queue ignored", !(vm_rd(t->slot, VM_STATUS) & ST_NEEDS_RESET));
	if (t->id == ID_BLK)
		blk_attacks(t);
	vm_wr(t->slot, VM_STATUS, 0);
}

int main(void)
{
	unsigned found = 0;
	for (unsigned s = 0; s < H_VIRTIO_SLOTS; s++) {
		uint64_t slot = H_VIRTIO + s * H_VIRTIO_SLOT_SIZE;
		if (vm_rd(slot, VM_MAGIC) != VIRTIO_MAGIC)
			continue;
		switch (vm_rd(slot, VM_DEVICE_ID)) {
		case ID_RNG:
			run_target(&(struct target){ "rng", slot, ID_RNG, 0, DESC_WRITE });
			found++;
			break;
		case ID_BLK:
			run_target(&(struct target){ "blk", slot, ID_BLK, 0, 0 });
			found++;
			break;
		case ID_NET:
			/* The receive queue is walked only when a frame arrives: transmit it is. */
			run_target(&(struct target){ "net-tx", slot, ID_NET, 1, 0 });
			found++;
			break;
		default:
			break;
		}
	}
	rt_puts("devices attacked: ");
	rt_puthex(found);
	rt_puts(" failures: ");
	rt_puthex(failures);
	rt_putc('\n');
	return failures ? 1 : found == 0 ? 2 : 0;
}
