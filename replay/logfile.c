/*
 * logfile.c — buffered writer and streaming reader of event log files (docs/log-format.md).
 *
 * A log is created by util/private_file.h: mode 0600, never through a symbolic link, never over
 * an existing file unless the caller asks to replace it.
 */
#include "replay/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/private_file.h"

#define WRITE_BUFFER (4u << 20)
#define READ_BUFFER (2 * EVLOG_MAX_RECORD)

struct logfile_writer {
	int fd;
	int error;
	uint64_t next_lsn;
	uint64_t written;
	size_t used;
	uint8_t *buf;
};

struct logfile_reader {
	int fd;
	bool eof;
	uint64_t offset;     /* file offset of buf[start] */
	uint64_t prev_lsn;
	icount_t prev_icount;
	size_t start, end;
	uint8_t *buf;
};

int logfile_create(const char *path, const struct evlog_header *header, bool replace, struct logfile_writer **out,
		   char *err, size_t errlen)
{
	uint8_t head[EVLOG_HEADER_SIZE];
	struct logfile_writer *w = calloc(1, sizeof(*w));
	int ret;

	if (!w || !(w->buf = malloc(WRITE_BUFFER))) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	w->fd = private_file_create(path, replace, "log", err, errlen);
	if (w->fd < 0) {
		ret = w->fd;
		goto fail;
	}
	evlog_encode_header(header, head);
	ret = private_file_write_all(w->fd, head, sizeof(head));
	if (ret < 0) {
		snprintf(err, errlen, "cannot write log %s: %s", path, strerror(-ret));
		close(w->fd);
		goto fail;
	}
	w->next_lsn = header->start_lsn;
	w->written = sizeof(head);
	*out = w;
	return 0;
fail:
	if (w)
		free(w->buf);
	free(w);
	return ret;
}

int logfile_flush(struct logfile_writer *w)
{
	if (w->used && !w->error) {
		int ret = private_file_write_all(w->fd, w->buf, w->used);
		if (ret < 0)
			w->error = ret;
	}
	w->used = 0;
	return w->error;
}

int logfile_append(struct logfile_writer *w, enum evlog_kind kind, icount_t icount, const uint8_t *payload,
		   uint32_t len, uint64_t *lsn)
{
	if (len > EVLOG_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (w->used + EVLOG_RECORD_OVERHEAD + len > WRITE_BUFFER) {
		int ret = logfile_flush(w);
		if (ret < 0)
			return ret;
	}
	struct evlog_record rec = { .kind = kind, .lsn = w->next_lsn, .icount = icount, .len = len,
				    .payload = payload };
	size_t n = evlog_encode_record(&rec, w->buf + w->used);
	w->used += n;
	w->written += n;
	if (lsn)
		*lsn = w->next_lsn;
	w->next_lsn++;
	return w->error;
}

uint64_t logfile_bytes_written(const struct logfile_writer *w)
{
	return w->written;
}

int logfile_close(struct logfile_writer *w)
{
	if (!w)
		return 0;
	int ret = logfile_flush(w);
	if (close(w->fd) < 0 && ret == 0)
		ret = -errno;
	free(w->buf);
	free(w);
	return ret;
}

/* Reads more of the file after the unread bytes; returns bytes added, 0 at EOF, or -errno. */
static ssize_t reader_fill(struct logfile_reader *r)
{
	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->offset += r->start;
		r->end -= r->start;
		r->start = 0;
	}
	for (;;) {
		ssize_t n = read(r->fd, r->buf + r->end, READ_BUFFER - r->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			r->eof = true;
		r->end += (size_t)n;
		return n;
	}
}

int logfile_open(const char *path, struct logfile_reader **out, struct evlog_header *header, char *err,
		 size_t errlen)
{
	struct logfile_reader *r = calloc(1, sizeof(*r));
	int ret;

	if (!r || !(r->buf = malloc(READ_BUFFER))) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto fail;
	}
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open log %s: %s", path, strerror(errno));
		goto fail;
	}
	while (r->end < EVLOG_HEADER_SIZE && !r->eof) {
		ssize_t n = reader_fill(r);
		if (n < 0) {
			ret = (int)n;
			snprintf(err, errlen, "cannot read log %s: %s", path, strerror((int)-n));
			goto fail_close;
		}
	}
	ret = evlog_decode_header(r->buf, r->end, header, err, errlen);
	if (ret < 0)
		goto fail_close;
	r->start = EVLOG_HEADER_SIZE;
	r->prev_lsn = header->start_lsn - 1;
	*out = r;
	return 0;
fail_close:
	close(r->fd);
fail:
	if (r)
		free(r->buf);
	free(r);
	return ret;
}

int logfile_next(struct logfile_reader *r, struct evlog_record *rec, char *err, size_t errlen)
{
	char why[256];
	for (;;) {
		size_t used;
		int ret = evlog_decode_record(r->buf + r->start, r->end - r->start, rec, &used, why, sizeof(why));
		if (ret == 0) {
			ret = evlog_check_sequence(rec, r->prev_lsn, r->prev_icount, why, sizeof(why));
			if (ret < 0)
				goto bad;
			r->prev_lsn = rec->lsn;
			r->prev_icount = rec->icount;
			r->start += used;
			return 1;
		}
		if (ret != -EAGAIN)
			goto bad;
		if (r->eof) {
			if (r->start == r->end)
				return 0;
			snprintf(err, errlen, "log truncated at byte %llu: record after lsn %llu needs %zu bytes, %zu left",
				 (unsigned long long)(r->offset + r->start), (unsigned long long)r->prev_lsn, used,
				 r->end - r->start);
			return -EBADMSG;
		}
		ssize_t n = reader_fill(r);
		if (n < 0) {
			snprintf(err, errlen, "cannot read log: %s", strerror((int)-n));
			return -EIO;
		}
		continue;
bad:
		/* Name the position by the last good record too: a corrupt record's own lsn is untrusted. */
		snprintf(err, errlen, "log corrupt at byte %llu, the record after lsn %llu: %s",
			 (unsigned long long)(r->offset + r->start), (unsigned long long)r->prev_lsn, why);
		return -EBADMSG;
	}
}

uint64_t logfile_offset(const struct logfile_reader *r)
{
	return r->offset + r->start;
}

void logfile_close_reader(struct logfile_reader *r)
{
	if (!r)
		return;
	close(r->fd);
	free(r->buf);
	free(r);
}
