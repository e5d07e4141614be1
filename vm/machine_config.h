/*
 * machine_config.h — what a machine is built from (machine_create()): firmware, kernel, initrd,
 * command line, memory and devices. Apart from machine.h so that the boot loader, which reads
 * it, does not depend on the machine that calls it.
 */
#ifndef FTVM_VM_MACHINE_CONFIG_H
#define FTVM_VM_MACHINE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define MACHINE_MAX_DISKS 4
#define MACHINE_MAX_NICS 4
#define MACHINE_MIN_MEM_MIB 16
#define MACHINE_MAX_MEM_MIB 16384

struct machine_config {
	const char *bios;         /* firmware image, or NULL for none (kernel runs in M-mode from reset) */
	const char *kernel;       /* Linux Image, or a bare-metal ELF when bios is NULL */
	const char *initrd;       /* may be NULL */
	const char *append;       /* kernel command line, may be NULL */
	uint64_t mem_mib;
	unsigned ndisks;
	uint64_t disk_bytes[MACHINE_MAX_DISKS];   /* capacity of each virtio-blk disk */
	bool disk_read_only[MACHINE_MAX_DISKS];
	unsigned nnics;
	uint8_t nic_mac[MACHINE_MAX_NICS][6];
	bool rng;                 /* attach virtio-rng */
	/* Not guest-visible, so not in the configuration digest: a log recorded with either engine
	 * replays with the other. */
	bool jit;                 /* run translated code (vm/jit.h) instead of the interpreter alone */
};

#endif
