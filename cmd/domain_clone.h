/*
 * domain_clone.h — a new domain XML from an existing one (`ftvm clone --domain`, cmd_clone.c):
 * a new name, no uuid, a new locally administered MAC on every interface, and optionally each
 * disk pointed at a new file or NBD URI. Everything else is kept as written.
 */
#ifndef FTVM_CMD_DOMAIN_CLONE_H
#define FTVM_CMD_DOMAIN_CLONE_H

#include <stddef.h>
#include "util/compiler.h"
#include "vm/machine.h"

#define DOMAIN_CLONE_MAX_DISKS MACHINE_MAX_DISKS
#define DOMAIN_CLONE_NAME_MAX 64u

struct domain_clone_request {
	const char *src;                 /* the domain XML to clone */
	const char *dst;                 /* the new file; must not exist */
	const char *name;                /* NULL: dst's base name without ".xml" */
	const char *disk[DOMAIN_CLONE_MAX_DISKS];
	unsigned ndisks;                 /* 0: disks kept; else one per <disk>, in order */
};

/* 0 with a one-line summary of what was written in msg; -EINVAL (a bad request or source
 * domain) or another -errno with the reason in msg. */
int domain_clone(const struct domain_clone_request *req, char *msg, size_t msglen) FTVM_MUST_CHECK;

#endif
