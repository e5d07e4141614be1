/*
 * disk_digest.c — the XXH3-128 digest of whole disk images (see disk_digest.h), streamed through
 * one buffer.
 */
#include "util/disk_digest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int disk_images_digest(struct disk_image *const *imgs, unsigned n, char hex[DISK_DIGEST_HEX], char *err,
		       size_t errlen)
{
	uint8_t *buf = malloc(DISK_DIGEST_CHUNK);
	XXH3_state_t *st = XXH3_createState();
	int ret = 0;
	if (!buf || !st || XXH3_128bits_reset(st) != XXH_OK) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < n && !ret; i++) {
		uint64_t size = disk_image_size(imgs[i]);
		for (uint64_t off = 0; off < size; off += DISK_DIGEST_CHUNK) {
			size_t len = size - off < DISK_DIGEST_CHUNK ? (size_t)(size - off) : DISK_DIGEST_CHUNK;
			ret = disk_image_read(imgs[i], buf, len, off);
			if (ret) {
				snprintf(err, errlen, "disk %u: reading byte %llu: %s", i, (unsigned long long)off,
					 strerror(-ret));
				break;
			}
			(void)XXH3_128bits_update(st, buf, len);
		}
	}
	if (!ret) {
		XXH128_hash_t h = XXH3_128bits_digest(st);
		snprintf(hex, DISK_DIGEST_HEX, "%016llx%016llx", (unsigned long long)h.high64,
			 (unsigned long long)h.low64);
	}
out:
	XXH3_freeState(st);
	free(buf);
	return ret;
}

void disk_digest_range(const void *data, size_t len, uint64_t *lo, uint64_t *hi)
{
	XXH128_hash_t h = XXH3_128bits(data, len);
	*lo = h.low64;
	*hi = h.high64;
}
