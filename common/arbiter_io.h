/*
 * arbiter_io.h — the sector I/O layer under the arbiter, split from the algorithm so tests can put a
 * crash-simulating layer in between (kill after the Nth write, drop or garble unsynced writes, fail
 * reads), in the spirit of SQLite's crash VFS.
 *
 * Contract of an implementation: read_sector/write_sector move exactly one sector of sector_size
 * bytes at sector index `index`; a write is durable and visible to every reader only after sync()
 * returns 0; a sector is never seen half-written by a reader once sync() has returned. Errors are
 * -errno. The buffers need no particular alignment (the file layer bounces through aligned memory).
 */
#ifndef FTVM_COMMON_ARBITER_IO_H
#define FTVM_COMMON_ARBITER_IO_H

#include <stddef.h>
#include <stdint.h>

#include "util/compiler.h"

/* Size of every error-message buffer of the arbiter and its I/O layer. */
#define ARBITER_ERR_MAX 256u

struct arbiter_io;

struct arbiter_io_ops {
	int (*read_sector)(struct arbiter_io *io, uint64_t index, void *buf);
	int (*write_sector)(struct arbiter_io *io, uint64_t index, const void *buf);
	int (*sync)(struct arbiter_io *io);
	void (*close)(struct arbiter_io *io);
};

struct arbiter_io {
	const struct arbiter_io_ops *ops;
	unsigned sector_size; /* 512 or 4096 */
	uint64_t sectors;     /* capacity in sectors */
	int growable;         /* a regular file: writes past `sectors` extend it */
};

/* Opens a regular file or block device with O_DIRECT|O_DSYNC. Sector size: the device's logical
 * sector size (BLKSSZGET) for a block device, 4096 for a regular file. With create, a missing regular
 * file is created (empty). */
FTVM_MUST_CHECK int arbiter_io_open_file(const char *path, int create, struct arbiter_io **out,
					 char err[ARBITER_ERR_MAX]);

#endif
