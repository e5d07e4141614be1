/*
 * private_file.c — see private_file.h.
 */
#include "util/private_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int private_file_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int private_file_create(const char *path, bool replace, const char *what, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EEXIST) {
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
			snprintf(err, errlen, "cannot create %s %s: it is a symbolic link (not followed)", what, path);
			return -ELOOP;
		}
		if (!replace) {
			snprintf(err, errlen, "cannot create %s %s: the file exists (--force replaces it)", what, path);
			return -EEXIST;
		}
		if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "cannot replace %s: not a regular file", path);
			return -EEXIST;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			int ret = -errno;
			snprintf(err, errlen, "cannot replace %s %s: %s", what, path, strerror(errno));
			return ret;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		int ret = -errno;
		snprintf(err, errlen, "cannot create %s %s: %s", what, path, strerror(errno));
		return ret;
	}
	return fd;
}
