/*
 * disk_image.h — a disk image's bytes, wherever they live: a raw file or block device (pread and
 * pwrite on a descriptor, the fast path), or an NBD export (util/nbd_uri.h) read and written
 * through libnbd, so that QEMU's storage code (qemu-storage-daemon, qemu-nbd) serves qcow2 images
 * with backing files and anything else it can open.
 *
 * Every NBD request has a deadline (DISK_IMAGE_NBD_DEADLINE_MS): a server that dies or stops
 * answering fails the request with -ETIMEDOUT or -EIO, and the connection is then given up for
 * good, so every later request fails at once with -EIO (never a hang, and never a request that
 * might still land after its caller was told it failed). The caller turns that into an I/O error
 * for the guest; this module prints the reason on stderr once.
 *
 * A plain path whose first bytes are an image format's magic (qcow2, QED, VMDK, VHDX) is refused:
 * its bytes are not the disk's, and QEMU's storage code must read it (the message says how).
 * One image is used by one thread at a time.
 */
#ifndef FTVM_UTIL_DISK_IMAGE_H
#define FTVM_UTIL_DISK_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"

#define DISK_IMAGE_SECTOR 512u
#define DISK_IMAGE_NBD_DEADLINE_MS 10000u   /* connecting, and each request */

struct disk_image;

/* Opens spec (a path or an NBD URI) for reading, or reading and writing: 0, or -errno with a
 * one-line reason in err. The size must be a non-zero multiple of DISK_IMAGE_SECTOR. */
int disk_image_open(const char *spec, bool read_only, struct disk_image **out, char *err,
		    size_t errlen) FTVM_MUST_CHECK;
/* The format of the image file at path by its magic: "qcow2", "qed", "vmdk", "vhdx" (qemu-img's
 * names), or "raw" for anything else; 0 or -errno with err. */
int disk_image_file_format(const char *path, const char **format, char *err, size_t errlen) FTVM_MUST_CHECK;
/* The size of the image at spec in bytes (opened read-only and closed again). */
int disk_image_probe_size(const char *spec, uint64_t *size, char *err, size_t errlen) FTVM_MUST_CHECK;
uint64_t disk_image_size(const struct disk_image *img);
/* Whether the image is an NBD export (not the raw fast path). */
bool disk_image_is_nbd(const struct disk_image *img);
/* Reads or writes all of [off, off + len) (inside the image): 0 or -errno. */
int disk_image_read(struct disk_image *img, void *buf, size_t len, uint64_t off) FTVM_MUST_CHECK;
int disk_image_write(struct disk_image *img, const void *buf, size_t len, uint64_t off) FTVM_MUST_CHECK;
/* A second handle on the same image, for another thread (a raw file through /proc/self/fd, so
 * an unlinked scratch file works too; an NBD export on the same connection, so a server that
 * takes one client serves both, their requests one at a time): 0 or -errno with err. */
int disk_image_reopen(struct disk_image *img, bool read_only, struct disk_image **out, char *err,
		      size_t errlen) FTVM_MUST_CHECK;
/*
 * Live copies of a disk (migration with its storage, the FT clone of replicated disks):
 * disk_image_data_extent() finds the next range at or after off that may hold data: *start is
 * its first byte (the image's size when only holes follow), *end the first byte after it. A raw
 * file answers with SEEK_DATA/SEEK_HOLE; anything else is one extent. Both are sector-aligned.
 */
int disk_image_data_extent(struct disk_image *img, uint64_t off, uint64_t *start, uint64_t *end) FTVM_MUST_CHECK;
/* Starts writing [off, off + len) back to the disk without waiting (a raw file: sync_file_range;
 * otherwise nothing), so a later disk_image_flush() has less left to wait for. */
void disk_image_start_writeback(struct disk_image *img, uint64_t off, uint64_t len);
/* Makes [off, off + len) read as zeros: a hole punched in a file, or zeros written. 0 or -errno. */
int disk_image_zero(struct disk_image *img, uint64_t off, uint64_t len) FTVM_MUST_CHECK;
/* Makes every completed write durable (fdatasync, NBD_CMD_FLUSH): 0 or -errno. */
int disk_image_flush(struct disk_image *img) FTVM_MUST_CHECK;
void disk_image_close(struct disk_image *img);

#endif
