/*
 * machine_pause.c — holding the vCPU at a slice boundary for another thread (see machine.h).
 *
 * One mutex and one condition variable. The vCPU thread marks itself at rest, under the lock,
 * when it parks at a boundary because pauses are requested and for the length of every idle wait
 * of its world (where it executes nothing and applies no event); machine_pause() counts a request
 * and waits until the run is at rest or there is no run. Between the two, the lock orders every
 * write the vCPU thread made before resting before every read of the pausing thread. The run loop
 * looks at the request count without the lock once per boundary, so an unpaused machine pays one
 * relaxed load per slice; a request it misses is seen at the next boundary.
 *
 * Nothing here changes what the guest sees: the loop parks between slices, where it would go on
 * with the same icount, and asks the world for events only after it is let go.
 */
#include "vm/machine_internal.h"

#include <errno.h>

int machine_hold_init(struct machine *m)
{
	struct machine_hold *h = &m->hold;
	int r = pthread_mutex_init(&h->lock, NULL);
	if (r)
		return -r;
	r = pthread_cond_init(&h->cond, NULL);
	if (r) {
		pthread_mutex_destroy(&h->lock);
		return -r;
	}
	atomic_init(&h->requests, 0);
	return 0;
}

void machine_hold_destroy(struct machine *m)
{
	pthread_cond_destroy(&m->hold.cond);
	pthread_mutex_destroy(&m->hold.lock);
}

void machine_hold_enter_run(struct machine *m)
{
	struct machine_hold *h = &m->hold;
	pthread_mutex_lock(&h->lock);
	h->in_run = true;
	h->at_rest = false;
	h->vcpu = pthread_self();
	pthread_mutex_unlock(&h->lock);
}

void machine_hold_leave_run(struct machine *m)
{
	struct machine_hold *h = &m->hold;
	pthread_mutex_lock(&h->lock);
	h->in_run = false;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* With the lock held: at rest until every pause is resumed. */
static void rest_while_held(struct machine_hold *h)
{
	h->at_rest = true;
	pthread_cond_broadcast(&h->cond);
	while (atomic_load_explicit(&h->requests, memory_order_relaxed))
		pthread_cond_wait(&h->cond, &h->lock);
	h->at_rest = false;
}

void machine_hold_boundary(struct machine *m)
{
	struct machine_hold *h = &m->hold;
	if (__builtin_expect(!atomic_load_explicit(&h->requests, memory_order_relaxed), 1))
		return;
	pthread_mutex_lock(&h->lock);
	rest_while_held(h);
	pthread_mutex_unlock(&h->lock);
}

void machine_hold_idle_begin(struct machine *m)
{
	struct machine_hold *h = &m->hold;
	pthread_mutex_lock(&h->lock);
	h->at_rest = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

void machine_hold_idle_end(struct machine *m)
{
	/* A pause that came during the wait holds the machine as it is now: park before anything
	 * else happens, still at rest. */
	struct machine_hold *h = &m->hold;
	pthread_mutex_lock(&h->lock);
	rest_while_held(h);
	pthread_mutex_unlock(&h->lock);
}

int machine_pause(struct machine *m)
{
	struct machine_hold *h = &m->hold;
	pthread_mutex_lock(&h->lock);
	if (h->in_run && pthread_equal(h->vcpu, pthread_self())) {
		pthread_mutex_unlock(&h->lock);
		return -EDEADLK;
	}
	atomic_fetch_add_explicit(&h->requests, 1, memory_order_relaxed);
	while (h->in_run && !h->at_rest)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

void machine_resume(struct machine *m)
{
	struct machine_hold *h = &m->hold;
	pthread_mutex_lock(&h->lock);
	if (atomic_load_explicit(&h->requests, memory_order_relaxed) &&
	    atomic_fetch_sub_explicit(&h->requests, 1, memory_order_relaxed) == 1)
		pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}
