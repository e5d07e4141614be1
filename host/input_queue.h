/*
 * input_queue.h — the thread-safe queue through which live back ends hand events to the vCPU.
 *
 * Back-end threads (disk I/O, TAP reader, entropy, the console reader) post copies of their
 * events; the vCPU thread pops them at slice boundaries and, while the hart idles, sleeps in
 * input_queue_wait() until something arrives or a deadline passes. A cheap unlocked check
 * (input_queue_pending) keeps the common "nothing new" case off the mutex.
 */
#ifndef FTVM_HOST_INPUT_QUEUE_H
#define FTVM_HOST_INPUT_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "util/compiler.h"
#include "host/backend.h"
#include "vm/event.h"

struct input_queue;

/* One queued event; its payload follows it in the same allocation. */
struct input_item {
	struct input_item *next;
	struct vm_event ev;      /* ev.data points at payload */
	uint8_t payload[];
};

int input_queue_create(struct input_queue **out) FTVM_MUST_CHECK;
void input_queue_destroy(struct input_queue *q);
/* Thread-safe; copies ev and its payload. Drops (and counts) the event when memory runs out. */
void input_queue_post(struct input_queue *q, const struct vm_event *ev);
/* The sink to give back ends. */
struct backend_sink input_queue_sink(struct input_queue *q);
/* The oldest item, or NULL; the caller frees it with input_item_free(). */
struct input_item *input_queue_pop(struct input_queue *q);
void input_item_free(struct input_item *item);
/* True when an item may be waiting (racy hint, no lock). */
bool input_queue_pending(const struct input_queue *q);
/* Waits until an item is queued, input_queue_wake() is called or the CLOCK_MONOTONIC time
 * `deadline` passes (NULL: no deadline). Returns true when an item is queued. */
bool input_queue_wait(struct input_queue *q, const struct timespec *deadline);
/* Wakes a waiter without posting (e.g. to quit). */
void input_queue_wake(struct input_queue *q);
/* Events dropped for lack of memory. */
uint64_t input_queue_dropped(const struct input_queue *q);

#endif
