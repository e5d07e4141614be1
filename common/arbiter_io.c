/*
 * arbiter_io.c — the real sector I/O layer of the arbiter: a regular file or block device opened
 * with O_DIRECT|O_DSYNC, so every write reaches stable storage before it returns and no page cache
 * sits between two hosts. Each call moves exactly one sector through an aligned bounce buffer.
 */
#include "common/arbiter_io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_SECTOR_SIZE 4096u  /* regular files: safe for every device under them */
#define MIN_SECTOR_SIZE 512u
#define MAX_SECTOR_SIZE 4096u
#define BOUNCE_ALIGN 4096u

struct file_io {
	struct arbiter_io io;
	int fd;
	void *bounce;
};

static struct file_io *to_file(struct arbiter_io *io)
{
	return (struct file_io *)((char *)io - offsetof(struct file_io, io));
}

static int file_read_sector(struct arbiter_io *io, uint64_t index, void *buf)
{
	struct file_io *f = to_file(io);
	ssize_t n = pread(f->fd, f->bounce, io->sector_size, (off_t)(index * io->sector_size));

	if (n < 0)
		return -errno;
	if ((size_t)n != io->sector_size)
		return -ENOSPC; /* past the end: the area is too small */
	memcpy(buf, f->bounce, io->sector_size);
	return 0;
}

static int file_write_sector(struct arbiter_io *io, uint64_t index, const void *buf)
{
	struct file_io *f = to_file(io);
	ssize_t n;

	memcpy(f->bounce, buf, io->sector_size);
	n = pwrite(f->fd, f->bounce, io->sector_size, (off_t)(index * io->sector_size));
	if (n < 0)
		return -errno;
	if ((size_t)n != io->sector_size)
		return -EIO;
	if (io->growable && index >= io->sectors)
		io->sectors = index + 1;
	return 0;
}

/* O_DSYNC made every completed write durable already. */
static int file_sync(struct arbiter_io *io)
{
	return 0;
}

static void file_close(struct arbiter_io *io)
{
	struct file_io *f = to_file(io);

	close(f->fd);
	free(f->bounce);
	free(f);
}

static const struct arbiter_io_ops file_ops = {
	.read_sector = file_read_sector,
	.write_sector = file_write_sector,
	.sync = file_sync,
	.close = file_close,
};

static void set_err(char err[ARBITER_ERR_MAX], const char *fmt, ...) FTVM_PRINTF(2, 3);
static void set_err(char err[ARBITER_ERR_MAX], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, ARBITER_ERR_MAX, fmt, ap);
	va_end(ap);
}

int arbiter_io_open_file(const char *path, int create, struct arbiter_io **out, char err[ARBITER_ERR_MAX])
{
	struct file_io *f = NULL;
	struct stat st;
	int flags = O_RDWR | O_DIRECT | O_DSYNC | O_CLOEXEC | (create ? O_CREAT : 0);
	int ret;

	f = calloc(1, sizeof(*f));
	if (!f) {
		set_err(err, "out of memory");
		return -ENOMEM;
	}
	f->fd = open(path, flags, 0660);
	if (f->fd < 0) {
		ret = -errno;
		if (ret == -EINVAL)
			set_err(err, "%s: the file system does not support O_DIRECT", path);
		else
			set_err(err, "cannot open %s: %s", path, strerror(-ret));
		goto out_free;
	}
	if (fstat(f->fd, &st) < 0) {
		ret = -errno;
		set_err(err, "cannot stat %s: %s", path, strerror(-ret));
		goto out_close;
	}
	if (S_ISBLK(st.st_mode)) {
		int ssz = 0;
		uint64_t bytes = 0;

		if (ioctl(f->fd, BLKSSZGET, &ssz) < 0 || ioctl(f->fd, BLKGETSIZE64, &bytes) < 0) {
			ret = -errno;
			set_err(err, "%s: cannot read the sector size: %s", path, strerror(-ret));
			goto out_close;
		}
		if (ssz < (int)MIN_SECTOR_SIZE || ssz > (int)MAX_SECTOR_SIZE || (ssz & (ssz - 1))) {
			ret = -EOPNOTSUPP;
			set_err(err, "%s: unsupported logical sector size %d", path, ssz);
			goto out_close;
		}
		f->io.sector_size = (unsigned)ssz;
		f->io.sectors = bytes / (unsigned)ssz;
	} else if (S_ISREG(st.st_mode)) {
		f->io.sector_size = FILE_SECTOR_SIZE;
		f->io.sectors = (uint64_t)st.st_size / FILE_SECTOR_SIZE;
		f->io.growable = 1;
	} else {
		ret = -EINVAL;
		set_err(err, "%s: neither a regular file nor a block device", path);
		goto out_close;
	}
	if (posix_memalign(&f->bounce, BOUNCE_ALIGN, f->io.sector_size) != 0) {
		ret = -ENOMEM;
		set_err(err, "out of memory");
		goto out_close;
	}
	f->io.ops = &file_ops;
	*out = &f->io;
	return 0;

out_close:
	close(f->fd);
out_free:
	free(f);
	return ret;
}
