/*
 * disk_digest.h — the XXH3-128 digest of whole disk images, in order: what two FT nodes with
 * replicated disks compare when they pair up (docs/disks.md), so a pair never starts on replicas
 * that differ anywhere, read or not.
 *
 * Every byte is read (holes read as zeros), DISK_DIGEST_CHUNK at a time; the cost is one
 * sequential read of each replica (README, Numbers).
 */
#ifndef FTVM_UTIL_DISK_DIGEST_H
#define FTVM_UTIL_DISK_DIGEST_H

#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "util/disk_image.h"

#define DISK_DIGEST_CHUNK (1u << 20)
#define DISK_DIGEST_HEX 33u   /* 32 hex digits and the NUL */

/* The digest of images [0, n) taken as one byte string, as 32 lowercase hex digits in hex:
 * 0, or -errno with err naming the image. */
int disk_images_digest(struct disk_image *const *imgs, unsigned n, char hex[DISK_DIGEST_HEX], char *err,
		       size_t errlen) FTVM_MUST_CHECK;

/* The XXH3-128 of one range's bytes (a resync compares blocks by it): low and high halves. */
void disk_digest_range(const void *data, size_t len, uint64_t *lo, uint64_t *hi);

#endif
