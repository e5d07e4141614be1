/*
 * virtio_blk.c — virtio block device (virtio 1.2 §5.2) over the world's disk interface.
 *
 * One request queue. On a kick the device takes each request chain (16-byte header, data, status
 * byte), checks it, and either completes it at once (bad type or range: UNSUPP/IOERR; GET_ID) or
 * submits it to the world with the next id of this disk (1, 2, 3, ... — deterministic). A write's
 * bytes are copied out of guest memory into a bounce buffer at submit time, so the world never
 * reads guest memory. The request then stays pending until a DISK_DONE event with its id is
 * applied: only then is a read's data copied into the guest's buffers, the status byte written,
 * the chain returned and the interrupt raised. Completions may come in any order; the event order
 * is the completion order.
 *
 * A driver reset orphans pending requests: their DISK_DONE is still expected (the world runs them)
 * but is applied without touching guest memory. virtio_blk_pending() lists every submitted,
 * uncompleted request, orphans included, for the go-live reissue.
 *
 * Unfinished requests (live and orphaned) hold host memory — their bookkeeping, a write's bounce
 * buffer, the world's buffer for a read — so they are bounded: while VIRTIO_BLK_MAX_UNFINISHED
 * requests or VIRTIO_BLK_MAX_UNFINISHED_BYTES bytes are unfinished, the device takes no more
 * chains from the queue; they wait in the available ring, and the completion that brings the
 * device back under the bound takes them. A guest that queues writes and resets the device in a
 * loop is slowed to the speed of the disk instead of piling up orphans. The bound depends only on
 * what the guest submitted and which DISK_DONE events were applied, so it holds identically in
 * a plain run, a recording and its replay.
 *
 * Limits offered so Linux never builds a request the event format cannot carry: segments of at
 * most SIZE_MAX (4 KiB) and at most SEG_MAX (254) of them, i.e. < VM_EVENT_MAX_DISK_DATA.
 */
#define DIAG_MODULE "virtio-blk"
#include "util/diag.h"
#include "vm/state_io.h"
#include "vm/virtio_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Feature bits (§5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

/* Configuration space layout (§5.2.4). */
#define BLK_CFG_CAPACITY 0
#define BLK_CFG_SIZE_MAX 8
#define BLK_CFG_SEG_MAX 12
#define BLK_CFG_BLK_SIZE 20
#define BLK_CFG_LEN 24

/* Request header and types (§5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define BLK_REQ_HDR_LEN 16
#define BLK_REQ_HDR_TYPE 0
#define BLK_REQ_HDR_SECTOR 8
#define VIRTIO_BLK_ID_BYTES 20

#define BLK_SECTOR 512u
#define BLK_SIZE_MAX 4096u
#define BLK_SEG_MAX (VIRTQ_MAX_SIZE - 2)   /* header and status take the other two descriptors */
_Static_assert((uint64_t)BLK_SIZE_MAX * BLK_SEG_MAX <= VM_EVENT_MAX_DISK_DATA,
	       "offered limits must fit one DISK_DONE event");

#define BLK_QUEUE 0

struct blk_pending {
	struct blk_pending *next;
	struct vm_disk_request req;
	uint8_t *data;             /* write: the bounce buffer req.data points to */
	uint16_t head;
	bool orphan;               /* the driver reset the device since submission */
	uint32_t in_len;           /* writable bytes of the chain; the status byte is the last */
	unsigned nsegs;
	struct virtio_seg *segs;   /* writable segments */
};

struct virtio_blk {
	struct virtio_device vdev;
	uint64_t capacity_sectors;
	bool read_only;
	uint64_t next_id;
	struct blk_pending *pending;       /* submission order */
	struct blk_pending **pending_tail;
	unsigned live;                     /* pending requests that are not orphans */
	unsigned unfinished;               /* pending requests, orphans included */
	uint64_t unfinished_bytes;         /* their data bytes */
	bool throttled;                    /* chains were left in the queue for the bound */
};

static struct virtio_blk *to_blk(struct virtio_device *dev)
{
	return (struct virtio_blk *)dev;
}

static void write_status(struct virtio_blk *blk, const struct virtio_seg *segs, unsigned nsegs,
			 uint32_t in_len, uint8_t status)
{
	virtio_scatter(&blk->vdev, segs, nsegs, in_len - 1, &status, 1);
}

/* Completes a chain without the world: status only (plus `written` data bytes already in place). */
static void complete_now(struct virtio_blk *blk, const struct virtio_chain *chain, uint8_t status,
			 uint32_t written)
{
	const struct virtio_seg *in = &chain->segs[chain->nout];
	write_status(blk, in, chain->nsegs - chain->nout, (uint32_t)chain->in_len, status);
	if (status != VIRTIO_BLK_S_OK)
		blk->vdev.stats.disk_errors++;
	virtq_push(&blk->vdev, BLK_QUEUE, chain->head, written + 1);
}

static void get_id(struct virtio_blk *blk, const struct virtio_chain *chain)
{
	char id[VIRTIO_BLK_ID_BYTES + 1] = { 0 };
	snprintf(id, sizeof(id), "ftvm-disk%u", blk->vdev.host.index);
	uint32_t n = (uint32_t)MIN((uint64_t)VIRTIO_BLK_ID_BYTES, chain->in_len - 1);
	virtio_scatter(&blk->vdev, &chain->segs[chain->nout], chain->nsegs - chain->nout, 0, id, n);
	complete_now(blk, chain, VIRTIO_BLK_S_OK, n);
}

static int submit(struct virtio_blk *blk, const struct virtio_chain *chain, enum vm_disk_op op,
		  uint64_t sector, uint32_t len)
{
	const struct vm_world *world = blk->vdev.host.world;
	unsigned nin = chain->nsegs - chain->nout;
	struct blk_pending *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->segs = calloc(nin, sizeof(*p->segs));
	if (op == VM_DISK_WRITE && len)
		p->data = malloc(len);
	if (!p->segs || (op == VM_DISK_WRITE && len && !p->data)) {
		free(p->segs);
		free(p->data);
		free(p);
		return -ENOMEM;
	}
	memcpy(p->segs, &chain->segs[chain->nout], nin * sizeof(*p->segs));
	p->nsegs = nin;
	p->in_len = (uint32_t)chain->in_len;
	p->head = chain->head;
	if (p->data)
		virtio_gather(&blk->vdev, chain, BLK_REQ_HDR_LEN, p->data, len);
	p->req = (struct vm_disk_request){
		.id = blk->next_id++, .op = op, .sector = sector, .len = len, .data = p->data,
	};
	*blk->pending_tail = p;
	blk->pending_tail = &p->next;
	blk->live++;
	blk->unfinished++;
	blk->unfinished_bytes += len;
	blk->vdev.stats.disk_requests++;
	diag_debug("disk%u: submit %llu op %d sector %llu len %u", blk->vdev.host.index, (unsigned long long)p->req.id,
		  (int)op, (unsigned long long)sector, len);
	world->ops->disk_submit(world->ctx, blk->vdev.host.index, &p->req);
	return 0;
}

/* Checks one request chain and submits it, or completes it at once. */
static void handle_request(struct virtio_blk *blk, const struct virtio_chain *chain)
{
	uint8_t hdr[BLK_REQ_HDR_LEN];
	if (chain->out_len < BLK_REQ_HDR_LEN || chain->in_len < 1) {
		virtio_set_needs_reset(&blk->vdev, "block request without header or status byte");
		return;
	}
	if (blk->live >= blk->vdev.vq[BLK_QUEUE].num) {
		virtio_set_needs_reset(&blk->vdev, "more block requests in flight than the queue holds");
		return;
	}
	virtio_gather(&blk->vdev, chain, 0, hdr, sizeof(hdr));
	uint32_t type = virtio_get_le32(hdr + BLK_REQ_HDR_TYPE);
	uint64_t sector = virtio_get_le64(hdr + BLK_REQ_HDR_SECTOR);
	enum vm_disk_op op;
	uint64_t len = 0;
	switch (type) {
	case VIRTIO_BLK_T_IN:
		op = VM_DISK_READ;
		len = chain->in_len - 1;
		break;
	case VIRTIO_BLK_T_OUT:
		op = VM_DISK_WRITE;
		len = chain->out_len - BLK_REQ_HDR_LEN;
		if (blk->read_only) {
			complete_now(blk, chain, VIRTIO_BLK_S_IOERR, 0);
			return;
		}
		break;
	case VIRTIO_BLK_T_FLUSH:
		op = VM_DISK_FLUSH;
		sector = 0;
		break;
	case VIRTIO_BLK_T_GET_ID:
		get_id(blk, chain);
		return;
	default:
		complete_now(blk, chain, VIRTIO_BLK_S_UNSUPP, 0);
		return;
	}
	if (op != VM_DISK_FLUSH &&
	    (len == 0 || len % BLK_SECTOR || len > VM_EVENT_MAX_DISK_DATA || sector > blk->capacity_sectors ||
	     len / BLK_SECTOR > blk->capacity_sectors - sector)) {
		DIAG_RATELIMITED(DIAG_WARN, "disk%u: request type %u sector %llu len %llu refused (capacity %llu)",
				blk->vdev.host.index, type, (unsigned long long)sector, (unsigned long long)len,
				(unsigned long long)blk->capacity_sectors);
		complete_now(blk, chain, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	if (!blk->vdev.host.world || !blk->vdev.host.world->ops->disk_submit ||
	    submit(blk, chain, op, sector, (uint32_t)len) < 0)
		complete_now(blk, chain, VIRTIO_BLK_S_IOERR, 0);
}

static bool over_bound(const struct virtio_blk *blk)
{
	return blk->unfinished >= VIRTIO_BLK_MAX_UNFINISHED ||
	       blk->unfinished_bytes >= VIRTIO_BLK_MAX_UNFINISHED_BYTES;
}

static void blk_notify(struct virtio_device *dev, unsigned q)
{
	struct virtio_blk *blk = to_blk(dev);
	struct virtio_chain chain;
	for (;;) {
		if (over_bound(blk)) {
			blk->throttled = true;
			return;
		}
		if (virtq_pop(dev, q, &chain) != 1)
			return;
		handle_request(blk, &chain);
	}
}

static uint8_t blk_status(uint32_t status)
{
	switch (status) {
	case VM_DISK_OK:
		return VIRTIO_BLK_S_OK;
	case VM_DISK_UNSUPP:
		return VIRTIO_BLK_S_UNSUPP;
	default:
		return VIRTIO_BLK_S_IOERR;
	}
}

static void free_pending(struct blk_pending *p)
{
	free(p->segs);
	free(p->data);
	free(p);
}

static int blk_apply(struct virtio_device *dev, const struct vm_event *ev)
{
	struct virtio_blk *blk = to_blk(dev);
	struct blk_pending **link = &blk->pending, *p;
	if (ev->kind != VM_EV_DISK_DONE)
		return -EINVAL;
	while ((p = *link) && p->req.id != ev->request)
		link = &p->next;
	if (!p) {
		DIAG_RATELIMITED(DIAG_ERROR, "disk%u: completion of unknown request %llu", dev->host.index,
			  (unsigned long long)ev->request);
		return -EINVAL;
	}
	uint8_t status = blk_status(ev->status);
	if (p->req.op == VM_DISK_READ && status == VIRTIO_BLK_S_OK && (ev->len != p->req.len || !ev->data)) {
		DIAG_RATELIMITED(DIAG_ERROR, "disk%u: request %llu read %u bytes, completion carries %u", dev->host.index,
			  (unsigned long long)ev->request, p->req.len, ev->len);
		return -EINVAL;
	}
	diag_debug("disk%u: done %llu status %u%s", dev->host.index, (unsigned long long)p->req.id, ev->status,
		  p->orphan ? " (orphan)" : "");
	*link = p->next;
	if (blk->pending_tail == &p->next)
		blk->pending_tail = link;
	blk->unfinished--;
	blk->unfinished_bytes -= p->req.len;
	if (!p->orphan) {
		blk->live--;
		if (virtio_running(dev) && dev->vq[BLK_QUEUE].ready) {
			uint32_t written = 0;
			if (p->req.op == VM_DISK_READ && status == VIRTIO_BLK_S_OK)
				written = (uint32_t)virtio_scatter(dev, p->segs, p->nsegs, 0, ev->data, p->req.len);
			write_status(blk, p->segs, p->nsegs, p->in_len, status);
			if (status != VIRTIO_BLK_S_OK)
				dev->stats.disk_errors++;
			virtq_push(dev, BLK_QUEUE, p->head, written + 1);
		}
	}
	free_pending(p);
	if (blk->throttled && !over_bound(blk)) {
		/* Take what waited for the bound, as a kick would now. */
		blk->throttled = false;
		if (virtio_running(dev) && dev->vq[BLK_QUEUE].ready)
			blk_notify(dev, BLK_QUEUE);
	}
	return 0;
}

static void blk_reset(struct virtio_device *dev)
{
	struct virtio_blk *blk = to_blk(dev);
	for (struct blk_pending *p = blk->pending; p; p = p->next)
		p->orphan = true;
	blk->live = 0;
	blk->throttled = false;
}

static int blk_save(const struct virtio_device *dev, struct virtio_state *s)
{
	const struct virtio_blk *blk = (const struct virtio_blk *)dev;
	struct virtio_blk_state *b = &s->u.blk;
	b->next_id = blk->next_id;
	b->live = blk->live;
	b->throttled = blk->throttled;
	b->npending = 0;
	b->data_len = 0;
	b->data = NULL;
	uint64_t data_len = 0;
	for (const struct blk_pending *p = blk->pending; p; p = p->next)
		data_len += p->data ? p->req.len : 0;
	if (data_len && !(b->data = malloc(data_len)))
		return -ENOMEM;
	for (const struct blk_pending *p = blk->pending; p && b->npending < VIRTIO_BLK_MAX_UNFINISHED; p = p->next) {
		struct virtio_blk_request_state *r = &b->pending[b->npending++];
		*r = (struct virtio_blk_request_state){ .id = p->req.id, .op = p->req.op, .sector = p->req.sector,
							.len = p->req.len, .head = p->head, .orphan = p->orphan,
							.in_len = p->in_len, .nsegs = p->nsegs };
		for (unsigned i = 0; i < p->nsegs && i < VIRTQ_MAX_SIZE; i++)
			r->segs[i] = (struct virtio_seg_state){ .addr = p->segs[i].addr, .len = p->segs[i].len };
		if (p->data) {
			memcpy(b->data + b->data_len, p->data, p->req.len);
			b->data_len += p->req.len;
		}
	}
	return 0;
}

/* Why a request cannot be one this device submitted; *data_used grows by a write's bytes. */
static const char *request_problem(const struct virtio_blk *blk, const struct virtio_blk_request_state *r,
				   uint64_t *data_used)
{
	if (r->op != VM_DISK_READ && r->op != VM_DISK_WRITE && r->op != VM_DISK_FLUSH)
		return "a request of an unknown kind";
	if (r->op == VM_DISK_WRITE && blk->read_only)
		return "a write to a read-only disk";
	if (r->op == VM_DISK_FLUSH ? r->len || r->sector
				   : r->len == 0 || r->len % BLK_SECTOR || r->len > VM_EVENT_MAX_DISK_DATA ||
					     r->sector > blk->capacity_sectors ||
					     r->len / BLK_SECTOR > blk->capacity_sectors - r->sector)
		return "a request outside the disk or of a bad length";
	if (r->head >= VIRTQ_MAX_SIZE || r->in_len < 1 || (r->op == VM_DISK_READ && r->in_len < r->len + 1u))
		return "a request whose chain cannot hold its data and status";
	const char *why = virtio_segs_problem(&blk->vdev, r->segs, r->nsegs, r->in_len);
	if (why)
		return why;
	if (r->op == VM_DISK_WRITE)
		*data_used += r->len;
	return NULL;
}

static const char *blk_state_problem(const struct virtio_blk *blk, const struct virtio_blk_state *b)
{
	uint32_t live = 0;
	uint64_t data_used = 0, bytes = 0;
	if (b->npending > VIRTIO_BLK_MAX_UNFINISHED)
		return "more unfinished requests than the device allows";
	for (uint32_t i = 0; i < b->npending; i++) {
		const struct virtio_blk_request_state *r = &b->pending[i];
		const char *why = request_problem(blk, r, &data_used);
		if (why)
			return why;
		if (r->id == 0 || r->id >= b->next_id || (i && r->id <= b->pending[i - 1].id))
			return "request ids not increasing below the next id";
		live += !r->orphan;
		bytes += r->len;
	}
	if (live != b->live)
		return "the live count disagrees with the requests";
	if (bytes >= VIRTIO_BLK_MAX_UNFINISHED_BYTES + VM_EVENT_MAX_DISK_DATA)
		return "more unfinished bytes than the device allows";
	if (data_used != b->data_len || (b->data_len && !b->data))
		return "write data does not match the writes";
	return NULL;
}

static void free_list(struct blk_pending *p)
{
	while (p) {
		struct blk_pending *next = p->next;
		free_pending(p);
		p = next;
	}
}

static int blk_restore(struct virtio_device *dev, const struct virtio_state *s, char *err, size_t errlen)
{
	struct virtio_blk *blk = to_blk(dev);
	const struct virtio_blk_state *b = &s->u.blk;
	const char *why = blk_state_problem(blk, b);
	if (why) {
		snprintf(err, errlen, "virtio-blk%u: %s", dev->host.index, why);
		return -EINVAL;
	}
	struct blk_pending *list = NULL, **tail = &list;
	uint64_t data_off = 0, bytes = 0;
	for (uint32_t i = 0; i < b->npending; i++) {
		const struct virtio_blk_request_state *r = &b->pending[i];
		struct blk_pending *p = calloc(1, sizeof(*p));
		if (p) {
			*tail = p;
			tail = &p->next;
			p->segs = calloc(r->nsegs ? r->nsegs : 1, sizeof(*p->segs));
		}
		if (p && r->op == VM_DISK_WRITE && !(p->data = malloc(r->len)))
			p = NULL;
		if (!p || !p->segs) {
			free_list(list);
			snprintf(err, errlen, "virtio-blk%u: out of memory", dev->host.index);
			return -ENOMEM;
		}
		for (uint32_t k = 0; k < r->nsegs; k++)
			p->segs[k] = (struct virtio_seg){ .addr = r->segs[k].addr, .len = r->segs[k].len };
		if (p->data) {
			memcpy(p->data, b->data + data_off, r->len);
			data_off += r->len;
		}
		p->nsegs = r->nsegs;
		p->in_len = r->in_len;
		p->head = r->head;
		p->orphan = r->orphan;
		p->req = (struct vm_disk_request){ .id = r->id, .op = (enum vm_disk_op)r->op, .sector = r->sector,
						   .len = r->len, .data = p->data };
		bytes += r->len;
	}
	free_list(blk->pending);
	blk->pending = list;
	/* tail points at the local head when the list is empty: the device's own head is the tail then,
	 * or the next submission would be linked into a dead stack slot and lost. */
	blk->pending_tail = list ? tail : &blk->pending;
	blk->next_id = b->next_id;
	blk->live = b->live;
	blk->unfinished = b->npending;
	blk->unfinished_bytes = bytes;
	blk->throttled = b->throttled;
	return 0;
}

void virtio_blk_state_io(struct state_io *io, struct virtio_blk_state *b)
{
	state_io_u64(io, &b->next_id);
	state_io_u32(io, &b->live);
	state_io_bool(io, &b->throttled);
	state_io_count(io, &b->npending, VIRTIO_BLK_MAX_UNFINISHED);
	for (uint32_t i = 0; i < b->npending; i++) {
		struct virtio_blk_request_state *r = &b->pending[i];
		state_io_u64(io, &r->id);
		state_io_u32(io, &r->op);
		state_io_u64(io, &r->sector);
		state_io_u32(io, &r->len);
		state_io_u16(io, &r->head);
		state_io_bool(io, &r->orphan);
		state_io_u32(io, &r->in_len);
		state_io_count(io, &r->nsegs, VIRTQ_MAX_SIZE);
		virtio_segs_state_io(io, r->segs, r->nsegs);
	}
	state_io_u64(io, &b->data_len);
	if (io->load) {
		b->data = NULL;
		if (b->data_len > io->len - io->pos || b->data_len > VIRTIO_BLK_MAX_UNFINISHED_BYTES + VM_EVENT_MAX_DISK_DATA) {
			state_io_fail(io, -EINVAL);
			b->data_len = 0;
		} else if (b->data_len && !(b->data = malloc(b->data_len))) {
			state_io_fail(io, -ENOMEM);
			b->data_len = 0;
		}
	}
	if (b->data_len)
		state_io_bytes(io, b->data, b->data_len);
}

static void blk_destroy(struct virtio_device *dev)
{
	struct virtio_blk *blk = to_blk(dev);
	free_list(blk->pending);
	free(blk);
}

static const struct virtio_device_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.nqueues = 1,
	.notify = blk_notify,
	.reset = blk_reset,
	.apply = blk_apply,
	.save = blk_save,
	.restore = blk_restore,
	.destroy = blk_destroy,
};

int virtio_blk_create(const struct virtio_host *host, uint64_t capacity_bytes, bool read_only,
		      struct virtio_device **out)
{
	if (!host || !host->bus || !out || capacity_bytes % BLK_SECTOR)
		return -EINVAL;
	struct virtio_blk *blk = calloc(1, sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	uint64_t features = (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
			    (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH);
	if (read_only)
		features |= 1ull << VIRTIO_BLK_F_RO;
	virtio_init(&blk->vdev, &blk_ops, host, features);
	blk->capacity_sectors = capacity_bytes / BLK_SECTOR;
	blk->read_only = read_only;
	blk->next_id = 1;
	blk->pending_tail = &blk->pending;
	virtio_put_le64(blk->vdev.config + BLK_CFG_CAPACITY, blk->capacity_sectors);
	virtio_put_le32(blk->vdev.config + BLK_CFG_SIZE_MAX, BLK_SIZE_MAX);
	virtio_put_le32(blk->vdev.config + BLK_CFG_SEG_MAX, BLK_SEG_MAX);
	virtio_put_le32(blk->vdev.config + BLK_CFG_BLK_SIZE, BLK_SECTOR);
	blk->vdev.config_len = BLK_CFG_LEN;
	*out = &blk->vdev;
	return 0;
}

unsigned virtio_blk_pending(const struct virtio_device *dev, struct vm_disk_request *out, unsigned max)
{
	unsigned n = 0;
	if (!dev || dev->ops != &blk_ops)
		return 0;
	for (const struct blk_pending *p = ((const struct virtio_blk *)dev)->pending; p; p = p->next, n++)
		if (n < max)
			out[n] = p->req;
	return n;
}
