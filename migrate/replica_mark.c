/*
 * replica_mark.c — the pairing mark beside a replica file (see replica_mark.h).
 *
 * Written to a temporary name, synced, renamed over the old one and the directory synced, so a
 * crash leaves the old mark or the new one. Read with O_NOFOLLOW and checked for its owner, type
 * and exact size before a byte is used: another local user cannot plant one.
 */
#include "migrate/replica_mark.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/byteorder.h"
#include "util/crc32c.h"
#include "util/diag.h"
#include "util/disk_image.h"
#include "util/nbd_uri.h"

#define MARK_MAGIC 0x4B4D5246u /* "FRMK" */
#define MARK_VERSION 1u
#define MARK_NAME_AT 32u
#define MARK_CRC_AT (MARK_NAME_AT + REPLICA_MARK_NAME_MAX)

static int mark_path(const char *path, const char *extra, char *out, size_t outlen)
{
	if (nbd_uri_is_nbd(path))
		return -EOPNOTSUPP;
	int n = snprintf(out, outlen, "%s%s%s", path, REPLICA_MARK_SUFFIX, extra);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int sync_dir_of(const char *file)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", file);
	int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int ret = fsync(fd) ? -errno : 0;
	close(fd);
	return ret;
}

int replica_mark_write(const char *path, const struct replica_mark *mk, char *why, size_t whylen)
{
	char final[4096], tmp[4096];
	size_t nlen = strlen(mk->name);
	int ret = mark_path(path, "", final, sizeof(final));
	if (!ret)
		ret = mark_path(path, ".new", tmp, sizeof(tmp));
	if (ret) {
		snprintf(why, whylen, "%s: no pairing mark for this replica: %s", path, strerror(-ret));
		return ret;
	}
	struct stat rst;
	if (stat(path, &rst) || !S_ISREG(rst.st_mode)) {
		/* a block device's mark would be a file in /dev: such replicas have none */
		snprintf(why, whylen, "%s: not a regular file: no pairing mark for this replica", path);
		return -EOPNOTSUPP;
	}
	if (nlen == 0 || nlen > REPLICA_MARK_NAME_MAX) {
		snprintf(why, whylen, "%s: a VM name of %zu bytes does not fit a pairing mark", path, nlen);
		return -EINVAL;
	}
	uint8_t rec[REPLICA_MARK_SIZE] = { 0 };
	put_le32(rec, MARK_MAGIC);
	put_le16(rec + 4, MARK_VERSION);
	put_le64(rec + 8, mk->epoch);
	put_le64(rec + 16, mk->disk_size);
	put_le32(rec + 24, mk->disk);
	put_le32(rec + 28, (uint32_t)nlen);
	memcpy(rec + MARK_NAME_AT, mk->name, nlen);
	put_le32(rec + MARK_CRC_AT, crc32c(0, rec, MARK_CRC_AT));

	(void)unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ssize_t n = write(fd, rec, sizeof(rec));
	ret = n == (ssize_t)sizeof(rec) ? 0 : n < 0 ? -errno : -EIO;
	if (!ret && fsync(fd))
		ret = -errno;
	close(fd);
	if (!ret && rename(tmp, final))
		ret = -errno;
	if (!ret)
		ret = sync_dir_of(final);
out:
	if (ret) {
		(void)unlink(tmp);
		snprintf(why, whylen, "%s: cannot write the pairing mark: %s", final, strerror(-ret));
	}
	return ret;
}

int replica_mark_read(const char *path, struct replica_mark *out, char *why, size_t whylen)
{
	char file[4096];
	int ret = mark_path(path, "", file, sizeof(file));
	if (ret) {
		snprintf(why, whylen, "%s: a replica on NBD has no pairing mark", path);
		return ret == -EOPNOTSUPP ? -ENOENT : ret;
	}
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, whylen, "%s: %s", file, ret == -ENOENT ? "no pairing mark" : strerror(-ret));
		return ret;
	}
	uint8_t rec[REPLICA_MARK_SIZE];
	struct stat st;
	const char *fault = NULL;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
		fault = "not a regular file of this user";
	else if (st.st_size != REPLICA_MARK_SIZE || pread(fd, rec, sizeof(rec), 0) != (ssize_t)sizeof(rec))
		fault = "not the size of a pairing mark";
	else if (crc32c(0, rec, MARK_CRC_AT) != get_le32(rec + MARK_CRC_AT))
		fault = "bad CRC";
	else if (get_le32(rec) != MARK_MAGIC || get_le16(rec + 4) != MARK_VERSION || get_le16(rec + 6))
		fault = "bad magic, version or reserved field";
	close(fd);
	uint32_t nlen = fault ? 0 : get_le32(rec + 28);
	if (!fault && (nlen == 0 || nlen > REPLICA_MARK_NAME_MAX || memchr(rec + MARK_NAME_AT, 0, nlen)))
		fault = "bad name length";
	if (fault) {
		snprintf(why, whylen, "%s: refused: %s", file, fault);
		return -EINVAL;
	}
	out->epoch = get_le64(rec + 8);
	out->disk_size = get_le64(rec + 16);
	out->disk = get_le32(rec + 24);
	memcpy(out->name, rec + MARK_NAME_AT, nlen);
	out->name[nlen] = 0;
	return 0;
}

void replica_mark_clear(const char *path)
{
	char file[4096];
	if (!mark_path(path, "", file, sizeof(file)))
		(void)unlink(file);
}

void replica_marks_write_all(const char *const *paths, unsigned n, const char *name, uint64_t epoch)
{
	for (unsigned i = 0; i < n; i++) {
		struct replica_mark mk = { .epoch = epoch, .disk = i };
		struct disk_image *img;
		char err[320];
		if (nbd_uri_is_nbd(paths[i]))
			continue;
		int ret = disk_image_open(paths[i], true, &img, err, sizeof(err));
		if (!ret) {
			mk.disk_size = disk_image_size(img);
			disk_image_close(img);
			snprintf(mk.name, sizeof(mk.name), "%s", name);
			ret = replica_mark_write(paths[i], &mk, err, sizeof(err));
		}
		if (ret && ret != -EOPNOTSUPP)
			diag_warn("%s", err);
	}
}
