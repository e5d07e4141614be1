/*
 * virtio_state.h — a virtio device's state as plain data: the virtio-mmio transport (registers,
 * each queue's layout and ring positions) and what the device model tracks beyond it (a block
 * device's unfinished requests with their segments and write data, an entropy device's waiting
 * buffers). Configuration (capacity, MAC, read-only) is not state: it comes from the machine's
 * configuration, whose digest a saved state carries.
 *
 * virtio_restore() checks a state as strictly as the device's own register handlers check the
 * guest: queue sizes, ring alignment, rings and buffers inside RAM, counts within the device's
 * bounds, request ids unique and below the next one. A refused state leaves the device as it was.
 */
#ifndef FTVM_VM_VIRTIO_STATE_H
#define FTVM_VM_VIRTIO_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/virtio.h"

#define VIRTIO_STATE_QUEUES 2u
#define VIRTIO_STATE_QUEUE_SIZE 256u

struct virtio_seg_state {
	uint64_t addr;
	uint32_t len;
};

struct virtio_queue_state {
	uint32_t num;
	bool ready;
	uint64_t desc, driver, device;
	uint16_t last_avail, used_idx;
};

/* A block request submitted to the world and not completed. */
struct virtio_blk_request_state {
	uint64_t id;
	uint32_t op;               /* enum vm_disk_op */
	uint64_t sector;
	uint32_t len;
	uint16_t head;
	bool orphan;
	uint32_t in_len;           /* writable bytes of the chain, the status byte last */
	uint32_t nsegs;            /* writable segments */
	struct virtio_seg_state segs[VIRTIO_STATE_QUEUE_SIZE];
};

struct virtio_blk_state {
	uint64_t next_id;
	uint32_t live;
	bool throttled;
	uint32_t npending;         /* in submission order */
	struct virtio_blk_request_state pending[VIRTIO_BLK_MAX_UNFINISHED];
	uint64_t data_len;         /* the bytes of every pending write, in order */
	uint8_t *data;             /* owned by the state: virtio_state_release() */
};

struct virtio_rng_buf_state {
	uint16_t head;
	uint32_t len;
	uint32_t nsegs;
	struct virtio_seg_state segs[VIRTIO_STATE_QUEUE_SIZE];
};

struct virtio_rng_state {
	uint64_t inflight;
	uint32_t count;            /* oldest first */
	struct virtio_rng_buf_state fifo[VIRTIO_STATE_QUEUE_SIZE];
};

struct virtio_state {
	uint32_t device_id;
	uint32_t index;
	uint64_t device_features, driver_features;
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint32_t status, interrupt_status, config_generation;
	bool irq_level;
	struct virtio_queue_state vq[VIRTIO_STATE_QUEUES];
	union {
		struct virtio_blk_state blk;
		struct virtio_rng_state rng;
	} u;
};

struct state_io;
/* Allocates a state (large: use the heap) and frees it with what it owns. */
struct virtio_state *virtio_state_alloc(void);
void virtio_state_free(struct virtio_state *s);
/* Fills s (releasing what it held). -ENOMEM when a write's data cannot be copied. */
int virtio_save(const struct virtio_device *dev, struct virtio_state *s) FTVM_MUST_CHECK;
/* Checks s against the device (kind, index, features, RAM) and loads it; -EINVAL or -ENOMEM with
 * the reason in err. The interrupt line is not driven: the PLIC's restored state holds it. */
int virtio_restore(struct virtio_device *dev, const struct virtio_state *s, char *err, size_t errlen)
	FTVM_MUST_CHECK;
/* Moves a struct virtio_state to or from bytes (state_io.h); loading allocates a block device's
 * write data (released by virtio_state_free). */
void virtio_state_io(struct state_io *io, void *state);

#endif
