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
#define LOG_MODULE "virtio-rng"
#include "util/log.h"
#include "vm/virtio_internal.h"

#include <errno.h>
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

static uint64_t rng_digest(const struct virtio_device *dev, uint64_t seed)
{
	const struct virtio_rng *rng = (const struct virtio_rng *)dev;
	uint64_t words[3] = { rng->first, rng->count, rng->inflight };
	uint64_t h = virtio_fold(seed, words, ARRAY_SIZE(words));
	for (unsigned i = 0; i < rng->count; i++) {
		const struct rng_buf *b = &rng->fifo[(rng->first + i) % VIRTQ_MAX_SIZE];
		uint64_t bw[2] = { b->head, b->len };
		h = virtio_fold(h, bw, ARRAY_SIZE(bw));
	}
	return h;
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
	.digest = rng_digest,
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
