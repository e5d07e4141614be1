/*
 * control.h — the per-VM JSON control socket (a Unix stream socket).
 *
 * Protocol: the client sends one JSON object per line, e.g. {"cmd":"status"}; the server answers
 * one JSON object per line: {"ok":true, ...fields...} or {"ok":false,"error":"..."}. Commands:
 *   status  — role, state, epoch, icount, backup lag, log traffic, outputs held, peer state,
 *             failovers (fields in docs/control.md).
 * Requests are capped at CONTROL_MAX_REQUEST bytes; anything malformed gets an error answer and
 * never disturbs the VM. The server runs on its own thread and reads the node's status through a
 * callback; reading never resets any counter.
 */
#ifndef FTVM_COMMON_CONTROL_H
#define FTVM_COMMON_CONTROL_H

#include <stddef.h>
#include "common/ft_status.h"
#include "util/compiler.h"

#define CONTROL_MAX_REQUEST 4096
#define CONTROL_DEFAULT_DIR "/run/ftvm"

struct control_server;

typedef void control_status_fn(void *ctx, struct ft_status *st);

/* Listens on `path` (replacing a stale socket file) and serves until control_stop(). */
int control_start(const char *path, control_status_fn *status, void *ctx, struct control_server **out,
		  char *err, size_t errlen) FTVM_MUST_CHECK;
void control_stop(struct control_server *srv);

/* Client: sends {"cmd":cmd} to the socket at path and returns the answer (caller frees) or NULL
 * with a message. */
char *control_request(const char *path, const char *cmd, char *err, size_t errlen);

/* The status as a JSON object string (caller frees), as the server sends it. */
char *control_status_json(const struct ft_status *st, double log_mbit_s);

#endif
