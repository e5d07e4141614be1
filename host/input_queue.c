/*
 * input_queue.c — a mutex-protected singly linked FIFO with a condition variable on the
 * monotonic clock (see input_queue.h). Posts are rare next to instructions, so one lock is fine;
 * the vCPU's per-boundary check is an atomic load.
 */
#include "host/input_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/time.h"

struct input_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct input_item *head, *tail;
	atomic_uint count;
	atomic_bool woken;
	atomic_uint_least64_t dropped;
};

int input_queue_create(struct input_queue **out)
{
	struct input_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	int ret = time_cond_init(&q->cond);
	if (ret < 0) {
		free(q);
		return ret;
	}
	pthread_mutex_init(&q->lock, NULL);
	*out = q;
	return 0;
}

void input_queue_destroy(struct input_queue *q)
{
	if (!q)
		return;
	struct input_item *item;
	while ((item = input_queue_pop(q)))
		input_item_free(item);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

void input_queue_post(struct input_queue *q, const struct vm_event *ev)
{
	struct input_item *item = malloc(sizeof(*item) + ev->len);
	if (!item) {
		atomic_fetch_add(&q->dropped, 1);
		return;
	}
	item->next = NULL;
	item->ev = *ev;
	if (ev->len)
		memcpy(item->payload, ev->data, ev->len);
	item->ev.data = item->payload;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = item;
	else
		q->head = item;
	q->tail = item;
	atomic_fetch_add(&q->count, 1);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

static void sink_post(void *ctx, const struct vm_event *ev)
{
	input_queue_post(ctx, ev);
}

struct backend_sink input_queue_sink(struct input_queue *q)
{
	return (struct backend_sink){ .post = sink_post, .ctx = q };
}

struct input_item *input_queue_pop(struct input_queue *q)
{
	if (!atomic_load(&q->count))
		return NULL;
	pthread_mutex_lock(&q->lock);
	struct input_item *item = q->head;
	if (item) {
		q->head = item->next;
		if (!q->head)
			q->tail = NULL;
		atomic_fetch_sub(&q->count, 1);
	}
	pthread_mutex_unlock(&q->lock);
	return item;
}

void input_item_free(struct input_item *item)
{
	free(item);
}

bool input_queue_pending(const struct input_queue *q)
{
	return atomic_load(&q->count) != 0;
}

bool input_queue_wait(struct input_queue *q, const struct timespec *deadline)
{
	pthread_mutex_lock(&q->lock);
	while (!q->head && !atomic_exchange(&q->woken, false)) {
		int r = deadline ? pthread_cond_timedwait(&q->cond, &q->lock, deadline)
				 : pthread_cond_wait(&q->cond, &q->lock);
		if (r == ETIMEDOUT)
			break;
	}
	bool have = q->head != NULL;
	pthread_mutex_unlock(&q->lock);
	return have;
}

void input_queue_wake(struct input_queue *q)
{
	pthread_mutex_lock(&q->lock);
	atomic_store(&q->woken, true);
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

uint64_t input_queue_dropped(const struct input_queue *q)
{
	return atomic_load(&q->dropped);
}
