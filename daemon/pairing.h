/*
 * pairing.h — FT pairing between host daemons (docs/daemon.md, "FT pairing"): `ftvm ft enable --vm
 * NAME --host B:PORT` on host A makes A's daemon send the VM's definition to the daemon of host B,
 * which defines it there as the pair's backup half and starts `ftvm spare` for it; A's daemon then
 * tells the running VM to clone itself to that spare (the VM's `ft enable`). `ft disable` drops the
 * backup and removes the half on B.
 *
 * The way back: B's half is given spares=A_HOST:SPARE_PORT (A's --pair-listen host, the same spare
 * port), so after a failover B's node restores redundancy to a spare on A as soon as one listens
 * there — which A's daemon starts when B's is told `ft enable --host A`.
 *
 * Daemons talk over the logging channel's machinery: TLS 1.3 keyed by a pairing key both hosts
 * hold (`ftvm keygen`), so no peer without the key learns anything or makes a daemon start
 * anything; the channel's listener handshakes up to 16 attempts at once with a deadline each, so
 * one bad peer blocks no other; accepted requests are served on threads of their own, a few at
 * once (more are refused as busy), so a silent peer that holds the key blocks no other either. One
 * request per connection: a JSON object in one record (at most PAIRING_MAX_REQUEST bytes); the
 * answer is the record's acknowledgement (done) or a refusal with its message.
 */
#ifndef FTVM_DAEMON_PAIRING_H
#define FTVM_DAEMON_PAIRING_H

#include <stddef.h>

#include "daemon/vmtab.h"
#include "util/compiler.h"

#define PAIRING_MAX_REQUEST (2 * 256 * 1024 + 4096)   /* a 256 KiB definition, JSON-escaped */

struct pairing;

/* Loads the pairing key from key_path and, with listen (HOST:PORT; NULL: none), serves other
 * daemons' requests on a thread of its own. */
int pairing_start(struct vmtab *t, const char *key_path, const char *listen, struct pairing **out, char *err,
		  size_t errlen) FTVM_MUST_CHECK;
void pairing_stop(struct pairing *p);

/* FT on for running VM name with the daemon at host (HOST:PORT): its spare listens on host's
 * address at spare_port. */
int pairing_enable(struct pairing *p, const char *name, const char *host, unsigned spare_port, char *err,
		   size_t errlen) FTVM_MUST_CHECK;
/* FT off for VM name, and its backup half removed from the daemon it was paired with. */
int pairing_disable(struct pairing *p, const char *name, char *err, size_t errlen) FTVM_MUST_CHECK;

#endif
