/*
 * domain_doc.h — a VM definition as the daemon keeps it: the domain XML text, checked by the same
 * loader `ftvm run --domain` uses (cmd/domain_xml.c), with its <uuid> made explicit (a missing one
 * is generated, RFC 4122 version 4) so that the stored definition names the VM for good.
 */
#ifndef FTVM_DAEMON_DOMAIN_DOC_H
#define FTVM_DAEMON_DOMAIN_DOC_H

#include <stddef.h>
#include <stdint.h>
#include "common/control.h"
#include "util/compiler.h"

#define DOMAIN_DOC_MAX CONTROL_DEFINE_MAX   /* bytes of one definition */

/* The FT settings `ftvm run` takes from its command line only (not from --domain): given to it
 * so FT can be enabled on the running VM later. Empty strings where the definition is silent. */
struct domain_run_ft {
	char arbiter[4096], channel_key[4096];
	char disk_mode[16], timeout_ms[16], heartbeat_ms[16];
};

/* The run_ft arguments into argv (room for DOMAIN_RUN_FT_ARGS + 1 pointers, NULL-terminated). */
#define DOMAIN_RUN_FT_ARGS 10
void domain_run_ft_argv(const struct domain_run_ft *f, const char **argv);

struct domain_doc {
	char name[64];
	uint8_t uuid[16];
	uint64_t mem_kib;
	char role[16];                 /* the ftvm command it runs under: "primary" when its FT settings
					* name a peer, "backup" when they name only a listen address, else "run" */
	char *xml;                     /* the definition with its <uuid> (malloc'd, NUL-terminated) */
	struct domain_run_ft *run_ft;  /* role "run" with FT settings (malloc'd), else NULL */
};

/*
 * Parses xml (len bytes), checks it with domain_load() through a scratch file in dir, and fills
 * doc (domain_doc_free() releases it). 0, or -EINVAL with one line in err.
 */
int domain_doc_parse(const char *xml, size_t len, const char *dir, struct domain_doc *doc, char *err,
		     size_t errlen) FTVM_MUST_CHECK;
void domain_doc_free(struct domain_doc *doc);

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into out (37 bytes); and back (0 or -EINVAL). */
void domain_uuid_format(const uint8_t uuid[16], char out[37]);
int domain_uuid_parse(const char *s, uint8_t uuid[16]) FTVM_MUST_CHECK;

#endif
