/*
 * crashio.c — see crashio.h. Pending writes live in a small array until sync() applies them with
 * pwrite(); reads see the process's own pending writes first, like a page cache would.
 */
#include "tests/arbiter/crashio.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PENDING_MAX 8u
#define MAX_SECTOR 4096u

struct pending {
	uint64_t index;
	uint8_t *data;
};

struct crashio {
	struct arbiter_io io;
	int fd;
	struct crash_plan plan;
	unsigned writes;
	unsigned ops;
	unsigned npending;
	struct pending pending[PENDING_MAX];
	jmp_buf *crash_point;
};

static struct crashio *to_crash(struct arbiter_io *io)
{
	return (struct crashio *)((char *)io - offsetof(struct crashio, io));
}

static int op_fails(struct crashio *c)
{
	c->ops++;
	return c->plan.fail_count && c->ops >= c->plan.fail_from && c->ops < c->plan.fail_from + c->plan.fail_count;
}

static int raw_write(struct crashio *c, uint64_t index, const void *buf)
{
	ssize_t n = pwrite(c->fd, buf, c->io.sector_size, (off_t)(index * c->io.sector_size));

	if (n != (ssize_t)c->io.sector_size)
		return n < 0 ? -errno : -EIO;
	if (index >= c->io.sectors)
		c->io.sectors = index + 1;
	return 0;
}

static int crash_read(struct arbiter_io *io, uint64_t index, void *buf)
{
	struct crashio *c = to_crash(io);
	ssize_t n;

	if (op_fails(c))
		return -EIO;
	for (unsigned i = c->npending; i-- > 0;)
		if (c->pending[i].index == index) {
			memcpy(buf, c->pending[i].data, io->sector_size);
			return 0;
		}
	n = pread(c->fd, buf, io->sector_size, (off_t)(index * io->sector_size));
	if (n < 0)
		return -errno;
	return n == (ssize_t)io->sector_size ? 0 : -ENOSPC;
}

/* The process dies at its planned write: decide what the disk keeps, then exit. */
static void FTVM_NORETURN crash_now(struct crashio *c, uint64_t index, const uint8_t *buf)
{
	uint8_t s[MAX_SECTOR];
	unsigned half = c->io.sector_size / 2;

	switch (c->plan.mode) {
	case CRASH_AFTER_WRITE:
		for (unsigned i = 0; i < c->npending; i++)
			(void)raw_write(c, c->pending[i].index, c->pending[i].data);
		(void)raw_write(c, index, buf);
		break;
	case CRASH_GARBLE:
		srand(c->plan.seed + index);
		for (unsigned i = 0; i < c->io.sector_size; i++)
			s[i] = (uint8_t)rand();
		(void)raw_write(c, index, s);
		break;
	case CRASH_TORN:
		if (pread(c->fd, s, c->io.sector_size, (off_t)(index * c->io.sector_size)) < 0)
			memset(s, 0, c->io.sector_size);
		memcpy(s, buf, half);
		(void)raw_write(c, index, s);
		break;
	default: /* CRASH_DROP: nothing unsynced survives */
		break;
	}
	for (unsigned i = 0; i < c->npending; i++)
		free(c->pending[i].data);
	c->npending = 0;
	if (c->crash_point)
		longjmp(*c->crash_point, 1);
	_exit(CRASH_EXIT_STATUS);
}

static int crash_write(struct arbiter_io *io, uint64_t index, const void *buf)
{
	struct crashio *c = to_crash(io);
	struct pending *p;

	if (op_fails(c))
		return -EIO;
	c->writes++;
	if (c->plan.mode != CRASH_NONE && c->writes == c->plan.at_write)
		crash_now(c, index, buf);
	if (c->npending == PENDING_MAX)
		return -ENOBUFS; /* the algorithm forgot to sync */
	p = &c->pending[c->npending];
	p->data = malloc(io->sector_size);
	if (!p->data)
		return -ENOMEM;
	p->index = index;
	memcpy(p->data, buf, io->sector_size);
	c->npending++;
	return 0;
}

static int crash_sync(struct arbiter_io *io)
{
	struct crashio *c = to_crash(io);
	int ret = 0;

	for (unsigned i = 0; i < c->npending; i++) {
		if (ret == 0)
			ret = raw_write(c, c->pending[i].index, c->pending[i].data);
		free(c->pending[i].data);
	}
	c->npending = 0;
	return ret;
}

/* Unsynced writes die with the handle, as they would with the process. */
static void crash_close(struct arbiter_io *io)
{
	struct crashio *c = to_crash(io);

	for (unsigned i = 0; i < c->npending; i++)
		free(c->pending[i].data);
	close(c->fd);
	free(c);
}

static const struct arbiter_io_ops crash_ops = {
	.read_sector = crash_read,
	.write_sector = crash_write,
	.sync = crash_sync,
	.close = crash_close,
};

struct arbiter_io *crashio_open(const char *path, unsigned sector_size, uint64_t sectors,
				const struct crash_plan *plan)
{
	struct crashio *c = calloc(1, sizeof(*c));
	off_t size;

	if (!c || sector_size > MAX_SECTOR)
		goto fail;
	c->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->fd < 0)
		goto fail;
	if (sectors && ftruncate(c->fd, (off_t)(sectors * sector_size)) < 0) {
		close(c->fd);
		goto fail;
	}
	size = lseek(c->fd, 0, SEEK_END);
	c->io.ops = &crash_ops;
	c->io.sector_size = sector_size;
	c->io.sectors = size > 0 ? (uint64_t)size / sector_size : 0;
	if (plan)
		c->plan = *plan;
	return &c->io;
fail:
	free(c);
	return NULL;
}

void crashio_set_crash_point(struct arbiter_io *io, jmp_buf *env)
{
	to_crash(io)->crash_point = env;
}

unsigned crashio_writes(struct arbiter_io *io)
{
	return to_crash(io)->writes;
}

unsigned crashio_pending(struct arbiter_io *io)
{
	return to_crash(io)->npending;
}

const char *crashio_mode_name(enum crash_mode mode)
{
	static const char *const names[CRASH_MODES] = { "none", "after-write", "drop", "garble", "torn" };

	return mode < CRASH_MODES ? names[mode] : "?";
}
