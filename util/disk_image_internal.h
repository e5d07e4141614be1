/*
 * disk_image_internal.h — what the two kinds of disk image (disk_image.c: raw files, disk_nbd.c:
 * NBD exports) share: the common part every image embeds, and its ops table.
 */
#ifndef FTVM_UTIL_DISK_IMAGE_INTERNAL_H
#define FTVM_UTIL_DISK_IMAGE_INTERNAL_H

#include "util/disk_image.h"

struct disk_image_ops {
	/* All of [off, off + len), already checked to lie inside the image. */
	int (*io)(struct disk_image *img, bool write, void *buf, size_t len, uint64_t off);
	int (*flush)(struct disk_image *img);
	void (*close)(struct disk_image *img);
};

struct disk_image {
	const struct disk_image_ops *ops;
	uint64_t size;
	bool read_only;
	char name[256];            /* the spec, for messages (cut if longer) */
};

int disk_nbd_open(const char *uri, bool read_only, struct disk_image **out, char *err,
		  size_t errlen) FTVM_MUST_CHECK;
/* A second handle on img's connection (disk_nbd.c): the caller sets its read_only. */
int disk_nbd_share(struct disk_image *img, struct disk_image **out, char *err, size_t errlen) FTVM_MUST_CHECK;

#endif
