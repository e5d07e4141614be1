/*
 * world_live.c — the live and virtual-clock worlds of a plain run (see world_live.h).
 *
 * Threads: the vCPU calls every vm_world op, except that on an FT primary the Output Rule's
 * releaser performs the outputs (console_out, net_tx, disk_submit) on its own thread; the console
 * reader (console.c) and the back ends' own threads only post into the input queue. State below
 * the queue is owned by the vCPU thread except the outstanding-request counts (atomic: the
 * releaser adds, the vCPU thread takes away) and quit_signal, which a signal handler sets.
 *
 * Clock policy (wall mode). The world keeps a shadow copy of the guest clock, applying the same
 * anchors it hands the machine, so it knows guest time at any icount without asking the machine.
 * At a boundary it compares guest time with wall time; past CLOCK_DRIFT_TICKS it anchors TIME at
 * max(guest, wall) with a rate chosen so that, at the instruction speed measured since the last
 * anchor, guest time meets wall time CLOCK_CORRECTION_TICKS later. A guest running at a steady
 * speed thus needs an anchor only now and then; an idle guest gets one per wake-up.
 */
#define DIAG_MODULE "world"
#include "host/world_live.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/backend.h"
#include "host/console.h"
#include "host/input_queue.h"
#include "util/diag.h"
#include "vm/clock.h"
#include "util/time.h"

#define NS_PER_TICK (1000000000ull / CLOCK_TIMEBASE_HZ)
#define CLOCK_DRIFT_TICKS (CLOCK_TIMEBASE_HZ / 500)       /* 2 ms */
#define CLOCK_CORRECTION_TICKS (CLOCK_TIMEBASE_HZ / 20)   /* 50 ms */
#define CLOCK_MIN_SAMPLE_TICKS (CLOCK_TIMEBASE_HZ / 1000) /* 1 ms: shorter intervals measure noise */
/* Drift anchors at most this often: the previous anchor's rate already steers toward wall time,
 * and re-anchoring at every boundary while it does so would flood the log with TIME records. */
#define CLOCK_MIN_ANCHOR_GAP_TICKS (CLOCK_TIMEBASE_HZ / 50) /* 20 ms */
#define SLICE_INSNS (1ull << 20)                          /* boundary spacing: input polling latency */
/* The fastest a drift correction lets guest time run: one slice covers at most the correction
 * window. The speed it measures includes every moment the vCPU was held between boundaries (an FT
 * primary waiting for its backup's acks, a paused or descheduled process), so it can be thousands
 * of times too low; the rate from it, applied once the vCPU runs at full speed again, would carry
 * guest time minutes past wall time in one slice, and every timer the guest then sets would wait
 * those minutes out in wall time. A slower vCPU than this bound is still followed: its guest time
 * is lifted to wall time at each anchor. */
#define CLOCK_MAX_TICKS_PER_INSN (((uint64_t)CLOCK_CORRECTION_TICKS << 32) / SLICE_INSNS)
#define CONSOLE_FLUSH_INSNS (SLICE_INSNS / 4)   /* a busy guest's output still shows up promptly */
#define QUIT_POLL_NS 100000000ull   /* idle waits wake this often to notice a signal's quit request */
/* After taking over a running guest (world_live_take_clock()), the cost of its first this many
 * instructions is printed at FTVM_DIAG=info: a hart whose host memory is cold runs them ten times
 * slower than a warm one (docs/migration.md, Where the pause goes). */
#define TAKEOVER_GAUGE_INSNS 100000ull

struct world_live {
	struct world_live_config config;
	struct input_queue *queue;
	struct disk_backend *disk[MACHINE_MAX_DISKS];
	struct tap_backend *tap[MACHINE_MAX_NICS];
	struct console *console;

	/* Guest clock as the machine sees it, and where the wall clock stood at the last anchor. */
	struct vm_clock shadow;
	bool started;
	uint64_t wall_start_ns;
	icount_t last_anchor_icount;
	uint64_t last_anchor_wall;
	bool time_pending;
	struct vm_event time_event;
	uint64_t anchors_drift;      /* TIME anchors for drift (metrics, printed at FTVM_DIAG=info) */
	uint64_t anchors_idle;       /* TIME anchors after idling */

	struct input_item *current;  /* the payload handed out by the last next_event */
	atomic_uint disk_outstanding; /* requests submitted whose completion is not yet handed out */
	atomic_uint rng_outstanding;
	uint64_t prng;

	icount_t last_flush;         /* console output is written out at most every CONSOLE_FLUSH_INSNS */
	/* The takeover gauge (TAKEOVER_GAUGE_INSNS), on the vCPU thread from its first boundary */
	enum { GAUGE_OFF, GAUGE_ARMED, GAUGE_RUNNING } gauge;
	icount_t gauge_icount;
	uint64_t gauge_cpu_ns, gauge_wall_ns;
	_Atomic bool handed_over;            /* world_live_hand_over(): this copy stopped for good */
	volatile sig_atomic_t quit_signal;   /* set by world_live_request_quit() from a signal handler */
	atomic_bool stop_requested;          /* world_live_request_stop(): the VM ends for good */
	atomic_bool cut;                     /* world_live_cut(): the run ends, the VM goes on */
};

static uint64_t wall_ticks(const struct world_live *w)
{
	return (time_mono_ns() - w->wall_start_ns) / NS_PER_TICK;
}

/* splitmix64: a tiny, well-known, seedable generator; quality is ample for guest entropy tests. */
static uint64_t prng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- disks and hand-over ---- */

void world_live_drain_disks(struct world_live *w)
{
	for (unsigned i = 0; i < w->config.ndisks; i++)
		if (w->disk[i])
			disk_backend_drain(w->disk[i]);
}

void world_live_hand_over(struct world_live *w)
{
	atomic_store_explicit(&w->handed_over, true, memory_order_release);
	input_queue_wake(w->queue);
}

bool world_live_handed_over(const struct world_live *w)
{
	return atomic_load_explicit(&w->handed_over, memory_order_acquire);
}

int world_live_take_frame(struct world_live *w, uint64_t until_ns, unsigned *nic, uint8_t *buf, size_t *len)
{
	for (;;) {
		struct input_item *item = input_queue_pop(w->queue);
		if (item) {
			bool frame = item->ev.kind == VM_EV_NET_RX && item->ev.len <= VM_EVENT_MAX_FRAME;
			if (frame) {
				*nic = item->ev.device;
				*len = item->ev.len;
				memcpy(buf, item->ev.data, item->ev.len);
			}
			input_item_free(item);
			if (frame)
				return 1;
			continue;
		}
		if (time_mono_ns() >= until_ns)
			return 0;
		struct timespec ts = time_mono_timespec(until_ns);
		(void)input_queue_wait(w->queue, &ts);
	}
}

int world_live_receive_frame(struct world_live *w, unsigned nic, const uint8_t *frame, size_t len)
{
	if (nic >= w->config.nnics || len < TAP_MIN_FRAME || len > VM_EVENT_MAX_FRAME)
		return -EINVAL;
	struct vm_event ev = { .kind = VM_EV_NET_RX, .device = nic, .len = (uint32_t)len, .data = frame };
	input_queue_post(w->queue, &ev);
	return 0;
}

void world_live_cut(struct world_live *w)
{
	atomic_store(&w->cut, true);
	input_queue_wake(w->queue);
}

bool world_live_take_cut(struct world_live *w)
{
	return atomic_exchange(&w->cut, false);
}

/* ---- console ---- */

void world_live_flush(struct world_live *w)
{
	if (w->console)
		console_flush(w->console);
}

static void console_out(void *ctx, const uint8_t *buf, size_t len)
{
	struct world_live *w = ctx;
	console_write(w->console, buf, len);
}

/* ---- outputs and requests ---- */

static void net_tx(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	struct world_live *w = ctx;
	if (nic < w->config.nnics && w->tap[nic])
		tap_backend_send(w->tap[nic], frame, len);
}

static void disk_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	struct world_live *w = ctx;
	/* Counted before it can complete, so the vCPU thread never takes the completion first. */
	atomic_fetch_add(&w->disk_outstanding, 1);
	if (disk >= w->config.ndisks || !w->disk[disk]) {
		struct vm_event ev = { .kind = VM_EV_DISK_DONE, .device = disk, .request = req->id,
				       .status = VM_DISK_IOERR };
		input_queue_post(w->queue, &ev);
	} else {
		disk_backend_submit(w->disk[disk], req);
	}
}

static void rng_request(void *ctx, unsigned dev, uint32_t len)
{
	struct world_live *w = ctx;
	len = MIN(len, VM_EVENT_MAX_BYTES);
	if (w->config.clock == WORLD_CLOCK_WALL) {
		atomic_fetch_add(&w->rng_outstanding, 1);
		rng_backend_request(dev, len, input_queue_sink(w->queue));
		return;
	}
	uint8_t bytes[VM_EVENT_MAX_BYTES];
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t r = prng_next(&w->prng);
		memcpy(bytes + i, &r, MIN(8u, len - i));
	}
	struct vm_event ev = { .kind = VM_EV_RNG, .device = dev, .len = len, .data = bytes };
	atomic_fetch_add(&w->rng_outstanding, 1);
	input_queue_post(w->queue, &ev);
}

/* ---- time ---- */

static void start_clock(struct world_live *w)
{
	if (w->started)
		return;
	w->started = true;
	w->wall_start_ns = time_mono_ns();
	w->last_anchor_wall = 0;
}

static void queue_anchor(struct world_live *w, icount_t now, uint64_t time, uint64_t ticks_per_insn)
{
	clock_anchor(&w->shadow, now, time, ticks_per_insn);
	w->time_event = (struct vm_event){ .kind = VM_EV_TIME, .icount = now, .time = time,
					   .ticks_per_insn = ticks_per_insn };
	w->time_pending = true;
	w->last_anchor_icount = now;
	w->last_anchor_wall = w->config.clock == WORLD_CLOCK_WALL ? wall_ticks(w) : time;
}

/* Wall mode: re-anchors when guest time has drifted more than CLOCK_DRIFT_TICKS from wall time. */
static void check_drift(struct world_live *w, icount_t now)
{
	uint64_t wall = wall_ticks(w);
	uint64_t guest = clock_time_at(&w->shadow, now);
	uint64_t drift = guest > wall ? guest - wall : wall - guest;
	/* Ahead by more than the correction window, guest time stops (the slowest rate) until wall time
	 * catches up, and at once: waiting out the anchor gap would let a fast vCPU run it further ahead
	 * slice after slice. Once stopped it needs no further anchor until then. */
	if (guest > wall + CLOCK_CORRECTION_TICKS) {
		if (w->shadow.ticks_per_insn > 1) {
			queue_anchor(w, now, wall, 1);
			w->anchors_drift++;
		}
		return;
	}
	if (drift <= CLOCK_DRIFT_TICKS || wall - w->last_anchor_wall < CLOCK_MIN_ANCHOR_GAP_TICKS)
		return;
	uint64_t sample_ticks = wall - w->last_anchor_wall;
	uint64_t sample_insns = now - w->last_anchor_icount;
	uint64_t rate = w->shadow.ticks_per_insn;
	if (sample_ticks >= CLOCK_MIN_SAMPLE_TICKS && sample_insns > 0) {
		/* Instructions expected over the correction window at the measured speed... */
		unsigned __int128 insns = (unsigned __int128)sample_insns * CLOCK_CORRECTION_TICKS / sample_ticks;
		/* ...and the guest time they must cover to meet wall time at its end. */
		uint64_t base = MAX(guest, wall);
		uint64_t target = wall + CLOCK_CORRECTION_TICKS > base ? wall + CLOCK_CORRECTION_TICKS - base : 1;
		if (insns > 0) {
			unsigned __int128 r = ((unsigned __int128)target << 32) / insns;
			rate = r == 0 ? 1 : r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
		}
	}
	queue_anchor(w, now, wall, MIN(rate, CLOCK_MAX_TICKS_PER_INSN));
	w->anchors_drift++;
}

/* Nothing can ever wake an idle hart: no timer, no console, no network, nothing in flight. */
static bool nothing_can_arrive(const struct world_live *w)
{
	return !console_input_open(w->console) && w->config.nnics == 0 && atomic_load(&w->disk_outstanding) == 0 &&
	       atomic_load(&w->rng_outstanding) == 0 && !input_queue_pending(w->queue);
}

/* Ctrl-A x typed, or a signal asked to quit. */
static bool quitting(const struct world_live *w)
{
	return console_quit_requested(w->console) || w->quit_signal || atomic_load(&w->stop_requested) ||
	       atomic_load(&w->cut) || atomic_load_explicit(&w->handed_over, memory_order_acquire);
}

/* ---- the vm_world ops ---- */

/* At each boundary: what the first TAKEOVER_GAUGE_INSNS instructions after a takeover cost this
 * thread (its CPU time, apart from waits for a core) and the wall clock. */
static void gauge_check(struct world_live *w, icount_t now)
{
	if (w->gauge == GAUGE_ARMED) {
		w->gauge = GAUGE_RUNNING;
		w->gauge_icount = now;
		w->gauge_cpu_ns = time_thread_cpu_ns();
		w->gauge_wall_ns = time_mono_ns();
	} else if (w->gauge == GAUGE_RUNNING && now - w->gauge_icount >= TAKEOVER_GAUGE_INSNS) {
		w->gauge = GAUGE_OFF;
		diag_info("taken over: the first %llu instructions ran in %.2f ms of vCPU time, %.2f ms of wall time",
			  (unsigned long long)(now - w->gauge_icount), (time_thread_cpu_ns() - w->gauge_cpu_ns) / 1e6,
			  (time_mono_ns() - w->gauge_wall_ns) / 1e6);
	}
}

static int next_event(void *ctx, icount_t now, struct vm_event *ev)
{
	struct world_live *w = ctx;
	start_clock(w);
	gauge_check(w, now);
	if (w->current) {
		input_item_free(w->current);
		w->current = NULL;
	}
	if (console_has_output(w->console) && now - w->last_flush >= CONSOLE_FLUSH_INSNS) {
		world_live_flush(w);
		w->last_flush = now;
	}
	if (quitting(w))
		return -ECANCELED;
	if (w->time_pending) {
		w->time_pending = false;
		*ev = w->time_event;
		ev->icount = now;
		return 1;
	}
	if (w->config.clock == WORLD_CLOCK_VIRTUAL && atomic_load(&w->disk_outstanding))
		world_live_drain_disks(w);
	struct input_item *item = input_queue_pop(w->queue);
	if (item) {
		/* The only thread that takes away: a count seen non-zero stays so until this. */
		if (item->ev.kind == VM_EV_DISK_DONE && atomic_load(&w->disk_outstanding))
			atomic_fetch_sub(&w->disk_outstanding, 1);
		if (item->ev.kind == VM_EV_RNG && atomic_load(&w->rng_outstanding))
			atomic_fetch_sub(&w->rng_outstanding, 1);
		w->current = item;
		*ev = item->ev;
		ev->icount = now;
		return 1;
	}
	if (w->config.clock == WORLD_CLOCK_WALL) {
		check_drift(w, now);
		if (w->time_pending) {
			w->time_pending = false;
			*ev = w->time_event;
			ev->icount = now;
			return 1;
		}
	}
	return 0;
}

static icount_t horizon(void *ctx, icount_t now)
{
	return now > ICOUNT_MAX - SLICE_INSNS ? ICOUNT_MAX : now + SLICE_INSNS;
}

/* Waits for input until the monotonic time wake_ns, but never longer than QUIT_POLL_NS, so that a
 * quit request from a signal handler (which cannot signal a condition variable) is seen. */
static void wait_bounded(struct world_live *w, uint64_t wake_ns)
{
	uint64_t limit = time_mono_ns() + QUIT_POLL_NS;
	uint64_t until = MIN(wake_ns, limit);
	struct timespec ts = time_mono_timespec(until);
	(void)input_queue_wait(w->queue, &ts);
}

static int idle_virtual(struct world_live *w, icount_t now, uint64_t deadline_time)
{
	if (atomic_load(&w->disk_outstanding) || input_queue_pending(w->queue))
		return 0;
	if (deadline_time != UINT64_MAX) {
		queue_anchor(w, now, deadline_time, w->shadow.ticks_per_insn);
		w->anchors_idle++;
		return 0;
	}
	if (nothing_can_arrive(w))
		return -EDEADLK;
	wait_bounded(w, UINT64_MAX);
	return quitting(w) ? -ECANCELED : 0;
}

static int idle_wall(struct world_live *w, icount_t now, uint64_t deadline_time)
{
	for (;;) {
		if (quitting(w))
			return -ECANCELED;
		if (input_queue_pending(w->queue))
			break;
		if (deadline_time != UINT64_MAX) {
			uint64_t wake_ns = w->wall_start_ns + deadline_time * NS_PER_TICK;
			if (time_mono_ns() >= wake_ns)
				break;
			wait_bounded(w, wake_ns);
		} else {
			if (nothing_can_arrive(w))
				return -EDEADLK;
			wait_bounded(w, UINT64_MAX);
		}
	}
	uint64_t wall = wall_ticks(w);
	if (wall > clock_time_at(&w->shadow, now)) {
		queue_anchor(w, now, wall, w->shadow.ticks_per_insn);
		w->anchors_idle++;
	}
	return 0;
}

static int idle(void *ctx, icount_t now, icount_t deadline, uint64_t deadline_time)
{
	struct world_live *w = ctx;
	start_clock(w);
	gauge_check(w, now);
	world_live_flush(w);
	if (w->config.clock == WORLD_CLOCK_VIRTUAL)
		return idle_virtual(w, now, deadline_time);
	return idle_wall(w, now, deadline_time);
}

static const struct vm_world_ops live_ops = {
	.console_out = console_out,
	.net_tx = net_tx,
	.disk_submit = disk_submit,
	.rng_request = rng_request,
	.next_event = next_event,
	.horizon = horizon,
	.idle = idle,
};

/* ---- life cycle ---- */

int world_live_create(const struct world_live_config *config, struct world_live **out, char *err, size_t errlen)
{
	int ret;
	*out = NULL;
	if (config->ndisks > MACHINE_MAX_DISKS || config->nnics > MACHINE_MAX_NICS) {
		snprintf(err, errlen, "too many disks or NICs (at most %u and %u)", MACHINE_MAX_DISKS, MACHINE_MAX_NICS);
		return -EINVAL;
	}
	struct world_live *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	w->config = *config;
	w->prng = config->rng_seed;
	clock_init(&w->shadow);
	ret = input_queue_create(&w->queue);
	if (ret) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	struct backend_sink sink = input_queue_sink(w->queue);
	for (unsigned i = 0; i < config->ndisks; i++) {
		ret = disk_backend_open(config->disk_path[i], config->disk_read_only[i], i, sink, &w->disk[i], err,
					errlen);
		if (ret)
			goto out;
	}
	for (unsigned i = 0; i < config->nnics; i++) {
		ret = tap_backend_open(config->tap_ifname[i], i, sink, &w->tap[i], err, errlen);
		if (ret)
			goto out;
	}
	ret = console_open(config->console_in_fd, config->console_out_fd, w->queue, &w->console, err, errlen);
	if (ret)
		goto out;
	*out = w;
	return 0;
out:
	world_live_destroy(w);
	return ret;
}

void world_live_destroy(struct world_live *w)
{
	if (!w)
		return;
	diag_info("time anchors: %llu for drift, %llu after idling", (unsigned long long)w->anchors_drift,
		 (unsigned long long)w->anchors_idle);
	console_close(w->console);
	for (unsigned i = 0; i < MACHINE_MAX_DISKS; i++)
		disk_backend_close(w->disk[i]);
	for (unsigned i = 0; i < MACHINE_MAX_NICS; i++)
		if (w->tap[i])
			tap_backend_close(w->tap[i]);
	if (w->current)
		input_item_free(w->current);
	input_queue_destroy(w->queue);
	free(w);
}

void world_live_reset(struct world_live *w)
{
	for (unsigned i = 0; i < w->config.ndisks; i++)
		if (w->disk[i])
			disk_backend_drain(w->disk[i]);
	/* Keep console input; drop completions meant for the old devices. */
	struct input_item *keep = NULL, **tail = &keep, *item;
	while ((item = input_queue_pop(w->queue))) {
		if (item->ev.kind == VM_EV_CONSOLE_IN || item->ev.kind == VM_EV_NET_RX) {
			*tail = item;
			tail = &item->next;
			item->next = NULL;
		} else {
			input_item_free(item);
		}
	}
	while ((item = keep)) {
		keep = item->next;
		input_queue_post(w->queue, &item->ev);
		input_item_free(item);
	}
	if (w->current) {
		input_item_free(w->current);
		w->current = NULL;
	}
	clock_init(&w->shadow);
	w->started = false;
	w->time_pending = false;
	w->last_anchor_icount = 0;
	w->last_flush = 0;
	atomic_store(&w->disk_outstanding, 0);
	atomic_store(&w->rng_outstanding, 0);
}

void world_live_take_clock(struct world_live *w, icount_t now, const struct vm_clock *clock)
{
	uint64_t time = clock_time_at(clock, now);
	w->shadow = *clock;
	w->started = true;
	w->wall_start_ns = time_mono_ns() - time * NS_PER_TICK;  /* wall_ticks() == guest time now */
	w->time_pending = false;
	w->last_anchor_icount = now;
	w->last_anchor_wall = time;
	w->gauge = GAUGE_ARMED;
}

struct vm_world world_live_world(struct world_live *w)
{
	return (struct vm_world){ .ops = &live_ops, .ctx = w };
}

unsigned world_live_ndisks(const struct world_live *w)
{
	return w->config.ndisks;
}

unsigned world_live_nnics(const struct world_live *w)
{
	return w->config.nnics;
}

struct disk_backend *world_live_disk_backend(struct world_live *w, unsigned disk)
{
	return disk < w->config.ndisks ? w->disk[disk] : NULL;
}

uint64_t world_live_disk_size(const struct world_live *w, unsigned disk)
{
	return disk < w->config.ndisks && w->disk[disk] ? disk_backend_size(w->disk[disk]) : 0;
}

bool world_live_quit_requested(const struct world_live *w)
{
	return w->console && console_quit_requested(w->console);
}

void world_live_request_quit(struct world_live *w, int signo)
{
	w->quit_signal = signo;
}

int world_live_quit_signal(const struct world_live *w)
{
	return w->quit_signal;
}

void world_live_request_stop(struct world_live *w)
{
	atomic_store(&w->stop_requested, true);
}

bool world_live_stop_requested(const struct world_live *w)
{
	return atomic_load(&w->stop_requested);
}
