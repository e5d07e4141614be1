/*
 * json_api.h — the daemon's JSON socket: the table's verbs (vmtab.h) for `ftvm define`, `ftvm
 * list`, ... and scripts. It is served by common/control.c, so it has that socket's promises
 * (docs/control.md: one JSON object per line each way, owner-only mode or a control group,
 * SO_PEERCRED checked, bounded clients, slow or silent clients dropped), with room for a domain
 * definition in a request. The verbs and their answers are in docs/daemon.md.
 */
#ifndef FTVM_DAEMON_JSON_API_H
#define FTVM_DAEMON_JSON_API_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "util/compiler.h"

#define JSON_API_EVENTS 256   /* the last events kept for the `events` verb */

struct vmtab;
struct json_api;
struct pairing;

/* pair: the daemon-to-daemon side for the `ft` verb (NULL: no --pair-key, `ft` refused). */
int json_api_start(struct vmtab *t, struct pairing *pair, const char *path, bool has_group, gid_t group,
		   struct json_api **out, char *err, size_t errlen) FTVM_MUST_CHECK;
void json_api_stop(struct json_api *api);

#endif
