/*
 * control.c — the JSON control socket (see control.h): a thread accepting one client at a time,
 * a line-based request/answer exchange built with jansson.
 */
#define LOG_MODULE "control"
#include "common/control.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

struct control_server {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	control_status_fn *status;
	void *ctx;
	atomic_bool stopping;
	pthread_t thread;
	/* Log-rate estimate between two status requests (the first one: since the server started). */
	uint64_t prev_bytes;
	double prev_time;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *control_status_json(const struct ft_status *st, double log_mbit_s)
{
	json_t *o = json_object();
	icount_t lag = st->icount > st->peer_icount && st->peer_icount ? st->icount - st->peer_icount : 0;

	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "role", json_string(st->role));
	json_object_set_new(o, "state", json_string(ft_state_name(st->state)));
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
	json_object_set_new(o, "reason", json_string(st->reason));
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

static char *answer(struct control_server *srv, const char *line)
{
	json_error_t jerr;
	json_t *req = json_loads(line, 0, &jerr);
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
		struct ft_status st;
		srv->status(srv->ctx, &st);
		double t = now_s();
		double rate = 0;
		if (t > srv->prev_time && st.log_bytes >= srv->prev_bytes)
			rate = (double)(st.log_bytes - srv->prev_bytes) * 8 / 1e6 / (t - srv->prev_time);
		srv->prev_time = t;
		srv->prev_bytes = st.log_bytes;
		out = control_status_json(&st, rate);
	} else {
		char msg[128];
		snprintf(msg, sizeof(msg), "unknown command \"%.64s\"", cmd);
		out = error_json(msg);
	}
	json_decref(req);
	return out;
}

static void serve_client(struct control_server *srv, int fd)
{
	char buf[CONTROL_MAX_REQUEST + 1];
	size_t used = 0;

	while (!atomic_load(&srv->stopping)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 1000) <= 0)
			return; /* idle clients are dropped: one at a time is served */
		ssize_t n = read(fd, buf + used, CONTROL_MAX_REQUEST - used);
		if (n <= 0)
			return;
		used += (size_t)n;
		char *nl;
		while ((nl = memchr(buf, '\n', used)) != NULL) {
			*nl = 0;
			char *out = answer(srv, buf);
			if (out) {
				size_t len = strlen(out);
				out[len] = '\n';
				(void)!write(fd, out, len + 1);
				free(out);
			}
			used -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, used);
		}
		if (used == CONTROL_MAX_REQUEST) {
			char *out = error_json("request too long");
			(void)!write(fd, out, strlen(out));
			(void)!write(fd, "\n", 1);
			free(out);
			return;
		}
	}
}

static void *control_main(void *arg)
{
	struct control_server *srv = arg;
	while (!atomic_load(&srv->stopping)) {
		struct pollfd p = { .fd = srv->fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		int c = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve_client(srv, c);
		close(c);
	}
	return NULL;
}

int control_start(const char *path, control_status_fn *status, void *ctx, struct control_server **out, char *err,
		  size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct control_server *srv;
	int ret;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->status = status;
	srv->ctx = ctx;
	srv->prev_time = now_s();
	snprintf(srv->path, sizeof(srv->path), "%s", path);
	strcpy(addr.sun_path, path);
	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv->fd < 0) {
		ret = -errno;
		goto fail;
	}
	unlink(path);
	if (bind(srv->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(srv->fd, 8) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot listen on control socket %s: %s", path, strerror(errno));
		close(srv->fd);
		goto fail;
	}
	ret = -pthread_create(&srv->thread, NULL, control_main, srv);
	if (ret < 0) {
		snprintf(err, errlen, "cannot start the control thread: %s", strerror(-ret));
		close(srv->fd);
		goto fail;
	}
	*out = srv;
	return 0;
fail:
	free(srv);
	return ret;
}

void control_stop(struct control_server *srv)
{
	if (!srv)
		return;
	atomic_store(&srv->stopping, true);
	pthread_join(srv->thread, NULL);
	close(srv->fd);
	unlink(srv->path);
	free(srv);
}

char *control_request(const char *path, const char *cmd, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char req[256], *buf = NULL;
	size_t used = 0, cap = 0;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return NULL;
	}
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		snprintf(err, errlen, "cannot reach the control socket %s: %s (is the VM running?)", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}\n", cmd);
	if (write(fd, req, strlen(req)) < 0)
		goto io_error;
	for (;;) {
		if (used + 1024 > cap) {
			char *nb = realloc(buf, cap = cap * 2 + 4096);
			if (!nb)
				goto io_error;
			buf = nb;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) <= 0)
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
