/*
 * orphans.c — the orphaned-request attack on virtio-blk: queue a flush and 1 MiB writes, reset
 * the device before they complete, and again, ROUNDS times. The flush makes the disk slow (it
 * waits for the previous round's writes to reach the medium), so without a bound the orphans
 * would pile up at the speed the guest can copy. Every reset orphans what the disk has
 * not finished; the device must keep the memory they hold bounded (the test measures ftvm's peak
 * RSS) and still serve the driver afterwards: the program ends with a write and a read back of
 * one sector, and exits through the finisher with 0 when they match.
 */
#include "hostile.h"

#define ROUNDS 150u
#define WRITES 8u                     /* per round, after a flush */
#define DISK_MIB 64u                  /* the disk run_hostile.py attaches */
#define QSIZE 32u
#define MIB (1u << 20)
#define BLK_SECTOR_BYTES 512u
#define DESC 0x80800000ul
#define AVAIL (DESC + 0x1000)
#define USED (DESC + 0x2000)
#define HDRS (DESC + 0x3000)          /* 16-byte headers, one per request */
#define STATUS (DESC + 0x4000)        /* status bytes */
#define DATA (DESC + 0x100000)        /* 1 MiB of data, shared by every write */

static uint64_t slot;

static void setup(void)
{
	vm_wr(slot, VM_STATUS, 0);
	for (uint64_t a = DESC; a < DESC + 0x3000; a += 8)
		*(volatile uint64_t *)a = 0;
	h_virtio_setup(slot, 0, QSIZE, DESC, AVAIL, USED);
}

/* Request r: header, data (none for len 0), status in descriptors 3r..3r+2. */
static void request(unsigned r, uint16_t avail_slot, uint32_t type, uint64_t sector, uint32_t len)
{
	volatile uint8_t *hdr = (volatile uint8_t *)(HDRS + 16ul * r);
	for (unsigned i = 0; i < 16; i++)
		hdr[i] = 0;
	hdr[0] = (uint8_t)type;
	*(volatile uint64_t *)(hdr + 8) = sector;
	*(volatile uint8_t *)(STATUS + r) = 0xff;
	uint16_t d = (uint16_t)(3 * r);
	h_set_desc(DESC, d, HDRS + 16ul * r, 16, DESC_NEXT, (uint16_t)(d + (len ? 1 : 2)));
	h_set_desc(DESC, d + 1u, DATA, len, (type == 0 ? DESC_WRITE : 0) | DESC_NEXT, (uint16_t)(d + 2));
	h_set_desc(DESC, d + 2u, STATUS + r, 1, DESC_WRITE, 0);
	volatile uint16_t *avail = (volatile uint16_t *)AVAIL;
	avail[2 + avail_slot] = d;
	__asm__ volatile("fence" ::: "memory");
	avail[1] = (uint16_t)(avail_slot + 1);
}

static bool wait_used(uint16_t n)
{
	for (unsigned spin = 0; spin < 50000000; spin++)
		if (*(volatile uint16_t *)(USED + 2) == n)
			return true;
	return false;
}

int main(void)
{
	slot = h_find_virtio(ID_BLK);
	if (!slot) {
		rt_puts("no virtio-blk\n");
		return 2;
	}
	for (uint64_t a = DATA; a < DATA + MIB; a += 8)
		*(volatile uint64_t *)a = a * 0x9e3779b97f4a7c15ul;
	for (unsigned round = 0; round < ROUNDS; round++) {
		setup();
		request(0, 0, 4, 0, 0);
		for (unsigned r = 1; r <= WRITES; r++)
			request(r, (uint16_t)r, 1, (uint64_t)((round * WRITES + r) % DISK_MIB) * (MIB / BLK_SECTOR_BYTES),
				MIB);
		vm_wr(slot, VM_QUEUE_NOTIFY, 0);
	}
	/* The device still works: write a sector, read it back. */
	setup();
	*(volatile uint64_t *)DATA = 0x0123456789abcdeful;
	request(0, 0, 1, 8, BLK_SECTOR_BYTES);
	vm_wr(slot, VM_QUEUE_NOTIFY, 0);
	bool wrote = wait_used(1) && *(volatile uint8_t *)STATUS == 0;
	*(volatile uint64_t *)DATA = 0;
	request(1, 1, 0, 8, BLK_SECTOR_BYTES);
	vm_wr(slot, VM_QUEUE_NOTIFY, 0);
	bool read = wait_used(2) && *(volatile uint8_t *)(STATUS + 1) == 0;
	bool same = *(volatile uint64_t *)DATA == 0x0123456789abcdeful;
	rt_puts(wrote ? "write ok\n" : "write FAILED\n");
	rt_puts(read && same ? "read back ok\n" : "read back FAILED\n");
	vm_wr(slot, VM_STATUS, 0);
	return wrote && read && same ? 0 : 1;
}
