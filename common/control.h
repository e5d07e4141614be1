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
 *
 * Commands besides status come from the node (control_config.commands). A quick command is
 * answered on the server thread by its handler. A long one (a snapshot, a migration) is a job: its
 * handler checks the request on the server thread and answers at once; the job then runs on a
 * thread of its own, one job at a time per node (a second is refused while one runs), reporting
 * its phase and progress, which `status` shows in its "job" object while the server goes on
 * answering everyone.
 *
 * A slow command (one whose answer waits on something outside the node, such as another host) is
 * answered in full, but off the server thread: its handler runs on a thread of its own, at most
 * CONTROL_SLOW_MAX at once per server (past that the request is refused at once with "busy":true),
 * and its client gets the answer when the handler returns. Meanwhile that client sends nothing
 * more and has no deadline, and the server goes on answering everyone else. control_stop() waits
 * for the slow handlers still running, so each must bound its own wait.
 */
#ifndef FTVM_COMMON_CONTROL_H
#define FTVM_COMMON_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "common/ft_status.h"
#include "util/compiler.h"

#define CONTROL_MAX_REQUEST 4096         /* bytes of one request line, newline included */
#define CONTROL_DEFINE_MAX (256 * 1024)  /* bytes of a domain definition sent to the host daemon */
/* The host daemon's requests carry a definition JSON-escaped: up to twice its size, and the rest. */
#define CONTROL_DAEMON_MAX_REQUEST (2 * CONTROL_DEFINE_MAX + 4096)
#define CONTROL_DAEMON_SOCKET "/run/ftvm/ftvmd.sock"
#define CONTROL_MAX_CLIENTS 16           /* connected at once; more are refused */
#define CONTROL_REQUEST_TIMEOUT_MS 2000  /* to deliver a complete request */
#define CONTROL_CLIENT_TIMEOUT_MS 5000   /* control_request(): to connect and read the answer */
#define CONTROL_SLOW_CLIENT_TIMEOUT_MS 60000  /* the same for a slow command (FT pairing with another host) */
#define CONTROL_DEFAULT_DIR "/run/ftvm"

#define CONTROL_MAX_COMMANDS 16          /* in one control_config */
#define CONTROL_SLOW_MAX 8               /* slow requests being answered at once; more are refused "busy" */

struct control_server;
struct control_job;

typedef void control_status_fn(void *ctx, struct ft_status *st);
/* Adds the node's own fields to a status answer (a node that is not an FT role). */
typedef void control_status_fields_fn(void *ctx, json_t *answer);

/*
 * A command besides status. The request is the parsed JSON object (its members other than "cmd"
 * are the command's arguments); the handler must check every one of them, since the client is
 * only as trusted as the socket's permissions make it.
 */
struct control_command {
	const char *name;
	/* On the server thread, quickly: checks the request and adds the answer's fields to `answer`
	 * ("ok" is the server's). A job command may hand what its job needs through *job_arg.
	 * 0, or -errno with a message in err: the answer is then {"ok":false,"error":err}. */
	int (*handler)(void *ctx, const json_t *request, json_t *answer, void **job_arg, char *err,
		       size_t errlen);
	/* NULL for a quick command. Otherwise the command's long part, started on the job thread once
	 * handler succeeded; it owns job_arg, reports through control_job_*() and returns 0 or -errno
	 * with err, the job's outcome in status. */
	int (*job)(void *ctx, void *job_arg, struct control_job *job, char *err, size_t errlen);
	/* Frees a job_arg whose job could not be started; may be NULL. */
	void (*job_arg_free)(void *job_arg);
	/* The handler may wait long (bounded): it runs on a thread of its own, concurrently with the
	 * other commands' handlers (so it must be thread-safe), and job must be NULL. */
	bool slow;
};

struct control_config {
	const char *path;           /* the socket; a stale socket file there is replaced */
	bool has_group;             /* mode 0660 with this group, whose members are served */
	gid_t group;
	control_status_fn *status;  /* an FT node's status; may be NULL */
	control_status_fields_fn *status_fields;   /* may be NULL */
	void *ctx;                  /* for status, status_fields and the commands */
	const struct control_command *commands;   /* ncommands of them, besides status */
	size_t ncommands;
	size_t max_request;         /* bytes of one request line, newline included; 0: CONTROL_MAX_REQUEST */
};

/* Listens on cfg->path and serves until control_stop(). */
int control_start(const struct control_config *cfg, struct control_server **out, char *err,
		  size_t errlen) FTVM_MUST_CHECK;
void control_stop(struct control_server *srv);
/* For a node about to end: when it has had a job whose outcome no status answer carried yet (a
 * snapshot that stops its VM), keeps serving until one has, or timeout_ms passed, so the job's
 * client learns how it ended. Returns at once otherwise. */
void control_linger(struct control_server *srv, unsigned timeout_ms);

/* In a handler: the uid of the client whose request it answers (SO_PEERCRED), for commands that
 * must be reserved to root and the node's own user (members of a control group are served too). */
uid_t control_peer_uid(void);

/* From the job thread: the job's phase (a short word, copied) and its progress in bytes. */
void control_job_phase(struct control_job *job, const char *phase);
void control_job_progress(struct control_job *job, uint64_t done, uint64_t total);
/* Adds key to the job's "result" object, shown in status once the job has ended; takes value's
 * reference. */
void control_job_result(struct control_job *job, const char *key, json_t *value);
/* True once the node is stopping: a job should end early (with -ECANCELED). */
bool control_job_cancelled(const struct control_job *job);

/* Resolves a group name (or number) for control_config.group. */
int control_group_lookup(const char *name, gid_t *gid, char *err, size_t errlen) FTVM_MUST_CHECK;

/* Client: sends {"cmd":cmd} to the socket at path and returns the answer line (caller frees) or
 * NULL with a message. A server that is full is asked again until CONTROL_CLIENT_TIMEOUT_MS. */
char *control_request(const char *path, const char *cmd, char *err, size_t errlen);
/* The same with a whole request object (a command with arguments), e.g. {"cmd":"snapshot",...}. */
char *control_request_json(const char *path, const json_t *request, char *err, size_t errlen);
/* The same for a server that takes requests of up to max_request bytes (control_config.max_request). */
char *control_request_json_max(const char *path, const json_t *request, size_t max_request, char *err, size_t errlen);
/* The same, waiting up to timeout_ms for the answer (a slow command's: CONTROL_SLOW_CLIENT_TIMEOUT_MS). */
char *control_request_json_wait(const char *path, const json_t *request, size_t max_request, unsigned timeout_ms,
				char *err, size_t errlen);

/* The status as a JSON object string (caller frees), as the server sends it. */
char *control_status_json(const struct ft_status *st, double log_mbit_s);

#endif
