/*
 * run_options.h — the options that describe a VM to run, shared by `ftvm run` and the subcommands
 * that run a VM too (record, replay): kernel, firmware, memory, disks, NICs, clock.
 *
 * run_options_parse() only parses and validates the syntax; run_options_resolve() then fills in
 * the bundled guest and the default firmware, and builds the kernel command line. Errors are one
 * line in err; nothing here exits the process.
 */
#ifndef FTVM_CMD_RUN_OPTIONS_H
#define FTVM_CMD_RUN_OPTIONS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "util/compiler.h"
#include "vm/machine.h"
#include "host/world_live.h"

#define RUN_DEFAULT_MEM_MIB 256
#define RUN_DEFAULT_APPEND "console=ttyS0 panic=1"
#define RUN_SCRATCH_DISK_BYTES (64ull << 20)
#define RUN_PATH_MAX PATH_MAX
#define RUN_CMDLINE_MAX 2048
#define RUN_DEBIAN_OPENSBI "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"

struct run_nic {
	const char *ifname;
	uint8_t mac[6];
};

struct domain_def;

struct run_options {
	const char *domain;        /* --domain FILE: a libvirt domain XML (cmd/domain_xml.h) */
	const char *connect;       /* --connect URI: libvirt, for the domain's volumes and networks */
	const struct domain_def *dom; /* the loaded domain, or NULL */
	const char *kernel;
	const char *initrd;
	const char *append;
	const char *bios;          /* NULL: default firmware */
	bool bios_none;            /* --bios none */
	const char *extra_args;
	uint64_t mem_mib;
	unsigned ndisks;
	const char *disk[MACHINE_MAX_DISKS];
	unsigned nnics;
	struct run_nic nic[MACHINE_MAX_NICS];
	enum world_clock_mode clock;
	bool no_reboot;
	bool rng;
	bool jit;                  /* --cpu jit (RUN_DEFAULT_JIT unless given) */
	uint64_t rng_seed;
	bool help;

	/* Filled by run_options_resolve(). */
	bool bundled;              /* no --kernel: the bundled guest */
	char kernel_path[RUN_PATH_MAX];
	char initrd_path[RUN_PATH_MAX];
	char bios_path[RUN_PATH_MAX];
	char cmdline[RUN_CMDLINE_MAX];
};

/*
 * Parses argv[1..] (argv[0] is the subcommand) and loads --domain (after which only
 * --extra-args, --clock, --seed, --cpu and --no-reboot may be given besides). 0, or -EINVAL / -ENOENT
 * with a one-line reason in err.
 */
int run_options_parse(int argc, char **argv, struct run_options *o, char *err, size_t errlen) FTVM_MUST_CHECK;
/* Bundled guest, default firmware and command line; checks that the files exist. */
int run_options_resolve(struct run_options *o, char *err, size_t errlen) FTVM_MUST_CHECK;
/* The machine configuration for resolved options (disk sizes come from the opened back ends). */
void run_options_machine_config(const struct run_options *o, struct machine_config *mc);
/* The option reference, for the subcommands' --help. */
void run_options_help(FILE *out);
/* The directory of the bundled guest: $FTVM_GUEST_DIR or the build-time default. */
const char *run_options_guest_dir(void);

#endif
