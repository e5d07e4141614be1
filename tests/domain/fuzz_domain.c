/*
 * fuzz_domain.c — libFuzzer target: any bytes as a domain XML file for domain_load() (the
 * `--domain` option). It must answer 0 or an error with a message, never crash, read out of
 * bounds or leak (ASan/UBSan); a definition it accepts must be within the machine's limits.
 * Volumes and networks resolve against libvirt's built-in test driver.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cmd/domain_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char path[64], err[512];
	struct domain_def *d = malloc(sizeof(*d));

	if (fd < 0)
		fd = memfd_create("domain.xml", 0);
	if (fd < 0 || !d || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	err[0] = '\0';
	int rc = domain_load(path, "test:///default", d, err, sizeof(err));
	if (rc < 0 && !err[0])
		abort(); /* every refusal says why */
	if (rc == 0 && (d->mem_mib < MACHINE_MIN_MEM_MIB || d->mem_mib > MACHINE_MAX_MEM_MIB ||
			d->ndisks > MACHINE_MAX_DISKS || d->nnics > MACHINE_MAX_NICS || !d->name[0]))
		abort();
	free(d);
	return 0;
}
