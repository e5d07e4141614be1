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

/* What a device needs from the board. */
struct virtio_host {
	struct vm_bus *bus;                 /* guest RAM for virtqueues and buffers */
	struct vm_world *world;             /* outputs and requests */
	void (*set_irq)(void *board, unsigned irq, bool level);
	void *board;
	unsigned irq;                       /* PLIC source */
	unsigned index;                     /* index among devices of its kind: disk 0, nic 0, ... */
};

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

/* Requests submitted to the world and not yet completed (ids), for reissue at go-live. */
unsigned virtio_blk_pending(const struct virtio_device *dev, struct vm_disk_request *out, unsigned max);

/* Folds the device's state (registers, queue indices) into a digest. */
uint64_t virtio_digest(const struct virtio_device *dev, uint64_t seed);

#endif
