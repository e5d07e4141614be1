/*
 * virtio_rng.c — virtio entropy device (virtio 1.2 §5.4): one request queue, no features.
 *
 * On a kick each new buffer (device-writable only) joins a FIFO and one rng_request(dev, len)
 * goes to the world for it (len capped at VM_EVENT_MAX_BYTES). Each applied VM_EV_RNG answers one
 * outstanding request: it fills the buffer at the head of the FIFO with its bytes (at most the
 * buffer's size) and returns it. A driver reset empties the FIFO but the world still answers the
 * requests already made; those answers go to whatever buffer heads the FIFO then, or nowhere —
 * entropy is entropy, and the choice depends only on the event order. An RNG event with no request
 * outstanding does not fit the device (-EINVAL, divergence in replay).
 */
#define DIAG_MODULE "virtio-rng"
#include "util/diag.h"
#include "vm/state_io.h"
#include "vm/virtio_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RNG_QUEUE 0

struct rng_buf {
	uint16_t head;
	uint32_t len;
	unsigned nsegs;
	struct virtio_seg *segs;
};

struct virtio_rng {
	struct virtio_device vdev;
	struct rng_buf fifo[VIRTQ_MAX_SIZE];
	unsigned first, count;
	uint64_t inflight;      /* rng_request calls not yet answered by an RNG event */
};

static struct virtio_rng *to_rng(struct virtio_device *dev)
{
	return (struct virtio_rng *)dev;
}

static void take_buffer(struct virtio_rng *rng, const struct virtio_chain *chain)
{
	const struct vm_world *world = rng->vdev.host.world;
	if (chain->out_len || !chain->in_len || chain->in_len > UINT32_MAX) {
		virtio_set_needs_reset(&rng->vdev, "entropy buffer not a writable buffer");
		return;
	}
	if (rng->count >= rng->vdev.vq[RNG_QUEUE].num) {
		virtio_set_needs_reset(&rng->vdev, "more entropy buffers outstanding than the queue holds");
		return;
	}
	struct rng_buf *b = &rng->fifo[(rng->first + rng->count) % VIRTQ_MAX_SIZE];
	unsigned nin = chain->nsegs - chain->nout;
	b->segs = malloc(nin * sizeof(*b->segs));
	if (!b->segs) {
		/* Give the buffer back empty rather than lose it. */
		virtq_push(&rng->vdev, RNG_QUEUE, chain->head, 0);
		return;
	}
	memcpy(b->segs, &chain->segs[chain->nout], nin * sizeof(*b->segs));
	b->nsegs = nin;
	b->head = chain->head;
	b->len = (uint32_t)chain->in_len;
	rng->count++;
	rng->inflight++;
	rng->vdev.stats.rng_requests++;
	if (world && world->ops->rng_request)
		world->ops->rng_request(world->ctx, rng->vdev.host.index, MIN(b->len, VM_EVENT_MAX_BYTES));
}

static void rng_notify(struct virtio_device *dev, unsigned q)
{
	struct virtio_chain chain;
	while (virtio_running(dev) && virtq_pop(dev, q, &chain) == 1)
		take_buffer(to_rng(dev), &chain);
}

static struct rng_buf *fifo_pop(struct virtio_rng *rng)
{
	if (!rng->count)
		return NULL;
	struct rng_buf *b = &rng->fifo[rng->first];
	rng->first = (rng->first + 1) % VIRTQ_MAX_SIZE;
	rng->count--;
	return b;
}

static int rng_apply(struct virtio_device *dev, const struct vm_event *ev)
{
	struct virtio_rng *rng = to_rng(dev);
	if (ev->kind != VM_EV_RNG || ev->len > VM_EVENT_MAX_BYTES || (ev->len && !ev->data) || !rng->inflight)
		return -EINVAL;
	rng->inflight--;
	if (!virtio_running(dev) || !dev->vq[RNG_QUEUE].ready)
		return 0;
	struct rng_buf *b = fifo_pop(rng);
	if (!b)
		return 0;
	uint32_t n = MIN(ev->len, b->len);
	virtio_scatter(dev, b->segs, b->nsegs, 0, ev->data, n);
	dev->stats.rng_bytes += n;
	virtq_push(dev, RNG_QUEUE, b->head, n);
	free(b->segs);
	b->segs = NULL;
	return 0;
}

static void rng_reset(struct virtio_device *dev)
{
	struct virtio_rng *rng = to_rng(dev);
	struct rng_buf *b;
	while ((b = fifo_pop(rng))) {
		free(b->segs);
		b->segs = NULL;
	}
	rng->first = 0;
}

static int rng_save(const struct virtio_device *dev, struct virtio_state *s)
{
	const struct virtio_rng *rng = (const struct virtio_rng *)dev;
	struct virtio_rng_state *r = &s->u.rng;
	r->inflight = rng->inflight;
	r->count = rng->count;
	for (unsigned i = 0; i < rng->count; i++) {
		const struct rng_buf *b = &rng->fifo[(rng->first + i) % VIRTQ_MAX_SIZE];
		struct virtio_rng_buf_state *bs = &r->fifo[i];
		*bs = (struct virtio_rng_buf_state){ .head = b->head, .len = b->len, .nsegs = b->nsegs };
		for (unsigned k = 0; k < b->nsegs; k++)
			bs->segs[k] = (struct virtio_seg_state){ .addr = b->segs[k].addr, .len = b->segs[k].len };
	}
	return 0;
}

static const char *rng_state_problem(const struct virtio_rng *rng, const struct virtio_rng_state *r)
{
	if (r->count > VIRTQ_MAX_SIZE)
		return "more waiting buffers than a queue holds";
	for (uint32_t i = 0; i < r->count; i++) {
		const struct virtio_rng_buf_state *b = &r->fifo[i];
		if (b->head >= VIRTQ_MAX_SIZE || !b->len || !b->nsegs)
			return "a waiting buffer that is not a writable chain";
		const char *why = virtio_segs_problem(&rng->vdev, b->segs, b->nsegs, b->len);
		if (why)
			return why;
	}
	return NULL;
}

static int rng_restore(struct virtio_device *dev, const struct virtio_state *s, char *err, size_t errlen)
{
	struct virtio_rng *rng = to_rng(dev);
	const struct virtio_rng_state *r = &s->u.rng;
	struct virtio_seg *segs[VIRTQ_MAX_SIZE] = { 0 };
	const char *why = rng_state_problem(rng, r);
	if (why) {
		snprintf(err, errlen, "virtio-rng%u: %s", dev->host.index, why);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < r->count; i++) {
		if (!(segs[i] = malloc(r->fifo[i].nsegs * sizeof(*segs[i])))) {
			for (uint32_t k = 0; k < i; k++)
				free(segs[k]);
			snprintf(err, errlen, "virtio-rng%u: out of memory", dev->host.index);
			return -ENOMEM;
		}
	}
	rng_reset(dev);
	for (uint32_t i = 0; i < r->count; i++) {
		const struct virtio_rng_buf_state *bs = &r->fifo[i];
		for (uint32_t k = 0; k < bs->nsegs; k++)
			segs[i][k] = (struct virtio_seg){ .addr = bs->segs[k].addr, .len = bs->segs[k].len };
		rng->fifo[i] = (struct rng_buf){ .head = bs->head, .len = bs->len, .nsegs = bs->nsegs, .segs = segs[i] };
	}
	rng->first = 0;
	rng->count = r->count;
	rng->inflight = r->inflight;
	return 0;
}

void virtio_rng_state_io(struct state_io *io, struct virtio_rng_state *r)
{
	state_io_u64(io, &r->inflight);
	state_io_count(io, &r->count, VIRTQ_MAX_SIZE);
	for (uint32_t i = 0; i < r->count; i++) {
		struct virtio_rng_buf_state *b = &r->fifo[i];
		state_io_u16(io, &b->head);
		state_io_u32(io, &b->len);
		state_io_count(io, &b->nsegs, VIRTQ_MAX_SIZE);
		virtio_segs_state_io(io, b->segs, b->nsegs);
	}
}

static void rng_destroy(struct virtio_device *dev)
{
	rng_reset(dev);
	free(dev);
}

static const struct virtio_device_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.nqueues = 1,
	.notify = rng_notify,
	.reset = rng_reset,
	.apply = rng_apply,
	.save = rng_save,
	.restore = rng_restore,
	.destroy = rng_destroy,
};

int virtio_rng_create(const struct virtio_host *host, struct virtio_device **out)
{
	if (!host || !host->bus || !out)
		return -EINVAL;
	struct virtio_rng *rng = calloc(1, sizeof(*rng));
	if (!rng)
		return -ENOMEM;
	virtio_init(&rng->vdev, &rng_ops, host, 0);
	*out = &rng->vdev;
	return 0;
}
