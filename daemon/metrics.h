/*
 * metrics.h — the daemon's Prometheus endpoint: http://HOST:PORT/metrics in the text exposition
 * format 0.0.4, served by libmicrohttpd. Every scrape reads the table and each running VM's status
 * afresh (reading never resets anything). The series, their labels and units are in docs/daemon.md.
 */
#ifndef FTVM_DAEMON_METRICS_H
#define FTVM_DAEMON_METRICS_H

#include <stddef.h>
#include "util/compiler.h"

struct vmtab;
struct metrics;

/* Listens on addr ("HOST:PORT", HOST an IPv4 address or a name; port 0 is refused). */
int metrics_start(struct vmtab *t, const char *addr, struct metrics **out, char *err, size_t errlen) FTVM_MUST_CHECK;
void metrics_stop(struct metrics *m);
/* The exposition text (caller frees), as served. */
char *metrics_render(struct vmtab *t);

#endif
