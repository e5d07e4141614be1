/*
 * state_file.c — snapshot files (see state_file.h): a buffered sink and source around the state
 * encoder and decoder.
 */
#include "host/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* What goes into the file: a machine between runs, or a state saved earlier with its RAM copy. */
struct save_what {
	const struct machine *m;
	const struct machine_identity *id;
	struct machine_state *s;
	const uint8_t *ram;
	size_t ram_size;
	const struct state_extra *extra;
};

/* Encodes `what` into fd through a buffer and syncs it. 0, or -errno with err. */
static int write_state(int fd, const char *path, const struct save_what *what, struct state_stats *stats, char *err,
		       size_t errlen)
{
	struct file_io f = { .fd = fd };
	int ret;
	if (!(f.buf = malloc(FILE_BUFFER))) {
		snprintf(err, errlen, "snapshot %s: out of memory", path);
		return -ENOMEM;
	}
	char why[512];
	struct state_sink sink = { .write = sink_write, .ctx = &f };
	if (what->m)
		ret = state_encode(what->m, sink, what->extra, stats, why, sizeof(why));
	else
		ret = state_encode_saved(what->id, what->s, what->ram, what->ram_size, sink, what->extra, stats, why,
					 sizeof(why));
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
	free(f.buf);
	return ret;
}

int state_file_save(const char *path, bool replace, const struct machine *m, const struct state_extra *extra,
		    struct state_stats *stats, char *err, size_t errlen)
{
	int fd = private_file_create(path, replace, "snapshot", err, errlen);
	if (fd < 0)
		return fd;
	struct save_what what = { .m = m, .extra = extra };
	int ret = write_state(fd, path, &what, stats, err, errlen);
	if (close(fd) < 0 && !ret) {
		ret = -errno;
		snprintf(err, errlen, "snapshot %s: cannot write: %s", path, strerror(-ret));
	}
	if (ret)
		unlink(path);  /* only a file this call created: private_file_create() made it anew */
	return ret;
}

int state_file_check_target(const char *path, bool replace, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		int ret = -errno;
		snprintf(err, errlen, "cannot create snapshot %s: %s", path, strerror(errno));
		return ret;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(err, errlen, "cannot create snapshot %s: it is a symbolic link (not followed)", path);
		return -ELOOP;
	}
	if (!replace) {
		snprintf(err, errlen, "cannot create snapshot %s: the file exists (--force replaces it)", path);
		return -EEXIST;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cannot replace %s: not a regular file", path);
		return -EEXIST;
	}
	return 0;
}

/* Makes the rename durable: syncs the directory that holds path. */
static void sync_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

int state_file_save_saved(const char *path, bool replace, const struct machine_identity *id,
			  struct machine_state *s, const uint8_t *ram, size_t ram_size, struct state_stats *stats,
			  char *err, size_t errlen)
{
	static atomic_uint serial;
	char tmp[PATH_MAX];
	int ret = state_file_check_target(path, replace, err, errlen);
	if (ret)
		return ret;
	if (snprintf(tmp, sizeof(tmp), "%s.%d-%u.partial", path, (int)getpid(), atomic_fetch_add(&serial, 1)) >=
	    (int)sizeof(tmp)) {
		snprintf(err, errlen, "cannot create snapshot %s: name too long", path);
		return -ENAMETOOLONG;
	}
	int fd = private_file_create(tmp, false, "snapshot", err, errlen);
	if (fd < 0)
		return fd;
	struct save_what what = { .id = id, .s = s, .ram = ram, .ram_size = ram_size };
	ret = write_state(fd, path, &what, stats, err, errlen);
	if (close(fd) < 0 && !ret) {
		ret = -errno;
		snprintf(err, errlen, "snapshot %s: cannot write: %s", path, strerror(-ret));
	}
	/* Into place only complete: over an existing name only when asked (and never over a link or
	 * anything but a regular file, checked again as late as possible), else atomically refused. */
	if (!ret && replace && (ret = state_file_check_target(path, replace, err, errlen)) == 0 &&
	    rename(tmp, path) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot create snapshot %s: %s", path, strerror(errno));
	}
	if (!ret && !replace && renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		ret = -errno;
		if (errno == EEXIST)
			snprintf(err, errlen, "cannot create snapshot %s: the file exists (--force replaces it)", path);
		else
			snprintf(err, errlen, "cannot create snapshot %s: %s", path, strerror(errno));
	}
	if (ret)
		unlink(tmp);
	else
		sync_parent(path);
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

/* Opens path for reading through a buffer: 0, or -errno with err (nothing left to release). */
static int open_source(const char *path, struct file_io *f, char *err, size_t errlen)
{
	*f = (struct file_io){ .fd = -1 };
	if (!(f->buf = malloc(FILE_BUFFER))) {
		snprintf(err, errlen, "snapshot %s: out of memory", path);
		return -ENOMEM;
	}
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		int ret = -errno;
		snprintf(err, errlen, "snapshot %s: cannot open: %s", path, strerror(errno));
		free(f->buf);
		return ret;
	}
	return 0;
}

int state_file_load(const char *path, struct machine *m, struct state_extra *extra, struct state_stats *stats,
		    char *err, size_t errlen)
{
	struct file_io f;
	int ret = open_source(path, &f, err, errlen);
	if (ret)
		return ret;
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

int state_file_identity(const char *path, struct machine_identity *id, char *err, size_t errlen)
{
	struct file_io f;
	int ret = open_source(path, &f, err, errlen);
	if (ret)
		return ret;
	char why[512];
	ret = state_decode_identity((struct state_source){ .read = source_read, .ctx = &f }, id, why, sizeof(why));
	if (ret)
		snprintf(err, errlen, "snapshot %s: %s", path, why);
	close(f.fd);
	free(f.buf);
	return ret;
}
