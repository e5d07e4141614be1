/*
 * backend.h — live back ends: the host side of the devices in a plain run or a recording.
 *
 * Each back end does its host I/O on its own thread and never touches guest memory: what it
 * produces (a frame read from a TAP device, a completed disk request with the bytes read, entropy)
 * is posted as a vm_event to a sink (the live world's input queue), which copies it. The vCPU
 * thread applies it later, at an icount of its choosing.
 */
#ifndef FTVM_HOST_BACKEND_H
#define FTVM_HOST_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/event.h"

struct backend_sink {
	/* Thread-safe; copies ev and its payload. icount is ignored (the vCPU stamps it). */
	void (*post)(void *ctx, const struct vm_event *ev);
	void *ctx;
};

/* Raw disk image; requests run in order of submission on an I/O thread. */
struct disk_backend;
int disk_backend_open(const char *path, bool read_only, unsigned index, struct backend_sink sink,
		      struct disk_backend **out, char *err, size_t errlen) FTVM_MUST_CHECK;
uint64_t disk_backend_size(const struct disk_backend *disk);
/* Copies req (and write data); completion is posted as VM_EV_DISK_DONE with the same id. */
void disk_backend_submit(struct disk_backend *disk, const struct vm_disk_request *req);
/* Waits until every submitted request has completed and been posted. */
void disk_backend_drain(struct disk_backend *disk);
void disk_backend_close(struct disk_backend *disk);
/*
 * Dirty-block tracking for a live copy of the disk (migration with its storage, the FT clone):
 * one bit per DISK_DIRTY_BLOCK bytes, set by the I/O thread once a write has reached the image
 * (so a block read by the copier before the write is collected after it). Host side only: the
 * guest and the log never see it. Any thread.
 */
#define DISK_DIRTY_BLOCK (64u << 10)
/* A handle of the caller's own on the disk's image (disk_image_reopen()). */
struct disk_image;
int disk_backend_reopen(struct disk_backend *disk, bool read_only, struct disk_image **out, char *err,
			size_t errlen) FTVM_MUST_CHECK;
/* Blocks of the disk (the bitmap's bits) and 64-bit words of the bitmap. */
uint64_t disk_backend_blocks(const struct disk_backend *disk);
size_t disk_backend_dirty_words(const struct disk_backend *disk);
/* Starts tracking with no block dirty: 0 or -ENOMEM. */
int disk_backend_dirty_start(struct disk_backend *disk) FTVM_MUST_CHECK;
/* ORs the blocks written since the last collection into out (words of them) and clears them. */
void disk_backend_dirty_collect(struct disk_backend *disk, uint64_t *out, size_t words);
void disk_backend_dirty_stop(struct disk_backend *disk);
/* Is block b marked dirty (written since tracking started, not yet collected)? */
bool disk_backend_dirty_test(struct disk_backend *disk, uint64_t b);
/*
 * The blocks the peer's replica may lack (the resync of a returning node, docs/disks.md): set
 * with the dirty bits, in two generations, on from the back end's opening (a writable disk).
 * disk_backend_written_reset() empties both when a pairing starts; disk_backend_written_rotate()
 * drops the older generation and starts a new one — called once the peer holds every write made
 * before the current generation began, so the two together always cover every write since a
 * point the peer had reached (primary/ft_primary.c).
 */
void disk_backend_written_reset(struct disk_backend *disk);
void disk_backend_written_rotate(struct disk_backend *disk);
/* ORs the blocks of both generations into out (words of them); 0, or -ENOMEM when the back end
 * could not keep them. */
int disk_backend_written_collect(struct disk_backend *disk, uint64_t *out, size_t words) FTVM_MUST_CHECK;

/* TAP device (IFF_TAP | IFF_NO_PI). Frames are bare Ethernet frames both ways; the virtio-net
 * header lives only in the device model (virtio_net.c). */
#define TAP_MIN_FRAME 14           /* an Ethernet header; the event log refuses shorter frames */
struct tap_backend;
int tap_backend_open(const char *ifname, unsigned index, struct backend_sink sink,
		     struct tap_backend **out, char *err, size_t errlen) FTVM_MUST_CHECK;
void tap_backend_send(struct tap_backend *tap, const uint8_t *frame, size_t len);
void tap_backend_close(struct tap_backend *tap);

/* Host entropy (getrandom); answers a request by posting VM_EV_RNG. */
void rng_backend_request(unsigned index, uint32_t len, struct backend_sink sink);

#endif
