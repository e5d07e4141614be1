/*
 * disk_file.h — a disk image's bytes and size, for the live disk back end and the replayer's disk
 * copies alike: whole-range positioned reads and writes (pread/pwrite may stop short), and the
 * size of a regular file or block device.
 */
#ifndef FTVM_UTIL_DISK_FILE_H
#define FTVM_UTIL_DISK_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/compiler.h"

/* Reads or writes all of [off, off + len): 0, or -errno (-EIO at the end of the file). */
int disk_file_io(int fd, bool write, void *buf, size_t len, off_t off) FTVM_MUST_CHECK;
/* The size in bytes of the regular file or block device open as fd: 0, -EINVAL for anything
 * else, or -errno. */
int disk_file_size(int fd, uint64_t *size) FTVM_MUST_CHECK;

#endif
