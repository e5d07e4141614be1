/*
 * disk_image.c — disk images (see disk_image.h): the front door that tells a path from an NBD
 * URI, the bounds every request is checked against, and the raw file back end. The NBD back end
 * is disk_nbd.c.
 */
#define DIAG_MODULE "disk"
#include "util/disk_image_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/diag.h"
#include "util/disk_file.h"
#include "util/nbd_uri.h"

struct raw_image {
	struct disk_image img;
	int fd;
};

/* Formats whose files start with a magic: their bytes are not the disk's. */
static const struct {
	const char *name;
	const char *magic;
	size_t len;
} formats[] = {
	{ "qcow2", "QFI\xfb", 4 }, { "qed", "QED\0", 4 }, { "vmdk", "KDMV", 4 }, { "vhdx", "vhdxfile", 8 },
};

static int raw_io(struct disk_image *img, bool write, void *buf, size_t len, uint64_t off)
{
	struct raw_image *r = (struct raw_image *)img;
	return disk_file_io(r->fd, write, buf, len, (off_t)off);
}

static int raw_flush(struct disk_image *img)
{
	struct raw_image *r = (struct raw_image *)img;
	return fdatasync(r->fd) == 0 ? 0 : -errno;
}

static void raw_close(struct disk_image *img)
{
	struct raw_image *r = (struct raw_image *)img;
	close(r->fd);
	free(r);
}

static const struct disk_image_ops raw_ops = {
	.io = raw_io,
	.flush = raw_flush,
	.close = raw_close,
};

/* The format named by the magic at the start of the file open as fd: "raw" when there is none. */
static const char *file_format(int fd)
{
	char head[8];
	ssize_t n = pread(fd, head, sizeof(head), 0);
	for (size_t i = 0; n > 0 && i < sizeof(formats) / sizeof(formats[0]); i++)
		if ((size_t)n >= formats[i].len && memcmp(head, formats[i].magic, formats[i].len) == 0)
			return formats[i].name;
	return "raw";
}

/* -EMEDIUMTYPE with the format's name when the file starts with an image format's magic. */
static int refuse_formatted(int fd, const char *path, char *err, size_t errlen)
{
	const char *format = file_format(fd);
	if (strcmp(format, "raw") == 0)
		return 0;
	snprintf(err, errlen,
		 "disk %s: a %s image, not a raw one; serve it with qemu-storage-daemon or qemu-nbd and give its "
		 "NBD URI (nbd+unix:///EXPORT?socket=PATH, docs/disks.md)",
		 path, format);
	return -EMEDIUMTYPE;
}

int disk_image_file_format(const char *path, const char **format, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	*format = file_format(fd);
	close(fd);
	return 0;
}

static int raw_open(const char *path, bool read_only, struct disk_image **out, char *err, size_t errlen)
{
	uint64_t size = 0;
	int ret, fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "disk %s: cannot open%s: %s", path, read_only ? "" : " for writing",
			 strerror(-ret));
		return ret;
	}
	ret = disk_file_size(fd, &size);
	if (ret < 0) {
		snprintf(err, errlen, "disk %s: %s", path,
			 ret == -EINVAL ? "not a regular file or block device" : strerror(-ret));
		goto fail;
	}
	ret = refuse_formatted(fd, path, err, errlen);
	if (ret < 0)
		goto fail;
	struct raw_image *r = calloc(1, sizeof(*r));
	if (!r) {
		ret = -ENOMEM;
		snprintf(err, errlen, "disk %s: out of memory", path);
		goto fail;
	}
	r->img.ops = &raw_ops;
	r->img.size = size;
	r->fd = fd;
	*out = &r->img;
	return 0;
fail:
	close(fd);
	return ret;
}

int disk_image_open(const char *spec, bool read_only, struct disk_image **out, char *err, size_t errlen)
{
	struct disk_image *img = NULL;
	*out = NULL;
	if (!spec || !*spec) {
		snprintf(err, errlen, "disk: empty path");
		return -EINVAL;
	}
	int ret = nbd_uri_is_nbd(spec) ? disk_nbd_open(spec, read_only, &img, err, errlen)
				       : raw_open(spec, read_only, &img, err, errlen);
	if (ret < 0)
		return ret;
	img->read_only = read_only;
	snprintf(img->name, sizeof(img->name), "%s", spec);
	if (img->size == 0 || img->size % DISK_IMAGE_SECTOR) {
		snprintf(err, errlen, "disk %s: size %llu is not a non-zero multiple of %u bytes", spec,
			 (unsigned long long)img->size, DISK_IMAGE_SECTOR);
		img->ops->close(img);
		return -EINVAL;
	}
	*out = img;
	return 0;
}

int disk_image_probe_size(const char *spec, uint64_t *size, char *err, size_t errlen)
{
	struct disk_image *img;
	int ret = disk_image_open(spec, true, &img, err, errlen);
	if (ret < 0)
		return ret;
	*size = img->size;
	disk_image_close(img);
	return 0;
}

uint64_t disk_image_size(const struct disk_image *img)
{
	return img->size;
}

bool disk_image_is_nbd(const struct disk_image *img)
{
	return img->ops != &raw_ops;
}

static int checked_io(struct disk_image *img, bool write, void *buf, size_t len, uint64_t off)
{
	if (off > img->size || len > img->size - off)
		return -EINVAL;
	if (write && img->read_only)
		return -EROFS;
	return len ? img->ops->io(img, write, buf, len, off) : 0;
}

int disk_image_read(struct disk_image *img, void *buf, size_t len, uint64_t off)
{
	return checked_io(img, false, buf, len, off);
}

int disk_image_write(struct disk_image *img, const void *buf, size_t len, uint64_t off)
{
	return checked_io(img, true, (void *)buf, len, off);
}

int disk_image_flush(struct disk_image *img)
{
	return img->read_only ? 0 : img->ops->flush(img);
}

int disk_image_reopen(struct disk_image *img, bool read_only, struct disk_image **out, char *err, size_t errlen)
{
	if (!read_only && img->read_only) {
		snprintf(err, errlen, "disk %s: opened read-only", img->name);
		return -EBADF;
	}
	if (disk_image_is_nbd(img)) { /* the same connection: a one-client server serves both */
		int ret = disk_nbd_share(img, out, err, errlen);
		if (!ret)
			(*out)->read_only = read_only;
		return ret;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", ((struct raw_image *)img)->fd);
	return disk_image_open(path, read_only, out, err, errlen);
}

static uint64_t align_down(uint64_t v)
{
	return v / DISK_IMAGE_SECTOR * DISK_IMAGE_SECTOR;
}

int disk_image_data_extent(struct disk_image *img, uint64_t off, uint64_t *start, uint64_t *end)
{
	*start = *end = img->size;
	if (off >= img->size)
		return 0;
	if (disk_image_is_nbd(img)) {
		*start = off;
		return 0;
	}
	int fd = ((struct raw_image *)img)->fd;
	off_t data = lseek(fd, (off_t)off, SEEK_DATA);
	if (data < 0)
		/* ENXIO: only a hole follows; EINVAL: no SEEK_DATA here (a block device): all data. */
		return errno == ENXIO ? 0 : errno == EINVAL ? (*start = off, 0) : -errno;
	off_t hole = lseek(fd, data, SEEK_HOLE);
	if (hole < 0)
		return -errno;
	*start = align_down((uint64_t)data);
	*end = (uint64_t)hole > img->size ? img->size : (uint64_t)hole;
	/* A hole ends a sector early or late only on a file whose size is not a sector multiple. */
	*end = (*end + DISK_IMAGE_SECTOR - 1) / DISK_IMAGE_SECTOR * DISK_IMAGE_SECTOR;
	if (*end > img->size)
		*end = img->size;
	if (*start < off)
		*start = off;
	return 0;
}

void disk_image_start_writeback(struct disk_image *img, uint64_t off, uint64_t len)
{
	if (!disk_image_is_nbd(img) && !img->read_only &&
	    sync_file_range(((struct raw_image *)img)->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) != 0)
		diag_debug("%s: sync_file_range: %s", img->name, strerror(errno));
}

int disk_image_zero(struct disk_image *img, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[64 << 10];
	if (img->read_only)
		return -EBADF;
	if (off > img->size || len > img->size - off)
		return -EINVAL;
	if (!disk_image_is_nbd(img) &&
	    fallocate(((struct raw_image *)img)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int ret = img->ops->io(img, true, (void *)zeros, n, off);
		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

void disk_image_close(struct disk_image *img)
{
	if (img)
		img->ops->close(img);
}
