/*
 * worker_slots.c — slow requests on a fixed set of threads, collected by the server's loop
 * (worker_slots.h).
 */
#include "util/worker_slots.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "util/diag.h"

void worker_slots_init(struct worker_slots *w, struct worker_slot *slots, size_t count, int wake_fd)
{
	pthread_mutex_init(&w->lock, NULL);
	w->wake_fd = wake_fd;
	w->count = count;
	w->slot = slots;
	for (size_t i = 0; i < count; i++)
		slots[i] = (struct worker_slot){ .set = w };
}

void worker_slots_destroy(struct worker_slots *w)
{
	pthread_mutex_destroy(&w->lock);
}

int worker_slots_free(const struct worker_slots *w)
{
	for (size_t i = 0; i < w->count; i++)
		if (!w->slot[i].live)
			return (int)i;
	return -1;
}

static void *slot_main(void *arg)
{
	struct worker_slot *s = arg;
	uint64_t one = 1;

	s->run(s->ctx);
	pthread_mutex_lock(&s->set->lock);
	s->done = true;
	pthread_mutex_unlock(&s->set->lock);
	if (write(s->set->wake_fd, &one, sizeof(one)) < 0)
		diag_warn("cannot wake the server after a slow request: %s", strerror(errno));
	return NULL;
}

int worker_slots_start(struct worker_slots *w, size_t i, worker_run_fn *run, void *ctx)
{
	struct worker_slot *s = &w->slot[i];

	s->run = run;
	s->ctx = ctx;
	s->done = false;   /* no thread of this slot runs: the server's own write */
	int ret = pthread_create(&s->thread, NULL, slot_main, s);
	if (ret == 0)
		s->live = true;
	return ret;
}

static void finish_slot(struct worker_slots *w, size_t i, worker_finish_fn *finish, void *owner)
{
	pthread_join(w->slot[i].thread, NULL);
	w->slot[i].live = false;
	finish(owner, i);
}

void worker_slots_collect(struct worker_slots *w, worker_finish_fn *finish, void *owner)
{
	for (size_t i = 0; i < w->count; i++) {
		if (!w->slot[i].live)
			continue;
		pthread_mutex_lock(&w->lock);
		bool done = w->slot[i].done;
		pthread_mutex_unlock(&w->lock);
		if (done)
			finish_slot(w, i, finish, owner);
	}
}

void worker_slots_join_all(struct worker_slots *w, worker_finish_fn *finish, void *owner)
{
	for (size_t i = 0; i < w->count; i++)
		if (w->slot[i].live)
			finish_slot(w, i, finish, owner);
}
