/*
 * private_file.h — creating a file that holds a VM's data (an event log, a snapshot).
 *
 * Such files carry console input, disk data and the guest's entropy, so they are created mode
 * 0600 with O_CREAT | O_EXCL | O_NOFOLLOW: never through a symbolic link (O_EXCL refuses any
 * existing name, a dangling link included) and never over an existing file unless the caller was
 * told to replace it, and then only a regular file, which is unlinked and created anew.
 */
#ifndef FTVM_UTIL_PRIVATE_FILE_H
#define FTVM_UTIL_PRIVATE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include "util/compiler.h"

/* The new file's descriptor (write-only), or -errno with "cannot create WHAT PATH: ..." in err. */
int private_file_create(const char *path, bool replace, const char *what, char *err, size_t errlen) FTVM_MUST_CHECK;

/* Writes all of buf to fd (retrying EINTR and short writes); 0 or -errno. */
int private_file_write_all(int fd, const void *buf, size_t len) FTVM_MUST_CHECK;

#endif
