/*
 * domain_xml.h — a VM described as a libvirt domain XML file (DESIGN.md §6): `--domain FILE` in
 * place of --kernel/--mem/--disk/--nic..., so the same definition that libvirt would boot under
 * QEMU (riscv64, machine `virt`, virtio-mmio devices) boots under ftvm, with the FT settings in a
 * <metadata> element of our own namespace. What is read, and what is refused:
 *
 *   <name>                         the VM's name (the FT --vm default)
 *   <memory unit=...>              guest RAM (whole MiB)
 *   <vcpu>                         must be 1 (ftvm runs one hart)
 *   <os><type arch='riscv64' machine='virt'>   anything else is refused
 *   <os><kernel|initrd|cmdline|loader>         like --kernel/--initrd/--append/--bios
 *   <devices><disk device='disk'>  type='file' (source file), 'block' (source dev), 'volume'
 *                                  (source pool + volume, resolved through the libvirt API) or
 *                                  'network' (source protocol='nbd' name=EXPORT with one <host
 *                                  transport='unix' socket=PATH> or <host name= port=>, made into
 *                                  an NBD URI); target bus must be virtio, driver type raw if given
 *   <devices><interface>           a TAP device named by <target dev>; type 'ethernet', 'bridge'
 *                                  (<source bridge>) or 'network' (<source network>, whose bridge
 *                                  the libvirt API names); for the last two the TAP must already
 *                                  be a port of that bridge; <mac address>; model virtio
 *   <devices><rng model='virtio'>  virtio-rng (without it: none)
 *   <devices><hostdev|graphics|video|sound|filesystem|smartcard>   refused: ftvm has no such device
 *   <metadata><ftvm:ft xmlns:ftvm="urn:x-ftvm:ft:1" arbiter= epoch= timeout-ms= heartbeat-ms=
 *                      max-lag-ms= log-transport= peer= listen= control=/>
 *
 * The libvirt connection (for volumes and networks) is opened only when the domain refers to one:
 * --connect URI, else libvirt's default (LIBVIRT_DEFAULT_URI, ...); the test driver
 * (test:///path/node.xml) serves the tests.
 */
#ifndef FTVM_CMD_DOMAIN_XML_H
#define FTVM_CMD_DOMAIN_XML_H

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/compiler.h"
#include "vm/machine.h"

#define DOMAIN_FT_NS "urn:x-ftvm:ft:1"
#define DOMAIN_STR_MAX 256
#define DOMAIN_PATH_MAX PATH_MAX  /* a file name from the XML, with its NUL */
#define DOMAIN_CMDLINE_MAX 2048  /* <cmdline>, with its NUL */

struct domain_nic {
	char ifname[IFNAMSIZ];
	uint8_t mac[6];
	bool has_mac;
};

/* FT settings from <metadata><ftvm:ft>; empty strings / has_* false where absent. */
struct domain_ft {
	bool present;
	char arbiter[DOMAIN_PATH_MAX];
	char peer[DOMAIN_STR_MAX];
	char listen[DOMAIN_STR_MAX];
	char control[DOMAIN_PATH_MAX];
	char log_transport[16];
	char disk_mode[16];           /* "replicated", "shared" or "" (not given) */
	char channel_key[DOMAIN_PATH_MAX];
	bool has_epoch, has_timeout, has_heartbeat, has_max_lag;
	uint64_t epoch;
	unsigned timeout_ms, heartbeat_ms, max_lag_ms;
};

struct domain_def {
	char name[64];
	uint64_t mem_mib;
	char kernel[DOMAIN_PATH_MAX];
	char initrd[DOMAIN_PATH_MAX];
	char cmdline[DOMAIN_CMDLINE_MAX];
	char loader[DOMAIN_PATH_MAX];
	unsigned ndisks;
	char disk[MACHINE_MAX_DISKS][DOMAIN_PATH_MAX];
	unsigned nnics;
	struct domain_nic nic[MACHINE_MAX_NICS];
	bool rng;
	struct domain_ft ft;
};

/*
 * Read and check @path; resolve volumes and networks through libvirt at @connect_uri (NULL: the
 * default). 0, or -EINVAL / -ENOENT with one line in @err naming the element at fault.
 */
int domain_load(const char *path, const char *connect_uri, struct domain_def *d, char *err,
		size_t errlen) FTVM_MUST_CHECK;

#endif
