/*
 * virtio.h — virtio-mmio (version 2) devices: block, network, entropy.
 *
 * Each device is one bus region (0x200 bytes of registers plus config space in a 0x1000 slot) and
 * one PLIC source. The guest's register writes are deterministic and handled on the vCPU thread;
 * what needs the outside world goes out through the machine's world (vm/event.h): disk requests,
 * transmitted frames, entropy requests. What comes back (DISK_DONE, NET_RX, RNG) is applied with
 * virtio_apply_event() at an icount the world chose, and only then touches guest memory.
 * A malformed virtqueue (bad descriptor, loop, out-of-RAM address) puts the device in the
 * DEVICE_NEEDS_RESET state as the spec says; it never aborts ftvm.
 */
#ifndef FTVM_VM_VIRTIO_H
#define FTVM_VM_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include "util/compiler.h"
#include "vm/bus.h"
#include "vm/event.h"

struct virtio_device;

/* Frames cross the world boundary (net_tx, NET_RX payloads, the TAP back end) as bare Ethernet
 * frames; the virtio-net header exists only between the device model and the guest's driver. */

/* What a device needs from the board. */
struct virtio_host {
	struct vm_bus *bus;                 /* guest RAM for virtqueues and buffers */
	struct vm_world *world;             /* outputs and requests */
	void (*set_irq)(void *board, unsigned irq, bool level);
	void *board;
	unsigned irq;                       /* PLIC source */
	unsigned index;                     /* index among devices of its kind: disk 0, nic 0, ... */
};

/* A block device takes no new request while this many requests, or this many data bytes, are
 * submitted to the world and not completed — orphans of a driver reset included. */
#define VIRTIO_BLK_MAX_UNFINISHED 512u
#define VIRTIO_BLK_MAX_UNFINISHED_BYTES (32u << 20)
int virtio_blk_create(const struct virtio_host *host, uint64_t capacity_bytes, bool read_only,
		      struct virtio_device **out) FTVM_MUST_CHECK;
int virtio_net_create(const struct virtio_host *host, const uint8_t mac[6],
		      struct virtio_device **out) FTVM_MUST_CHECK;
int virtio_rng_create(const struct virtio_host *host, struct virtio_device **out) FTVM_MUST_CHECK;
void virtio_destroy(struct virtio_device *dev);

/* The register region to add to the bus at `base`. */
struct bus_region virtio_mmio_region(struct virtio_device *dev, uint64_t base);

/* Applies NET_RX, DISK_DONE or RNG to this device on the vCPU thread. Returns 0, or -EINVAL when
 * the event does not fit the device's state (unknown request id...): in replay that is divergence. */
int virtio_apply_event(struct virtio_device *dev, const struct vm_event *ev) FTVM_MUST_CHECK;

/* Requests submitted to the world and not yet completed, in submission order, for reissue at
 * go-live (also those a driver reset orphaned: the world still runs them). Fills up to max and
 * returns how many there are (possibly more than max). A write's data pointer stays valid until
 * its DISK_DONE is applied. */
unsigned virtio_blk_pending(const struct virtio_device *dev, struct vm_disk_request *out, unsigned max);

/* Counters of one device (fields that do not apply to its kind stay 0); reading never resets them. */
struct virtio_stats {
	uint64_t notifies;        /* QueueNotify writes */
	uint64_t used;            /* buffers returned to the driver */
	uint64_t interrupts;      /* used-buffer interrupts raised */
	uint64_t malformed;       /* rings found malformed (each sets DEVICE_NEEDS_RESET) */
	uint64_t resets;          /* driver resets (Status = 0) */
	uint64_t rx_frames;       /* net: frames delivered to the guest */
	uint64_t rx_dropped;      /* net: frames dropped (no buffer, buffer too small, device down) */
	uint64_t tx_frames;       /* net: frames sent with net_tx */
	uint64_t tx_dropped;      /* net: transmitted buffers too short to hold an Ethernet header */
	uint64_t disk_requests;   /* blk: requests submitted to the world */
	uint64_t disk_errors;     /* blk: requests failed (IOERR/UNSUPP, by the device or the disk) */
	uint64_t rng_requests;    /* rng: rng_request calls */
	uint64_t rng_bytes;       /* rng: bytes delivered to the guest */
};
void virtio_get_stats(const struct virtio_device *dev, struct virtio_stats *out);

/* Folds the device's state (registers, queue indices) into a digest. */
uint64_t virtio_digest(const struct virtio_device *dev, uint64_t seed);

#endif
