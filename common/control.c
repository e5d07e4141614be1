/*
 * control.c — the JSON control socket (see control.h and docs/control.md).
 *
 * One thread runs a poll loop over an eventfd (control_stop() wakes it), the listening socket and
 * a fixed table of client slots. Every socket is non-blocking and every send uses MSG_NOSIGNAL, so
 * neither a slow nor a vanished client can block the thread or raise SIGPIPE. Per client: an input
 * buffer of one request line, at most one answer being sent (the next request is read only when
 * it is out, so a client that does not read stalls only itself), and a deadline by which its next
 * request must be complete; a client past its deadline is closed. Connections are admitted by
 * their SO_PEERCRED credentials; a refused or surplus client gets one error line and is closed.
 *
 * Jobs: the server thread checks a job command and starts its function on a job thread; the job's
 * progress (phase, bytes, outcome, result) lives in one struct under job_lock, written by the job
 * thread through control_job_*() and read by the server thread for status. Only the server thread
 * starts jobs, so "is one running" and "start one" cannot race; the previous job's thread, already
 * finished, is joined before the next starts, and control_stop() cancels and joins the last.
 *
 * Slow commands run on util/worker_slots.h's threads: the server thread gives the request (a
 * private copy) to a free slot, whose thread runs the handler and leaves the answer line in
 * srv->slow[i]; the client is parked meanwhile (not polled, no deadline). Once the slot's thread
 * ended and was joined, the server thread hands the answer to its client.
 */
#define DIAG_MODULE "control"
#include "common/control.h"

#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/parse.h"
#include "util/diag.h"
#include "util/time.h"
#include "util/worker_slots.h"

#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)
#define LISTEN_BACKLOG 128
#define PEER_GROUPS_MAX 65536   /* NGROUPS_MAX of Linux */

struct control_client {
	int fd;                     /* -1: a free slot */
	uid_t uid;                  /* the peer's, from SO_PEERCRED */
	uint64_t deadline_ms;       /* the next request must be complete by then */
	size_t in_len;
	char *in;                   /* the server's max_request bytes */
	char *out;                  /* the answer being sent, newline-terminated; NULL: none */
	size_t out_len, out_done;
	bool parked;                /* a slow request of its own is being answered */
};

/* A slow request being answered: the slot thread's until it ended, then the server thread's. */
struct control_slow {
	struct control_server *srv;
	const struct control_command *cmd;
	json_t *req;                /* the slot thread's own copy */
	uid_t uid;                  /* the client's */
	struct control_client *client;
	char *answer;               /* the answer (no newline), NULL: out of memory */
};

/* The node's current or last job; every field but the thread's under the server's job_lock. */
struct control_job {
	struct control_server *srv;
	const struct control_command *cmd;
	void *arg;
	uint64_t id;                /* 1 for the node's first job; 0: none yet */
	bool running;
	bool thread_live;           /* a thread to join (server thread only) */
	pthread_t thread;
	atomic_bool cancel;
	int outcome;                /* 0 or -errno, once ended */
	char error[256];
	char phase[32];
	uint64_t done, total;
	uint64_t start_ms, end_ms;
	json_t *result;
	bool reported;              /* its outcome went out in a status answer */
};

struct control_server {
	int fd;
	int wake_fd;                /* eventfd: control_stop() ends the loop, or a slow request ended */
	atomic_bool stopping;
	char path[SUN_PATH_MAX];
	dev_t dev;                  /* the socket file this server created, so that stop */
	ino_t ino;                  /* removes it only if no one replaced it since */
	bool has_group;
	gid_t group;
	uid_t uid;
	control_status_fn *status;
	control_status_fields_fn *status_fields;
	void *ctx;
	const struct control_command *commands;
	size_t ncommands;
	size_t max_request;         /* bytes of one request line, newline included */
	pthread_t thread;
	pthread_mutex_t job_lock;   /* the job */
	struct control_job job;
	struct worker_slots workers;
	struct worker_slot worker[CONTROL_SLOW_MAX];
	struct control_slow slow[CONTROL_SLOW_MAX];   /* indexed like worker[] */
	/* Log-rate estimate between two status requests (the first one: since the server started). */
	uint64_t prev_bytes;
	double prev_time;
	struct control_client clients[CONTROL_MAX_CLIENTS];
};

static json_t *status_object(const struct ft_status *st, double log_mbit_s)
{
	json_t *o = json_object();
	icount_t lag = st->icount > st->peer_icount && st->peer_icount ? st->icount - st->peer_icount : 0;

	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "role", json_string(st->role));
	json_object_set_new(o, "state", json_string(ft_state_name(st->state)));
	json_object_set_new(o, "state_ms", json_integer((json_int_t)st->state_ms));
	json_object_set_new(o, "epoch", json_integer((json_int_t)st->epoch));
	json_object_set_new(o, "icount", json_integer((json_int_t)st->icount));
	json_object_set_new(o, "peer_icount", json_integer((json_int_t)st->peer_icount));
	json_object_set_new(o, "backup_lag_insns", json_integer((json_int_t)lag));
	json_object_set_new(o, "backup_lag_ms", json_real(st->backup_lag_ms));
	json_object_set_new(o, "log_bytes", json_integer((json_int_t)st->log_bytes));
	json_object_set_new(o, "log_records", json_integer((json_int_t)st->log_records));
	json_object_set_new(o, "log_mbit_s", json_real(log_mbit_s));
	json_object_set_new(o, "last_lsn", json_integer((json_int_t)st->last_lsn));
	json_object_set_new(o, "acked_lsn", json_integer((json_int_t)st->acked_lsn));
	json_object_set_new(o, "outputs_held", json_integer((json_int_t)st->outputs_held));
	json_object_set_new(o, "outputs_released", json_integer((json_int_t)st->outputs_released));
	json_object_set_new(o, "peer_state", json_string(st->peer_state));
	json_object_set_new(o, "failovers", json_integer((json_int_t)st->failovers));
	json_object_set_new(o, "throttled_ms", json_integer((json_int_t)st->throttled_ms));
	json_object_set_new(o, "unprotected_ms", json_integer((json_int_t)st->unprotected_ms));
	json_object_set_new(o, "clones", json_integer((json_int_t)st->clones));
	json_object_set_new(o, "clone_phase", json_string(st->clone_phase));
	json_object_set_new(o, "clone_bytes", json_integer((json_int_t)st->clone_bytes));
	json_object_set_new(o, "clone_remaining", json_integer((json_int_t)st->clone_remaining));
	json_object_set_new(o, "clone_disk_bytes", json_integer((json_int_t)st->clone_disk_bytes));
	json_object_set_new(o, "clone_disk_digested", json_integer((json_int_t)st->clone_disk_digested));
	json_object_set_new(o, "clone_error", json_string(st->clone_error));
	json_object_set_new(o, "last_failover_gap_ms", json_real(st->last_failover_gap_ms));
	if (st->hold_count || !strcmp(st->role, "primary")) {
		/* "le_SECONDS": outputs held at most that long (cumulative), as Prometheus buckets. */
		json_t *h = json_object();
		char key[32];
		for (size_t i = 0; h && i < FT_HOLD_BUCKETS; i++) {
			snprintf(key, sizeof(key), "le_%g", (double)ft_hold_bucket_us[i] / 1e6);
			json_object_set_new(h, key, json_integer((json_int_t)st->hold_le[i]));
		}
		json_object_set_new(h, "count", json_integer((json_int_t)st->hold_count));
		json_object_set_new(h, "sum_s", json_real((double)st->hold_sum_us / 1e6));
		json_object_set_new(o, "output_hold", h);
	}
	json_object_set_new(o, "reason", json_string(st->reason));
	return o;
}

char *control_status_json(const struct ft_status *st, double log_mbit_s)
{
	json_t *o = status_object(st, log_mbit_s);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static char *error_json(const char *msg)
{
	json_t *o = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* ---- jobs ---- */

void control_job_phase(struct control_job *job, const char *phase)
{
	pthread_mutex_lock(&job->srv->job_lock);
	snprintf(job->phase, sizeof(job->phase), "%s", phase);
	pthread_mutex_unlock(&job->srv->job_lock);
}

void control_job_progress(struct control_job *job, uint64_t done, uint64_t total)
{
	pthread_mutex_lock(&job->srv->job_lock);
	job->done = done;
	job->total = total;
	pthread_mutex_unlock(&job->srv->job_lock);
}

void control_job_result(struct control_job *job, const char *key, json_t *value)
{
	pthread_mutex_lock(&job->srv->job_lock);
	json_object_set_new(job->result, key, value);
	pthread_mutex_unlock(&job->srv->job_lock);
}

bool control_job_cancelled(const struct control_job *job)
{
	return atomic_load(&job->cancel);
}

static void *job_main(void *arg)
{
	struct control_job *job = arg;
	char err[sizeof(job->error)] = "";
	int ret = job->cmd->job(job->srv->ctx, job->arg, job, err, sizeof(err));
	pthread_mutex_lock(&job->srv->job_lock);
	job->outcome = ret < 0 ? ret : 0;
	if (ret < 0)
		snprintf(job->error, sizeof(job->error), "%s", err[0] ? err : strerror(-ret));
	job->end_ms = time_mono_ms();
	job->running = false;
	pthread_mutex_unlock(&job->srv->job_lock);
	return NULL;
}

/* The "job" object of status (the caller holds job_lock and a job has run). */
static json_t *job_object(const struct control_job *job)
{
	uint64_t end = job->running ? time_mono_ms() : job->end_ms;
	const char *state = job->running ? "running" : job->outcome == 0 ? "done"
			  : job->outcome == -ECANCELED ? "cancelled" : "failed";
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer((json_int_t)job->id));
	json_object_set_new(o, "kind", json_string(job->cmd->name));
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "phase", json_string(job->phase));
	json_object_set_new(o, "bytes_done", json_integer((json_int_t)job->done));
	json_object_set_new(o, "bytes_total", json_integer((json_int_t)job->total));
	json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)(end - job->start_ms)));
	json_object_set_new(o, "error", json_string(job->error));
	json_object_set_new(o, "result", json_deep_copy(job->result));
	return o;
}

/* Starts cmd's job with arg (the server thread, no job running). 0, or -errno with err; arg is
 * the job's from here on, or freed. */
static int job_start(struct control_server *srv, const struct control_command *cmd, void *arg, char *err,
		     size_t errlen)
{
	struct control_job *job = &srv->job;
	if (job->thread_live) {
		pthread_join(job->thread, NULL);   /* finished: its job is no longer running */
		job->thread_live = false;
	}
	json_t *result = json_object();
	if (!result) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_lock(&srv->job_lock);
	json_decref(job->result);
	job->result = result;
	job->cmd = cmd;
	job->arg = arg;
	job->id++;
	job->running = true;
	job->reported = false;
	job->outcome = 0;
	job->error[0] = 0;
	snprintf(job->phase, sizeof(job->phase), "starting");
	job->done = job->total = 0;
	job->start_ms = time_mono_ms();
	pthread_mutex_unlock(&srv->job_lock);
	int ret = pthread_create(&job->thread, NULL, job_main, job);
	if (ret) {
		pthread_mutex_lock(&srv->job_lock);
		job->running = false;
		job->outcome = -ret;
		job->end_ms = job->start_ms;
		snprintf(job->error, sizeof(job->error), "cannot start the job thread: %s", strerror(ret));
		pthread_mutex_unlock(&srv->job_lock);
		snprintf(err, errlen, "cannot start the %s job: %s", cmd->name, strerror(ret));
		goto fail;
	}
	job->thread_live = true;
	return 0;
fail:
	if (cmd->job_arg_free)
		cmd->job_arg_free(arg);
	return -EAGAIN;
}

/* ---- requests ---- */

/* The peer of the request being answered: set by the server thread around a handler's call. */
static __thread uid_t current_peer_uid;

uid_t control_peer_uid(void)
{
	return current_peer_uid;
}

static char *dump_answer(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

static char *status_answer(struct control_server *srv)
{
	json_t *o;
	if (srv->status) {
		struct ft_status st;
		srv->status(srv->ctx, &st);
		double t = time_mono_s();
		double rate = 0;
		if (t > srv->prev_time && st.log_bytes >= srv->prev_bytes)
			rate = (double)(st.log_bytes - srv->prev_bytes) * 8 / 1e6 / (t - srv->prev_time);
		srv->prev_time = t;
		srv->prev_bytes = st.log_bytes;
		o = status_object(&st, rate);
	} else {
		o = json_pack("{s:b}", "ok", 1);
	}
	if (o && srv->status_fields)
		srv->status_fields(srv->ctx, o);
	pthread_mutex_lock(&srv->job_lock);
	if (o && srv->job.id) {
		json_object_set_new(o, "job", job_object(&srv->job));
		srv->job.reported = !srv->job.running;
	}
	pthread_mutex_unlock(&srv->job_lock);
	return dump_answer(o);
}

static const struct control_command *command_find(const struct control_server *srv, const char *name)
{
	for (size_t i = 0; i < srv->ncommands; i++)
		if (strcmp(srv->commands[i].name, name) == 0)
			return &srv->commands[i];
	return NULL;
}

/* A command's answer: its handler's fields (and its job started when it has one), or its error. */
static char *handler_answer(struct control_server *srv, const struct control_command *cmd, const json_t *req)
{
	char err[512] = "";
	void *arg = NULL;
	json_t *o = json_pack("{s:b}", "ok", 1);
	if (!o)
		return NULL;
	int ret = cmd->handler(srv->ctx, req, o, &arg, err, sizeof(err));
	if (ret < 0) {
		json_decref(o);
		if (cmd->job && cmd->job_arg_free)
			cmd->job_arg_free(arg);
		return error_json(err[0] ? err : strerror(-ret));
	}
	if (cmd->job) {
		if (job_start(srv, cmd, arg, err, sizeof(err)) < 0) {
			json_decref(o);
			return error_json(err);
		}
		json_object_set_new(o, "job_id", json_integer((json_int_t)srv->job.id));
	}
	return dump_answer(o);
}

static void slow_run(void *arg)
{
	struct control_slow *s = arg;
	current_peer_uid = s->uid;
	s->answer = handler_answer(s->srv, s->cmd, s->req);
}

/* Starts a slow command for client c: NULL with c parked, or an error answer (busy, or no thread). */
static char *slow_start(struct control_server *srv, struct control_client *c, const struct control_command *cmd,
			const json_t *req)
{
	int slot = worker_slots_free(&srv->workers);
	char msg[160];
	if (slot < 0) {
		snprintf(msg, sizeof(msg), "busy: %d slow requests are being answered already, try again",
			 CONTROL_SLOW_MAX);
		json_t *o = json_pack("{s:b, s:s, s:b}", "ok", 0, "error", msg, "busy", 1);
		return dump_answer(o);
	}
	struct control_slow *s = &srv->slow[slot];
	*s = (struct control_slow){ .srv = srv, .cmd = cmd, .req = json_deep_copy(req), .uid = c->uid, .client = c };
	int ret = s->req ? worker_slots_start(&srv->workers, (size_t)slot, slow_run, s) : ENOMEM;
	if (ret) {
		json_decref(s->req);
		s->req = NULL;
		snprintf(msg, sizeof(msg), "cannot answer %s now: %s", cmd->name, strerror(ret));
		return error_json(msg);
	}
	c->parked = true;
	return NULL;
}

/* A command of the node on the server thread: a job command is refused while a job runs. */
static char *command_answer(struct control_server *srv, const struct control_command *cmd, const json_t *req)
{
	char err[512] = "";

	if (cmd->job) {
		pthread_mutex_lock(&srv->job_lock);
		bool busy = srv->job.running;
		if (busy)
			snprintf(err, sizeof(err), "a %s job is running (phase %s, for %llu ms): one job at a time",
				 srv->job.cmd->name, srv->job.phase,
				 (unsigned long long)(time_mono_ms() - srv->job.start_ms));
		pthread_mutex_unlock(&srv->job_lock);
		if (busy)
			return error_json(err);
	}
	return handler_answer(srv, cmd, req);
}

/* The answer to one request line; NULL with c->parked when a slow command answers it later. */
static char *answer(struct control_server *srv, struct control_client *c, const char *line)
{
	json_error_t jerr;
	json_t *req = json_loads(line, 0, &jerr);
	const struct control_command *command;
	char *out;

	if (!req || !json_is_object(req)) {
		char msg[256];
		snprintf(msg, sizeof(msg), "request is not a JSON object: %s", req ? "wrong type" : jerr.text);
		json_decref(req);
		return error_json(msg);
	}
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	if (!cmd) {
		out = error_json("request has no \"cmd\" string");
	} else if (strcmp(cmd, "status") == 0) {
		out = status_answer(srv);
	} else if ((command = command_find(srv, cmd)) != NULL && command->slow) {
		out = slow_start(srv, c, command, req);
	} else if (command) {
		out = command_answer(srv, command, req);
	} else {
		char msg[128];
		snprintf(msg, sizeof(msg), "unknown command \"%.64s\"", cmd);
		out = error_json(msg);
	}
	json_decref(req);
	return out;
}

/* Sends one error line on a connection and closes it. The line is short and the connection fresh
 * (or drained), so it fits in the socket buffer; a client that is already gone loses nothing.
 * `busy` marks a refusal worth retrying (the server is full). */
static void send_and_close(int fd, const char *msg, bool busy)
{
	json_t *o = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	if (o && busy)
		json_object_set_new(o, "busy", json_true());
	char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (line) {
		size_t len = strlen(line);
		line[len] = '\n';   /* replaces the terminating NUL: len + 1 bytes are sent, not a string */
		(void)!send(fd, line, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		free(line);
	}
	json_decref(o);
	/* Closing a Unix socket with unread input resets the peer, which may then lose the line: read
	 * what is already queued (a bounded amount) first. */
	char sink[CONTROL_MAX_REQUEST];
	for (int i = 0; i < 4 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

static void client_drop(struct control_client *c)
{
	close(c->fd);
	free(c->out);
	c->fd = -1;
	c->out = NULL;
	c->in_len = 0;
}

/* Sends what the socket takes of the pending answer; -errno when the client must be dropped. */
static int client_flush(struct control_client *c)
{
	while (c->out && c->out_done < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_done, c->out_len - c->out_done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -errno;
		c->out_done += (size_t)n;
	}
	if (c->out) {
		free(c->out);
		c->out = NULL;
		c->deadline_ms = time_mono_ms() + CONTROL_REQUEST_TIMEOUT_MS;
	}
	return 0;
}

/* Makes out (a string, taken; NULL: out of memory) the client's answer line and sends what the
 * socket takes of it. -errno when the client must be dropped. */
static int client_send(struct control_client *c, char *out)
{
	if (!out)
		return -ENOMEM;
	size_t len = strlen(out);
	char *line = realloc(out, len + 1);   /* room for the newline; the NUL is not sent */
	if (!line) {
		free(out);
		return -ENOMEM;
	}
	line[len] = '\n';
	c->out = line;
	c->out_len = len + 1;
	c->out_done = 0;
	return client_flush(c);
}

/* Answers the complete request lines in the input, one at a time: the next only once the previous
 * answer is out. -errno when the client must be dropped. */
static int client_answer(struct control_server *srv, struct control_client *c)
{
	char *nl;
	while (!c->out && !c->parked && (nl = memchr(c->in, '\n', c->in_len)) != NULL) {
		*nl = 0;
		current_peer_uid = c->uid;
		char *out = answer(srv, c, c->in);
		c->in_len -= (size_t)(nl + 1 - c->in);
		memmove(c->in, nl + 1, c->in_len);
		if (c->parked)
			return 0;
		int ret = client_send(c, out);
		if (ret < 0)
			return ret;
	}
	if (!c->out && !c->parked && c->in_len == srv->max_request) {
		char msg[64];
		snprintf(msg, sizeof(msg), "request too long (limit %zu bytes)", srv->max_request);
		send_and_close(c->fd, msg, false);
		c->fd = -1;
		c->in_len = 0;
	}
	return 0;
}

static int client_read(struct control_server *srv, struct control_client *c)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, srv->max_request - c->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	c->in_len += (size_t)n;
	return client_answer(srv, c);
}

static bool in_groups(gid_t group, const gid_t *groups, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (groups[i] == group)
			return true;
	return false;
}

/* Whether the peer may use the socket: root, this node's user, or a member of the control group
 * (its primary group or, through SO_PEERGROUPS, a supplementary one). */
static bool peer_allowed(const struct control_server *srv, int fd, uid_t *uid, char *why, size_t whylen)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t small[64], *groups = small;
	bool ok = false;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		snprintf(why, whylen, "permission denied: peer credentials unavailable (%s)", strerror(errno));
		return false;
	}
	*uid = cred.uid;
	if (cred.uid == 0 || cred.uid == srv->uid || (srv->has_group && cred.gid == srv->group))
		return true;
	if (srv->has_group) {
		len = sizeof(small);
		int ret = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
		if (ret < 0 && errno == ERANGE && len <= PEER_GROUPS_MAX * sizeof(gid_t) &&
		    (groups = malloc(len)) != NULL)
			ret = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
		if (ret == 0 && groups)
			ok = in_groups(srv->group, groups, len / sizeof(gid_t));
		if (groups != small)
			free(groups);
	}
	if (!ok)
		snprintf(why, whylen, "permission denied: uid %u is not allowed on this control socket",
			 (unsigned)cred.uid);
	return ok;
}

static void accept_clients(struct control_server *srv)
{
	for (;;) {
		int fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;   /* EAGAIN: all taken; EMFILE and the like: try again at the next wake-up */
		}
		char why[128];
		uid_t uid;
		if (!peer_allowed(srv, fd, &uid, why, sizeof(why))) {
			send_and_close(fd, why, false);
			continue;
		}
		struct control_client *c = NULL;
		for (size_t i = 0; i < CONTROL_MAX_CLIENTS && !c; i++)
			if (srv->clients[i].fd < 0)
				c = &srv->clients[i];
		if (!c) {
			snprintf(why, sizeof(why), "too many control clients (%d connected), try again",
				 CONTROL_MAX_CLIENTS);
			send_and_close(fd, why, true);
			continue;
		}
		c->fd = fd;
		c->uid = uid;
		c->in_len = 0;
		c->parked = false;
		c->deadline_ms = time_mono_ms() + CONTROL_REQUEST_TIMEOUT_MS;
	}
}

/* Hands an ended slow request's answer to its client (the server thread). */
static void slow_finish(void *owner, size_t slot)
{
	struct control_server *srv = owner;
	struct control_slow *s = &srv->slow[slot];
	char *out = s->answer;

	s->answer = NULL;
	json_decref(s->req);
	s->req = NULL;
	struct control_client *c = s->client;
	c->parked = false;
	c->deadline_ms = time_mono_ms() + CONTROL_REQUEST_TIMEOUT_MS;
	int ret = client_send(c, out);
	if (ret == 0 && !c->out)
		ret = client_answer(srv, c);   /* requests it sent meanwhile */
	if (ret < 0 && c->fd >= 0)
		client_drop(c);
}

/* After control_main ended: the answer has no client to go to. */
static void slow_discard(void *owner, size_t slot)
{
	struct control_server *srv = owner;
	json_decref(srv->slow[slot].req);
	free(srv->slow[slot].answer);
}

static void *control_main(void *arg)
{
	struct control_server *srv = arg;
	struct pollfd fds[2 + CONTROL_MAX_CLIENTS];
	struct control_client *polled[CONTROL_MAX_CLIENTS];

	for (;;) {
		uint64_t now = time_mono_ms(), next = UINT64_MAX;
		size_t n = 2;
		fds[0] = (struct pollfd){ .fd = srv->wake_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = srv->fd, .events = POLLIN };
		for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++) {
			struct control_client *c = &srv->clients[i];
			if (c->fd < 0 || c->parked)
				continue;
			if (now >= c->deadline_ms) {
				client_drop(c);   /* too slow to send a request or to read its answer */
				continue;
			}
			next = MIN(next, c->deadline_ms);
			polled[n - 2] = c;
			fds[n++] = (struct pollfd){ .fd = c->fd, .events = c->out ? POLLOUT : POLLIN };
		}
		int timeout = next == UINT64_MAX ? -1 : (int)(next - now);
		if (poll(fds, n, timeout) < 0 && errno != EINTR) {
			diag_error("poll: %s", strerror(errno));
			break;
		}
		if (fds[0].revents) {
			uint64_t count;
			(void)!read(srv->wake_fd, &count, sizeof(count));
			if (atomic_load(&srv->stopping))
				break;
			worker_slots_collect(&srv->workers, slow_finish, srv);
		}
		for (size_t i = 2; i < n; i++) {
			struct control_client *c = polled[i - 2];
			short ev = fds[i].revents;
			int ret = 0;
			if (!ev)
				continue;
			if (c->out)
				ret = client_flush(c);
			if (ret == 0 && c->out == NULL)
				ret = client_answer(srv, c);   /* requests already buffered go first */
			if (ret == 0 && c->fd >= 0 && !c->out && (ev & (POLLIN | POLLHUP | POLLERR)))
				ret = client_read(srv, c);
			if (ret < 0 && c->fd >= 0)
				client_drop(c);
		}
		if (fds[1].revents)
			accept_clients(srv);
	}
	for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (srv->clients[i].fd >= 0)
			client_drop(&srv->clients[i]);
	return NULL;
}

/*
 * Creates the listening socket at srv->path with its final mode and group before anyone can reach
 * it, whatever the umask: bind() inside a fresh 0700 directory next to the target (only this user
 * and root can enter it), chmod/chown the socket file there, listen, then rename() it into place —
 * an atomic step that also replaces a stale socket. There is no moment at which the socket exists
 * at a reachable path with a wider mode.
 */
static int listen_private(struct control_server *srv, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char dir[SUN_PATH_MAX], tmpdir[SUN_PATH_MAX + 16];
	struct stat st;
	int ret;

	snprintf(dir, sizeof(dir), "%s", srv->path);
	snprintf(tmpdir, sizeof(tmpdir), "%s/.ftvm-XXXXXX", dirname(dir));
	if (strlen(tmpdir) + 2 >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "control socket directory name too long: %s", tmpdir);
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(tmpdir)) {
		ret = -errno;
		snprintf(err, errlen, "cannot create the control socket %s: %s", srv->path, strerror(errno));
		return ret;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/s", tmpdir);
	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (srv->fd < 0 || chmod(tmpdir, 0700) < 0 || bind(srv->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    chmod(addr.sun_path, srv->has_group ? 0660 : 0600) < 0 ||
	    (srv->has_group && chown(addr.sun_path, (uid_t)-1, srv->group) < 0) ||
	    listen(srv->fd, LISTEN_BACKLOG) < 0 || rename(addr.sun_path, srv->path) < 0 || stat(srv->path, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot listen on control socket %s: %s", srv->path, strerror(errno));
		unlink(addr.sun_path);
		rmdir(tmpdir);
		if (srv->fd >= 0)
			close(srv->fd);
		srv->fd = -1;
		return ret;
	}
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	rmdir(tmpdir);
	return 0;
}

static void server_free(struct control_server *srv)
{
	for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++)
		free(srv->clients[i].in);
	free(srv);
}

int control_start(const struct control_config *cfg, struct control_server **out, char *err, size_t errlen)
{
	struct control_server *srv;
	int ret;

	if (strlen(cfg->path) >= SUN_PATH_MAX) {
		snprintf(err, errlen, "control socket path too long: %s", cfg->path);
		return -ENAMETOOLONG;
	}
	if (cfg->ncommands > CONTROL_MAX_COMMANDS) {
		snprintf(err, errlen, "control socket: %zu commands, at most %d", cfg->ncommands, CONTROL_MAX_COMMANDS);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->ncommands; i++) {
		const struct control_command *c = &cfg->commands[i];
		if (!c->name || !c->handler || strcmp(c->name, "status") == 0 || (c->slow && c->job)) {
			snprintf(err, errlen, "control socket: command %zu has no name or handler, is \"status\", or is "
					      "both slow and a job", i);
			return -EINVAL;
		}
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = -pthread_mutex_init(&srv->job_lock, NULL);
	if (ret) {
		snprintf(err, errlen, "cannot start the control socket: %s", strerror(-ret));
		free(srv);
		return ret;
	}
	srv->job.srv = srv;
	atomic_init(&srv->job.cancel, false);
	atomic_init(&srv->stopping, false);
	srv->commands = cfg->commands;
	srv->ncommands = cfg->ncommands;
	srv->status_fields = cfg->status_fields;
	srv->max_request = cfg->max_request ? cfg->max_request : CONTROL_MAX_REQUEST;
	for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		srv->clients[i].fd = -1;
		srv->clients[i].in = malloc(srv->max_request);
		if (!srv->clients[i].in) {
			snprintf(err, errlen, "out of memory");
			ret = -ENOMEM;
			goto out_free;
		}
	}
	srv->status = cfg->status;
	srv->ctx = cfg->ctx;
	srv->has_group = cfg->has_group;
	srv->group = cfg->group;
	srv->uid = geteuid();
	srv->prev_time = time_mono_s();
	snprintf(srv->path, sizeof(srv->path), "%s", cfg->path);
	srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->wake_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot start the control socket: %s", strerror(errno));
		goto out_free;
	}
	worker_slots_init(&srv->workers, srv->worker, CONTROL_SLOW_MAX, srv->wake_fd);
	ret = listen_private(srv, err, errlen);
	if (ret < 0)
		goto out_wake;
	ret = -pthread_create(&srv->thread, NULL, control_main, srv);
	if (ret < 0) {
		snprintf(err, errlen, "cannot start the control thread: %s", strerror(-ret));
		goto out_listen;
	}
	*out = srv;
	return 0;
out_listen:
	close(srv->fd);
	unlink(srv->path);
out_wake:
	worker_slots_destroy(&srv->workers);
	close(srv->wake_fd);
out_free:
	pthread_mutex_destroy(&srv->job_lock);
	server_free(srv);
	return ret;
}

void control_linger(struct control_server *srv, unsigned timeout_ms)
{
	if (!srv)
		return;
	uint64_t until = time_mono_ms() + timeout_ms;
	for (;;) {
		pthread_mutex_lock(&srv->job_lock);
		bool wait = srv->job.id && !srv->job.reported;
		pthread_mutex_unlock(&srv->job_lock);
		if (!wait || time_mono_ms() >= until)
			return;
		usleep(10 * 1000);   /* a bounded wait at exit; the server thread is not involved */
	}
}

void control_stop(struct control_server *srv)
{
	struct stat st;
	uint64_t one = 1;

	if (!srv)
		return;
	atomic_store(&srv->stopping, true);
	(void)!write(srv->wake_fd, &one, sizeof(one));
	pthread_join(srv->thread, NULL);
	/* Slow handlers may use the node too: each bounds its own wait. */
	worker_slots_join_all(&srv->workers, slow_discard, srv);
	worker_slots_destroy(&srv->workers);
	/* No new job can start now; the running one is asked to end and waited for, since it may use
	 * the machine its node is about to destroy. */
	atomic_store(&srv->job.cancel, true);
	if (srv->job.thread_live)
		pthread_join(srv->job.thread, NULL);
	json_decref(srv->job.result);
	pthread_mutex_destroy(&srv->job_lock);
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		unlink(srv->path);
	close(srv->fd);
	close(srv->wake_fd);
	server_free(srv);
}

int control_group_lookup(const char *name, gid_t *gid, char *err, size_t errlen)
{
	char buf[4096];
	struct group g, *found = NULL;
	uint64_t n;

	int ret = getgrnam_r(name, &g, buf, sizeof(buf), &found);
	if (ret == 0 && found) {
		*gid = found->gr_gid;
		return 0;
	}
	/* Not a group name: a group id, strictly (no sign, no spaces, no junk, below (gid_t)-1,
	 * which means "no group" to the kernel). */
	ret = parse_u64(name, 0, (gid_t)-2, &n);
	if (ret == 0) {
		*gid = (gid_t)n;
		return 0;
	}
	if (ret == -ERANGE) {
		snprintf(err, errlen, "--control-group %s: group id out of range (at most %u)", name, (unsigned)(gid_t)-2);
		return -ERANGE;
	}
	snprintf(err, errlen, "--control-group %s: no such group", name);
	return -ENOENT;
}

/* One exchange: connect, send the request, read one line until `deadline_ms`. NULL with a message
 * on failure. */
static char *request_once(const char *path, const char *req, uint64_t deadline_ms, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char *buf = NULL;
	size_t used = 0, cap = 0;

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		const char *hint = errno == ENOENT || errno == ECONNREFUSED ? " (is it running?)"
				   : errno == EACCES ? " (only root, the node's user and its control group may connect)"
				   : "";
		snprintf(err, errlen, "cannot reach the control socket %s: %s%s", path, strerror(errno), hint);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	/* A server that refuses the connection sends its line and closes, perhaps before the request is
	 * sent: a failed send (EPIPE, without a SIGPIPE) still leaves that line to read. */
	(void)!send(fd, req, strlen(req), MSG_NOSIGNAL);
	for (;;) {
		if (used + 1024 > cap) {
			char *nb = realloc(buf, cap = cap * 2 + 4096);
			if (!nb)
				goto io_error;
			buf = nb;
		}
		uint64_t now = time_mono_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (now >= deadline_ms || poll(&p, 1, (int)(deadline_ms - now)) <= 0)
			goto io_error;
		ssize_t n = read(fd, buf + used, cap - used - 1);
		if (n <= 0)
			goto io_error;
		used += (size_t)n;
		buf[used] = 0;
		char *nl = strchr(buf, '\n');
		if (nl) {
			*nl = 0;
			close(fd);
			return buf;
		}
	}
io_error:
	snprintf(err, errlen, "no answer from the control socket %s", path);
	free(buf);
	close(fd);
	return NULL;
}

static bool answer_is_busy(const char *line)
{
	json_t *o = json_loads(line, 0, NULL);
	bool busy = json_is_true(json_object_get(o, "busy"));
	json_decref(o);
	return busy;
}

/* Sends the request line req (newline-terminated) and returns the answer line. */
static char *request_line(const char *path, const char *req, unsigned timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = time_mono_ms() + timeout_ms;

	if (strlen(path) >= SUN_PATH_MAX) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return NULL;
	}
	for (;;) {
		char *line = request_once(path, req, deadline, err, errlen);
		if (!line || !answer_is_busy(line) || time_mono_ms() + 100 >= deadline)
			return line;
		free(line);
		usleep(100 * 1000);   /* full: a slot frees up at the latest at a client's deadline */
	}
}

char *control_request(const char *path, const char *cmd, char *err, size_t errlen)
{
	json_t *o = json_pack("{s:s}", "cmd", cmd);
	char *line = o ? control_request_json(path, o, err, errlen) : NULL;
	if (!o)
		snprintf(err, errlen, "out of memory");
	json_decref(o);
	return line;
}

char *control_request_json(const char *path, const json_t *request, char *err, size_t errlen)
{
	return control_request_json_max(path, request, CONTROL_MAX_REQUEST, err, errlen);
}

char *control_request_json_max(const char *path, const json_t *request, size_t max_request, char *err, size_t errlen)
{
	return control_request_json_wait(path, request, max_request, CONTROL_CLIENT_TIMEOUT_MS, err, errlen);
}

char *control_request_json_wait(const char *path, const json_t *request, size_t max_request, unsigned timeout_ms,
				char *err, size_t errlen)
{
	char *req = json_dumps(request, JSON_COMPACT);
	if (!req) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	size_t len = strlen(req);
	if (len + 1 > max_request) {
		snprintf(err, errlen, "request too long (%zu bytes, limit %zu)", len + 1, max_request);
		free(req);
		return NULL;
	}
	char *line = realloc(req, len + 2);
	if (!line) {
		free(req);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	line[len] = '\n';
	line[len + 1] = 0;
	char *answer = request_line(path, line, timeout_ms, err, errlen);
	free(line);
	return answer;
}
