/*
 * hostile.h — what the hostile-guest programs share: the board's addresses, sized MMIO accesses
 * that may fault (the runtime's trap handler counts the fault and skips the instruction), and a
 * minimal virtio-mmio driver whose every step can be made wrong on purpose.
 */
#ifndef FTVM_TESTS_HOSTILE_H
#define FTVM_TESTS_HOSTILE_H

#include <stdbool.h>
#include <stdint.h>
#include "rt.h"

#define H_RAM_BASE 0x80000000ul
#define H_RAM_END 0x90000000ul    /* ftvm run's default 256 MiB */
#define H_FINISHER 0x100000ul
#define H_CLINT 0x2000000ul
#define H_CLINT_SIZE 0x10000ul
#define H_PLIC 0xc000000ul
#define H_PLIC_SIZE 0x600000ul
#define H_UART 0x10000000ul
#define H_UART_SIZE 0x100ul
#define H_VIRTIO 0x10001000ul
#define H_VIRTIO_SLOTS 8u
#define H_VIRTIO_SLOT_SIZE 0x1000ul

/* virtio-mmio registers and values (virtio 1.2 §4.2.2, §2.7). */
enum {
	VM_MAGIC = 0x000, VM_VERSION = 0x004, VM_DEVICE_ID = 0x008, VM_DEV_FEATURES = 0x010,
	VM_DEV_FEATURES_SEL = 0x014, VM_DRV_FEATURES = 0x020, VM_DRV_FEATURES_SEL = 0x024,
	VM_QUEUE_SEL = 0x030, VM_QUEUE_NUM_MAX = 0x034, VM_QUEUE_NUM = 0x038, VM_QUEUE_READY = 0x044,
	VM_QUEUE_NOTIFY = 0x050, VM_INT_STATUS = 0x060, VM_INT_ACK = 0x064, VM_STATUS = 0x070,
	VM_DESC_LO = 0x080, VM_DESC_HI = 0x084, VM_DRIVER_LO = 0x090, VM_DRIVER_HI = 0x094,
	VM_DEVICE_LO = 0x0a0, VM_DEVICE_HI = 0x0a4, VM_CONFIG = 0x100,
};
#define VIRTIO_MAGIC 0x74726976u
enum { ST_ACK = 1, ST_DRIVER = 2, ST_DRIVER_OK = 4, ST_FEATURES_OK = 8, ST_NEEDS_RESET = 0x40 };
enum { DESC_NEXT = 1, DESC_WRITE = 2, DESC_INDIRECT = 4 };
enum { ID_NET = 1, ID_BLK = 2, ID_RNG = 4 };

/* Loads and stores of 1, 2, 4 or 8 bytes; a faulting load returns the poison value. */
static inline uint64_t h_read(uint64_t addr, unsigned size)
{
	uint64_t v = 0x5a5a5a5a5a5a5a5aul;
	switch (size) {
	case 1: __asm__ volatile("lbu %0, 0(%1)" : "+r"(v) : "r"(addr) : "memory"); break;
	case 2: __asm__ volatile("lhu %0, 0(%1)" : "+r"(v) : "r"(addr) : "memory"); break;
	case 4: __asm__ volatile("lwu %0, 0(%1)" : "+r"(v) : "r"(addr) : "memory"); break;
	default: __asm__ volatile("ld %0, 0(%1)" : "+r"(v) : "r"(addr) : "memory"); break;
	}
	return v;
}

static inline void h_write(uint64_t addr, unsigned size, uint64_t v)
{
	switch (size) {
	case 1: __asm__ volatile("sb %0, 0(%1)" ::"r"(v), "r"(addr) : "memory"); break;
	case 2: __asm__ volatile("sh %0, 0(%1)" ::"r"(v), "r"(addr) : "memory"); break;
	case 4: __asm__ volatile("sw %0, 0(%1)" ::"r"(v), "r"(addr) : "memory"); break;
	default: __asm__ volatile("sd %0, 0(%1)" ::"r"(v), "r"(addr) : "memory"); break;
	}
}

static inline uint32_t vm_rd(uint64_t slot, unsigned off)
{
	return (uint32_t)h_read(slot + off, 4);
}

static inline void vm_wr(uint64_t slot, unsigned off, uint32_t v)
{
	h_write(slot + off, 4, v);
}

/* Writes descriptor i of the table at `table`. */
static inline void h_set_desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
			      uint16_t next)
{
	volatile uint8_t *d = (volatile uint8_t *)(table + 16ul * i);
	*(volatile uint64_t *)d = addr;
	*(volatile uint32_t *)(d + 8) = len;
	*(volatile uint16_t *)(d + 12) = flags;
	*(volatile uint16_t *)(d + 14) = next;
}

/* Reset the device, negotiate VERSION_1 only, program queue q with the given size and rings
 * (whatever they are), set DRIVER_OK. */
static inline void h_virtio_setup(uint64_t slot, unsigned q, uint32_t num, uint64_t desc, uint64_t avail,
				  uint64_t used)
{
	vm_wr(slot, VM_STATUS, 0);
	vm_wr(slot, VM_STATUS, ST_ACK | ST_DRIVER);
	vm_wr(slot, VM_DRV_FEATURES_SEL, 1);
	vm_wr(slot, VM_DRV_FEATURES, 1); /* VIRTIO_F_VERSION_1 */
	vm_wr(slot, VM_DRV_FEATURES_SEL, 0);
	vm_wr(slot, VM_DRV_FEATURES, 0);
	vm_wr(slot, VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	vm_wr(slot, VM_QUEUE_SEL, q);
	vm_wr(slot, VM_QUEUE_NUM, num);
	vm_wr(slot, VM_DESC_LO, (uint32_t)desc);
	vm_wr(slot, VM_DESC_HI, (uint32_t)(desc >> 32));
	vm_wr(slot, VM_DRIVER_LO, (uint32_t)avail);
	vm_wr(slot, VM_DRIVER_HI, (uint32_t)(avail >> 32));
	vm_wr(slot, VM_DEVICE_LO, (uint32_t)used);
	vm_wr(slot, VM_DEVICE_HI, (uint32_t)(used >> 32));
	vm_wr(slot, VM_QUEUE_READY, 1);
	vm_wr(slot, VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
}

/* The first virtio-mmio slot holding a device of the given id, or 0. */
static inline uint64_t h_find_virtio(uint32_t id)
{
	for (unsigned s = 0; s < H_VIRTIO_SLOTS; s++) {
		uint64_t slot = H_VIRTIO + s * H_VIRTIO_SLOT_SIZE;
		if (vm_rd(slot, VM_MAGIC) == VIRTIO_MAGIC && vm_rd(slot, VM_DEVICE_ID) == id)
			return slot;
	}
	return 0;
}

#endif
