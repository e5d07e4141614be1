/*
 * board.h — the one table that wires the board (a subset of QEMU's riscv64 `virt`).
 *
 * Every device's address, size and interrupt line lives in board_devices[]; machine.c registers
 * the bus regions from it and board_build_fdt() generates the device tree from the same entries,
 * so the map the guest is told about is the map it gets. Addresses and IRQs match QEMU's `virt`
 * so that the same firmware and kernel run unchanged and QEMU can serve as the reference.
 */
#ifndef FTVM_VM_BOARD_H
#define FTVM_VM_BOARD_H

#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"

#define BOARD_RESET_PC 0x1000u            /* reset ROM (mrom) */
#define BOARD_ROM_SIZE 0x1000u
#define BOARD_RAM_BASE 0x80000000ull
#define BOARD_KERNEL_OFFSET 0x200000ull   /* kernel at RAM + 2 MiB when firmware runs first */
#define BOARD_VIRTIO_SLOTS 8u
#define BOARD_PLIC_SOURCES 96u            /* source 0 is "no interrupt"; 1..95 usable */
#define BOARD_PLIC_CONTEXTS 2u            /* hart 0 M-mode, hart 0 S-mode */
#define BOARD_UART_CLOCK_HZ 3686400u      /* what QEMU advertises for its ns16550a */
#define BOARD_ISA "rv64imafdc"
#define BOARD_MMU_TYPE "riscv,sv39"

/* Finisher values (sifive,test): what the guest writes to power off, fail or reset. */
#define BOARD_FINISHER_PASS 0x5555u
#define BOARD_FINISHER_FAIL 0x3333u
#define BOARD_FINISHER_RESET 0x7777u

enum board_device_kind {
	BOARD_ROM,
	BOARD_FINISHER,
	BOARD_CLINT,
	BOARD_PLIC,
	BOARD_UART,
	BOARD_VIRTIO,   /* BOARD_VIRTIO_SLOTS slots, base + i * size, irq + i */
};

struct board_device {
	enum board_device_kind kind;
	const char *name;       /* bus region name and device tree node name */
	uint64_t base;
	uint64_t size;
	unsigned irq;           /* PLIC source, 0 for none */
};

extern const struct board_device board_devices[];
extern const size_t board_ndevices;

/* The table entry of a kind (each kind appears once). */
const struct board_device *board_device_of(enum board_device_kind kind);

/* What the device tree describes beyond the fixed table. */
struct board_fdt_params {
	uint64_t ram_size;
	const char *bootargs;         /* NULL for none */
	uint64_t initrd_start;        /* both 0 for no initrd */
	uint64_t initrd_end;
};

/* Writes the flattened device tree into buf (bufsize bytes, packed on success); -ENOSPC or -EINVAL. */
int board_build_fdt(const struct board_fdt_params *p, void *buf, size_t bufsize) FTVM_MUST_CHECK;

#endif
