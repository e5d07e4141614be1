/*
 * log_accept.c — see log_accept.h.
 *
 * Threads: the accepting thread calls channel_accept() in slices of ACCEPT_SLICE_MS (the
 * listener keeps half-done handshakes between calls) and looks at `stop` between them; the
 * caller's thread takes the result or stops it. Everything they share is under a->lock.
 */
#define DIAG_MODULE "backup"
#include "backup/log_accept.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logchannel/channel.h"
#include "util/diag.h"
#include "util/time.h"

#define ACCEPT_SLICE_MS 50

struct log_accept {
	struct channel_listener *listener; /* the accepting thread's until it ends */
	pthread_t thread;
	pthread_mutex_t lock;           /* guards everything below */
	pthread_cond_t ended;           /* the accepting thread has a result */
	bool stop, done;
	int ret;                        /* done: 0 (ch set) or the accept's -errno */
	struct channel *ch;             /* accepted, not yet taken */
	struct channel_err cerr;        /* done with an error: why */
};

static void *accept_main(void *arg)
{
	struct log_accept *a = arg;
	struct channel *ch = NULL;
	struct channel_err cerr = { 0 };
	int ret;

	for (;;) {
		pthread_mutex_lock(&a->lock);
		bool stop = a->stop;
		pthread_mutex_unlock(&a->lock);
		if (stop) {
			ret = -ECANCELED;
			snprintf(cerr.msg, sizeof(cerr.msg), "stopped");
			break;
		}
		ret = channel_accept(a->listener, ACCEPT_SLICE_MS, &ch, &cerr);
		if (ret == -ETIMEDOUT)
			continue;
		if (!ft_backup_refused(ret))
			break;
		diag_warn("refused a primary: %s", cerr.msg);
	}
	channel_listener_close(a->listener);
	a->listener = NULL;
	pthread_mutex_lock(&a->lock);
	a->done = true;
	a->ret = ret;
	a->ch = ret ? NULL : ch;
	a->cerr = cerr;
	pthread_cond_broadcast(&a->ended);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int log_accept_start(const struct ft_backup_config *cfg, struct log_accept **out, char *err, size_t errlen)
{
	struct log_accept *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	struct channel_config cc;
	struct channel_err cerr = { 0 };
	ft_backup_channel_config(cfg, &cc);
	int ret = channel_listen(&cc, cfg->listen, &a->listener, &cerr);
	if (ret < 0) {
		snprintf(err, errlen, "cannot listen for the log on %s: %s", cfg->listen, cerr.msg);
		free(a);
		return ret;
	}
	pthread_mutex_init(&a->lock, NULL);
	ret = time_cond_init(&a->ended);
	if (ret < 0)
		goto fail;
	ret = -pthread_create(&a->thread, NULL, accept_main, a);
	if (ret < 0) {
		pthread_cond_destroy(&a->ended);
		goto fail;
	}
	*out = a;
	return 0;
fail:
	snprintf(err, errlen, "cannot start the log listener's thread: %s", strerror(-ret));
	channel_listener_close(a->listener);
	pthread_mutex_destroy(&a->lock);
	free(a);
	return ret;
}

int log_accept_take(struct log_accept *a, int timeout_ms, struct channel **ch, char *err, size_t errlen)
{
	struct timespec until = time_mono_timespec(time_mono_ns() + (uint64_t)timeout_ms * TIME_NS_PER_MS);
	pthread_mutex_lock(&a->lock);
	while (!a->done && pthread_cond_timedwait(&a->ended, &a->lock, &until) == 0)
		;
	int ret = a->done ? a->ret : -ETIMEDOUT;
	if (!a->done)
		snprintf(err, errlen, "no primary connected for the log within %d ms", timeout_ms);
	else if (ret)
		snprintf(err, errlen, "accepting the primary: %s", a->cerr.msg);
	*ch = ret ? NULL : a->ch;
	a->ch = NULL;
	pthread_mutex_unlock(&a->lock);
	return ret;
}

void log_accept_stop(struct log_accept *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	channel_close(a->ch);
	pthread_cond_destroy(&a->ended);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
