/*
 * replica_mark.h — the pairing mark of a disk replica: a small file beside a replica file
 * (PATH.ftvm-pairing, never inside the guest's bytes) that says "this replica was equal to its
 * peer's when pairing EPOCH of VM NAME started". A node that comes back after losing its peer
 * shows it to the FT clone, which then sends only the blocks written since that pairing and
 * digests of the rest (docs/disks.md, Resync).
 *
 * The mark is a hint, never trusted for the guest's bytes: every block not sent is compared by
 * digest, so a mark that lies (a replica changed while away, writes a host crash lost) costs a
 * full copy, never a wrong replica. Format (docs/disks.md), 164 bytes, little-endian:
 *   magic u32 "FRMK", version u16 1, reserved u16 0, epoch u64, disk size u64, disk index u32,
 *   name length u32 (1..128), name (128 bytes, zero-padded), CRC32C of all before it.
 * Replicas given as NBD URIs or block devices have no mark (a resync to them is refused: a full
 * copy).
 */
#ifndef FTVM_MIGRATE_REPLICA_MARK_H
#define FTVM_MIGRATE_REPLICA_MARK_H

#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"

#define REPLICA_MARK_SUFFIX ".ftvm-pairing"
#define REPLICA_MARK_NAME_MAX 128u
#define REPLICA_MARK_SIZE 164u

struct replica_mark {
	uint64_t epoch;
	uint64_t disk_size;
	unsigned disk;
	char name[REPLICA_MARK_NAME_MAX + 1];
};

/* Writes the mark of the replica at path durably (written beside, synced, renamed over, directory
 * synced): 0, -EOPNOTSUPP for a replica that is no regular file (an NBD URI, a block device), or
 * another -errno, with why. */
int replica_mark_write(const char *path, const struct replica_mark *mk, char *why, size_t whylen) FTVM_MUST_CHECK;
/* Reads it: 0, -ENOENT (no mark), or another -errno with why (a mark that is not a regular file
 * of this user, of another size, or fails its checks). */
int replica_mark_read(const char *path, struct replica_mark *out, char *why, size_t whylen) FTVM_MUST_CHECK;
/* A node's own replicas at the start of pairing `epoch` (their sizes read from them): marks written,
 * a failure only warned about (it costs a full copy later). */
void replica_marks_write_all(const char *const *paths, unsigned n, const char *name, uint64_t epoch);
/* Removes it (before the replica's bytes change other than by the pairing it names). */
void replica_mark_clear(const char *path);

#endif
