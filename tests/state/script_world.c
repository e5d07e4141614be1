/*
 * script_world.c — the copyable deterministic world of the state tests (see script_world.h).
 */
#include "script_world.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define SW_MAX_DELAY 40000u     /* instructions from submission to completion, at most */
#define SW_FRAME_LEN 60u
#define SW_CONSOLE_LEN 256u /* a burst the guest reads over many instructions */

static uint64_t next_rand(struct script_world *w)
{
	uint64_t x = w->rand;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return w->rand = x;
}

static void fold_output(struct script_world *w, uint64_t kind, const void *buf, size_t len)
{
	w->outputs = XXH3_64bits_withSeed(&kind, sizeof(kind), w->outputs);
	w->outputs = XXH3_64bits_withSeed(buf, len, w->outputs);
}

static void sw_console_out(void *ctx, const uint8_t *buf, size_t len)
{
	fold_output(ctx, 1, buf, len);
}

static void sw_net_tx(void *ctx, unsigned nic, const uint8_t *frame, size_t len)
{
	fold_output(ctx, 2 + ((uint64_t)nic << 8), frame, len);
}

static icount_t delay(struct script_world *w)
{
	return 1 + next_rand(w) % SW_MAX_DELAY;
}

/* A request is submitted during a slice, at an icount the world is not told; the machine stops
 * right after it, so the boundary that follows (the next call with `now`) dates it. */
static void sw_disk_submit(void *ctx, unsigned disk, const struct vm_disk_request *req)
{
	struct script_world *w = ctx;
	if (disk >= w->ndisks || w->ndisk_req >= SW_MAX_PENDING)
		abort();  /* the device bounds its requests far below this */
	if (req->op == VM_DISK_WRITE && (uint64_t)req->sector * 512 + req->len <= w->disk_bytes[disk])
		memcpy(w->disk[disk] + req->sector * 512, req->data, req->len);
	if (req->op == VM_DISK_WRITE)
		fold_output(w, 3, req->data, req->len);
	w->disk_req[w->ndisk_req++] = (struct sw_request){ .dev = disk, .id = req->id, .op = req->op,
							   .sector = req->sector, .len = req->len,
							   .delay = delay(w) };
}

static void sw_rng_request(void *ctx, unsigned dev, uint32_t len)
{
	struct script_world *w = ctx;
	if (w->nrng_req >= SW_MAX_PENDING)
		abort();
	w->rng_req[w->nrng_req++] = (struct sw_request){ .dev = dev, .len = len, .delay = delay(w) };
}

/* Dates the requests submitted in the slice that ended at `now`. */
static void anchor_requests(struct sw_request *r, unsigned n, icount_t now)
{
	for (unsigned i = 0; i < n; i++) {
		if (r[i].delay) {
			r[i].due = now + r[i].delay;
			r[i].delay = 0;
		}
	}
}

static int take_due(struct sw_request *r, unsigned *n, icount_t now, struct sw_request *out)
{
	for (unsigned i = 0; i < *n; i++) {
		if (r[i].due <= now) {
			*out = r[i];
			memmove(&r[i], &r[i + 1], (*n - i - 1) * sizeof(*r));
			(*n)--;
			return 1;
		}
	}
	return 0;
}

static int sw_next_event(void *ctx, icount_t now, struct vm_event *ev)
{
	struct script_world *w = ctx;
	struct sw_request r;
	anchor_requests(w->disk_req, w->ndisk_req, now);
	anchor_requests(w->rng_req, w->nrng_req, now);
	memset(ev, 0, sizeof(*ev));
	ev->icount = now;
	if (w->pending_time) {
		ev->kind = VM_EV_TIME;
		ev->time = w->pending_time;
		ev->ticks_per_insn = CLOCK_DEFAULT_TICKS_PER_INSN;
		w->pending_time = 0;
	} else if (take_due(w->disk_req, &w->ndisk_req, now, &r)) {
		*ev = (struct vm_event){ .kind = VM_EV_DISK_DONE, .icount = now, .device = r.dev, .request = r.id,
					 .status = VM_DISK_OK };
		if (r.op == VM_DISK_READ) {
			uint64_t off = r.sector * 512;
			if (off + r.len > w->disk_bytes[r.dev])
				ev->status = VM_DISK_IOERR;
			else
				memcpy(w->payload, w->disk[r.dev] + off, r.len);
			ev->len = ev->status == VM_DISK_OK ? r.len : 0;
			ev->data = w->payload;
		}
	} else if (take_due(w->rng_req, &w->nrng_req, now, &r)) {
		*ev = (struct vm_event){ .kind = VM_EV_RNG, .icount = now, .device = r.dev, .len = r.len,
					 .data = w->payload };
		for (uint32_t i = 0; i < r.len; i++)
			w->payload[i] = (uint8_t)next_rand(w);
	} else if (w->nnics && w->rx_every && now >= w->next_rx) {
		*ev = (struct vm_event){ .kind = VM_EV_NET_RX, .icount = now, .device = 0, .len = SW_FRAME_LEN,
					 .data = w->payload };
		memset(w->payload, 0xff, 6);  /* broadcast, from a random address, unknown ethertype */
		for (unsigned i = 6; i < SW_FRAME_LEN; i++)
			w->payload[i] = (uint8_t)next_rand(w);
		w->payload[6] &= 0xfe;
		w->payload[12] = 0x88;
		w->payload[13] = 0xb5;
		w->next_rx = now + w->rx_every;
	} else if (w->console_every && now >= w->next_console) {
		*ev = (struct vm_event){ .kind = VM_EV_CONSOLE_IN, .icount = now, .len = SW_CONSOLE_LEN,
					 .data = w->payload };
		for (unsigned i = 0; i < SW_CONSOLE_LEN; i++)
			w->payload[i] = (uint8_t)"ftvm \r\n"[i % 7];  /* never 'q', which ends echo.elf */
		w->next_console = now + w->console_every;
	} else {
		return 0;
	}
	w->events++;
	return 1;
}

static icount_t earliest(const struct script_world *w)
{
	icount_t t = ICOUNT_MAX;
	for (unsigned i = 0; i < w->ndisk_req; i++)
		t = MIN(t, w->disk_req[i].due);
	for (unsigned i = 0; i < w->nrng_req; i++)
		t = MIN(t, w->rng_req[i].due);
	if (w->nnics && w->rx_every)
		t = MIN(t, w->next_rx);
	if (w->console_every)
		t = MIN(t, w->next_console);
	return t;
}

static icount_t sw_horizon(void *ctx, icount_t now)
{
	struct script_world *w = ctx;
	anchor_requests(w->disk_req, w->ndisk_req, now);
	anchor_requests(w->rng_req, w->nrng_req, now);
	icount_t t = earliest(w);
	return t > now ? t : now + 1;
}

/* The hart waits: complete the request due first, else jump to its timer. Frames and console
 * bytes are scheduled by icount, which does not move while the hart waits: they come only while
 * it runs (pulling them in here could feed a guest that ignores them forever at one icount). */
static int sw_idle(void *ctx, icount_t now, icount_t deadline, uint64_t deadline_time)
{
	struct script_world *w = ctx;
	anchor_requests(w->disk_req, w->ndisk_req, now);
	anchor_requests(w->rng_req, w->nrng_req, now);
	icount_t t = ICOUNT_MAX;
	for (unsigned i = 0; i < w->ndisk_req; i++)
		t = MIN(t, w->disk_req[i].due);
	for (unsigned i = 0; i < w->nrng_req; i++)
		t = MIN(t, w->rng_req[i].due);
	if (t == ICOUNT_MAX && deadline == ICOUNT_MAX)
		return -EDEADLK;
	if (deadline != ICOUNT_MAX && deadline <= t) {
		w->pending_time = deadline_time;
		return 0;
	}
	for (unsigned i = 0; i < w->ndisk_req; i++)
		if (w->disk_req[i].due == t)
			w->disk_req[i].due = now;
	for (unsigned i = 0; i < w->nrng_req; i++)
		if (w->rng_req[i].due == t)
			w->rng_req[i].due = now;
	return 0;
}

static const struct vm_world_ops sw_ops = {
	.console_out = sw_console_out,
	.net_tx = sw_net_tx,
	.disk_submit = sw_disk_submit,
	.rng_request = sw_rng_request,
	.next_event = sw_next_event,
	.horizon = sw_horizon,
	.idle = sw_idle,
};

struct script_world *script_world_create(uint64_t seed, unsigned ndisks, const uint64_t *disk_bytes,
					 unsigned nnics, icount_t rx_every, icount_t console_every)
{
	struct script_world *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->rand = seed ? seed : 1;
	w->ndisks = ndisks;
	w->nnics = nnics;
	w->rx_every = rx_every;
	w->next_rx = rx_every;
	w->console_every = console_every;
	w->next_console = console_every;
	for (unsigned d = 0; d < ndisks; d++) {
		w->disk_bytes[d] = disk_bytes[d];
		if (!(w->disk[d] = calloc(1, disk_bytes[d]))) {
			script_world_destroy(w);
			return NULL;
		}
	}
	return w;
}

struct script_world *script_world_clone(const struct script_world *w)
{
	struct script_world *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	memcpy(c, w, sizeof(*c));
	for (unsigned d = 0; d < w->ndisks; d++) {
		c->disk[d] = malloc(w->disk_bytes[d]);
		if (!c->disk[d]) {
			for (unsigned k = 0; k < d; k++)
				free(c->disk[k]);
			free(c);
			return NULL;
		}
		memcpy(c->disk[d], w->disk[d], w->disk_bytes[d]);
	}
	return c;
}

void script_world_destroy(struct script_world *w)
{
	if (!w)
		return;
	for (unsigned d = 0; d < w->ndisks; d++)
		free(w->disk[d]);
	free(w);
}

struct vm_world script_world_world(struct script_world *w)
{
	return (struct vm_world){ .ops = &sw_ops, .ctx = w };
}
