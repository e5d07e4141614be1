/*
 * control.h — the per-VM JSON control socket (a Unix stream socket). The protocol, every command
 * and field, the errors, limits and permissions are specified in docs/control.md.
 *
 * Protocol: the client sends one JSON object per line, e.g. {"cmd":"status"}; the server answers
 * each with one JSON object per line: {"ok":true, ...fields...} or {"ok":false,"error":"..."}.
 * Anything malformed gets an error answer and never disturbs the VM.
 *
 * Server: one thread polls the listening socket and up to CONTROL_MAX_CLIENTS clients, all
 * non-blocking. A client has CONTROL_REQUEST_TIMEOUT_MS from its connection, or from the moment
 * its previous answer was delivered, to deliver its next complete request; one that is slower
 * (drips bytes, stays silent, or does not read its answers) is dropped, so no client can hold the
 * server or the node. The socket is mode 0600 (0660 with a control group) whatever the umask, and
 * every connection's SO_PEERCRED is checked: root, the node's own user and members of the control
 * group are served, anyone else gets a one-line refusal. control_stop() returns at once whatever
 * the clients do. The node's status is read through a callback; reading never resets a counter.
 */
#ifndef FTVM_COMMON_CONTROL_H
#define FTVM_COMMON_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "common/ft_status.h"
#include "util/compiler.h"

#define CONTROL_MAX_REQUEST 4096         /* bytes of one request line, newline included */
#define CONTROL_MAX_CLIENTS 16           /* connected at once; more are refused */
#define CONTROL_REQUEST_TIMEOUT_MS 2000  /* to deliver a complete request */
#define CONTROL_CLIENT_TIMEOUT_MS 5000   /* control_request(): to connect and read the answer */
#define CONTROL_DEFAULT_DIR "/run/ftvm"

struct control_server;

typedef void control_status_fn(void *ctx, struct ft_status *st);

struct control_config {
	const char *path;           /* the socket; a stale socket file there is replaced */
	bool has_group;             /* mode 0660 with this group, whose members are served */
	gid_t group;
	control_status_fn *status;
	void *ctx;
};

/* Listens on cfg->path and serves until control_stop(). */
int control_start(const struct control_config *cfg, struct control_server **out, char *err,
		  size_t errlen) FTVM_MUST_CHECK;
void control_stop(struct control_server *srv);

/* Resolves a group name (or number) for control_config.group. */
int control_group_lookup(const char *name, gid_t *gid, char *err, size_t errlen) FTVM_MUST_CHECK;

/* Client: sends {"cmd":cmd} to the socket at path and returns the answer line (caller frees) or
 * NULL with a message. A server that is full is asked again until CONTROL_CLIENT_TIMEOUT_MS. */
char *control_request(const char *path, const char *cmd, char *err, size_t errlen);

/* The status as a JSON object string (caller frees), as the server sends it. */
char *control_status_json(const struct ft_status *st, double log_mbit_s);

#endif
