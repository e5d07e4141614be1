/*
 * run_options.c — parsing and resolving the VM options (see run_options.h).
 */
#include "cmd/run_options.h"
#include "cmd/domain_xml.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/nbd_uri.h"
#include "util/parse.h"

/* --cpu's default: the JIT on the hosts it emits code for (x86-64), the interpreter elsewhere. */
#if defined(__x86_64__)
#define RUN_DEFAULT_JIT true
#define RUN_DEFAULT_CPU_NAME "jit"
#else
#define RUN_DEFAULT_JIT false
#define RUN_DEFAULT_CPU_NAME "interp"
#endif

#ifndef FTVM_DEFAULT_GUEST_DIR
#define FTVM_DEFAULT_GUEST_DIR "build/guest"
#endif

/* QEMU's default MAC; the last byte counts NICs up. */
static const uint8_t default_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static void set_default_mac(uint8_t mac[6], unsigned index)
{
	memcpy(mac, default_mac, sizeof(default_mac));
	mac[5] = (uint8_t)(default_mac[5] + index);
}

enum {
	OPT_KERNEL = 256, OPT_INITRD, OPT_APPEND, OPT_BIOS, OPT_MEM, OPT_DISK, OPT_NIC, OPT_EXTRA,
	OPT_CLOCK, OPT_NO_REBOOT, OPT_RNG, OPT_NO_RNG, OPT_SEED, OPT_HELP, OPT_DOMAIN, OPT_CONNECT,
	OPT_CPU,
};

static const struct option long_options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "append", required_argument, NULL, OPT_APPEND },
	{ "bios", required_argument, NULL, OPT_BIOS },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "nic", required_argument, NULL, OPT_NIC },
	{ "extra-args", required_argument, NULL, OPT_EXTRA },
	{ "clock", required_argument, NULL, OPT_CLOCK },
	{ "no-reboot", no_argument, NULL, OPT_NO_REBOOT },
	{ "rng", no_argument, NULL, OPT_RNG },
	{ "no-rng", no_argument, NULL, OPT_NO_RNG },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "domain", required_argument, NULL, OPT_DOMAIN },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "cpu", required_argument, NULL, OPT_CPU },
	{ NULL, 0, NULL, 0 },
};

void run_options_help(FILE *out)
{
	fprintf(out,
		"  --domain FILE       the VM as a libvirt domain XML (riscv64 'virt'; memory, os kernel/\n"
		"                      initrd/cmdline/loader, virtio disks and interfaces, rng, FT settings\n"
		"                      in <metadata><ftvm:ft xmlns:ftvm=\"" DOMAIN_FT_NS "\">), instead of\n"
		"                      the options below up to --rng; see docs/domain-xml.md\n"
		"  --connect URI       libvirt connection for the domain's storage volumes and networks\n"
		"                      (default: libvirt's default URI)\n"
		"  --kernel K          Linux Image (or ELF) to boot; without it, the bundled guest from\n"
		"                      $FTVM_GUEST_DIR (default %s): Image, initramfs.cpio,\n"
		"                      fw_dynamic.bin, with a 64 MiB scratch disk when no --disk is given\n"
		"  --initrd I          initial ramdisk, placed like QEMU's -initrd\n"
		"  --append A          kernel command line (bundled guest default: \"%s\")\n"
		"  --extra-args S      appended to the kernel command line\n"
		"  --bios FW|none      firmware at 0x80000000 (default: the bundled guest's, else Debian's\n"
		"                      OpenSBI fw_dynamic.bin); 'none' runs --kernel (an ELF or raw image)\n"
		"                      in M-mode from reset, as qemu -bios none does\n"
		"  --mem MiB           guest RAM, %u..%u (default %u)\n"
		"  --disk PATH|URI     virtio-blk disk (repeatable, up to %u): a raw image file or block\n"
		"                      device, or an NBD export (nbd+unix:///EXPORT?socket=PATH,\n"
		"                      nbd://HOST[:PORT]/EXPORT) served by qemu-storage-daemon or qemu-nbd,\n"
		"                      for qcow2 and other formats (docs/disks.md)\n"
		"  --nic tap=IF[,mac=MAC]  virtio-net on TAP device IF (repeatable, up to %u)\n"
		"  --rng / --no-rng    attach virtio-rng (default: on)\n"
		"  --clock=wall|virtual  guest time follows the wall clock (default), or is a pure\n"
		"                      function of instructions: idle jumps to the next timer, disk\n"
		"                      requests complete at once, entropy comes from --seed; two runs are\n"
		"                      then bit-identical (tests, benchmarks)\n"
		"  --seed N            entropy seed for --clock=virtual (default 0)\n"
		"  --no-reboot         exit when the guest resets instead of rebooting it\n"
		"  --cpu interp|jit    how the hart runs guest code: the JIT (guest code translated to\n"
		"                      x86-64, docs/jit.md) or the interpreter (default here: " RUN_DEFAULT_CPU_NAME "); not\n"
		"                      guest-visible, so a log recorded with one replays with the other\n",
		FTVM_DEFAULT_GUEST_DIR, RUN_DEFAULT_APPEND, MACHINE_MIN_MEM_MIB, MACHINE_MAX_MEM_MIB,
		RUN_DEFAULT_MEM_MIB, MACHINE_MAX_DISKS, MACHINE_MAX_NICS);
}

const char *run_options_guest_dir(void)
{
	const char *dir = getenv("FTVM_GUEST_DIR");
	return dir && *dir ? dir : FTVM_DEFAULT_GUEST_DIR;
}

/* "tap=IFNAME[,mac=MAC]" */
static int parse_nic(const char *arg, struct run_nic *nic, unsigned index, char *err, size_t errlen)
{
	static char storage[MACHINE_MAX_NICS][64];
	set_default_mac(nic->mac, index);
	if (strncmp(arg, "tap=", 4) != 0) {
		snprintf(err, errlen, "--nic %s: expected tap=IFNAME[,mac=MAC]", arg);
		return -EINVAL;
	}
	const char *name = arg + 4;
	const char *comma = strchr(name, ',');
	size_t len = comma ? (size_t)(comma - name) : strlen(name);
	if (len == 0 || len >= 16) {
		snprintf(err, errlen, "--nic %s: interface name must be 1..15 characters", arg);
		return -EINVAL;
	}
	memcpy(storage[index], name, len);
	storage[index][len] = '\0';
	nic->ifname = storage[index];
	if (comma) {
		if (strncmp(comma + 1, "mac=", 4) != 0 || parse_mac(comma + 5, nic->mac)) {
			snprintf(err, errlen, "--nic %s: expected mac=xx:xx:xx:xx:xx:xx (unicast)", arg);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_one(struct run_options *o, int opt, const char *arg, char *err, size_t errlen)
{
	uint64_t v;
	switch (opt) {
	case OPT_KERNEL: o->kernel = arg; return 0;
	case OPT_INITRD: o->initrd = arg; return 0;
	case OPT_APPEND: o->append = arg; return 0;
	case OPT_EXTRA: o->extra_args = arg; return 0;
	case OPT_NO_REBOOT: o->no_reboot = true; return 0;
	case OPT_RNG: o->rng = true; return 0;
	case OPT_NO_RNG: o->rng = false; return 0;
	case OPT_HELP: o->help = true; return 0;
	case OPT_DOMAIN: o->domain = arg; return 0;
	case OPT_CONNECT: o->connect = arg; return 0;
	case OPT_BIOS:
		o->bios_none = strcmp(arg, "none") == 0;
		o->bios = o->bios_none ? NULL : arg;
		return 0;
	case OPT_MEM:
		if (parse_u64(arg, MACHINE_MIN_MEM_MIB, MACHINE_MAX_MEM_MIB, &v)) {
			snprintf(err, errlen, "--mem %s: expected a size in MiB from %u to %u", arg, MACHINE_MIN_MEM_MIB,
				 MACHINE_MAX_MEM_MIB);
			return -EINVAL;
		}
		o->mem_mib = v;
		return 0;
	case OPT_SEED:
		if (parse_u64(arg, 0, UINT64_MAX, &o->rng_seed)) {
			snprintf(err, errlen, "--seed %s: expected a non-negative integer", arg);
			return -EINVAL;
		}
		return 0;
	case OPT_CPU:
		if (strcmp(arg, "interp") == 0) {
			o->jit = false;
		} else if (strcmp(arg, "jit") == 0) {
			o->jit = true;
		} else {
			snprintf(err, errlen, "--cpu %s: expected interp or jit", arg);
			return -EINVAL;
		}
		return 0;
	case OPT_CLOCK:
		if (strcmp(arg, "wall") == 0) {
			o->clock = WORLD_CLOCK_WALL;
		} else if (strcmp(arg, "virtual") == 0) {
			o->clock = WORLD_CLOCK_VIRTUAL;
		} else {
			snprintf(err, errlen, "--clock %s: expected wall or virtual", arg);
			return -EINVAL;
		}
		return 0;
	case OPT_DISK:
		if (o->ndisks == MACHINE_MAX_DISKS) {
			snprintf(err, errlen, "--disk %s: at most %u disks", arg, MACHINE_MAX_DISKS);
			return -EINVAL;
		}
		if (nbd_uri_is_nbd(arg)) {
			int ret = nbd_uri_check(arg, err, errlen);
			if (ret < 0)
				return ret;
		}
		o->disk[o->ndisks++] = arg;
		return 0;
	case OPT_NIC:
		if (o->nnics == MACHINE_MAX_NICS) {
			snprintf(err, errlen, "--nic %s: at most %u NICs", arg, MACHINE_MAX_NICS);
			return -EINVAL;
		}
		if (parse_nic(arg, &o->nic[o->nnics], o->nnics, err, errlen))
			return -EINVAL;
		o->nnics++;
		return 0;
	}
	snprintf(err, errlen, "unknown option");
	return -EINVAL;
}

/* The domain's definition takes the place of the VM options (one domain per process). */
static int apply_domain(struct run_options *o, const char *given, char *err, size_t errlen)
{
	static struct domain_def dom;

	if (given) {
		snprintf(err, errlen, "%s: the domain XML defines the VM; edit it or drop --domain", given);
		return -EINVAL;
	}
	int rc = domain_load(o->domain, o->connect, &dom, err, errlen);
	if (rc < 0)
		return rc;
	o->dom = &dom;
	o->kernel = dom.kernel[0] ? dom.kernel : NULL;
	o->initrd = dom.initrd[0] ? dom.initrd : NULL;
	o->append = dom.cmdline[0] ? dom.cmdline : NULL;
	/* <loader>none</loader>: as --bios none, the kernel entered directly in M-mode. */
	o->bios_none = strcmp(dom.loader, "none") == 0;
	o->bios = dom.loader[0] && !o->bios_none ? dom.loader : NULL;
	o->mem_mib = dom.mem_mib;
	o->rng = dom.rng;
	o->ndisks = dom.ndisks;
	for (unsigned i = 0; i < dom.ndisks; i++)
		o->disk[i] = dom.disk[i];
	o->nnics = dom.nnics;
	for (unsigned i = 0; i < dom.nnics; i++) {
		o->nic[i].ifname = dom.nic[i].ifname;
		set_default_mac(o->nic[i].mac, i);
		if (dom.nic[i].has_mac)
			memcpy(o->nic[i].mac, dom.nic[i].mac, sizeof(o->nic[i].mac));
	}
	return 0;
}

int run_options_parse(int argc, char **argv, struct run_options *o, char *err, size_t errlen)
{
	const char *vm_option = NULL; /* a VM option given on the command line, for --domain */

	memset(o, 0, sizeof(*o));
	o->mem_mib = RUN_DEFAULT_MEM_MIB;
	o->rng = true;
	o->jit = RUN_DEFAULT_JIT;
	o->clock = WORLD_CLOCK_WALL;
	opterr = 0;
	optind = 1;
	for (;;) {
		int longindex = -1;
		int opt = getopt_long(argc, argv, "+h", long_options, &longindex);
		if (opt == -1)
			break;
		if (opt == 'h') {
			o->help = true;
			continue;
		}
		if (opt == '?' || opt == ':') {
			const char *bad = argv[optind - 1];
			if (optopt && optopt >= OPT_KERNEL)
				snprintf(err, errlen, "option %s needs a value", bad);
			else
				snprintf(err, errlen, "unknown option %s (see --help)", bad);
			return -EINVAL;
		}
		if (parse_one(o, opt, optarg, err, errlen))
			return -EINVAL;
		if ((opt >= OPT_KERNEL && opt <= OPT_NIC) || opt == OPT_RNG || opt == OPT_NO_RNG)
			vm_option = long_options[opt - OPT_KERNEL].name;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
		return -EINVAL;
	}
	if (o->connect && !o->domain) {
		snprintf(err, errlen, "--connect needs --domain");
		return -EINVAL;
	}
	if (o->domain) {
		char given[32];
		snprintf(given, sizeof(given), "--%s", vm_option ? vm_option : "");
		int rc = apply_domain(o, vm_option ? given : NULL, err, errlen);
		if (rc < 0)
			return rc;
	}
	if (o->bios_none && !o->kernel) {
		snprintf(err, errlen, "--bios none needs --kernel");
		return -EINVAL;
	}
	if (o->initrd && !o->kernel) {
		snprintf(err, errlen, "--initrd needs --kernel (the bundled guest brings its own)");
		return -EINVAL;
	}
	return 0;
}

static int need_file(const char *what, const char *path, char *err, size_t errlen)
{
	if (access(path, R_OK) != 0) {
		int e = errno;
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
		return -e;
	}
	return 0;
}

static int join_path(char *dst, const char *dir, const char *name, char *err, size_t errlen)
{
	if ((size_t)snprintf(dst, RUN_PATH_MAX, "%s/%s", dir, name) >= RUN_PATH_MAX) {
		snprintf(err, errlen, "path too long: %s", dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

int run_options_resolve(struct run_options *o, char *err, size_t errlen)
{
	int ret;
	const char *dir = run_options_guest_dir();
	o->bundled = o->kernel == NULL;
	o->kernel_path[0] = o->initrd_path[0] = o->bios_path[0] = '\0';
	if (o->bundled) {
		if ((ret = join_path(o->kernel_path, dir, "Image", err, errlen)) ||
		    (ret = join_path(o->initrd_path, dir, "initramfs.cpio", err, errlen)))
			return ret;
		if (access(o->kernel_path, R_OK) != 0) {
			snprintf(err, errlen, "no bundled guest in %s (build it with guest/build, set FTVM_GUEST_DIR, "
				 "or pass --kernel)", dir);
			return -ENOENT;
		}
	} else {
		snprintf(o->kernel_path, sizeof(o->kernel_path), "%s", o->kernel);
		if (o->initrd)
			snprintf(o->initrd_path, sizeof(o->initrd_path), "%s", o->initrd);
	}
	if (o->bios) {
		snprintf(o->bios_path, sizeof(o->bios_path), "%s", o->bios);
	} else if (!o->bios_none) {
		if ((ret = join_path(o->bios_path, dir, "fw_dynamic.bin", err, errlen)))
			return ret;
		if (access(o->bios_path, R_OK) != 0)
			snprintf(o->bios_path, sizeof(o->bios_path), "%s", RUN_DEBIAN_OPENSBI);
	}
	if ((ret = need_file("kernel", o->kernel_path, err, errlen)))
		return ret;
	if (o->initrd_path[0] && (ret = need_file("initrd", o->initrd_path, err, errlen)))
		return ret;
	if (o->bios_path[0] && (ret = need_file("firmware", o->bios_path, err, errlen)))
		return ret;
	const char *base = o->append ? o->append : o->bundled ? RUN_DEFAULT_APPEND : "";
	int n = snprintf(o->cmdline, sizeof(o->cmdline), "%s%s%s", base, *base && o->extra_args ? " " : "",
			 o->extra_args ? o->extra_args : "");
	if (n < 0 || (size_t)n >= sizeof(o->cmdline)) {
		snprintf(err, errlen, "kernel command line longer than %d bytes", RUN_CMDLINE_MAX - 1);
		return -E2BIG;
	}
	return 0;
}

void run_options_machine_config(const struct run_options *o, struct machine_config *mc)
{
	memset(mc, 0, sizeof(*mc));
	mc->bios = o->bios_path[0] ? o->bios_path : NULL;
	mc->kernel = o->kernel_path;
	mc->initrd = o->initrd_path[0] ? o->initrd_path : NULL;
	mc->append = o->cmdline[0] ? o->cmdline : NULL;
	mc->mem_mib = o->mem_mib;
	mc->nnics = o->nnics;
	for (unsigned i = 0; i < o->nnics; i++)
		memcpy(mc->nic_mac[i], o->nic[i].mac, sizeof(mc->nic_mac[i]));
	mc->rng = o->rng;
	mc->jit = o->jit;
}
