/*
 * backend_disk.c — disk image back end: the host side of a virtio-blk disk in a live run.
 *
 * disk_backend_submit() copies the request (and a write's bytes) into a FIFO; one I/O thread per
 * disk takes requests in submission order and runs them on the image (util/disk_image.h: a raw
 * file with pread/pwrite/fdatasync, or an NBD export through libnbd, each request with its
 * deadline), then posts VM_EV_DISK_DONE (with the bytes read) to the sink. Running strictly in
 * order keeps overlapping requests simple: the completion order is the submission order. The image
 * is opened read-only for a read-only disk; its size must be a non-zero multiple of 512 bytes.
 */
#define DIAG_MODULE "disk"
#include "util/diag.h"
#include "host/backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/disk_image.h"

#define DISK_SECTOR DISK_IMAGE_SECTOR

struct disk_job {
	struct disk_job *next;
	struct vm_disk_request req;
	uint8_t *buf;               /* write data (reads use the disk's read_buf) */
};

struct disk_backend {
	struct disk_image *img;
	bool read_only;
	unsigned index;
	uint64_t size;
	struct backend_sink sink;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;        /* a job was queued, or stop */
	pthread_cond_t idle;        /* the queue drained */
	struct disk_job *head, **tail;
	bool busy;                  /* the thread is running a job */
	uint8_t *read_buf;          /* VM_EVENT_MAX_DISK_DATA bytes, the I/O thread's; the sink copies */
	bool stop;
	uint64_t *dirty;            /* dirty-block tracking: a bit per DISK_DIRTY_BLOCK, NULL when off */
	/* Blocks the peer's replica may lack (NULL: read-only, or no memory): written since the
	 * generation before the current one began (disk_backend_written_rotate()). */
	uint64_t *written;          /* the current generation */
	uint64_t *written_prev;     /* the one before */
};

static uint32_t run_job(struct disk_backend *disk, struct disk_job *job)
{
	const struct vm_disk_request *req = &job->req;
	uint64_t off = req->sector * DISK_SECTOR;
	int ret;
	if (req->op != VM_DISK_FLUSH &&
	    (req->sector > disk->size / DISK_SECTOR || req->len > disk->size - req->sector * DISK_SECTOR))
		return VM_DISK_IOERR;
	switch (req->op) {
	case VM_DISK_READ:
		ret = disk_image_read(disk->img, disk->read_buf, req->len, off);
		break;
	case VM_DISK_WRITE:
		if (disk->read_only)
			return VM_DISK_IOERR;
		ret = disk_image_write(disk->img, job->buf, req->len, off);
		break;
	case VM_DISK_FLUSH:
		ret = disk->read_only ? 0 : disk_image_flush(disk->img);
		break;
	default:
		return VM_DISK_UNSUPP;
	}
	if (ret < 0) {
		DIAG_RATELIMITED(DIAG_ERROR, "disk%u: request %llu failed: %s", disk->index,
				(unsigned long long)req->id, strerror(-ret));
		return VM_DISK_IOERR;
	}
	return VM_DISK_OK;
}

/* With disk->lock held: every block [off, off + len) touches (failed writes too: they may have
 * changed part of the range). */
static void mark_blocks(uint64_t *map, uint64_t size, uint64_t off, uint32_t len)
{
	if (!map || !len || off >= size)
		return;
	uint64_t last = (off + len - 1 < size ? off + len - 1 : size - 1) / DISK_DIRTY_BLOCK;
	for (uint64_t b = off / DISK_DIRTY_BLOCK; b <= last; b++)
		map[b / 64] |= 1ull << (b % 64);
}

static void *io_thread(void *arg)
{
	struct disk_backend *disk = arg;
	pthread_mutex_lock(&disk->lock);
	for (;;) {
		while (!disk->head && !disk->stop)
			pthread_cond_wait(&disk->wake, &disk->lock);
		struct disk_job *job = disk->head;
		if (!job)
			break;
		disk->head = job->next;
		if (!disk->head)
			disk->tail = &disk->head;
		disk->busy = true;
		pthread_mutex_unlock(&disk->lock);

		uint32_t status = run_job(disk, job);
		bool with_data = job->req.op == VM_DISK_READ && status == VM_DISK_OK;
		struct vm_event ev = {
			.kind = VM_EV_DISK_DONE,
			.device = disk->index,
			.request = job->req.id,
			.status = status,
			.len = with_data ? job->req.len : 0,
			.data = with_data ? disk->read_buf : NULL,
		};
		disk->sink.post(disk->sink.ctx, &ev);
		free(job->buf);

		pthread_mutex_lock(&disk->lock);
		if (job->req.op == VM_DISK_WRITE) {
			mark_blocks(disk->dirty, disk->size, job->req.sector * DISK_SECTOR, job->req.len);
			mark_blocks(disk->written, disk->size, job->req.sector * DISK_SECTOR, job->req.len);
		}
		free(job);
		disk->busy = false;
		if (!disk->head)
			pthread_cond_broadcast(&disk->idle);
	}
	pthread_mutex_unlock(&disk->lock);
	return NULL;
}

int disk_backend_open(const char *path, bool read_only, unsigned index, struct backend_sink sink,
		      struct disk_backend **out, char *err, size_t errlen)
{
	struct disk_backend *disk = NULL;
	struct disk_image *img;
	int ret = disk_image_open(path, read_only, &img, err, errlen);
	if (ret < 0)
		return ret;
	uint64_t size = disk_image_size(img);
	disk = calloc(1, sizeof(*disk));
	if (disk)
		disk->read_buf = malloc(VM_EVENT_MAX_DISK_DATA);
	if (!disk || !disk->read_buf) {
		free(disk);
		ret = -ENOMEM;
		snprintf(err, errlen, "disk %s: out of memory", path);
		goto out;
	}
	disk->img = img;
	disk->read_only = read_only;
	disk->index = index;
	disk->size = size;
	disk->sink = sink;
	disk->tail = &disk->head;
	if (!read_only) { /* without them a resync is refused, nothing else changes */
		disk->written = calloc(disk_backend_dirty_words(disk), sizeof(*disk->written));
		disk->written_prev = calloc(disk_backend_dirty_words(disk), sizeof(*disk->written_prev));
		if (!disk->written || !disk->written_prev) {
			free(disk->written);
			free(disk->written_prev);
			disk->written = disk->written_prev = NULL;
		}
	}
	pthread_mutex_init(&disk->lock, NULL);
	pthread_cond_init(&disk->wake, NULL);
	pthread_cond_init(&disk->idle, NULL);
	ret = -pthread_create(&disk->thread, NULL, io_thread, disk);
	if (ret < 0) {
		snprintf(err, errlen, "disk %s: cannot start I/O thread: %s", path, strerror(-ret));
		pthread_cond_destroy(&disk->idle);
		pthread_cond_destroy(&disk->wake);
		pthread_mutex_destroy(&disk->lock);
		free(disk->read_buf);
		free(disk);
		disk = NULL;
		goto out;
	}
	*out = disk;
	return 0;
out:
	disk_image_close(img);
	return ret;
}

uint64_t disk_backend_size(const struct disk_backend *disk)
{
	return disk->size;
}

void disk_backend_submit(struct disk_backend *disk, const struct vm_disk_request *req)
{
	struct disk_job *job = calloc(1, sizeof(*job));
	uint32_t len = MIN(req->len, VM_EVENT_MAX_DISK_DATA);
	bool copy = req->op == VM_DISK_WRITE && len;
	if (job && copy)
		job->buf = malloc(len);
	if (!job || (copy && !job->buf)) {
		/* Out of memory: still answer, so the guest sees an I/O error rather than a hang. */
		struct vm_event ev = { .kind = VM_EV_DISK_DONE, .device = disk->index, .request = req->id,
				       .status = VM_DISK_IOERR };
		diag_error("disk%u: out of memory for request %llu", disk->index, (unsigned long long)req->id);
		if (job)
			free(job->buf);
		free(job);
		disk->sink.post(disk->sink.ctx, &ev);
		return;
	}
	job->req = *req;
	job->req.len = len;
	job->req.data = NULL;
	if (copy && req->data)
		memcpy(job->buf, req->data, len);
	else if (copy)
		memset(job->buf, 0, len);
	pthread_mutex_lock(&disk->lock);
	*disk->tail = job;
	disk->tail = &job->next;
	pthread_cond_signal(&disk->wake);
	pthread_mutex_unlock(&disk->lock);
}

void disk_backend_drain(struct disk_backend *disk)
{
	pthread_mutex_lock(&disk->lock);
	while (disk->head || disk->busy)
		pthread_cond_wait(&disk->idle, &disk->lock);
	pthread_mutex_unlock(&disk->lock);
}

int disk_backend_reopen(struct disk_backend *disk, bool read_only, struct disk_image **out, char *err, size_t errlen)
{
	return disk_image_reopen(disk->img, read_only, out, err, errlen);
}

uint64_t disk_backend_blocks(const struct disk_backend *disk)
{
	return (disk->size + DISK_DIRTY_BLOCK - 1) / DISK_DIRTY_BLOCK;
}

size_t disk_backend_dirty_words(const struct disk_backend *disk)
{
	return (size_t)((disk_backend_blocks(disk) + 63) / 64);
}

int disk_backend_dirty_start(struct disk_backend *disk)
{
	uint64_t *map = calloc(disk_backend_dirty_words(disk), sizeof(*map));
	if (!map)
		return -ENOMEM;
	pthread_mutex_lock(&disk->lock);
	free(disk->dirty);
	disk->dirty = map;
	pthread_mutex_unlock(&disk->lock);
	return 0;
}

void disk_backend_dirty_collect(struct disk_backend *disk, uint64_t *out, size_t words)
{
	pthread_mutex_lock(&disk->lock);
	size_t n = disk_backend_dirty_words(disk);
	for (size_t i = 0; disk->dirty && i < n && i < words; i++) {
		out[i] |= disk->dirty[i];
		disk->dirty[i] = 0;
	}
	pthread_mutex_unlock(&disk->lock);
}

bool disk_backend_dirty_test(struct disk_backend *disk, uint64_t b)
{
	pthread_mutex_lock(&disk->lock);
	bool dirty = disk->dirty && b < disk_backend_blocks(disk) && (disk->dirty[b / 64] >> (b % 64) & 1);
	pthread_mutex_unlock(&disk->lock);
	return dirty;
}

void disk_backend_dirty_stop(struct disk_backend *disk)
{
	pthread_mutex_lock(&disk->lock);
	free(disk->dirty);
	disk->dirty = NULL;
	pthread_mutex_unlock(&disk->lock);
}

void disk_backend_written_reset(struct disk_backend *disk)
{
	pthread_mutex_lock(&disk->lock);
	if (disk->written) {
		memset(disk->written, 0, disk_backend_dirty_words(disk) * sizeof(*disk->written));
		memset(disk->written_prev, 0, disk_backend_dirty_words(disk) * sizeof(*disk->written_prev));
	}
	pthread_mutex_unlock(&disk->lock);
}

void disk_backend_written_rotate(struct disk_backend *disk)
{
	pthread_mutex_lock(&disk->lock);
	if (disk->written) {
		uint64_t *old = disk->written_prev;
		disk->written_prev = disk->written;
		memset(old, 0, disk_backend_dirty_words(disk) * sizeof(*old));
		disk->written = old;
	}
	pthread_mutex_unlock(&disk->lock);
}

int disk_backend_written_collect(struct disk_backend *disk, uint64_t *out, size_t words)
{
	pthread_mutex_lock(&disk->lock);
	size_t n = disk_backend_dirty_words(disk);
	for (size_t i = 0; disk->written && i < n && i < words; i++)
		out[i] |= disk->written[i] | disk->written_prev[i];
	int ret = disk->written ? 0 : -ENOMEM;
	pthread_mutex_unlock(&disk->lock);
	return ret;
}

void disk_backend_close(struct disk_backend *disk)
{
	if (!disk)
		return;
	disk_backend_drain(disk);
	pthread_mutex_lock(&disk->lock);
	disk->stop = true;
	pthread_cond_signal(&disk->wake);
	pthread_mutex_unlock(&disk->lock);
	pthread_join(disk->thread, NULL);
	pthread_cond_destroy(&disk->idle);
	pthread_cond_destroy(&disk->wake);
	pthread_mutex_destroy(&disk->lock);
	disk_image_close(disk->img);
	free(disk->dirty);
	free(disk->written);
	free(disk->written_prev);
	free(disk->read_buf);
	free(disk);
}
