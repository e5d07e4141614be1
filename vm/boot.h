/*
 * boot.h — power-on images, placed as `qemu-system-riscv64 -M virt` places them.
 *
 *   reset ROM at 0x1000: a0 = mhartid, a1 = DTB address, a2 = &fw_dynamic_info, jump to start
 *   firmware (raw, e.g. OpenSBI fw_dynamic.bin) at 0x80000000
 *   kernel at the first 2 MiB boundary after the firmware (0x80200000), or at 0x80000000 with no
 *     firmware; an ELF goes to its own physical addresses and starts at its entry point
 *   initrd at kernel + min(RAM / 2, 128 MiB)
 *   DTB at the top of RAM (below 3 GiB), aligned down to 2 MiB, with room above it to grow
 *
 * The fw_dynamic_info block tells OpenSBI where the kernel is and that it runs in S-mode.
 * Every byte loaded is folded into a digest so the machine can name its configuration.
 */
#ifndef FTVM_VM_BOOT_H
#define FTVM_VM_BOOT_H

#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>
#include "util/compiler.h"
#include "vm/bus.h"
#include "vm/machine_config.h"

struct boot_layout {
	uint64_t start;           /* where the reset ROM jumps: firmware, or the kernel without one */
	uint64_t kernel;          /* load address or ELF entry of the kernel, 0 without one */
	uint64_t initrd_start;    /* 0 and 0 without an initrd */
	uint64_t initrd_end;
	uint64_t fdt;
	uint32_t fdt_size;
	/* XXH3-64 of each image (0 for one not loaded), so a saved state can name which one differs. */
	uint64_t bios_digest, kernel_digest, initrd_digest, fdt_digest;
};

/* Loads firmware, kernel, initrd and the device tree into RAM and writes the reset ROM (rom_size
 * bytes at BOARD_RESET_PC). Returns 0, or -errno with a one-line reason in err. */
int boot_load(struct vm_bus *bus, uint8_t *rom, size_t rom_size, const struct machine_config *config,
	      XXH3_state_t *digest, struct boot_layout *layout, char *err, size_t errlen) FTVM_MUST_CHECK;

#endif
