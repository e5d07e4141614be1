/*
 * worker_slots.h — a fixed set of threads that answer slow requests beside a server's poll loop.
 *
 * A server thread must never wait on a request that may take long (one that asks a VM's process,
 * say), yet its answer must go out through the server's own loop. So the server hands such a
 * request to a free slot, whose thread runs it; when it ends, the slot is marked done and the
 * server's wake-up eventfd written, and the server's loop collects it: the thread joined (so all
 * it wrote is the server's to read) and the owner's finish callback called with the slot's index.
 * With every slot busy a request is refused at once: a slow peer cannot make the server spawn
 * threads without bound.
 *
 * The server thread alone starts, collects and joins; `done` is the only field the slots' threads
 * touch, under the set's lock. The owner keeps its per-request data in its own array indexed like
 * the slots.
 */
#ifndef FTVM_UTIL_WORKER_SLOTS_H
#define FTVM_UTIL_WORKER_SLOTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef void worker_run_fn(void *ctx);
typedef void worker_finish_fn(void *owner, size_t slot);

struct worker_slot {
	struct worker_slots *set;
	worker_run_fn *run;
	void *ctx;
	pthread_t thread;
	bool live;                  /* a thread to join (server thread only) */
	bool done;                  /* run returned; under set->lock */
};

struct worker_slots {
	pthread_mutex_t lock;
	int wake_fd;                /* the server's eventfd, written once by each slot whose run ended */
	size_t count;
	struct worker_slot *slot;   /* count of them, the owner's memory */
};

/* slots[0..count) zeroed by the caller; wake_fd stays the caller's. */
void worker_slots_init(struct worker_slots *w, struct worker_slot *slots, size_t count, int wake_fd);
void worker_slots_destroy(struct worker_slots *w);

/* The index of a slot with no thread, or -1 when all are busy. */
int worker_slots_free(const struct worker_slots *w);

/* Runs run(ctx) on slot i's own thread (i from worker_slots_free). 0, or pthread_create's error
 * (the slot stays free). */
int worker_slots_start(struct worker_slots *w, size_t i, worker_run_fn *run, void *ctx);

/* Joins every slot whose run ended and calls finish(owner, i) for it; the slot is free again
 * before finish runs. The server thread, after its eventfd woke it. */
void worker_slots_collect(struct worker_slots *w, worker_finish_fn *finish, void *owner);

/* Waits for every slot's run to end (each must bound its own wait) and calls finish for it. */
void worker_slots_join_all(struct worker_slots *w, worker_finish_fn *finish, void *owner);

#endif
