/*
 * state_file.c — snapshot files (see state_file.h): a buffered sink and source around the state
 * encoder and decoder.
 */
#include "host/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/private_file.h"

#define FILE_BUFFER (4u << 20)

struct file_io {
	int fd;
	uint8_t *buf;
	size_t used, start, end;   /* write: used; read: buf[start..end) not yet consumed */
	bool eof;
};

static int flush_buffer(struct file_io *f)
{
	int ret = private_file_write_all(f->fd, f->buf, f->used);
	f->used = 0;
	return ret;
}

static int sink_write(void *ctx, const void *buf, size_t len)
{
	struct file_io *f = ctx;
	const uint8_t *p = buf;
	while (len) {
		if (f->used == FILE_BUFFER) {
			int ret = flush_buffer(f);
			if (ret)
				return ret;
		}
		size_t n = len < FILE_BUFFER - f->used ? len : FILE_BUFFER - f->used;
		memcpy(f->buf + f->used, p, n);
		f->used += n;
		p += n;
		len -= n;
	}
	return 0;
}

int state_file_save(const char *path, bool replace, const struct machine *m, const struct state_extra *extra,
		    struct state_stats *stats, char *err, size_t errlen)
{
	struct file_io f = { .fd = -1 };
	int ret;
	if (!(f.buf = malloc(FILE_BUFFER))) {
		snprintf(err, errlen, "snapshot %s: out of memory", path);
		return -ENOMEM;
	}
	f.fd = private_file_create(path, replace, "snapshot", err, errlen);
	if (f.fd < 0) {
		ret = f.fd;
		goto out;
	}
	char why[512];
	ret = state_encode(m, (struct state_sink){ .write = sink_write, .ctx = &f }, extra, stats, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "snapshot %s: %s", path, why);
		goto out;
	}
	ret = flush_buffer(&f);
	if (!ret && fsync(f.fd) < 0)
		ret = -errno;
	if (ret)
		snprintf(err, errlen, "snapshot %s: cannot write: %s", path, strerror(-ret));
out:
	if (f.fd >= 0 && close(f.fd) < 0 && !ret) {
		ret = -errno;
		snprintf(err, errlen, "snapshot %s: cannot write: %s", path, strerror(-ret));
	}
	if (ret && f.fd >= 0)
		unlink(path);  /* only a file this call created: private_file_create() made it anew */
	free(f.buf);
	return ret;
}

/* Refills the read buffer; 0 at the end of the file, -errno on an error. */
static ssize_t fill(struct file_io *f)
{
	f->start = 0;
	for (;;) {
		ssize_t n = read(f->fd, f->buf, FILE_BUFFER);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		f->end = (size_t)n;
		f->eof = n == 0;
		return n;
	}
}

static ssize_t source_read(void *ctx, void *buf, size_t len)
{
	struct file_io *f = ctx;
	size_t done = 0;
	while (done < len) {
		if (f->start == f->end) {
			if (f->eof)
				break;
			ssize_t n = fill(f);
			if (n < 0)
				return n;
			if (n == 0)
				break;
		}
		size_t n = f->end - f->start < len - done ? f->end - f->start : len - done;
		memcpy((uint8_t *)buf + done, f->buf + f->start, n);
		f->start += n;
		done += n;
	}
	return (ssize_t)done;
}

int state_file_load(const char *path, struct machine *m, struct state_extra *extra, struct state_stats *stats,
		    char *err, size_t errlen)
{
	struct file_io f = { .fd = -1 };
	int ret;
	if (!(f.buf = malloc(FILE_BUFFER))) {
		snprintf(err, errlen, "snapshot %s: out of memory", path);
		return -ENOMEM;
	}
	f.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f.fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "snapshot %s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	char why[512];
	struct state_stats local;
	struct state_stats *st = stats ? stats : &local;
	ret = state_decode(m, (struct state_source){ .read = source_read, .ctx = &f }, extra, st, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "snapshot %s: %s", path, why);
		goto out;
	}
	uint8_t extra_byte;
	ssize_t n = source_read(&f, &extra_byte, 1);
	if (n != 0) {
		ret = n < 0 ? (int)n : -EBADMSG;
		snprintf(err, errlen, "snapshot %s: %s at byte %llu, after the END section", path,
			 n < 0 ? strerror((int)-n) : "trailing bytes", (unsigned long long)st->bytes);
	}
out:
	if (f.fd >= 0)
		close(f.fd);
	free(f.buf);
	return ret;
}
