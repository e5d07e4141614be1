/*
 * disk_replica.h — a replayer's own copy of one disk: the backup's replica, or the `--disk` copy
 * that `ftvm replay` writes to.
 *
 * The replaying guest submits the same disk requests, in the same order, as the recorded one; the
 * replica runs each at once, on the caller's thread (writes, and reads into a buffer kept until
 * the log delivers that request's completion), on a raw file or an NBD export (util/disk_image.h:
 * an NBD request that fails or passes its deadline is an I/O error status like any other, which
 * the replayer compares with the log's). The recording's back end ran its
 * requests one at a time in submission order too, so every read here sees exactly the earlier
 * writes the recorded read saw, whatever icount the completion arrives at. A guest flush is not
 * turned into a flush per request (the replica's durability matters only once it is the live
 * disk): disk_replica_sync() makes it durable before it is handed over or closed.
 * A shared disk (DISK_REPLICA_SHARED) is the primary's live disk, not a copy: it is opened
 * read-only, the guest's writes are dropped (the primary performs them), and a read is only
 * remembered at submission and performed when the log delivers its DISK_DIGEST
 * (disk_replica_read_shared()): by then the primary's own read has happened, and with it every
 * write submitted before it (replay/shared_reads.h says why no later write can be there yet).
 * Held reads are bounded (DISK_REPLICA_MAX_HELD requests, DISK_REPLICA_MAX_HELD_BYTES bytes), as
 * the device bounds its unfinished requests; past the bound a request is answered with an I/O error
 * status, which the replayer reports if the log says otherwise.
 */
#ifndef FTVM_REPLAY_DISK_REPLICA_H
#define FTVM_REPLAY_DISK_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/event.h"

#define DISK_REPLICA_MAX_HELD 1024u
#define DISK_REPLICA_MAX_HELD_BYTES (64u << 20)

struct disk_replica;

/* A completed request the log has not delivered yet: what the replica's own run of it gave. */
struct disk_replica_done {
	uint64_t id;
	enum vm_disk_op op;
	uint32_t status;          /* enum vm_disk_status */
	uint32_t len;             /* bytes read (reads that succeeded), else 0 */
	const uint8_t *data;      /* valid until the next disk_replica_take() or close */
	bool shared;              /* a shared disk's: a write was dropped, a read not yet performed */
	uint64_t sector;          /* shared: where a read is to be performed */
	uint32_t read_len;
};

enum disk_replica_kind { DISK_REPLICA_COPY, DISK_REPLICA_SHARED };

/* Opens the image at path (a copy for reading and writing, a shared disk read-only); -errno with
 * a one-line reason. */
int disk_replica_open(const char *path, unsigned index, enum disk_replica_kind kind, struct disk_replica **out,
		      char *err, size_t errlen) FTVM_MUST_CHECK;
/* Runs the request now and keeps its completion. */
void disk_replica_submit(struct disk_replica *r, const struct vm_disk_request *req);
/* Takes the completion of request id: 0, or -ENOENT when no such request was submitted (or it was
 * taken already). */
int disk_replica_take(struct disk_replica *r, uint64_t id, struct disk_replica_done *done) FTVM_MUST_CHECK;
/* A shared disk's read taken from the log: performs it now into done->data (valid like a
 * take's), setting done->status and done->len. */
void disk_replica_read_shared(struct disk_replica *r, struct disk_replica_done *done);
/* Makes every write so far durable (fdatasync, NBD flush): 0 or -errno. */
int disk_replica_sync(struct disk_replica *r) FTVM_MUST_CHECK;
/* Syncs (a failure is reported on stderr) and closes. */
void disk_replica_close(struct disk_replica *r);

#endif
