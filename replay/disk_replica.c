/*
 * disk_replica.c — a replayer's own copy of a disk (see disk_replica.h).
 *
 * Completions wait in a singly linked list in submission order; the log delivers them in that
 * order too (the recording's back end is a FIFO), so take() almost always finds its request first.
 */
#define DIAG_MODULE "replica"
#include "replay/disk_replica.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/diag.h"
#include "util/disk_image.h"

#define SECTOR DISK_IMAGE_SECTOR

struct held {
	struct held *next;
	struct disk_replica_done done;
	uint8_t *buf;
};

struct disk_replica {
	struct disk_image *img;
	bool shared;
	unsigned index;
	uint64_t size;
	char path[256];
	struct held *head, **tail;
	unsigned held;
	uint64_t held_bytes;
	uint8_t *taken;           /* data of the last completion taken */
};

int disk_replica_open(const char *path, unsigned index, enum disk_replica_kind kind, struct disk_replica **out,
		      char *err, size_t errlen)
{
	bool shared = kind == DISK_REPLICA_SHARED;
	struct disk_image *img;
	char why[512];
	int ret = disk_image_open(path, shared, &img, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", shared ? "shared disk" : "disk copy", why);
		return ret;
	}
	struct disk_replica *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "disk copy %s: out of memory", path);
		disk_image_close(img);
		return -ENOMEM;
	}
	r->img = img;
	r->shared = shared;
	r->index = index;
	r->size = disk_image_size(img);
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->tail = &r->head;
	*out = r;
	return 0;
}

/* Runs req; a read's bytes go to a new buffer in h. */
static uint32_t run(struct disk_replica *r, const struct vm_disk_request *req, struct held *h)
{
	uint64_t off = req->sector * SECTOR;
	int ret = 0;

	if (req->op == VM_DISK_FLUSH)
		return VM_DISK_OK;
	if (req->op != VM_DISK_READ && req->op != VM_DISK_WRITE)
		return VM_DISK_UNSUPP;
	if (req->len > VM_EVENT_MAX_DISK_DATA || req->sector > r->size / SECTOR ||
	    req->len > r->size - req->sector * SECTOR)
		return VM_DISK_IOERR;
	if (req->op == VM_DISK_WRITE) {
		ret = !req->len ? 0 : req->data ? disk_image_write(r->img, req->data, req->len, off) : -EINVAL;
	} else if (req->len) {
		if (r->held >= DISK_REPLICA_MAX_HELD || r->held_bytes + req->len > DISK_REPLICA_MAX_HELD_BYTES) {
			DIAG_RATELIMITED(DIAG_ERROR, "disk copy %s: over %u reads or %u MiB wait for their completion",
					 r->path, DISK_REPLICA_MAX_HELD, DISK_REPLICA_MAX_HELD_BYTES >> 20);
			return VM_DISK_IOERR;
		}
		h->buf = malloc(req->len);
		ret = h->buf ? disk_image_read(r->img, h->buf, req->len, off) : -ENOMEM;
		if (ret == 0) {
			h->done.len = req->len;
			h->done.data = h->buf;
			r->held_bytes += req->len;
		}
	}
	if (ret < 0) {
		DIAG_RATELIMITED(DIAG_ERROR, "disk copy %s: request %llu (%s of %u bytes at sector %llu) failed: %s",
				 r->path, (unsigned long long)req->id, req->op == VM_DISK_WRITE ? "write" : "read",
				 req->len, (unsigned long long)req->sector, strerror(-ret));
		return VM_DISK_IOERR;
	}
	return VM_DISK_OK;
}

void disk_replica_submit(struct disk_replica *r, const struct vm_disk_request *req)
{
	struct held *h = calloc(1, sizeof(*h));
	if (!h) {
		/* The log's completion for it will find nothing: reported there as a divergence. */
		diag_error("disk copy %s: out of memory for request %llu", r->path, (unsigned long long)req->id);
		return;
	}
	h->done.id = req->id;
	h->done.op = req->op;
	if (r->shared) {
		/* Nothing happens now: writes are the primary's, reads wait for their log record. */
		h->done.shared = true;
		h->done.sector = req->sector;
		h->done.read_len = req->op == VM_DISK_READ ? req->len : 0;
		*r->tail = h;
		r->tail = &h->next;
		r->held++;
		return;
	}
	h->done.status = run(r, req, h);
	if (h->done.status != VM_DISK_OK) {
		free(h->buf);
		h->buf = NULL;
		h->done.len = 0;
		h->done.data = NULL;
	}
	*r->tail = h;
	r->tail = &h->next;
	r->held++;
}

int disk_replica_take(struct disk_replica *r, uint64_t id, struct disk_replica_done *done)
{
	struct held **pp = &r->head, *h;
	while ((h = *pp) && h->done.id != id)
		pp = &h->next;
	if (!h)
		return -ENOENT;
	*pp = h->next;
	if (r->tail == &h->next)
		r->tail = pp;
	r->held--;
	r->held_bytes -= h->done.len;
	free(r->taken);
	r->taken = h->buf;
	*done = h->done;
	free(h);
	return 0;
}

void disk_replica_read_shared(struct disk_replica *r, struct disk_replica_done *done)
{
	struct vm_disk_request req = { .id = done->id, .op = VM_DISK_READ, .sector = done->sector,
				       .len = done->read_len };
	struct held h = { 0 };
	done->status = run(r, &req, &h);
	done->len = done->status == VM_DISK_OK ? h.done.len : 0;
	r->held_bytes -= h.done.len; /* run() counted it as held; it is taken at once */
	free(r->taken);
	r->taken = h.buf;
	done->data = h.buf;
}

int disk_replica_sync(struct disk_replica *r)
{
	return r->shared ? 0 : disk_image_flush(r->img);
}

void disk_replica_close(struct disk_replica *r)
{
	if (!r)
		return;
	int ret = disk_replica_sync(r);
	if (ret < 0)
		diag_error("disk copy %s: cannot sync: %s", r->path, strerror(-ret));
	while (r->head) {
		struct held *h = r->head;
		r->head = h->next;
		free(h->buf);
		free(h);
	}
	free(r->taken);
	disk_image_close(r->img);
	free(r);
}
