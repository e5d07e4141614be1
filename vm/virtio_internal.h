/*
 * virtio_internal.h — what the virtio-mmio transport shares with the three device models.
 *
 * virtio_mmio.c owns the register file of virtio-mmio version 2 (virtio 1.2 §4.2.2), feature
 * negotiation, device status and reset, and the split virtqueue (§2.7): it walks descriptor
 * chains into validated segment lists, returns used buffers and raises the interrupt. A device
 * (virtio_blk.c, virtio_net.c, virtio_rng.c) embeds struct virtio_device as its first member and
 * supplies an ops table: what to do on a queue notification, on reset, on an applied event.
 *
 * Everything here runs on the vCPU thread and depends only on register writes, guest memory and
 * applied events. Guest data is never trusted: a malformed ring puts the device into
 * DEVICE_NEEDS_RESET (virtio_set_needs_reset) and the device stops using its queues until the
 * driver resets it.
 */
#ifndef FTVM_VM_VIRTIO_INTERNAL_H
#define FTVM_VM_VIRTIO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/virtio.h"
#include "vm/virtio_state.h"

/* Device IDs (virtio 1.2 §5). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG 4

/* Feature bits shared by all devices (§6). */
#define VIRTIO_F_VERSION_1 32

/* Device status bits (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01u
#define VIRTIO_STATUS_DRIVER 0x02u
#define VIRTIO_STATUS_DRIVER_OK 0x04u
#define VIRTIO_STATUS_FEATURES_OK 0x08u
#define VIRTIO_STATUS_NEEDS_RESET 0x40u
#define VIRTIO_STATUS_FAILED 0x80u

/* InterruptStatus bits (§4.2.2). */
#define VIRTIO_INT_USED_BUFFER 0x1u
#define VIRTIO_INT_CONFIG_CHANGE 0x2u

#define VIRTIO_MAX_QUEUES VIRTIO_STATE_QUEUES
#define VIRTQ_MAX_SIZE VIRTIO_STATE_QUEUE_SIZE   /* QueueNumMax of every queue */
#define VIRTIO_CONFIG_MAX 64u     /* bytes of device-specific configuration space */

/* Split virtqueue: one queue's driver-programmed registers plus the device's ring positions. */
struct virtq {
	uint32_t num;          /* QueueNum; a power of two <= VIRTQ_MAX_SIZE once ready */
	bool ready;
	uint64_t desc;         /* descriptor table */
	uint64_t driver;       /* available ring */
	uint64_t device;       /* used ring */
	uint16_t last_avail;   /* next available-ring entry the device will take */
	uint16_t used_idx;     /* the device's copy of used->idx */
};

/* One guest buffer of a chain, already checked to lie inside RAM. */
struct virtio_seg {
	uint64_t addr;
	uint32_t len;
};

/* A descriptor chain taken from the available ring: device-readable segments first
 * (segs[0..nout)), then device-writable ones (segs[nout..nsegs)). */
struct virtio_chain {
	uint16_t head;
	unsigned nout;
	unsigned nsegs;
	uint64_t out_len;
	uint64_t in_len;
	struct virtio_seg segs[VIRTQ_MAX_SIZE];
};

struct virtio_device;

struct virtio_device_ops {
	const char *name;
	uint32_t device_id;
	unsigned nqueues;
	/* The driver wrote queue index q to QueueNotify; q < nqueues and the queue is ready. */
	void (*notify)(struct virtio_device *dev, unsigned q);
	/* Device-specific reset when the driver writes Status = 0 (optional). */
	void (*reset)(struct virtio_device *dev);
	/* An event for this device (virtio_apply_event checked nothing but the pointer). */
	int (*apply)(struct virtio_device *dev, const struct vm_event *ev);
	/* The device model's own part of the state (optional: a device without one has none). save
	 * returns 0 or -ENOMEM; restore checks everything before it changes anything. */
	int (*save)(const struct virtio_device *dev, struct virtio_state *s);
	int (*restore)(struct virtio_device *dev, const struct virtio_state *s, char *err, size_t errlen);
	void (*destroy)(struct virtio_device *dev);
};

struct virtio_device {
	const struct virtio_device_ops *ops;
	struct virtio_host host;
	uint64_t device_features;
	uint64_t driver_features;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	uint32_t status;
	uint32_t interrupt_status;
	uint32_t config_generation;
	bool irq_level;                   /* what set_irq was last told */
	struct virtq vq[VIRTIO_MAX_QUEUES];
	uint8_t config[VIRTIO_CONFIG_MAX];
	uint32_t config_len;
	struct virtio_stats stats;
};

/* Fills the common part; the caller sets config and features. */
void virtio_init(struct virtio_device *dev, const struct virtio_device_ops *ops,
		 const struct virtio_host *host, uint64_t device_features);

/* True while the device may use its queues: DRIVER_OK set and NEEDS_RESET clear. */
bool virtio_running(const struct virtio_device *dev);
bool virtio_has_feature(const struct virtio_device *dev, unsigned bit);

/* Marks the device broken (§2.1.2): sets NEEDS_RESET and raises a configuration-change
 * interrupt when the driver is up. `why` is logged (rate-limited). */
void virtio_set_needs_reset(struct virtio_device *dev, const char *why);

/* Takes the next chain from queue q's available ring.
 * Returns 1 with *chain filled, 0 when the ring is empty (or the queue/device is not running), or
 * -EIO when the ring or chain is malformed (the device is then in NEEDS_RESET).
 * virtq_peek leaves the entry in the ring; virtq_pop consumes it. */
int virtq_peek(struct virtio_device *dev, unsigned q, struct virtio_chain *chain) FTVM_MUST_CHECK;
int virtq_pop(struct virtio_device *dev, unsigned q, struct virtio_chain *chain) FTVM_MUST_CHECK;
void virtq_consume(struct virtio_device *dev, unsigned q);

/* Returns chain `head` to the used ring with `len` bytes written, and raises the used-buffer
 * interrupt unless the driver suppressed it (VRING_AVAIL_F_NO_INTERRUPT). */
void virtq_push(struct virtio_device *dev, unsigned q, uint16_t head, uint32_t len);

/* Copies between a host buffer and a chain's segments, starting `offset` bytes into the readable
 * (gather) or writable (scatter) part. Return the number of bytes copied. */
size_t virtio_gather(const struct virtio_device *dev, const struct virtio_chain *chain, uint64_t offset,
		     void *buf, size_t len);
size_t virtio_scatter(const struct virtio_device *dev, const struct virtio_seg *segs, unsigned nsegs,
		      uint64_t offset, const void *buf, size_t len);

/* Why a chain's saved segments cannot be the device's (NULL when each lies in RAM, the count is
 * within a queue, and they add up to total bytes). For the device models' restore. */
const char *virtio_segs_problem(const struct virtio_device *dev, const struct virtio_seg_state *segs,
				uint32_t nsegs, uint64_t total);
/* The state walks of the device-specific parts (virtio_state_io dispatches on device_id). */
void virtio_blk_state_io(struct state_io *io, struct virtio_blk_state *s);
void virtio_rng_state_io(struct state_io *io, struct virtio_rng_state *s);
/* Walks n segments (n already checked against VIRTIO_STATE_QUEUE_SIZE). */
void virtio_segs_state_io(struct state_io *io, struct virtio_seg_state *segs, uint32_t n);

static inline void virtio_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void virtio_put_le32(uint8_t *p, uint32_t v)
{
	virtio_put_le16(p, (uint16_t)v);
	virtio_put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void virtio_put_le64(uint8_t *p, uint64_t v)
{
	virtio_put_le32(p, (uint32_t)v);
	virtio_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t virtio_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t virtio_get_le32(const uint8_t *p)
{
	return virtio_get_le16(p) | ((uint32_t)virtio_get_le16(p + 2) << 16);
}

static inline uint64_t virtio_get_le64(const uint8_t *p)
{
	return virtio_get_le32(p) | ((uint64_t)virtio_get_le32(p + 4) << 32);
}

#endif
